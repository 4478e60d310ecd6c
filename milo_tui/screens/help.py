"""Every key of the screen below, with what it does (keymap changes from config.toml included)."""
from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from milo_tui.keys import why_not


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "close", "Close", id="help_close",
                        tooltip="Back to the screen you came from")]

    def __init__(self, below) -> None:
        super().__init__()
        self.below = below

    def keys_table(self) -> Table:
        """One row per action: its keys, what it does, and whether it can be done now."""
        actions: dict[tuple[str, str], dict] = {}
        for key, active in self.below.active_bindings.items():
            b = active.binding
            if not b.id or not b.description:
                continue  # the focused widget's own keys (cursor moves) are not ours to list
            reason = None if active.enabled else why_not(self.below, active.node, b.action)
            row = actions.setdefault((b.action, b.description), {"keys": [], "binding": b, "enabled": active.enabled,
                                                                 "reason": reason})
            row["keys"].append(self.app.get_key_display(b))
        table = Table.grid(padding=(0, 1))
        table.add_column(justify="right", style="bold", no_wrap=True)
        table.add_column(no_wrap=True)
        table.add_column(style="dim")
        for (_action, description), row in actions.items():
            label = Text(description)
            if not row["enabled"]:
                label.append(" (not now)", "dim")
            why = f"not now: {row['reason']}" if row["reason"] else row["binding"].tooltip
            table.add_row(", ".join(dict.fromkeys(row["keys"])), label, why)
        return table

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog help"):
            yield Static(Text.from_markup("[b]Keys[/]  (esc closes)"))
            yield Static(self.keys_table())
            yield Static(Text("ctrl+p: command palette, every action · tab: next pane · arrows: move in tables\n"
                              "Keys can be remapped in config.toml [keys] (docs/keys.md).", "dim"))

    def action_close(self) -> None:
        self.dismiss(None)
