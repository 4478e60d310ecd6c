"""Deleting a run from the dashboard (D): a y/n that names what goes and the bytes, then the folder is gone;
never a running run, never anything outside the run folder (a link inside pointing out is removed, not
followed), never a folder that is not a run in the checkpoints folder. Real files and processes."""
from __future__ import annotations

import os

import pytest

from contract.runfolder import locked, read_json
from milo_tui.screens.dialogs import ConfirmScreen
from milo_tui.supervisor import Supervisor, SupervisorError
from tests.dashboard.conftest import make_app, settle, wait_for, write_run


def _outside(tmp_path):
    """A folder and a file outside the checkpoints folder that links inside a run point to."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("not the run's")
    return outside


async def test_d_deletes_a_failed_run_after_a_confirmation_and_follows_no_link(runs_root, tmp_path):
    outside = _outside(tmp_path)
    run = write_run(runs_root, "charlie", 120, status="crashed", state={"exit_code": 3, "error": "bad input"})
    (run / "data-link").symlink_to(outside)  # a link to a folder: removed, its target stays
    (run / "file-link").symlink_to(outside / "keep.txt")
    os.link(outside / "keep.txt", run / "hard-link.txt")  # shared with a file outside: frees nothing
    app = make_app(runs_root)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.selected == run, what="the run selected")
        await pilot.press("D")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation")
        dialog = app.screen
        assert dialog.question == "Delete charlie?"
        assert str(run) in dialog.detail and "1 checkpoint(s) (epoch-0001)" in dialog.detail and "frees " in dialog.detail
        await pilot.press("n")  # no: nothing happens
        await settle(pilot)
        assert run.is_dir() and not isinstance(app.screen, ConfirmScreen)
        await pilot.press("D")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation again")
        await pilot.press("y")
        await wait_for(pilot, lambda: not run.exists() and run not in app.runs, what="the run gone")
        assert any(n.message.startswith("deleted charlie, freed ") for n in app._notifications)
    assert (outside / "keep.txt").read_text() == "not the run's" and os.stat(outside / "keep.txt").st_nlink == 1
    assert sorted(p.name for p in runs_root.iterdir()) == []  # no .deleting-* left behind


async def test_d_refuses_a_running_run(runs_root, live_process):
    run = write_run(runs_root, "alpha", 50, status="running", state=live_process())
    app = make_app(runs_root)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.selected == run, what="the run selected")
        await pilot.press("D")
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmScreen)
        assert any("alpha is running; stop (s) or kill (K) it first" in n.message for n in app._notifications)
    assert (run / "state.json").is_file() and (run / "metrics.jsonl").is_file()


def test_delete_refuses_what_runs_and_what_is_not_a_run_folder(runs_root, tmp_path, live_process):
    sup = Supervisor()
    # state.json says running and its trainer is alive: refused, whatever the dashboard last showed
    running = write_run(runs_root, "alpha", 20, status="running", state=live_process())
    with pytest.raises(SupervisorError, match="alpha is running"):
        sup.delete(running, runs_root)
    # a link in the checkpoints folder to a run folder elsewhere: not deleted, nor its target
    elsewhere = write_run(tmp_path / "elsewhere", "beta", 20, status="crashed")
    (runs_root / "beta").symlink_to(elsewhere)
    with pytest.raises(SupervisorError, match="not a run folder"):
        sup.delete(runs_root / "beta", runs_root)
    # a folder outside the checkpoints folder, and the checkpoints folder itself
    with pytest.raises(SupervisorError, match="not a run folder"):
        sup.delete(elsewhere, runs_root)
    with pytest.raises(SupervisorError, match="not a run folder"):
        sup.delete(runs_root, runs_root)
    # a run whose scorer holds its lock
    scored = write_run(runs_root, "gamma", 20, status="finished")
    with locked(scored / ".scoring.lock"):
        with pytest.raises(SupervisorError, match="its scorer is scoring"):
            sup.delete(scored, runs_root)
    assert all(p.is_dir() for p in (running, elsewhere, scored)) and (runs_root / "beta").is_symlink()
    assert read_json(elsewhere / "state.json")["status"] == "crashed"
    assert sup.delete(scored, runs_root) > 0 and not scored.exists()
