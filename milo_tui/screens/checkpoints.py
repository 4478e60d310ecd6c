"""The checkpoints view of the selected run: epoch, size on disk, validation loss, creation time, and the
disk's free space; rows are updated in place as checkpoints land. `a` asks for an audition."""
from __future__ import annotations

from pathlib import Path

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Static

from milo_tui.format import fmt_bytes
from milo_tui.messages import AuditionRequested
from milo_tui.keys import ExplainDisabled
from milo_tui.widgets.tables import CheckpointsTable


class CheckpointsScreen(ExplainDisabled, Screen):
    AUTO_FOCUS = "#checkpoints"
    BINDINGS = [
        Binding("a", "audition", "Audition", id="audition", tooltip="Listen to the highlighted checkpoint"),
        Binding("escape", "back", "Back", id="back", tooltip="Back to the runs"),
        Binding("c", "back", "Back", id="back_c", show=False, tooltip="Back to the runs"),
    ]

    def compose(self) -> ComposeResult:
        yield Static(id="title")
        yield CheckpointsTable(id="checkpoints", classes="pane")
        yield Static(id="free")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#checkpoints").border_title = "Checkpoints"
        self.app.mark_dirty("checkpoints")

    def draw(self, parts: set[str]) -> None:
        if not ({"checkpoints", "runs"} & parts) or not self.is_mounted:
            return
        app = self.app
        run = app.selected_summary()
        checkpoints, free = app.checkpoints.get(app.selected, ((), None))
        self.query_one("#title", Static).update(
            f" [b]{escape(run.name)}[/] · {run.status} · {len(checkpoints)} checkpoints" if run else " no run selected")
        self.query_one(CheckpointsTable).show(checkpoints)
        total = sum(c.bytes for c in checkpoints)
        self.query_one("#free", Static).update(
            f" {fmt_bytes(total)} in checkpoints · {fmt_bytes(free)} free on this disk" if free is not None else "")
        self.refresh_bindings()

    def highlighted(self) -> Path | None:
        table = self.query_one(CheckpointsTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return Path(key.value) if key and key.value else None

    def why_not(self, action: str) -> str | None:
        if action == "audition" and self.is_mounted and self.highlighted() is None:
            return "no checkpoint to audition yet"
        return None

    def action_audition(self) -> None:
        checkpoint = self.highlighted()
        if checkpoint is not None and self.app.selected is not None:
            self.app.post_message(AuditionRequested(self.app.selected, checkpoint))

    def action_back(self) -> None:
        self.app.pop_screen()
