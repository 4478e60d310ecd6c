"""Small modal dialogs: a yes/no confirmation and a number prompt. Keyboard first: y/n, enter/escape."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

KEYS = "[b]y[/] yes    [b]n[/] / [b]esc[/] no"


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question. The whole message wraps to the dialog's width; a detail taller than the screen
    scrolls (arrows, page keys, the wheel) between the question and the y/n line, which stay in view."""
    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm_yes", tooltip="Do it"),
        Binding("n,escape", "answer(False)", "No", id="confirm_no", tooltip="Leave everything as it is"),
    ]

    def __init__(self, question: str, detail: str = "") -> None:
        super().__init__()
        self.question, self.detail = question, detail

    def compose(self) -> ComposeResult:
        # the dialog itself scrolls; the question and the y/n line are docked, so they never scroll away
        with VerticalScroll(classes="dialog confirm"):
            yield Static(self.question, markup=False, classes="question")
            yield Static(KEYS, classes="keys")
            if self.detail:
                yield Static(self.detail, markup=False, classes="detail")

    def on_resize(self) -> None:
        self.call_after_refresh(self._say_scroll)

    def _say_scroll(self) -> None:
        """Name the scroll keys only when there is something to scroll to."""
        more = self.query_one(".confirm", VerticalScroll).max_scroll_y > 0
        self.query_one(".keys", Static).update(KEYS + ("    [b]up/down pgup/pgdn[/] scroll" if more else ""))

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
