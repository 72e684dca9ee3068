"""The Interactive tab: click, box, outline and scribble a 3D object, live, with unlimited undo.

*Start* adds the prompt layers (:mod:`.interactive_layers`), whose clicks, shapes and scribbles
become prompts (:mod:`.interactive_prompts`) of the core
:class:`~napari_medseg.interactive.Session`, run by a worker (:mod:`.interactive_worker`);
Enter writes the object without touching other objects, Ctrl+Z / Ctrl+Y undo and redo any
number of steps, N starts the next object (docs/interactive.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from magicgui.widgets import CheckBox, Container, LineEdit, SpinBox

import napari
from napari_medseg._napari.interactive_layers import (
    ObjectWriter,
    PromptLayers,
    make_prompt_layers,
    new_labels_layer,
    show_voxel,
)
from napari_medseg._napari.interactive_prompts import PromptInput, button, key_action
from napari_medseg._napari.interactive_worker import Op, SessionQueue, Snapshot
from napari_medseg._napari.job_widget import JobStart, JobWidget
from napari_medseg._napari.layers import scan_from_layer
from napari_medseg._napari.notify import report, warn
from napari_medseg.errors import MedsegError
from napari_medseg.interactive import Memory, Session
from napari_medseg.paths import memory_path

ACCEPT, UNDO, REDO, NEXT = "Enter", "Control-Z", "Control-Y", "N"


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
        self.prompts: PromptInput | None = None
        self.scan_layer: Any = None
        try:
            self.memory = Memory.open(memory_path())
        except MedsegError as exc:
            warn(f"{exc}; starting fresh")
            self.memory = Memory()
        self.queue = SessionQueue(self._show, self._failed)
        self.writer = ObjectWriter()
        self.refining: int | None = None  # the label value being refined (Refine this label)
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
        self.start_button = button("Start", "Add the prompt layers and listen to clicks on "
                                    "the scan", self.start)
        self.new_labels_button = button("New labels layer", "An empty labels layer on the "
                                         "scan", self.new_labels)
        self.refine_button = button("Refine this label", "Start from the voxels of 'label "
                                     "value' in the target labels (a starter's or a painted "
                                     "mask) and correct them with clicks", self.refine)
        self.add_controls(Container(widgets=[self.start_button, self.new_labels_button,
                                             self.refine_button],
                                    layout="horizontal", labels=False))
        self.add_buttons(
            button("Undo (Ctrl+Z)", "Back one step: a click, a box, an accept; any number "
                    "of times", self.undo),
            button("Redo (Ctrl+Y)", "Forward one step again", self.redo),
            button("Next object (N)", "Drop this object's prompts and start the next "
                    "(undoable)", self.next_object))
        self.train_button = button("Train from these objects", "Open the Train tab on the "
                                    "target labels", self.open_train)
        self.train_button.enabled = False
        self.add_buttons(button("Least sure", "Go to where the engine is least sure about "
                                 "the object's border", self.go_least_sure), self.train_button)
        self.cancel_button.visible = False
        self.progress.visible = False
        self.remember("name", "replace")
        self.reset_choices()

    # ---------------------------------------------------------------- set-up
    def prepare(self) -> JobStart | None:  # the Run button accepts: no job of its own
        return None

    def run(self) -> None:  # the Run button is Accept
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
            self.queue.session = self.session
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
                prompt_layer.bind_key(key, key_action(action), overwrite=True)
        self.prompts = PromptInput(self.viewer, layer, self.layers, self._submit)
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
        labels = new_labels_layer(self.viewer, layer)
        self.target.reset_choices()
        self.target.value = labels

    def _remove_prompt_layers(self) -> None:
        assert self.layers is not None
        if self.prompts is not None:
            self.prompts.close()
        for layer in self.layers.all():
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
        self.layers = None

    def refine(self) -> None:
        """Start from the target's voxels of ``label value``; Enter puts the refined object
        back under that value (voxels it no longer holds are cleared)."""
        target, value = self.target.value, int(self.value.value)
        if self.session is None or target is None or value == 0:
            warn("press Start, choose the labels and the label value to refine")
            return
        mask = np.asarray(target.data) == value
        self.refining = value
        self._submit(lambda s: s.set_mask(mask))

    # ---------------------------------------------------------------- prompts in
    def click(self, world: Any, *, positive: bool = True) -> None:
        """A click at world position ``world`` (what the mouse does, for scripts)."""
        if self.prompts is None:
            warn("press Start on a scan before clicking")
            return
        self.prompts.click(world, positive=positive)

    # ---------------------------------------------------------------- the worker
    @property
    def busy(self) -> bool:
        return self.queue.busy

    def _submit(self, op: Op) -> None:
        waiting = self.queue.submit(op)
        if waiting:
            self.status.value = f"working... ({waiting} prompt(s) waiting)"

    def _failed(self, exc: Exception) -> None:
        report(exc, context="interactive")

    def _show(self, snapshot: Snapshot) -> None:
        for refusal in snapshot.refusals():
            warn(refusal)
        if self.layers is None or self.layers.preview not in self.viewer.layers:
            return
        preview = self.layers.preview
        if self._region is not None:
            preview.data[self._region.slices] = 0
        if snapshot.region is not None and snapshot.crop is not None:
            preview.data[snapshot.region.slices] = snapshot.crop.astype(np.uint8)
        self._region = snapshot.region
        preview.refresh()
        self.status.value = snapshot.note or "ready"
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
        self.queue.after(lambda: self._write_last(target))

    def _write_last(self, target: Any) -> None:
        assert self.session is not None
        if len(self.session.objects) <= len(self.writer.written):
            return  # the accept was refused (no object): already said
        obj = self.session.objects[-1]
        value, written, kept = self.writer.write(target, obj.region, obj.mask,
                                                 int(self.value.value),
                                                 replace=bool(self.replace.value),
                                                 refined=self.refining is not None)
        self.refining = None
        self.status.value = (f"accepted {obj.name!r} as label {value} ({written} voxels)"
                             + (f"; {kept} voxel(s) of other objects left alone" if kept else ""))
        self._save_memory()
        self._update_buttons()

    def undo(self) -> None:
        """Back one step (Ctrl+Z): a prompt, or an accept (its voxels leave the labels)."""
        self._travel(Session.undo)

    def redo(self) -> None:
        """Forward one step again (Ctrl+Y)."""
        self._travel(Session.redo)

    def _travel(self, move: Callable[[Session], Any]) -> None:
        if self.session is None:
            return
        before = len(self.session.objects)
        self._submit(move)
        self.queue.after(lambda: self._follow(before))

    def _follow(self, before: int) -> None:
        """Take an undone accept's voxels out of the labels again (or put them back)."""
        assert self.session is not None
        self.writer.follow(before, len(self.session.objects))
        self._save_memory()
        self._update_buttons()

    def next_object(self) -> None:
        """Start the next object (N): the current prompts are dropped (undoable)."""
        if self.session is None:
            return
        if self.prompts is not None:
            self.prompts.clear()
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
            self.memory.save(memory_path())
        except (MedsegError, OSError) as exc:
            warn(f"could not keep what you taught ({exc})")
    # ---------------------------------------------------------------- where next
    def go_least_sure(self) -> None:
        if self.session is None or self.busy:
            return
        where = self.session.least_sure()
        if where is None:
            warn("no object yet: click inside one first")
            return
        show_voxel(self.viewer, self.scan_layer, where)
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
