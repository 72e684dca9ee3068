"""The Interactive tab: click, box, outline and scribble a 3D object, live, with unlimited undo.

Press *Start* on a scan: left-click inside the object (a positive click), right-click or
Ctrl-click outside it (negative); draw a rectangle or a polygon on the "boxes and outlines"
layer; paint on the "scribbles" layer (1 inside, 2 outside).  The object shows in the preview
layer as soon as the engine has it; Enter accepts it into the target labels without touching
other objects (unless *replace other objects* is on), Ctrl+Z / Ctrl+Y undo and redo any
number of steps (clicks and accepts), N starts the next object.  The engine runs in a worker:
prompts given while it works are queued, and only the newest object is drawn.

The core is :class:`napari_medseg.interactive.Session`; this tab turns layers and mouse events
into its prompts and its objects into layers.  What was taught (accepted objects) is kept in
the data folder and used for the next object of the same name, on any scan.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from magicgui.widgets import CheckBox, Container, LineEdit, PushButton, SpinBox

import napari
from napari_medseg._napari.interactive_layers import (
    SCRIBBLE_IN,
    SCRIBBLE_OUT,
    PromptLayers,
    make_prompt_layers,
    ray_voxel,
    shape_voxels,
    to_voxel,
)
from napari_medseg._napari.job_widget import JobStart, JobWidget
from napari_medseg._napari.layers import scan_from_layer
from napari_medseg._napari.notify import report, warn
from napari_medseg.errors import MedsegError
from napari_medseg.interactive import InteractiveError, Memory, Session
from napari_medseg.paths import config_dir

ACCEPT, UNDO, REDO, NEXT = "Enter", "Control-Z", "Control-Y", "N"
MEMORY_FILE = "interactive-memory.json"
Op = Callable[[Session], Any]


class InteractiveWidget(JobWidget):
    """Make objects from clicks, boxes, outlines and scribbles (see the module docstring)."""

    section = "interactive"
    run_text = "Accept object (Enter)"
    run_tooltip = "Write the object into the target labels, leaving other objects alone"
    idle_text = "Choose the scan, press Start, then click inside the object"
    busy_text = "the interactive engine"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(viewer)
        self.session: Session | None = None
        self.layers: PromptLayers | None = None
        self.scan_layer: Any = None
        self.memory = self._load_memory()
        self._queue: list[Op] = []
        self._busy = False
        self._writes: list[tuple[Any, tuple[np.ndarray, ...], np.ndarray, int]] = []
        self._undone: list[tuple[Any, tuple[np.ndarray, ...], np.ndarray, int]] = []
        self._region: Any = None
        self.image = self.layer_choice(napari.layers.Image, label="scan",
                                       tooltip="The scan to make objects on")
        self.target = self.layer_choice(napari.layers.Labels, label="into labels",
                                        tooltip="Accepted objects are written here")
        self.value = SpinBox(label="label value", value=0, min=0, max=65535,
                             tooltip="0 = a new value for each object")
        self.name = LineEdit(label="object name", value="object",
                             tooltip="Objects of one name teach the engine what it looks like")
        self.replace = CheckBox(text="replace other objects", value=False,
                                tooltip="Off: voxels of other objects are never overwritten")
        self.add_controls(Container(widgets=[self.image, self.target, self.value, self.name,
                                             self.replace]))
        self.start_button = PushButton(text="Start", tooltip="Add the prompt layers and "
                                       "listen to clicks on the scan")
        self.new_labels_button = PushButton(text="New labels layer",
                                            tooltip="An empty labels layer on the scan")
        self.add_controls(Container(widgets=[self.start_button, self.new_labels_button],
                                    layout="horizontal", labels=False))
        self.undo_button = PushButton(text="Undo (Ctrl+Z)", tooltip="Back one step: a click, "
                                      "a box, an accept; any number of times")
        self.redo_button = PushButton(text="Redo (Ctrl+Y)", tooltip="Forward one step again")
        self.next_button = PushButton(text="Next object (N)", tooltip="Drop this object's "
                                      "prompts and start the next (undoable)")
        self.unsure_button = PushButton(text="Least sure", tooltip="Go to where the engine "
                                        "is least sure about the object's border")
        self.train_button = PushButton(text="Train from these objects", enabled=False,
                                       tooltip="Open the Train tab on the target labels")
        self.add_buttons(self.undo_button, self.redo_button, self.next_button)
        self.add_buttons(self.unsure_button, self.train_button)
        self.cancel_button.visible = False
        self.progress.visible = False
        self.start_button.clicked.connect(self.start)
        self.new_labels_button.clicked.connect(self.new_labels)
        self.undo_button.clicked.connect(self.undo)
        self.redo_button.clicked.connect(self.redo)
        self.next_button.clicked.connect(self.next_object)
        self.unsure_button.clicked.connect(self.go_least_sure)
        self.train_button.clicked.connect(self.open_train)
        self.remember("name", "replace")
        self.reset_choices()

    # ---------------------------------------------------------------- set-up
    def _load_memory(self) -> Memory:
        path = config_dir() / MEMORY_FILE
        try:
            return Memory.load(path) if path.is_file() else Memory()
        except (OSError, ValueError, KeyError) as exc:
            warn(f"could not read what you taught earlier ({exc}); starting fresh")
            return Memory()

    def prepare(self) -> JobStart | None:  # the Run button accepts: no job of its own
        return None

    def run(self) -> None:
        self.accept()

    def start(self) -> None:
        """Begin on the chosen scan: prompt layers, click listening, a fresh session."""
        layer = self.image.value
        if layer is None:
            warn("choose the scan to make objects on (open one first)")
            return
        try:
            scan = scan_from_layer(layer)
            self.session = Session(scan, memory=self.memory, kind=self._kind())
        except (MedsegError, ValueError) as exc:
            report(exc, context="interactive")
            return
        if self.layers is not None:
            self._remove_prompt_layers()
        self.scan_layer = layer
        self.layers = make_prompt_layers(self.viewer, layer)
        for prompt_layer in self.layers.all():
            for key, action in ((ACCEPT, self.accept), (UNDO, self.undo), (REDO, self.redo),
                                (NEXT, self.next_object)):
                prompt_layer.bind_key(key, _call(action), overwrite=True)
        self.layers.shapes.events.data.connect(self._on_shape)
        self.layers.scribbles.events.paint.connect(self._on_scribble)
        if self._on_mouse not in self.viewer.mouse_drag_callbacks:
            self.viewer.mouse_drag_callbacks.append(self._on_mouse)
        self.viewer.layers.selection.active = self.layers.clicks
        self.layers.clicks.mode = "pan_zoom"
        self.status.value = ("click inside the object (right-click or Ctrl-click: outside); "
                             "Enter accepts")

    def _kind(self) -> str | None:
        name = str(self.name.value).strip()
        return name or None

    def new_labels(self) -> None:
        layer = self.image.value
        if layer is None:
            warn("choose the scan first")
            return
        labels = self.viewer.add_labels(np.zeros(layer.data.shape, np.uint16),
                                        name=f"{layer.name} objects", scale=layer.scale,
                                        translate=layer.translate, units=layer.units,
                                        affine=layer.affine.affine_matrix)
        self.target.reset_choices()
        self.target.value = labels

    def _remove_prompt_layers(self) -> None:
        assert self.layers is not None
        for layer in self.layers.all():
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
        self.layers = None

    # ---------------------------------------------------------------- prompts in
    def _on_mouse(self, viewer: Any, event: Any) -> Any:
        if self.session is None or self.layers is None or not _is_prompt_moment(viewer,
                                                                                  self.layers):
            return
        dragged = False
        yield
        while event.type == "mouse_move":
            dragged = True
            yield
        if dragged:
            return
        negative = event.button == 2 or "Control" in event.modifiers
        self.click(event.position, positive=not negative, event=event)

    def click(self, world: Any, *, positive: bool = True, event: Any = None) -> None:
        """A click at world position ``world`` (the mouse, or a script)."""
        if self.session is None or self.layers is None:
            warn("press Start on a scan before clicking")
            return
        if self.scan_layer not in self.viewer.layers:
            warn("the scan layer was removed; choose a scan and press Start again")
            return
        three_d = event is not None and self.viewer.dims.ndisplay == 3
        voxel = (ray_voxel(self.scan_layer, event) if three_d
                 else to_voxel(self.scan_layer, world))
        if voxel is None:
            warn("that click is outside the scan; click on the scan")
            return
        self.layers.clicks.add(np.asarray(voxel, float)[None])  # placed on the scan's grid
        self.layers.clicks.face_color[-1] = (0, 1, 0, 1) if positive else (1, 0, 1, 1)
        self.layers.clicks.refresh()
        self._submit(lambda s: s.add_point(voxel, positive=positive))

    def _on_shape(self, event: Any) -> None:
        if getattr(event, "action", "added") != "added" or self.layers is None:
            return
        shapes = self.layers.shapes
        if not len(shapes.data):
            return
        kind = shapes.shape_type[-1]
        voxels = shape_voxels(self.scan_layer, shapes, np.asarray(shapes.data[-1]))
        if kind == "rectangle":
            a, b = voxels.min(axis=0), voxels.max(axis=0)
            self._submit(lambda s: s.add_box(tuple(a), tuple(b)))
        else:
            self._submit(lambda s: s.add_lasso([tuple(v) for v in voxels]))

    def _on_scribble(self, event: Any) -> None:
        for atom in event.value:
            index = atom.slice_key if hasattr(atom, "slice_key") else atom[0]
            for value, positive in ((SCRIBBLE_IN, True), (SCRIBBLE_OUT, False)):
                new = atom.new_value if hasattr(atom, "new_value") else atom[2]
                if int(np.max(new)) != value:
                    continue
                offset = [s.start or 0 for s in index] if isinstance(index[0], slice) else None
                mask = atom.mask if hasattr(atom, "mask") else None
                if offset is not None and mask is not None:
                    pts = np.argwhere(mask) + np.asarray(offset)
                else:
                    pts = np.stack([np.asarray(i) for i in index], axis=1)
                voxels = [tuple(int(v) for v in p) for p in pts]
                self._submit(lambda s, v=voxels, p=positive: s.add_scribble(v, positive=p,
                                                                            joined=False))
                break

    # ---------------------------------------------------------------- the worker
    def _submit(self, op: Op) -> None:
        """Queue ``op`` for the session; a worker applies the queue in order and only the
        newest object is drawn."""
        self._queue.append(op)
        if self._busy:
            self.status.value = f"working... ({len(self._queue)} prompt(s) waiting)"
            return
        self._start_worker()

    def _start_worker(self) -> None:
        from napari.qt.threading import create_worker

        ops, self._queue = self._queue, []
        self._busy = True
        session = self.session
        assert session is not None

        def apply() -> tuple[Any, np.ndarray | None, str, list[Any]]:
            outcomes = []
            for op in ops:
                try:
                    outcomes.append(op(session))
                except InteractiveError as exc:
                    outcomes.append(exc)
            state = session.state
            crop = None if state.mask is None else state.mask.copy()
            return state.region, crop, session.note, outcomes

        worker = create_worker(apply)
        worker.returned.connect(self._show)
        worker.errored.connect(self._failed)
        worker.start()

    def _failed(self, exc: Exception) -> None:
        self._busy = False
        report(exc, context="interactive")
        if self._queue:
            self._start_worker()

    def _show(self, result: tuple[Any, np.ndarray | None, str, list[Any]]) -> None:
        self._busy = False
        region, crop, note, outcomes = result
        for outcome in outcomes:
            if isinstance(outcome, InteractiveError):
                warn(str(outcome))
        if self._queue:  # newer prompts came: do not draw this stale object
            self._start_worker()
            return
        if self.layers is None or self.layers.preview not in self.viewer.layers:
            return
        preview = self.layers.preview
        if self._region is not None:
            preview.data[self._region.slices] = 0
        if region is not None and crop is not None:
            preview.data[region.slices] = crop.astype(np.uint8)
        self._region = region
        preview.refresh()
        self.status.value = note or "ready"
        self._update_buttons()

    # ---------------------------------------------------------------- accept / undo
    def accept(self) -> None:
        """Write the current object into the target labels (Enter)."""
        target = self.target.value
        if self.session is None:
            warn("press Start and click an object first")
            return
        if target is None:
            warn("choose the labels to write objects into (or press New labels layer)")
            return
        if tuple(target.data.shape) != self.session.shape:
            warn(f"the labels {target.name!r} have shape {tuple(target.data.shape)}, the scan "
                 f"{self.session.shape}; choose labels made on this scan")
            return
        name = self._kind() or "object"
        self._submit(lambda s: s.accept(name))
        self._after(lambda: self._write_last(target))

    def _after(self, action: Callable[[], None]) -> None:
        """Run ``action`` on the GUI thread once the queued operations are done."""
        from qtpy.QtCore import QTimer

        def poll() -> None:
            if self._busy or self._queue:
                QTimer.singleShot(20, poll)
            else:
                action()

        QTimer.singleShot(0, poll)

    def _write_last(self, target: Any) -> None:
        assert self.session is not None
        if len(self.session.objects) <= len(self._writes):
            return  # the accept was refused (no object): already said
        obj = self.session.objects[-1]
        data = np.asarray(target.data)
        value = int(self.value.value) or int(data.max()) + 1
        local = np.nonzero(obj.mask)
        index = tuple(a + s for a, s in zip(local, obj.region.start, strict=True))
        old = data[index].copy()
        free = (old == 0) | (old == value) | bool(self.replace.value)
        index = tuple(i[free] for i in index)
        self._writes.append((target, index, old[free], value))
        self._undone.clear()
        target.data_setitem(index, value)
        kept = int((~free).sum())
        self.status.value = (f"accepted {obj.name!r} as label {value} ({index[0].size} voxels)"
                             + (f"; {kept} voxel(s) of other objects left alone" if kept else ""))
        self._save_memory()
        self._update_buttons()

    def undo(self) -> None:
        if self.session is None:
            return
        before = len(self.session.objects)
        self._submit(lambda s: s.undo())
        self._after(lambda: self._sync_writes(before))

    def redo(self) -> None:
        if self.session is None:
            return
        before = len(self.session.objects)
        self._submit(lambda s: s.redo())
        self._after(lambda: self._sync_writes(before))

    def _sync_writes(self, before: int) -> None:
        """Undo or redo the target layer's write when an accept was undone or redone."""
        assert self.session is not None
        after = len(self.session.objects)
        if after < before and self._writes:
            target, index, old, _value = self._writes[-1]
            self._undone.append(self._writes.pop())
            target.data_setitem(index, old)
        elif after > before and self._undone:
            target, index, _old, value = self._undone.pop()
            self._writes.append((target, index, _old, value))
            target.data_setitem(index, value)
        self._save_memory()
        self._update_buttons()

    def next_object(self) -> None:
        """Start the next object (N): the current prompts are dropped (undoable)."""
        if self.session is None:
            return
        if self.layers is not None:
            self.layers.clicks.data = np.zeros((0, self.layers.clicks.ndim))
            self.layers.shapes.data = []
            self.layers.scribbles.data = np.zeros_like(self.layers.scribbles.data)
        self._submit(lambda s: s.reset())

    def _update_buttons(self) -> None:
        if self.session is None:
            return
        kind = self._kind()
        same = [o for o in self.session.objects if o.name == kind]
        self.train_button.enabled = len(same) >= 2
        if self.session.used_taught:
            self.status.value += f" (using what you taught as {kind!r})"

    def _save_memory(self) -> None:
        try:
            path = config_dir() / MEMORY_FILE
            path.parent.mkdir(parents=True, exist_ok=True)
            self.memory.save(path)
        except (MedsegError, OSError) as exc:
            warn(f"could not keep what you taught ({exc})")

    # ---------------------------------------------------------------- where next
    def go_least_sure(self) -> None:
        if self.session is None or self._busy:
            return
        where = self.session.least_sure()
        if where is None:
            warn("no object yet: click inside one first")
            return
        world = self.scan_layer.data_to_world(where)
        point = list(self.viewer.dims.point)
        for axis in self.viewer.dims.not_displayed:
            point[axis] = float(world[axis - (self.viewer.dims.ndim - len(where))])
        self.viewer.dims.point = tuple(point)
        self.viewer.camera.center = tuple(world[-2:]) if self.viewer.dims.ndisplay == 2 else \
            tuple(world)
        self.status.value = f"least sure here: voxel {where}"

    def open_train(self) -> None:
        from napari_medseg._napari.dock import find_dock

        dock = find_dock(self.viewer)
        if dock is None:
            warn("open the Train tab (Plugins > MedSeg > Train)")
            return
        train = dock.show_tab("Train")
        train.reset_choices()
        train.labels.value = self.target.value
        train.images.value = [self.image.value]


def _call(action: Callable[[], Any]) -> Callable[[Any], None]:
    def on_key(_layer: Any) -> None:
        action()

    on_key.__name__ = f"napari_medseg_{getattr(action, '__name__', 'action')}"
    return on_key


def _is_prompt_moment(viewer: Any, layers: PromptLayers) -> bool:
    """Clicks are prompts while a prompt layer is active and not drawing or painting."""
    active = viewer.layers.selection.active
    if active is layers.clicks or active is layers.preview:
        return active.mode == "pan_zoom"
    return False
