"""LinesWidget: a widget that draws a list of Rich Text lines through Textual's line API.

The lines are computed once per change (or size) and kept as Strips; a repaint only returns them. This
skips Rich's layout of a renderable on every repaint, which for a chart drawn twice a second was most of
the dashboard's CPU while it follows a run."""
from __future__ import annotations

from rich.text import Text
from textual.strip import Strip
from textual.widget import Widget


class LinesWidget(Widget):
    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self._strips: list[Strip] | None = None
        self._strips_size: tuple[int, int] = (0, 0)

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self.redraw())  # the lines hold its colours

    def lines(self, width: int, height: int) -> list[Text]:
        raise NotImplementedError

    def redraw(self) -> None:
        """The content changed: compute the lines again on the next repaint."""
        self._strips = None
        self.refresh()

    def render_line(self, y: int) -> Strip:
        width, height = self.content_size
        if self._strips is None or self._strips_size != (width, height):
            console, base = self.app.console, self.rich_style
            self._strips = [
                Strip(list(line.render(console))).apply_style(base).adjust_cell_length(width, base)
                for line in self.lines(width, height)[:height]
            ]
            self._strips_size = (width, height)
        return self._strips[y] if y < len(self._strips) else Strip.blank(width, self.rich_style)
