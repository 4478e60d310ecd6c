"""The dashboard through Pilot, on run folders written to the documented schema (no trainer needed):
what is shown, what each key does or why it cannot, the palette, the keymap, bad run folders."""
from __future__ import annotations


import pytest

from milo_tui.messages import AuditionRequested
from milo_tui.palette import action_commands
from contract.runfolder import append_records, write_json_atomic
from tests.dashboard.conftest import latest_step, make_app, screen_text, step_records, wait_for, write_run


def _notes(app) -> list[str]:
    return [n.message for n in app._notifications]


async def test_runs_chart_layers_and_log_of_the_selected_run(three_runs):
    app = make_app(three_runs)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: len(app.runs) == 3 and latest_step(app), what="runs and metrics")
        assert app.selected.name == "alpha"  # the live one
        await wait_for(pilot, lambda: len(app.log_lines) > 5, what="log")
        text = screen_text(app)
        for words in ("alpha", "bravo", "charlie", "running", "finished", "crashed", "Runs (3, 1 running)",
                      "L15", "objective", "(#250)", "step"):
            assert words in text, words
        assert latest_step(app) == 250 and len(app.run_metrics.validations) == 2
        await pilot.press("down", "down")  # to charlie, the crashed run
        await wait_for(pilot, lambda: app.selected.name == "charlie" and latest_step(app) == 120, what="charlie's metrics")
        assert "RuntimeError: test hook: crash at step 120 (exit 1)" in screen_text(app)


async def test_keys_that_cannot_act_say_why(three_runs):
    app = make_app(three_runs)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: len(app.runs) == 3)
        app.select_run(three_runs / "bravo")
        await pilot.pause()
        assert app.check_action("stop", ()) is None  # dimmed in the footer
        assert app.check_action("new_run", ()) is True
        await pilot.press("s")
        await pilot.press("K")
        await pilot.press("r")
        notes = _notes(app)
        assert "bravo is not running (it is finished)" in notes
        assert "bravo has finished" in notes
        assert notes.count("bravo is not running (it is finished)") == 2  # stop and kill


async def test_palette_offers_the_possible_actions(three_runs):
    app = make_app(three_runs)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.selected is not None and app.selected.name == "alpha")
        titles = [c.title for c in action_commands(app, app.screen)]
        for title in ("New run", "Stop", "Kill", "Checkpoints", "Smooth", "Next layer", "Overlay layer 7", "Quit", "Keys"):
            assert title in titles, title
        assert "Resume" not in titles  # alpha is running
        app.select_run(three_runs / "bravo")
        titles = [c.title for c in action_commands(app, app.screen)]
        assert "Stop" not in titles and "Kill" not in titles


async def test_the_palette_finds_an_action_and_runs_it(three_runs):
    """ctrl+p, a few letters, Enter: the palette's ActionCommands provider finds the action and runs it."""
    from textual.command import CommandPalette

    from milo_tui.screens.checkpoints import CheckpointsScreen

    app = make_app(three_runs)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.selected is not None)
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), what="the palette")
        await pilot.press(*"checkpo")
        await wait_for(pilot, lambda: "Checkpoints" in screen_text(app), what="the Checkpoints entry")
        await pilot.press("down", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, CheckpointsScreen), what="the checkpoints view")


async def test_chart_keys_overlay_and_smoothing(three_runs):
    app = make_app(three_runs)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: latest_step(app))
        await pilot.press("right_square_bracket", "right_square_bracket", "m")
        await wait_for(pilot, lambda: app.overlay == 1 and app.smooth)
        chart = app.screen.query_one("#chart")
        assert "layer 1" in chart.border_title and "smoothed" in chart.border_title
        await pilot.press("left_square_bracket", "left_square_bracket", "backslash")
        assert app.overlay is None
        await pilot.press("v")
        await wait_for(pilot, lambda: app.view == "trend")
        assert "Scores per epoch" in screen_text(app) and "no scored checkpoint yet" in screen_text(app)
        await pilot.press("v")
        await wait_for(pilot, lambda: app.view == "layers")
        assert "L15" in screen_text(app)
        await pilot.press("v")
        await wait_for(pilot, lambda: app.view == "log")
        assert "(#250)" in screen_text(app)


async def test_a_configured_keymap_rebinds_and_unknown_ids_are_reported(three_runs):
    app = make_app(three_runs, settings={"keys": {"stop": "x", "no_such_action": "y"}})
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: len(app.runs) == 3)
        assert any("unknown action(s) no_such_action" in n for n in _notes(app))
        app.select_run(three_runs / "bravo")
        await pilot.press("x")
        assert "bravo is not running (it is finished)" in _notes(app)


async def test_garbage_state_and_metrics_give_one_line_and_nothing_breaks(runs_root):
    bad = runs_root / "broken"
    bad.mkdir()
    (bad / "state.json").write_text("{not json")
    (bad / "metrics.jsonl").write_bytes(b"\x00\xff garbage\n" + b'{"kind": "step", "step": "x"}\n')
    append_records(bad / "metrics.jsonl", step_records(1, 3))
    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.runs and latest_step(app), what="the broken run")
        notes = _notes(app)
        assert any("state.json is not readable JSON" in n for n in notes)
        assert any("not JSON were skipped" in n for n in notes)
        assert [p.step for p in app.run_metrics.points] == [1, 2, 3]
        assert "unreadable" in screen_text(app)
        await pilot.press("s", "r")  # nothing to stop or resume: each key says why
        await wait_for(pilot, lambda: len(_notes(app)) >= len(notes) + 2, what="the two reasons")
        reasons = _notes(app)[len(notes):]
        assert any(n.startswith("broken is not running (it is ") for n in reasons), reasons
        assert any("broken has no resume point yet" in n for n in reasons), reasons
        await pilot.press("c")  # checkpoints opens (empty)
        await wait_for(pilot, lambda: type(app.screen).__name__ == "CheckpointsScreen")


async def test_checkpoints_view_updates_in_place_and_asks_for_audition(three_runs):
    app = make_app(three_runs)
    messages = []
    async with app.run_test(size=(80, 24), message_hook=messages.append) as pilot:
        await wait_for(pilot, lambda: app.selected and app.selected.name == "alpha")
        app.select_run(three_runs / "bravo")
        await pilot.press("c")
        await wait_for(pilot, lambda: len(app.checkpoints.get(app.selected, ((),))[0]) == 5, what="5 checkpoints")
        table = app.screen.query_one("#checkpoints")
        first_row_key = list(table.rows)[0]
        assert first_row_key == "baseline" and list(table.rows)[1] == "ceiling"  # pinned above the checkpoints
        text = screen_text(app)
        assert "epoch-0005" in text and "free on this disk" in text and " *" in text
        # the cursor starts on the best checkpoint by validation loss (not the first row)
        checkpoints = app.checkpoints[app.selected][0]
        best = min((c for c in checkpoints if c.val_loss is not None), key=lambda c: c.val_loss)
        assert app.screen.highlighted() == best.path and best.path != checkpoints[0].path
        await pilot.press("up")  # the operator picks another one
        picked = app.screen.highlighted()
        assert picked != best.path
        # a sixth checkpoint lands, better than all: the rows already there stay, one is added, and the
        # cursor stays where the operator put it
        ck = three_runs / "bravo" / "epoch-0006"
        ck.mkdir()
        write_json_atomic(ck / "eval.json", {"objective": 0.5})
        app.watcher.wake()
        await wait_for(pilot, lambda: table.row_count == 2 + 6, what="the new checkpoint")
        assert list(table.rows)[0] == first_row_key and app.screen.highlighted() == picked
        await pilot.press("a")
        await pilot.pause()
        seen = [m for m in messages if isinstance(m, AuditionRequested)]
        assert seen and seen[0].run_dir.name == "bravo" and seen[0].checkpoint == picked
        # The audition screen opens on that checkpoint (its worker says this folder is no checkpoint:
        # the full path to sound is tests/audition/test_from_dashboard.py).
        await wait_for(pilot, lambda: type(app.screen).__name__ == "AuditionScreen", what="the audition screen")
        assert app.screen.session.checkpoint_a == seen[0].checkpoint.absolute()
        await pilot.press("escape", "q")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "CheckpointsScreen", what="back to checkpoints")
        await pilot.press("escape")
        assert type(app.screen).__name__ == "RunsScreen"


async def test_ascii_mode_draws_no_braille_and_no_box_corners(three_runs):
    app = make_app(three_runs, ascii=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: latest_step(app))
        text = screen_text(app)
        assert not any(0x2800 <= ord(ch) <= 0x28FF for ch in text)
        assert "╭" not in text and "◆" not in text and "+" in text


async def test_help_lists_the_keys_with_their_state(three_runs):
    app = make_app(three_runs)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: len(app.runs) == 3)
        app.select_run(three_runs / "bravo")
        await pilot.press("question_mark")
        await pilot.pause()
        text = screen_text(app)
        assert "Stop (not now)" in text and "New run" in text and "Restart policy" in text
        await pilot.press("escape")
        assert type(app.screen).__name__ == "RunsScreen"


def test_locale_decides_ascii():
    from milo_tui.app import locale_is_utf8

    assert locale_is_utf8({"LANG": "en_US.UTF-8"}) and locale_is_utf8({"LC_ALL": "C.utf8", "LANG": "C"})
    assert not locale_is_utf8({"LANG": "C"}) and not locale_is_utf8({})


@pytest.mark.parametrize("profile, shown, absent", [
    ("h100", ["NVIDIA H100 80GB HBM3", "61.0 GiB/80.0 GiB", "/700 W", "1980/2619 MHz", "58.0 GiB GPU mem"],
     ["N/A (unified)"]),
    ("gb10", ["NVIDIA GB10", "N/A (unified)", "shared 61.7 GiB/119.7 GiB", "18.2 GiB GPU mem", "2405/4266 MHz"],
     ["80.0 GiB", "/700 W"]),
    ("nodriver", ["no NVIDIA driver", "cpu    38% of 20", "1.2 TiB free"], ["temp"]),
])
async def test_telemetry_panel_per_gpu(runs_root, profile, shown, absent):
    from milo_tui.messages import TelemetrySampled

    app = make_app(runs_root, profile)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.telemetry is not None)
        app.post_message(TelemetrySampled(app.telemetry.sample()))
        await wait_for(pilot, lambda: app.history.latest is not None)
        panel = screen_text(app).split("\n")[7:]
        text = "\n".join(line[52:] for line in panel)
        for words in shown:
            assert words in text, (words, text)
        for words in absent:
            assert words not in text, (words, text)


async def test_the_live_run_is_selected_and_loaded_when_it_is_not_the_first_row(runs_root, live_process):
    write_run(runs_root, "a-done", 300, status="finished")
    write_run(runs_root, "b-live", 250, status="running", state=live_process())
    app = make_app(runs_root)
    selected, original = [], app.select_run
    app.select_run = lambda run: (selected.append(str(run)), original(run))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: latest_step(app) == 250, what="b-live's metrics")
        await pilot.pause()
        await pilot.pause()  # every message the load posted has been handled
        assert app.selected.name == "b-live" and app.screen.query_one("#runs").cursor_row == 1
        assert not any(s.endswith("a-done") for s in selected)  # the table's first row did not take over
