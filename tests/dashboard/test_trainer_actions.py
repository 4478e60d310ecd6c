"""Every action against the real trainer (`python -m training run` on the tiny model, CPU), through the
dashboard's keys: start from the form, steps arrive, stop (resume point written), resume (steps
continue), kill, a crash with the restart policy, a corpus prepared first, a preparation that fails.

MILO_TEST_HOOKS (honoured by the trainer, docs/training.md) slows the steps so that the tests act mid-run
and injects the crash."""
from __future__ import annotations

import json
import os

import psutil
import pytest

from contract.runfolder import read_json
from milo_tui.screens.dialogs import ConfirmScreen
from milo_tui.screens.new_run import NewRunScreen
from tests.conftest import python_env
from tests.dashboard.conftest import latest_step, make_app, wait_for

pytestmark = pytest.mark.slow
START = 120  # s: a trainer's start-up (torch and qwen_tts imports, the tiny model) on a busy 2-core machine


def trainer_app(checkpoints, ws, hooks: str, **kw):
    """The dashboard on the demo workspace, its trainers started with MILO_TEST_HOOKS."""
    app = make_app(checkpoints, "nodriver", env=python_env(MILO_TEST_HOOKS=hooks), restart_backoff=0.5, **kw)
    app.settings = app.settings.with_values("test", base_model=ws.base, data=ws.train_jsonl)
    return app


async def start_from_form(pilot, name: str, **fields) -> None:
    await pilot.press("n")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, NewRunScreen), what="the form")
    form = pilot.app.screen
    form.query_one("#run_name").value = name
    for key, value in fields.items():
        form.query_one(f"#{key}").value = str(value)
    await pilot.press("ctrl+s")
    await wait_for(pilot, lambda: not isinstance(pilot.app.screen, NewRunScreen), what="the form to close")


def status(app, run) -> str | None:
    r = app.runs.get(run)
    return r.status if r else None


def events(run, name: str) -> list[dict]:
    out = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec.get("kind") == "event" and rec.get("event") == name:
            out.append(rec)
    return out


async def test_start_stop_resume_kill(demo_workspace, runs_root):
    app = trainer_app(runs_root, demo_workspace, "step_delay=0.4")
    run = runs_root / "voice-a"
    async with app.run_test(size=(100, 30)) as pilot:
        await start_from_form(pilot, "voice-a", epochs=200)
        await wait_for(pilot, lambda: status(app, run) == "running" and app.selected == run, START, "running")
        state = read_json(run / "state.json")
        pid, keeper = state["pid"], state["keeper_pid"]
        assert os.getsid(keeper) == keeper and os.getsid(pid) == keeper  # detached: the keeper's own session
        await wait_for(pilot, lambda: (latest_step(app) or 0) >= 3, START, "steps on screen")

        await pilot.press("s")  # stop: the trainer finishes its step and saves a resume point
        await wait_for(pilot, lambda: status(app, run) == "stopped", START, "stopped")
        state = read_json(run / "state.json")
        stopped_at = state["step"]
        assert state["exit_code"] == 0 and (run / "resume").is_dir() and events(run, "stop")
        await wait_for(pilot, lambda: any("stopped; resume with r" in n.message for n in app._notifications), 30,
                       "the supervisor's notice that the trainer is gone")

        await pilot.press("r")  # resume from the newest resume point
        await wait_for(pilot, lambda: status(app, run) == "running", START, "running again")
        await wait_for(pilot, lambda: (latest_step(app) or 0) >= stopped_at + 2, START, "steps after the resume")
        assert events(run, "start")[-1]["resumed_from_step"] == stopped_at
        steps = [p.step for p in app.run_metrics.points]
        assert steps == sorted(steps) and len(set(steps)) == len(steps)  # one continuous series

        pid = read_json(run / "state.json")["pid"]
        await pilot.press("K")  # kill asks first
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation")
        await pilot.press("y")
        await wait_for(pilot, lambda: status(app, run) == "killed", 30, "killed")
        state = read_json(run / "state.json")
        assert "killed by the operator" in state["error"] and state["exit_code"] == -9
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


async def test_a_crash_is_restarted_by_the_policy(demo_workspace, runs_root):
    app = trainer_app(runs_root, demo_workspace, "crash_once_at_step=3,step_delay=0.3")
    run = runs_root / "voice-b"
    async with app.run_test(size=(100, 30)) as pilot:
        await start_from_form(pilot, "voice-b", epochs=200, restart_limit=1)
        await wait_for(pilot, lambda: any("Restart 1 of 1" in n.message for n in app._notifications), 2 * START,
                       "the crash and the restart notice")
        await wait_for(pilot, lambda: read_json(run / "state.json").get("restarts") == 1
                       and status(app, run) == "running", START, "the restarted run")
        await wait_for(pilot, lambda: (latest_step(app) or 0) >= 5, START, "steps past the crash")
        assert len(events(run, "error")) == 1 and "crash once at step 3" in events(run, "error")[0]["message"]
        await pilot.press("s")
        await wait_for(pilot, lambda: status(app, run) == "stopped", START, "stopped")


async def test_a_corpus_is_prepared_first_and_a_bad_one_starts_nothing(demo_workspace, runs_root, tmp_path):
    app = trainer_app(runs_root, demo_workspace, "step_delay=0.3")
    good, bad = runs_root / "from-corpus", runs_root / "bad-corpus"
    broken = tmp_path / "broken-corpus"  # audio that opens (the form checks that) but holds only silence
    broken.mkdir()
    import numpy as np
    import soundfile as sf

    sf.write(broken / "clip.wav", np.zeros(24000, np.float32), 24000)
    (broken / "clip.txt").write_text("hello\n")
    async with app.run_test(size=(100, 30)) as pilot:
        await start_from_form(pilot, "bad-corpus", data=broken)
        await wait_for(pilot, lambda: status(app, bad) == "crashed", START, "the failed preparation")
        error = read_json(bad / "state.json")["error"]
        assert error.startswith("data preparation failed:") and "\n" not in error and "silent" in error, error
        assert not (bad / "run.json").exists() and not (bad / "metrics.jsonl").exists()  # no run started

        await start_from_form(pilot, "from-corpus", data=demo_workspace.corpus, epochs=200)
        await wait_for(pilot, lambda: app.selected == good and (latest_step(app) or 0) >= 1, 2 * START,
                       "steps after the preparation")
        assert (good / "prepared.jsonl").is_file()
        assert read_json(good / "run.json")["data"] == str(good / "prepared.jsonl")
        await pilot.press("s")
        await wait_for(pilot, lambda: status(app, good) == "stopped", START, "stopped")
