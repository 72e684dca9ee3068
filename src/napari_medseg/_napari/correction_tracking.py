"""The Correct tab's record of what a person corrected: Track corrections, Slice reviewed,
All reviewed.

*Track corrections* is a switch (its text says ``on`` or ``off``).  On, a
:class:`~napari_medseg._napari.corrections.CorrectionTracker` records the voxels a person
edits on the chosen Labels layer and the slices they mark reviewed, journaled as they happen
so a crash loses nothing (the journal's place is the core rule
:func:`~napari_medseg.training.journal.journal_path_for`; an earlier journal of the same scan
and layer is offered once: restore, discard or keep for later), with an outline overlay of
the labeled region.  Off, recording pauses (edits made meanwhile are not recorded) and the
overlay goes; on again for the same layer, it goes on where it stopped.  Marking a slice or
everything reviewed switches it on.  The counts ("12
voxel(s) edited, 3 on reviewed slices") go to the tab's status line.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from magicgui.widgets import ComboBox, Container, PushButton
from qtpy.QtCore import QTimer

import napari
from napari_medseg._napari import shortcuts
from napari_medseg._napari.corrections import CorrectionTracker
from napari_medseg._napari.layers import scan_from_layer
from napari_medseg._napari.notify import report, warn
from napari_medseg.errors import MedsegError
from napari_medseg.training.journal import (
    JournalSummary,
    RestoreChoice,
    ScanIdentity,
    journal_path_for,
    open_journal,
)

#: How often edits changed by undo/redo are journaled (ms); paint events are journaled at once.
SYNC_INTERVAL_MS = 3000


class CorrectionTracking(Container):
    """The buttons that record corrections of the layer chosen in ``labels`` (on the scan
    chosen in ``image``); ``say`` shows a line in the tab's status."""

    def __init__(self, viewer: napari.viewer.Viewer, *, labels: ComboBox, image: ComboBox,
                 say: Callable[[str], None]) -> None:
        self.track_button = PushButton(text="Track corrections: off")
        self.track_button.native.setCheckable(True)
        self.review_button = PushButton(
            text=shortcuts.hint("Slice reviewed", shortcuts.MARK_REVIEWED),
            tooltip=shortcuts.hint("The current slice is correct as shown",
                                   shortcuts.MARK_REVIEWED))
        self.review_all_button = PushButton(text="All reviewed",
                                            tooltip="Every voxel of the labels is correct")
        super().__init__(widgets=[self.track_button, self.review_button,
                                  self.review_all_button], labels=False)
        # (not self.labels: a magicgui Container's own attribute)
        self.viewer, self.labels_choice, self.image_choice = viewer, labels, image
        self.say = say
        self.tracker: CorrectionTracker | None = None
        self._paused: CorrectionTracker | None = None  # switched off, to go on with
        self.journal_file: Path | None = None
        self._sync_timer = QTimer(self.native)
        self._sync_timer.setInterval(SYNC_INTERVAL_MS)
        self._sync_timer.timeout.connect(self.sync)
        # a click (not a programmatic check) switches: the state follows the tracker
        self.track_button.native.clicked.connect(self._switch)
        self.review_button.clicked.connect(self.mark_current_slice)
        self.review_all_button.clicked.connect(self.mark_all)
        self._show_state()

    # ---------------------------------------------------------------- on / off
    def _switch(self, on: bool) -> None:
        if on:
            self.track()
        else:
            self.stop()

    def track(self) -> CorrectionTracker | None:
        """Record the chosen labels layer's corrections (from now on, and the journal's)."""
        layer = self.labels_choice.value
        if layer is None:
            warn("choose the labels layer to correct")
            self._show_state()
            return None
        if self.tracker is None or self.tracker.layer is not layer:
            self.stop()
            paused, self._paused = self._paused, None
            if paused is not None and paused.layer is layer:
                paused.reconnect()
                self.tracker = paused
            else:
                self.tracker = CorrectionTracker(layer, on_change=self.show_counts)
                self._attach_journal(self.tracker)
            self.tracker.show_overlay(self.viewer)
            self._sync_timer.start()
        self._show_state()
        self.show_counts()
        return self.tracker

    def active(self) -> CorrectionTracker | None:
        """The running tracker, started on the chosen layer if none runs."""
        return self.tracker or self.track()

    def stop(self) -> None:
        """Pause recording: the journal keeps what was recorded; the overlay goes."""
        tracker, self.tracker = self.tracker, None
        self._sync_timer.stop()
        if tracker is not None:
            tracker.sync()
            tracker.record_provenance()
            tracker.disconnect()
            self._paused = tracker
            if tracker.overlay is not None and tracker.overlay in self.viewer.layers:
                self.viewer.layers.remove(tracker.overlay)
            self.say(f"tracking off: edits of {tracker.layer.name!r} are not recorded "
                     f"({tracker.summary()} so far)")
        self._show_state()

    def _show_state(self) -> None:
        on = self.tracker is not None
        self.track_button.native.setChecked(on)
        self.track_button.text = f"Track corrections: {'on' if on else 'off'}"
        self.track_button.tooltip = (
            f"On: recording the edits and reviewed slices of {self.tracker.layer.name!r} "
            "(journaled as you go); press to stop" if self.tracker is not None else
            "Off: press to record the edits and reviewed slices of the labels layer")

    # ---------------------------------------------------------------- journal
    def _attach_journal(self, tracker: CorrectionTracker) -> None:
        """Record into the journal of this scan and label layer (the scan's identity, not its
        file name, picks it); an earlier one is offered once: restore, discard or later."""
        image = self.image_choice.value
        layer = tracker.layer
        try:
            if image is not None and tuple(image.data.shape) == tuple(layer.data.shape):
                scan = scan_from_layer(image)
                identity = ScanIdentity.of_scan(scan)
                scan_name = scan.name or image.name
            else:  # no scan (or another grid): the labels as they are now identify it
                identity = ScanIdentity.of_labels(np.asarray(layer.data))
                scan_name = layer.name
            path = journal_path_for(identity, layer.name, scan_name=scan_name)
            journal, choice = open_journal(
                path, tuple(layer.data.shape), identity=identity, scan=scan_name,
                labels=layer.name, decide=self.ask_restore)
            state = tracker.attach_journal(journal)
        except (MedsegError, OSError) as exc:
            report(exc, context="corrections journal (edits are not autosaved)")
            return
        self.journal_file = path
        if choice is RestoreChoice.RESTORE and state is not None:
            warn(f"restored {journal.summary().describe()} on {layer.name!r}")
        elif choice is RestoreChoice.LATER:
            warn("the earlier corrections were kept for later (napari-medseg journals lists "
                 "them); this session's corrections are journaled anew")

    def ask_restore(self, summary: JournalSummary) -> RestoreChoice:
        """Ask once what to do with an earlier journal of this scan and label layer."""
        from qtpy.QtWidgets import QMessageBox

        box = QMessageBox(self.native)
        box.setWindowTitle("Earlier corrections of this scan")
        box.setIcon(QMessageBox.Icon.Question)
        box.setText(f"{summary.labels or 'These labels'} on {summary.scan or 'this scan'} "
                    f"has {summary.describe()}.")
        box.setInformativeText("Restore them onto the labels, discard them, or keep them for "
                               "later and start over?")
        restore = box.addButton("Restore", QMessageBox.ButtonRole.AcceptRole)
        discard = box.addButton("Discard", QMessageBox.ButtonRole.DestructiveRole)
        later = box.addButton("Keep for later", QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(restore)
        box.setEscapeButton(later)
        box.exec()
        clicked = box.clickedButton()
        if clicked is discard:
            return RestoreChoice.DISCARD
        if clicked is later:
            return RestoreChoice.LATER
        return RestoreChoice.RESTORE

    def sync(self) -> None:
        """Journal values undo/redo changed, and record the edits in the layer's record."""
        if self.tracker is not None:
            self.tracker.sync()
            self.tracker.record_provenance()

    # ---------------------------------------------------------------- reviewing
    def show_counts(self) -> None:
        if self.tracker is not None:
            self.say(self.tracker.summary())

    def mark_current_slice(self) -> None:
        """The slice the viewer shows is correct as shown (its key works while painting)."""
        tracker = self.active()
        if tracker is None:
            return
        layer = tracker.layer
        if layer.ndim != 3:
            tracker.mark_all_reviewed()
            return
        axis = self.viewer.dims.not_displayed[0] if self.viewer.dims.not_displayed else 0
        index = int(np.round(layer.world_to_data(self.viewer.dims.point)[axis]))
        tracker.mark_slice_reviewed(axis, int(np.clip(index, 0, layer.data.shape[axis] - 1)))

    def mark_all(self) -> None:
        """Every voxel of the labels is correct."""
        tracker = self.active()
        if tracker is not None:
            tracker.mark_all_reviewed()
