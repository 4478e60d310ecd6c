"""A run outlives its dashboard: start it from one dashboard, SIGKILL that dashboard, the run keeps going,
a new dashboard shows it live (pid and start time from state.json) and stops it cleanly."""
from __future__ import annotations

import time

import psutil
import pytest

from contract.runfolder import read_json
from tests.conftest import python_env
from tests.dashboard.conftest import latest_step, wait_for
from tests.dashboard.headless_dashboard import first_dashboard
from tests.dashboard.test_trainer_actions import START, status, trainer_app

pytestmark = pytest.mark.slow


def _steps(run) -> int:
    try:
        return (run / "metrics.jsonl").read_text().count('"kind":"step"')
    except OSError:
        return 0


def _wait(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


async def test_a_run_outlives_its_dashboard_and_a_new_one_stops_it(demo_workspace, runs_root, tmp_path):
    run = runs_root / "voice-r"
    with first_dashboard(runs_root, demo_workspace.base, demo_workspace.train_jsonl, "voice-r",
                         python_env(MILO_TEST_HOOKS="step_delay=0.4"), tmp_path / "first-dashboard.log") as first:
        _wait(lambda: _steps(run) >= 2, START, "the first dashboard's run to train")
        state = read_json(run / "state.json")
        trainer, keeper = state["pid"], state["keeper_pid"]
        assert psutil.Process(trainer).ppid() == keeper and psutil.Process(keeper).ppid() == first.pid
    before = _steps(run)
    _wait(lambda: _steps(run) >= before + 2, 60, "steps after the dashboard died")
    assert psutil.pid_exists(trainer) and read_json(run / "state.json")["status"] == "running"

    app = trainer_app(runs_root, demo_workspace, "")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.selected == run and status(app, run) == "running", 30, "the run, live")
        await wait_for(pilot, lambda: latest_step(app), 30, "its metrics")
        seen = latest_step(app)
        await wait_for(pilot, lambda: latest_step(app) > seen, 60, "new steps arriving live")
        await pilot.press("s")
        await wait_for(pilot, lambda: status(app, run) == "stopped", START, "a clean stop")
        state = read_json(run / "state.json")
        assert state["exit_code"] == 0 and (run / "resume").is_dir()
        _wait(lambda: not psutil.pid_exists(trainer) or psutil.Process(trainer).status() == psutil.STATUS_ZOMBIE,
              30, "the trainer to exit")
