"""The one-line widgets: a status line shows its text as it is (brackets included), an error in the
error colour, and a line given the same text again does not repaint."""
from __future__ import annotations

from textual.app import App

from milo_tui.app import MiloApp
from milo_tui.widgets.status_line import OneLine, StatusLine


class _Lines(App):
    CSS_PATH = MiloApp.CSS_PATH

    def compose(self):
        yield OneLine("first", id="line")
        yield StatusLine(id="status")


async def test_a_status_line_says_brackets_as_they_are_and_errors_in_the_error_colour():
    app = _Lines()
    async with app.run_test(size=(80, 5)) as pilot:
        status = app.query_one(StatusLine)
        status.say("not played: [Errno 19] No such device [b]x[/b]", error=True)
        await pilot.pause()
        assert str(status.render()) == "not played: [Errno 19] No such device [b]x[/b]"
        assert status.error and status.has_class("error")
        assert status.styles.color.hex.lower() == app.theme_variables["error"].lower()
        status.say("played")
        await pilot.pause()
        assert not status.has_class("error") and status.text == "played"


async def test_a_line_given_the_same_text_does_not_repaint():
    app = _Lines()
    async with app.run_test(size=(80, 5)) as pilot:
        line = app.query_one(OneLine)
        await pilot.pause()
        shown = line.visual
        line.show("first")
        assert line.visual is shown  # not visualised again, so not repainted
        line.show("second")
        shown = line.visual
        line.show("second")
        assert line.visual is shown and str(line.render()) == "second"
