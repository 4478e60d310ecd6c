"""`A` on the runs screen: the one question adoption needs answered by the operator, which corpus the
checkpoints were trained on (the scorer's reference voice, docs/adopt.md). Everything else adoption reads
from the folder itself."""
from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label


def check_corpus(value: str) -> tuple[Path | None, str | None]:
    """(the corpus to record, or None when left empty; an error line when the path does not exist)."""
    text = value.strip()
    if not text:
        return None, None
    path = Path(text).expanduser()
    if not path.exists():
        return None, f"{text} does not exist: give the training JSONL or the clips folder, or leave it empty"
    return path, None


class AdoptScreen(ModalScreen[tuple[Path | None] | None]):
    """Ask for the corpus, prefilled (the run's recorded one, else the configured data); enter adopts with
    what is there (empty: no corpus, scoring then says how to give one), escape leaves the folder as it is.
    Dismisses with (corpus,) or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="adopt_cancel", tooltip="Leave the folder as it is")]

    def __init__(self, run_name: str, corpus: Path | str | None, *, again: bool = False) -> None:
        super().__init__()
        self.run_name, self.corpus, self.again = run_name, corpus, again

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog adopt"):
            yield Label(f"{self.run_name} is adopted already: its corpus?" if self.again else
                        f"Adopt {self.run_name}: the corpus its checkpoints were trained on?", classes="question")
            yield Label("the training JSONL or the clips folder: the voice the scores compare with", classes="detail")
            yield Input(str(self.corpus or ""), compact=True, id="corpus", placeholder="empty: none (no similarity scores)")
            yield Label("", id="adopt-error", classes="detail")
            yield Label("[b]enter[/] adopts, [b]esc[/] cancels", classes="keys")

    def on_mount(self) -> None:
        self.query_one("#corpus", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        corpus, error = check_corpus(event.value)
        if error:
            self.query_one("#adopt-error", Label).update(f"[$error]{error}[/]")
            return
        self.dismiss((corpus,))

    def action_cancel(self) -> None:
        self.dismiss(None)
