"""Small modal dialogs: a yes/no confirmation and a number prompt. Keyboard first: y/n, enter/escape."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm_yes", tooltip="Do it"),
        Binding("n,escape", "answer(False)", "No", id="confirm_no", tooltip="Leave everything as it is"),
    ]

    def __init__(self, question: str, detail: str = "") -> None:
        super().__init__()
        self.question, self.detail = question, detail

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, classes="question")
            if self.detail:
                yield Label(self.detail, classes="detail")
            yield Label("[b]y[/] yes    [b]n[/] / [b]esc[/] no", classes="keys")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class NumberPrompt(ModalScreen[int | None]):
    """Ask for a whole number in [low, high]; enter accepts, escape cancels."""
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="prompt_cancel", tooltip="Close without changing anything")]

    def __init__(self, question: str, value: int, low: int, high: int) -> None:
        super().__init__()
        self.question, self.value, self.low, self.high = question, value, low, high

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, classes="question")
            yield Input(str(self.value), type="integer", compact=True, id="number")
            yield Label(f"{self.low} to {self.high}; [b]enter[/] accepts, [b]esc[/] cancels", classes="keys")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        try:
            value = int(event.value)
        except ValueError:
            value = None
        if value is None or not self.low <= value <= self.high:
            self.notify(f"give a whole number from {self.low} to {self.high}", severity="error")
            return
        self.dismiss(value)

    def action_cancel(self) -> None:
        self.dismiss(None)
