"""The Textual application: screens, bindings and the state that handlers own."""
from __future__ import annotations

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Header, Static

from milo_tui.config import Settings
from milo_tui.runfolder import list_runs


class MiloApp(App):
    TITLE = "milo-tui"
    BINDINGS = [
        Binding("q", "quit", "Quit", id="quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True, id="quit_ctrl_c"),
    ]

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings

    def compose(self) -> ComposeResult:
        s = self.settings
        kind = "demo workspace" if s.demo else "workspace"
        runs = list_runs(s.checkpoints)
        yield Header()
        yield Static(
            f"{kind}\n"
            f"  base model   {s.base_model}  ({s.source('base_model')})\n"
            f"  checkpoints  {s.checkpoints}  ({len(runs)} runs)\n"
            f"  data         {s.data}\n"
            f"  device       {s.device}",
            id="workspace",
        )
        yield Footer()
