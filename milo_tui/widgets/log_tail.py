"""The tail of train.log: as many of the newest lines as fit, long ones wrapped, error lines in red."""
from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text

from milo_tui.widgets.lines import LinesWidget
from milo_tui.widgets.theme import ERROR, themed


def _looks_like_error(line: str) -> bool:
    return "Error" in line or "Traceback" in line or "error:" in line or "Exception" in line


class LogTail(LinesWidget, can_focus=True):
    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.source: Sequence[str] = ()

    def show(self, lines: Sequence[str]) -> None:
        self.source = lines
        self.redraw()

    def lines(self, width: int, height: int) -> list[Text]:
        out: list[Text] = []
        console, error = self.app.console, themed(self.app, ERROR)
        for line in reversed(self.source):
            text = Text(line.expandtabs(), error if _looks_like_error(line) else "")
            out[:0] = text.wrap(console, max(1, width)) if line else [Text()]
            if len(out) >= height:
                break
        return out[-height:] if height else []
