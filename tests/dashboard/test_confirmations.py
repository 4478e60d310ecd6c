"""The confirmations (Kill, Prune) show their whole message at the sizes an operator uses over SSH: it wraps
to the dialog, a detail taller than the screen scrolls with the keys, and the y/n line is always in view."""
from __future__ import annotations

import pytest

from contract.retention import Policy
from tests.dashboard.conftest import make_app, screen_text, wait_for, write_run
from tests.dashboard.test_scores_view import open_checkpoints

SIZES = [(100, 30), (80, 24)]
YES_NO = "y yes    n / esc no"


def words(text: str) -> str:
    return " ".join(text.split())


def dialog_rows(app) -> list[str]:
    """The rows inside the confirmation's border, as the terminal shows them; the dialog must fit the screen."""
    dialog = app.screen.query_one(".dialog")
    box = dialog.region
    width, height = app.size
    assert box.x >= 0 and box.y >= 0 and box.right <= width and box.bottom <= height, (box, app.size)
    lines = screen_text(app).splitlines() + [""] * height
    return [lines[y][box.x + 1:box.right - 1] for y in range(box.y + 1, box.bottom - 1)]


async def confirmation(pilot, key: str):
    from milo_tui.screens.dialogs import ConfirmScreen

    await pilot.press(key)
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen), what="the confirmation")
    await pilot.pause()
    await pilot.pause()
    return pilot.app.screen


@pytest.mark.parametrize("size", SIZES)
async def test_the_kill_confirmation_is_whole(runs_root, live_process, size):
    write_run(runs_root, "alpha", 250, status="running", state=live_process())
    app = make_app(runs_root, poll_s=0.2)
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: app.selected is not None, what="the run")
        dialog = await confirmation(pilot, "K")
        assert dialog.detail.endswith("s (Stop) saves it first.")
        rows = dialog_rows(app)
        shown = words(" ".join(rows))
        assert words(dialog.question) in shown and words(dialog.detail) in shown, rows
        assert any(row.strip().startswith(YES_NO) for row in rows), rows
        await pilot.press("n")  # and nothing was signalled
        assert app.runs[runs_root / "alpha"].live


@pytest.mark.parametrize("size", SIZES)
async def test_a_prune_keeping_24_scrolls_with_the_answer_in_view(runs_root, size):
    run = write_run(runs_root, "voice", 3000, status="finished", epochs=30)
    app = make_app(runs_root, settings={"retention": Policy(keep_best=24, keep_last=2)}, poll_s=0.2)
    async with app.run_test(size=size) as pilot:
        await open_checkpoints(pilot)
        dialog = await confirmation(pilot, "P")
        detail = dialog.detail.splitlines()
        assert sum(1 for line in detail if line.startswith("  epoch-") and ":" in line) >= 24  # the kept ones
        assert "Will delete on y:" in detail and not any("Deleted" in line for line in detail)
        scroll = dialog.query_one(".dialog")
        assert scroll.max_scroll_y > 0, "the detail should be taller than the screen here"
        seen = []
        for _ in range(200):  # line by line with the arrow key: every row passes through the view
            rows = dialog_rows(app)
            assert words(dialog.question) in words(" ".join(rows[:4])), rows  # the question stays on top
            assert rows[-1].strip().startswith(YES_NO), rows                   # the answer at the bottom
            seen.append(words(" ".join(rows)))
            if scroll.scroll_y >= scroll.max_scroll_y:
                break
            await pilot.press("down")
            await pilot.pause()
        assert scroll.scroll_y >= scroll.max_scroll_y, "the arrow keys should reach the end of the detail"
        for line in detail:
            assert any(words(line) in frame for frame in seen), line
        assert "up/down pgup/pgdn scroll" in seen[0]
        await pilot.press("n")
        assert len(list((run).glob("epoch-*"))) == 30
