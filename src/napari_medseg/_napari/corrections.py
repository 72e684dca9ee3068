"""Which voxels a person corrected or reviewed on a Labels layer, journaled as they happen.

Edits go through napari's own Labels tools; every stroke, fill or ``data_setitem`` ends in
the layer's ``paint`` event with its history atoms, so undo keeps working and we learn which
voxels were touched.  "Mark slice reviewed" adds a whole slice to the labeled region.  The
union (edited or reviewed) is what fine-tuning trusts; everything else is unlabeled.  The
labeled region is shown as an overlay Labels layer (1 = edited, 2 = reviewed).

With a :class:`~napari_medseg.training.journal.CorrectionJournal` attached, every edit and
review mark is appended (fsync'd) at once; :meth:`CorrectionTracker.sync` also records
values changed by undo/redo (which emit no paint event), and the widget calls it on a timer.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from napari_medseg._napari.layers import (
    OVERLAY_KEY,
    geometry_from_layer_meta,
    geometry_kwargs,
    layer_meta,
)
from napari_medseg.training.journal import CorrectionJournal, CorrectionState

EDITED, REVIEWED = 1, 2
#: Width of the labeled region's outline in the overlay (napari's Labels ``contour``).
OUTLINE_PX = 2


def atom_region(atom: Any) -> tuple[Any, npt.NDArray[np.bool_] | None]:
    """``(index, mask)`` of the voxels one history atom changed."""
    if hasattr(atom, "slice_key"):  # napari >= 0.6 mask-based atom
        return atom.slice_key, atom.mask
    indices = atom[0]  # (indices, old_values, new_values)
    return tuple(np.asarray(i) for i in indices), None


def flat_indices(index: Any, mask: npt.NDArray[np.bool_] | None,
                  shape: tuple[int, ...]) -> npt.NDArray[np.int64]:
    """Flat indices of the voxels an atom region covers."""
    if isinstance(index, tuple) and index and all(isinstance(i, np.ndarray) for i in index):
        return np.ravel_multi_index(index, shape).astype(np.int64)
    starts = [sl.indices(n)[0] for sl, n in zip(index, shape, strict=False)]
    stops = [sl.indices(n)[1] for sl, n in zip(index, shape, strict=False)]
    if mask is None:
        mask = np.ones([b - a for a, b in zip(starts, stops, strict=True)], dtype=bool)
    coords = [c + a for c, a in zip(np.nonzero(mask), starts, strict=True)]
    return np.ravel_multi_index(tuple(coords), shape).astype(np.int64)


def atom_new_value(atom: Any) -> Any:
    """The value(s) one history atom writes (napari writes them after the paint event)."""
    return atom.new_value if hasattr(atom, "new_value") else atom[2]


_TRACKERS: weakref.WeakKeyDictionary[Any, CorrectionTracker] = weakref.WeakKeyDictionary()


def tracker_for(layer: Any) -> CorrectionTracker | None:
    """The tracker recording ``layer``'s corrections (the Correct tab's), if one runs: the
    Train tab reads which slices were reviewed or edited from it."""
    tracker = _TRACKERS.get(layer)
    return tracker if tracker is not None and tracker.layer is layer else None


class CorrectionTracker:
    """Records edits of ``layer`` (a napari Labels layer) and reviewed slices."""

    def __init__(self, layer: Any, *, on_change: Callable[[], None] | None = None) -> None:
        self.layer = layer
        shape = tuple(layer.data.shape)
        self.edited = np.zeros(shape, dtype=bool)
        self.reviewed = np.zeros(shape, dtype=bool)
        self.original = np.array(layer.data, copy=True)
        self.on_change = on_change
        self.overlay: Any = None
        self.journal: CorrectionJournal | None = None
        self._journaled = self.original.copy()  # the values the journal holds
        self.axis: int | None = None  # the axis reviewed slices are counted along
        self.whole_volume_reviewed = False
        self._unrecorded = False  # changes not yet in the layer's provenance record
        layer.events.paint.connect(self._on_paint)
        _TRACKERS[layer] = self

    # ---------------------------------------------------------------- journal
    def attach_journal(self, journal: CorrectionJournal) -> CorrectionState | None:
        """Record into ``journal``; if it already holds corrections, restore them first."""
        self.journal = journal
        state = journal.replay(np.asarray(self.layer.data))
        if not (state.edited.any() or state.reviewed.any() or state.volume_reviewed):
            return None
        self.layer.data = state.labels
        self.edited |= state.edited
        self.reviewed |= state.labeled if state.volume_reviewed else state.reviewed
        self._journaled = np.array(state.labels, copy=True)
        self._update_overlay(tuple(slice(None) for _ in self.edited.shape))
        return state

    def sync(self) -> int:
        """Journal edited voxels whose value changed since last recorded (undo/redo)."""
        if self.journal is None:
            return 0
        flat = np.flatnonzero(self.edited)
        current = np.asarray(self.layer.data).ravel()[flat]
        changed = current != self._journaled.ravel()[flat]
        if changed.any():
            self.journal.record_edit(flat[changed], current[changed])
            self._journaled.ravel()[flat[changed]] = current[changed]
        return int(changed.sum())

    def disconnect(self) -> None:
        """Stop recording the layer's edits (:meth:`reconnect` goes on where it stopped)."""
        self.layer.events.paint.disconnect(self._on_paint)
        if _TRACKERS.get(self.layer) is self:
            del _TRACKERS[self.layer]

    def reconnect(self) -> None:
        """Record the layer's edits again, into the same masks and journal."""
        self.layer.events.paint.connect(self._on_paint)
        _TRACKERS[self.layer] = self

    # ---------------------------------------------------------------- events
    def _on_paint(self, event: Any) -> None:
        for atom in event.value:
            index, mask = atom_region(atom)
            if mask is None:
                self.edited[index] = True
            else:
                self.edited[index] |= mask
            if self.journal is not None:
                # the event comes before napari writes the data: take the atom's new values
                flat = flat_indices(index, mask, self.edited.shape)
                values = np.broadcast_to(np.asarray(atom_new_value(atom)), flat.shape)
                self.journal.record_edit(flat, values)
                self._journaled.ravel()[flat] = values
            self._update_overlay(index)
        self._unrecorded = True
        if self.on_change is not None:
            self.on_change()

    # ---------------------------------------------------------------- reviewing
    def mark_slice_reviewed(self, axis: int, index: int) -> None:
        """The whole slice ``index`` along array ``axis`` is correct as shown."""
        region = [slice(None)] * self.reviewed.ndim
        region[axis] = slice(index, index + 1)
        self.reviewed[tuple(region)] = True
        self._unrecorded = True
        if self.axis is None:
            self.axis = axis
        if self.journal is not None:
            self.journal.record_reviewed(axis, index)
        self._update_overlay(tuple(region))
        if self.on_change is not None:
            self.on_change()

    def mark_all_reviewed(self) -> None:
        self.reviewed[...] = True
        self.whole_volume_reviewed = True
        self._unrecorded = True
        if self.journal is not None:
            self.journal.record_volume_reviewed()
        self._update_overlay(tuple(slice(None) for _ in self.reviewed.shape))
        if self.on_change is not None:
            self.on_change()

    def record_provenance(self) -> bool:
        """Write the edited and reviewed slices into the layer's provenance record (what a
        saved label file and a DICOM-SEG say was corrected by hand); returns whether it did.

        Called on the widget's sync timer and before training, not inside the paint event
        (napari writes the new values after it, and the record keeps the labels' hash)."""
        if not self._unrecorded:
            return False
        from napari_medseg._napari.label_records import record_corrections

        axis = 0 if self.axis is None else self.axis
        try:
            record_corrections(self.layer, edited=self.edited, reviewed=self.reviewed,
                               axis=axis, whole_volume_reviewed=self.whole_volume_reviewed)
        except ValueError:
            # slices reviewed along another axis than the record counts: the record keeps
            # its axis, and the saved file notes the changes as untracked
            return False
        self._unrecorded = False
        return True

    def labeled(self) -> npt.NDArray[np.bool_]:
        """Voxels whose label is to be trusted: edited or on a reviewed slice."""
        return self.edited | self.reviewed

    def summary(self) -> str:
        n_edit, n_rev = int(self.edited.sum()), int(self.reviewed.sum())
        return f"{n_edit} voxel(s) edited, {n_rev} on reviewed slices"

    # ---------------------------------------------------------------- overlay
    def show_overlay(self, viewer: Any) -> Any:
        """Add (once) the overlay layer of the labeled region above the corrected layer."""
        if self.overlay is None or self.overlay not in viewer.layers:
            geometry = geometry_from_layer_meta(layer_meta(self.layer), self.layer.ndim)
            data = np.zeros(self.edited.shape, dtype=np.uint8)
            # outlines (contour) keep what a person painted visible underneath: edited voxels
            # get their outline, a reviewed slice a frame around it
            self.overlay = viewer.add_labels(
                data, name=f"{self.layer.name} labeled region", opacity=0.8,
                metadata={OVERLAY_KEY: True}, **geometry_kwargs(geometry))
            self.overlay.contour = OUTLINE_PX
            self._update_overlay(tuple(slice(None) for _ in data.shape))
            viewer.layers.selection.active = self.layer
        return self.overlay

    def _update_overlay(self, index: Any) -> None:
        if self.overlay is None:
            return
        if isinstance(index, tuple) and all(isinstance(i, np.ndarray) for i in index):
            values = np.where(self.edited[index], EDITED,
                              np.where(self.reviewed[index], REVIEWED, 0))
            self.overlay.data[index] = values
        else:
            region = np.where(self.edited[index], EDITED,
                              np.where(self.reviewed[index], REVIEWED, 0)).astype(np.uint8)
            self.overlay.data[index] = region
        self.overlay.refresh()
