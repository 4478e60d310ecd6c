"""One meaning per key, and every action that cannot act says why: `q` leaves the screen it is pressed on
(quitting only from the runs view), the keys list and the palette give the reason, and the palette's
Screenshot saves a file."""
from __future__ import annotations

from milo_tui.palette import action_commands
from milo_tui.screens.checkpoints import CheckpointsScreen
from milo_tui.screens.help import HelpScreen
from tests.dashboard.conftest import make_app, screen_text, wait_for


async def test_q_leaves_the_screen_and_quits_only_from_the_runs_view(three_runs):
    app = make_app(three_runs)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: len(app.runs) == 3)
        app.select_run(three_runs / "bravo")
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, CheckpointsScreen), what="the checkpoints")
        await pilot.press("q")  # back to the runs, not out of the dashboard
        await wait_for(pilot, lambda: not isinstance(app.screen, CheckpointsScreen), what="the runs view")
        assert app.is_running and app.return_code is None
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), what="the keys list")
        await pilot.press("q")
        await wait_for(pilot, lambda: not isinstance(app.screen, HelpScreen), what="the keys list to close")
        assert app.is_running
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, what="the quit")


async def test_the_keys_list_and_the_palette_say_why_an_action_cannot_act(three_runs):
    app = make_app(three_runs)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: len(app.runs) == 3)
        app.select_run(three_runs / "bravo")  # finished: nothing to stop
        await pilot.pause()
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), what="the keys list")
        stop = next(line for line in screen_text(app).splitlines() if "Stop (not now)" in line)
        assert "bravo is not running (it is finished)" in stop, stop
        await pilot.press("escape")
        commands = {c.title: c for c in action_commands(app, app.screen)}
        assert "Stop (not now)" in commands and commands["Stop (not now)"].help == "bravo is not running (it is finished)"
        assert "Checkpoints" in commands and "Checkpoints (not now)" not in commands
        commands["Stop (not now)"].callback()  # choosing it says why, as the key does
        await pilot.pause()
        assert any(n.message == "bravo is not running (it is finished)" for n in app._notifications)


async def test_the_palettes_screenshot_is_saved(three_runs, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))  # a fresh HOME's: no folder for it yet
    app = make_app(three_runs)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: len(app.runs) == 3)
        screenshot = next(c for c in app.get_system_commands(app.screen) if c.title == "Screenshot")
        screenshot.callback()
        folder = tmp_path / "data" / "milo-tui" / "screenshots"
        await wait_for(pilot, lambda: any(n.title == "Screenshot" for n in app._notifications), what="the result")
        note = next(n for n in app._notifications if n.title == "Screenshot")
        assert note.severity != "error" and str(folder) in note.message, note.message
        saved = list(folder.glob("*.svg"))
        assert len(saved) == 1 and "<svg" in saved[0].read_text()[:500]
