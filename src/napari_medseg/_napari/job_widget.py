"""The base of every MedSeg tab that runs a core job: controls, Run/Cancel, progress, status,
remembered settings and shortcuts, written once.

A tab is a :class:`JobWidget` subclass.  It only turns layers and controls into the core job's
typed options, and the job's typed result into layers (or a table); running the job in a
worker, one at a time, Cancel at the next ``yield``, progress and status, errors as
notifications, remembered settings and keys are the base's.

How a tab is written
--------------------
1. **Declare** what the base needs as class attributes::

       class SegmentWidget(JobWidget):
           section = "segment"                  # settings section; also names the job
           run_text = "Segment"                 # the Run button
           run_tooltip = "Run the model (in the background)"
           idle_text = "Choose the scan and a model, then press Segment"
           shortcut = shortcuts.SEGMENT         # bound to run(); None for no key
           busy_text = "a segmentation"         # "<busy_text> is already running; ..."

2. **Build the controls** in ``__init__`` after ``super().__init__(viewer)``, and place them:
   :meth:`add_controls` (above Run/Cancel), :meth:`add_advanced` (a folded "Advanced"
   section), :meth:`add_below` (under the status: a table, a plot), :meth:`add_buttons` (a
   row of extra buttons under Run/Cancel).  :meth:`remember` restores the named controls
   from the settings file and saves them whenever they change; :meth:`bind_key` binds more
   keys.  A list of layers is a :meth:`layer_choice` (or a ``ListEdit`` whose choices are
   :meth:`layer_choices`): it lists the viewer's layers of a kind, never overlays, and
   refreshes when layers are added, removed, moved or renamed (:meth:`reset_choices`, where
   a tab also picks sensible defaults).  End ``__init__`` with ``self.reset_choices()`` so a
   tab opened after the scans lists them at once.  The controls of a core options dataclass
   come from :func:`~napari_medseg._napari.options_form.option_controls` (the same fields the
   CLI's flags come from) and go back with ``options_from_controls``.

3. **Start the core job** in :meth:`prepare`: read the layers (``_napari.layers``) and
   controls into the core job's options and return a :class:`JobStart` with the generator
   job and the text of what runs ("Segmenting CT with head-ct-tissue").  Raise a
   :class:`~napari_medseg.errors.MedsegError` (or ``ValueError``) for a bad choice: it becomes
   a notification and nothing starts; return ``None`` after a :func:`warn` when there is
   nothing to do.  :meth:`run` (the button, the shortcut) calls it; another job of the same
   tab (a Re-segment button) calls :meth:`launch` with its own prepare function.  One job
   runs at a time per tab: a second start is refused with a warning.

4. **Receive progress and the result**: :meth:`on_progress` gets each
   :class:`~napari_medseg.events.Progress` (the default moves the bar and writes
   ``"<what runs>: <message>, 0:41 left"``; a Train tab overrides it to plot the loss and
   calls ``super()``).  ``JobStart.on_done`` (default :meth:`show_result`) gets the job's
   return value on the GUI thread, never after a Cancel.

5. **Show the outcome** with :meth:`present` (not ``show``, which is QWidget's): one step
   (a layer) per event-loop turn, so the window repaints between napari's layer additions,
   then ``outcome`` in the status line (``"done in 12.3 s: <outcome>"``).  The job counts
   as running until the last step.
   :meth:`on_finished` runs after every end (done, cancelled, failed), e.g. to keep a
   fine-tune's last good weights after a Cancel (``self.runner.cancelled``);
   :meth:`clear_result` is called when a job starts, so a table never shows the numbers of
   an older run next to a newer status.

Status wording, buttons, progress and the import warm-up are :class:`JobPanel` and
:class:`JobRunner`'s (``self.panel``, ``self.runner``); ``self.run_button``,
``self.cancel_button``, ``self.progress`` and ``self.status`` are their controls.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, ClassVar

from magicgui.widgets import ComboBox, Container, PushButton, Widget
from qtpy.QtWidgets import QVBoxLayout, QWidget
from superqt import QCollapsible

import napari
from napari_medseg._napari import shortcuts
from napari_medseg._napari.job_panel import JobPanel
from napari_medseg._napari.layers import is_overlay
from napari_medseg._napari.notify import report, warn
from napari_medseg._napari.settings import WidgetSettings
from napari_medseg.errors import MedsegError
from napari_medseg.events import Event, Progress


@dataclass
class JobStart:
    """What :meth:`JobWidget.prepare` returns: the core job to run and how to show it.

    ``job`` is a generator of :mod:`napari_medseg.events` returning the result; ``text`` says
    what runs; ``on_done`` gets the result (default: the widget's ``show_result``).
    """

    job: Generator[Event, None, Any]
    text: str
    on_done: Callable[[Any], None] | None = None


def _qt(widget: Widget | QWidget) -> QWidget:
    return widget if isinstance(widget, QWidget) else widget.native


class JobWidget(QWidget):
    """A tab that runs one core job at a time; see the module docstring for the API."""

    #: Settings section of the remembered controls, and the job's name in messages.
    section: ClassVar[str] = "job"
    run_text: ClassVar[str] = "Run"
    run_tooltip: ClassVar[str] = ""
    idle_text: ClassVar[str] = ""
    #: Key bound to :meth:`run` (``shortcuts.SEGMENT``...), or ``None``.
    shortcut: ClassVar[str | None] = None
    #: "<busy_text> is already running; wait for it or press Cancel".
    busy_text: ClassVar[str] = ""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = viewer
        self.panel = JobPanel(self.run_text, run_tooltip=self.run_tooltip,
                              shortcut=self.shortcut, idle_text=self.idle_text)
        self.runner = self.panel.runner
        self.run_button, self.cancel_button = self.panel.run_button, self.panel.cancel_button
        self.progress, self.status = self.panel.progress, self.panel.status
        self.settings = WidgetSettings(self.section)
        self._forms: list[Container] = []
        layout = QVBoxLayout(self)
        self._above = QVBoxLayout()
        self._below = QVBoxLayout()
        layout.addLayout(self._above)
        layout.addWidget(self.panel.native)
        layout.addLayout(self._below)
        layout.addStretch(1)
        self.run_button.clicked.connect(self.run)
        if self.shortcut is not None:
            shortcuts.bind(viewer, self.shortcut, self.run)
        shortcuts.bind(viewer, shortcuts.CANCEL, self.panel.cancel, every=True)
        # napari refreshes a docked widget's choices when layers are added or removed; these
        # also cover renames, moves and a widget that is not (yet) docked
        events = viewer.layers.events
        for emitter in (events.inserted, events.removed, events.moved):
            emitter.connect(self._layers_changed)
        for layer in viewer.layers:
            layer.events.name.connect(self._layers_changed)

    # ---------------------------------------------------------------- building the tab
    def add_controls(self, *widgets: Widget | QWidget) -> None:
        """Place controls above Run/Cancel (a magicgui ``Container`` is a labelled form)."""
        for widget in widgets:
            if isinstance(widget, Container):
                self._forms.append(widget)
            self._above.addWidget(_qt(widget))

    def add_advanced(self, *widgets: Widget | QWidget, title: str = "Advanced",
                     tooltip: str = "") -> QCollapsible:
        """Place controls in a folded section above Run/Cancel; returns the fold."""
        fold = QCollapsible(title)
        fold.toggleButton().setToolTip(tooltip or f"More options of {self.run_text}")
        for widget in widgets:
            if isinstance(widget, Container):
                self._forms.append(widget)
            fold.addWidget(_qt(widget))
        self._above.addWidget(fold)
        return fold

    def add_buttons(self, *buttons: PushButton) -> None:
        """A row of extra buttons under Run/Cancel (Export, Re-segment...)."""
        self.panel.add_row(*buttons)

    def add_below(self, *widgets: Widget | QWidget) -> None:
        """Place widgets under the status line (a result table, a plot)."""
        for widget in widgets:
            self._below.addWidget(_qt(widget))

    def remember(self, *names: str) -> None:
        """Restore the controls ``self.<name>`` from the settings file and save their changes."""
        self.settings.bind({name: getattr(self, name) for name in names})

    def bind_key(self, key: str, action: Callable[[], Any]) -> None:
        """Call the bound method ``action`` when ``key`` is pressed in the viewer."""
        shortcuts.bind(self.viewer, key, action)

    # ---------------------------------------------------------------- running
    def prepare(self) -> JobStart | None:
        """Turn the layers and controls into the core job (see the module docstring)."""
        raise NotImplementedError

    def run(self) -> None:
        """Start the tab's job with the current choices (the Run button and its key)."""
        self.launch(self.prepare)

    def launch(self, prepare: Callable[[], JobStart | None]) -> None:
        """Start the job ``prepare`` builds, unless one runs; a bad choice is reported."""
        if self.runner.running:
            warn(f"{self.busy_text or self.section} is already running; wait for it or "
                 "press Cancel")
            return
        try:
            start = prepare()
        except (MedsegError, ValueError) as exc:
            report(exc, context=self.section)
            return
        if start is None:
            return
        self.clear_result()
        self.panel.start(start.job, on_done=start.on_done or self.show_result,
                         context=self.section, text=start.text,
                         on_progress=self.on_progress, on_finished=self.on_finished)

    def cancel(self) -> None:
        """Stop the running job at its next step (nothing happens when none runs)."""
        self.panel.cancel()

    # ---------------------------------------------------------------- results
    def on_progress(self, event: Progress) -> None:
        """A progress event of the running job (GUI thread): bar and status by default."""
        self.panel.show_progress(event)

    def show_result(self, result: Any) -> None:
        """The job's result (GUI thread, not after a Cancel): queue it with :meth:`present`."""
        raise NotImplementedError

    def present(self, *steps: Callable[[], Any], outcome: str | Callable[[], str] = "") -> None:
        """Run ``steps`` one per event-loop turn, then write ``outcome`` (text, or a function
        giving it after the steps) as how the job ended; call from :meth:`show_result`."""

        def done() -> None:
            self.panel.done(outcome() if callable(outcome) else outcome)

        self.panel.in_turns(*steps, done)

    def clear_result(self) -> None:
        """Forget the shown result of an earlier run (a table); called when a job starts."""

    def on_finished(self) -> None:
        """After every end of a job: done, cancelled (``self.runner.cancelled``) or failed."""

    # ---------------------------------------------------------------- layers
    def layer_choices(self, kind: type, accept: Callable[[Any], bool] | None = None
                      ) -> Callable[..., list[tuple[str, Any]]]:
        """A ``choices`` callback: ``(name, layer)`` of the viewer's layers of ``kind`` that
        are no overlay (and pass ``accept``), in the layer list's order."""

        def choices(*_: Any) -> list[tuple[str, Any]]:
            return [(layer.name, layer) for layer in self.viewer.layers
                    if isinstance(layer, kind) and not is_overlay(layer)
                    and (accept is None or accept(layer))]

        return choices

    def layer_choice(self, kind: type, *, label: str, tooltip: str,
                     accept: Callable[[Any], bool] | None = None) -> ComboBox:
        """A combo box of the viewer's layers of ``kind`` (see :meth:`layer_choices`)."""
        return ComboBox(label=label, tooltip=tooltip, choices=self.layer_choices(kind, accept))

    def _layers_changed(self, event: Any = None) -> None:
        if not shortcuts.alive(self):  # the tab was closed; napari holds its method weakly
            return
        added = getattr(event, "type", "") == "inserted"
        if added:
            event.value.events.name.connect(self._layers_changed)
        self.reset_choices()

    def reset_choices(self, *_: Any) -> None:
        """Refresh the choices of every form (on every change of the layer list; a tab
        extends it to pick its defaults)."""
        for form in self._forms:
            form.reset_choices()
