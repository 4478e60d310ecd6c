"""Supervision with real processes: detached launch, pid + start time, signals to the process group,
re-attach from state.json, PID reuse, crashes. A small Python program stands in for the trainer here (it
speaks the same state.json protocol); tests/dashboard/test_trainer_actions.py uses the real trainer."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from milo_tui.runfolder import CRASHED, STARTING, STOPPED, read_json, write_json_atomic
from milo_tui.supervisor import Ended, RunRequest, Supervisor, SupervisorError, is_same_process, trainer_argv
from tests.conftest import python_env

STAND_IN = r'''
import signal, subprocess, sys, time
from milo_tui.runfolder import update_state
run, mode = sys.argv[1], sys.argv[2]
def stop(*_):
    update_state(run, status="stopped", exit_code=0)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
update_state(run, status="running")
print("stand-in up, stdin:", sys.stdin.read() == "", flush=True)
if mode == "crash":
    print("RuntimeError: the stand-in crashed", flush=True)
    sys.exit(1)
if mode == "grandchild":
    subprocess.Popen(["sleep", "300"])
while True:
    time.sleep(0.05)
'''


def _spawn(sup: Supervisor, run_dir: Path, mode: str = "loop", **fields) -> int:
    run_dir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-c", STAND_IN, str(run_dir), mode]
    return sup._spawn(run_dir, argv, launch_command=argv, restarts=0, restart_limit=fields.pop("restart_limit", 0),
                      preparing=False, **fields)


def _wait(cond, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _ended(sup, run_dir, timeout=20.0) -> Ended:
    box = []
    _wait(lambda: box.append(sup.check(run_dir)) or box[-1] is not None, timeout)
    return box[-1]


@pytest.fixture
def sup():
    return Supervisor(env=python_env())


def test_launch_is_detached_logged_and_recorded(sup, tmp_path):
    run = tmp_path / "run"
    pid = _spawn(sup, run)
    state = read_json(run / "state.json")
    assert state["pid"] == pid and state["status"] in (STARTING, "running")
    assert abs(state["pid_start_time"] - psutil.Process(pid).create_time()) < 0.01
    assert os.getsid(pid) == pid and os.getpgid(pid) == pid  # its own session and process group
    assert os.readlink(f"/proc/{pid}/fd/0") == "/dev/null"
    assert os.path.samefile(os.readlink(f"/proc/{pid}/fd/1"), run / "train.log")
    _wait(lambda: "stand-in up, stdin: True" in (run / "train.log").read_text())
    assert (run / "train.log").read_text().startswith("--- milo-tui ")
    assert sup.check(run) is None  # alive
    sup.stop(run)
    ended = _ended(sup, run)
    assert (ended.status, ended.exit_code, ended.requested) == (STOPPED, 0, "stop")
    assert sup.check(run) is None  # reported once


def test_kill_takes_the_whole_process_group(sup, tmp_path):
    run = tmp_path / "run"
    pid = _spawn(sup, run, "grandchild")
    _wait(lambda: any(p.name() == "sleep" for p in psutil.Process(pid).children()))
    grandchild = next(p for p in psutil.Process(pid).children() if p.name() == "sleep")
    sup.kill(run)
    ended = _ended(sup, run)
    assert ended.status == CRASHED and ended.exit_code == -9 and "killed by the operator" in ended.error
    assert not ended.restartable
    _wait(lambda: not grandchild.is_running() or grandchild.status() == psutil.STATUS_ZOMBIE)
    with pytest.raises(SupervisorError, match="not running"):
        sup.stop(run)


def test_a_crash_is_recorded_with_its_last_error_line_and_may_restart(sup, tmp_path):
    run = tmp_path / "run"
    _spawn(sup, run, "crash", restart_limit=2)
    ended = _ended(sup, run)
    state = read_json(run / "state.json")
    assert state["status"] == CRASHED and state["exit_code"] == 1
    assert "RuntimeError: the stand-in crashed" in state["error"] and "exit 1" in state["error"]
    assert ended.restartable
    assert not Ended(run, CRASHED, 3, "bad data", None, 0, 2).restartable  # bad input: a restart cannot help
    assert not Ended(run, CRASHED, 1, "x", None, 2, 2).restartable  # used up


def test_a_new_dashboard_reattaches_and_stops_it(sup, tmp_path):
    run = tmp_path / "run"
    _spawn(sup, run)
    _wait(lambda: read_json(run / "state.json")["status"] == "running")
    fresh = Supervisor(env=python_env())  # another dashboard: not its child, only state.json
    assert fresh.check(run) is None and fresh.watching(run)
    fresh.stop(run)
    ended = _ended(fresh, run)
    assert ended.status == STOPPED and ended.exit_code == 0
    sup.check(run)  # the first supervisor reaps its child


def test_pid_reuse_is_not_fooled(sup, tmp_path, live_process):
    """state.json names a live pid whose start time differs: another process got the number."""
    run = tmp_path / "run"
    run.mkdir()
    other = live_process()
    write_json_atomic(run / "state.json", {"status": "running", "pid": other["pid"],
                                           "pid_start_time": other["pid_start_time"] - 3600})
    assert not is_same_process(other["pid"], other["pid_start_time"] - 3600)
    assert is_same_process(other["pid"], other["pid_start_time"])
    with pytest.raises(SupervisorError, match="gone"):
        sup.kill(run)
    assert psutil.pid_exists(other["pid"]) and psutil.Process(other["pid"]).status() != psutil.STATUS_ZOMBIE
    assert sup.check(run) is None  # never seen alive: no Ended, but the run is marked crashed
    state = read_json(run / "state.json")
    assert state["status"] == CRASHED and f"process {other['pid']} is gone" in state["error"]


def test_resume_repeats_the_launch_command_with_resume(sup, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    script = "import sys; print('argv', sys.argv[1:])"
    write_json_atomic(run / "state.json", {"status": "crashed", "restarts": 1,
                                           "launch_command": ["/old/python", "-c", script]})
    sup.resume(run, restart=True)
    _wait(lambda: "argv ['--resume']" in (run / "train.log").read_text())
    state = read_json(run / "state.json")
    assert state["restarts"] == 2 and state["launch_command"] == ["/old/python", "-c", script]
    with pytest.raises(SupervisorError, match="never started"):
        sup.resume(tmp_path / "nothing-here")


def test_a_second_run_with_the_same_name_is_refused(sup, tmp_path):
    req = RunRequest(run_dir=tmp_path / "taken", base_model=tmp_path, data=tmp_path / "d.jsonl")
    (tmp_path / "taken").mkdir()
    with pytest.raises(SupervisorError, match="already exists"):
        sup.start(req)
    argv = trainer_argv("py", req)
    assert argv[:4] == ["py", "-m", "training", "run"] and "--run" in argv and "--attn" in argv
    assert "--device" not in argv
    from dataclasses import replace

    from milo_tui.supervisor import prepare_argv

    argv = trainer_argv("py", replace(req, device="cuda:1", data=tmp_path))  # a corpus folder: prepared first
    assert argv[argv.index("--device") + 1] == "cuda:1" and argv[argv.index("--data") + 1].endswith("prepared.jsonl")
    assert prepare_argv("py", replace(req, device="cuda:1", data=tmp_path))[-2:] == ["--device", "cuda"]
