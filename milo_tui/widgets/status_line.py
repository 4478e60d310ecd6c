"""One-line widgets: a line that remembers what it shows."""
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

