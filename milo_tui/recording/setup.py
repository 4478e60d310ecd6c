"""`M` in the runs view: ask where the session is and which microphone, then open the record screen. A folder
that cannot hold a session, a wrong [record] table or a microphone that is not there is one line, and the
runs view stays as it was."""
from __future__ import annotations

import os
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Select

MICS = [("the Spark's input device", "spark"), ("the laptop's, through milo-listen --mic", "laptop")]


class RecordSetup(ModalScreen[tuple[str, str] | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="record_setup_cancel", tooltip="Back to the runs")]

    def __init__(self, folder: Path, mic: str) -> None:
        super().__init__()
        self.folder, self.mic = folder, mic

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Record: the session's folder (a new one starts a session; an old one goes on)",
                        classes="question")
            yield Input(str(self.folder), compact=True, id="record-folder")
            yield Select(MICS, value=self.mic, allow_blank=False, compact=True, id="record-mic")
            yield Label("[b]enter[/] opens it, [b]tab[/] the microphone, [b]esc[/] cancels", classes="keys")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        folder = event.value.strip()
        if not folder:
            self.notify("give a folder for the session", severity="error")
            return
        self.dismiss((folder, str(self.query_one(Select).value)))

    def action_cancel(self) -> None:
        self.dismiss(None)


def default_folder(checkpoints: Path) -> Path:
    return Path(checkpoints).expanduser().resolve().parent / "recordings" / "session"


def default_mic() -> str:
    """The side the auditions play on ($MILO_AUDIO_OUTPUT=laptop: the operator is at the laptop)."""
    return "laptop" if os.environ.get("MILO_AUDIO_OUTPUT") == "laptop" else "spark"


def open_record(app, folder: str, mic_kind: str) -> None:
    """Open the session and the microphone, then the record screen; any failure is one notification."""
    from contract import recording as cr
    from contract.configfile import ConfigError, config_file, read_config
    from milo_tui.recording.app import open_mic
    from milo_tui.recording.mic import MicError
    from milo_tui.recording.screen import RecordScreen

    try:
        settings = cr.record_settings(read_config(), config_file())
        session = cr.Session.open(Path(folder), heldout_every=int(settings["heldout_every"]))
        mic = open_mic(mic_kind, os.environ.get("MILO_AUDIO_DEVICE") if mic_kind == "spark" else None)
    except (ConfigError, cr.SessionError, MicError) as exc:
        app.notify(str(exc), severity="error", timeout=10)
        return
    app.push_screen(RecordScreen(session, mic, settings))
