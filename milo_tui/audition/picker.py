"""The audition screen's checkpoint picker: one of the run's checkpoints, the run's best offered first.

A dialog beside the audition screen rather than in milo_tui/screens/dialogs.py: the corpus screen there
uses the audition worker's client, so an import from screens here would make the two packages a cycle."""
from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option


class CheckpointPicker(ModalScreen):
    """Choose one of the run's checkpoints (arrows, Enter; Esc cancels). Dismisses with a Path or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="audition.picker.cancel",
                        tooltip="Close the picker; nothing changes")]

    def __init__(self, title: str, checkpoints: list[Path], current: Path | None, best: Path | None = None,
                 start: Path | None = None) -> None:
        super().__init__()
        self.title_text, self.checkpoints, self.current, self.best = title, checkpoints, current, best
        self.start = start or current  # the row highlighted first ("*" marks the current choice)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.title_text, id="picker-title")
            options = [Option(f"  best: {self.best.name}", id="best")] if self.best is not None else []
            options += [Option(("* " if p == self.current else "  ") + p.name, id=str(i))
                        for i, p in enumerate(self.checkpoints)]
            yield OptionList(*options, id="picker-list")

    def on_mount(self) -> None:
        olist = self.query_one(OptionList)
        if self.start in self.checkpoints:
            olist.highlighted = self.checkpoints.index(self.start) + (self.best is not None)
        olist.focus()

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.best if event.option.id == "best" else self.checkpoints[int(event.option.id)])

    def action_cancel(self) -> None:
        self.dismiss(None)
