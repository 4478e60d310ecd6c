"""One-line widgets: a line that remembers what it shows, and the status line of the corpus and audition
screens (what just happened, an error in the error colour)."""
from __future__ import annotations

from textual.widgets import Static


class OneLine(Static):
    """A line of fixed height (milo.tcss gives it) that remembers its text: the same text again costs
    nothing, a new one repaints it without a reflow of the screen. Called at the draw rate, most calls
    bring what is already shown."""

    def __init__(self, text: str = "", **kw) -> None:
        super().__init__(text, **kw)
        self.text = text

    def show(self, text: str) -> None:
        if text != self.text:
            self.text = text
            self.update(text, layout=False)


class StatusLine(OneLine):
    """What just happened on a screen, as plain text (a path or an error with brackets in it shows as it
    is); an error in the error colour (milo.tcss `StatusLine.error`)."""

    def __init__(self, **kw) -> None:
        super().__init__(markup=False, **kw)
        self.error = False

    def say(self, text: str, error: bool = False) -> None:
        self.error = error
        self.set_class(error, "error")
        self.show(text)
