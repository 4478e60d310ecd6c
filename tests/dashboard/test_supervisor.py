"""Supervision with real processes: detached launch under the keeper, pids + start times, signals to the
process group, re-attach from state.json, PID reuse, crashes, restarts by the keeper with no dashboard. A small Python program stands in for the trainer here (it
speaks the same state.json protocol); tests/dashboard/test_trainer_actions.py uses the real trainer."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from contract.runfolder import CRASHED, KILLED, STARTING, STOPPED, read_json, write_json_atomic
from milo_tui.supervisor import (
    RunRequest, Supervisor, SupervisorError, is_same_process, restartable, trainer_argv,
)
from tests.conftest import python_env

STAND_IN = r'''
import os, signal, subprocess, sys, time
from contract.runfolder import update_state
run, mode = sys.argv[1], sys.argv[2]
print("stand-in argv", sys.argv[3:], flush=True)
# The handler only sets a flag, as the trainer's does: writing state.json from it could wait forever on
# the run folder's flock held by the interrupted update_state below.
stopping = []
signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
update_state(run, status="running")
print("stand-in up, stdin:", sys.stdin.read() == "", flush=True)
if mode == "crash" or (mode == "crash_once" and not os.path.exists(os.path.join(run, "crashed-once"))):
    open(os.path.join(run, "crashed-once"), "w").close()
    print("RuntimeError: the stand-in crashed", flush=True)
    sys.exit(1)
if mode == "grandchild":
    subprocess.Popen(["sleep", "300"])
while not stopping:
    time.sleep(0.05)
update_state(run, status="stopped", exit_code=0)
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


def _state(run_dir) -> dict:
    return read_json(run_dir / "state.json") or {}


def _trainer(run_dir) -> int:
    """The trainer's pid, once the keeper has started it and written it down."""
    _wait(lambda: _state(run_dir).get("pid") is not None)
    return _state(run_dir)["pid"]


def _ended(sup, run_dir, timeout=20.0):
    box = []
    _wait(lambda: box.append(sup.check(run_dir)) or box[-1] is not None, timeout)
    return box[-1]


@pytest.fixture
def sup():
    return Supervisor(env=python_env(), backoff=0.2)


def test_launch_is_detached_logged_and_recorded(sup, tmp_path):
    run = tmp_path / "run"
    keeper = _spawn(sup, run)
    pid = _trainer(run)
    state = _state(run)
    assert state["keeper_pid"] == keeper and state["status"] in (STARTING, "running")
    assert psutil.Process(pid).ppid() == keeper
    assert abs(state["pid_start_time"] - psutil.Process(pid).create_time()) < 0.01
    assert abs(state["keeper_start_time"] - psutil.Process(keeper).create_time()) < 0.01
    assert os.getsid(keeper) == keeper and os.getpgid(keeper) == keeper  # its own session and process group
    assert os.getsid(pid) == keeper and os.getpgid(pid) == keeper  # the trainer in it
    for proc in (keeper, pid):
        assert os.readlink(f"/proc/{proc}/fd/0") == "/dev/null"
        assert os.path.samefile(os.readlink(f"/proc/{proc}/fd/1"), run / "train.log")
    _wait(lambda: "stand-in up, stdin: True" in (run / "train.log").read_text())
    assert (run / "train.log").read_text().startswith("--- milo-tui ")
    assert sup.check(run) is None  # alive
    sup.stop(run)
    ended = _ended(sup, run)
    assert (ended.status, ended.exit_code, ended.requested, ended.restart_at) == (STOPPED, 0, "stop", None)
    assert sup.check(run) is None  # reported once
    _wait(lambda: not is_same_process(keeper, state["keeper_start_time"]))  # the keeper left with it


def test_kill_takes_the_whole_process_group(sup, tmp_path):
    run = tmp_path / "run"
    keeper = _spawn(sup, run, "grandchild", restart_limit=3)
    pid = _trainer(run)
    _wait(lambda: any(p.name() == "sleep" for p in psutil.Process(pid).children()))
    grandchild = next(p for p in psutil.Process(pid).children() if p.name() == "sleep")
    sup.kill(run)
    assert _state(run)["status"] == KILLED  # recorded where the kill is sent, before any watcher looks
    ended = _ended(sup, run)
    assert ended.status == KILLED and ended.exit_code == -9 and "killed by the operator" in ended.error
    assert ended.restart_at is None and not psutil.pid_exists(keeper)  # the keeper went with it: no restart
    _wait(lambda: not grandchild.is_running() or grandchild.status() == psutil.STATUS_ZOMBIE)
    with pytest.raises(SupervisorError, match="not running"):
        sup.stop(run)
    state = _state(run)
    assert (state["status"], state["restart_at"], state["exit_code"]) == (KILLED, None, -9)
    assert not restartable(state, -9)  # a kill is the operator's word: never restarted by the policy
    # resumable like a stopped run, by a dashboard that did not send the kill
    other = Supervisor(env=python_env(), backoff=0.2)
    other.resume(run)
    _wait(lambda: _state(run).get("status") == "running" and _state(run).get("error") is None)
    other.kill(run)  # (a stop would leave this stand-in's grandchild behind)
    assert _ended(other, run).status == KILLED


def test_a_kill_by_another_dashboard_is_not_relabelled_a_crash(tmp_path):
    """The kill comes from one dashboard; another one, watching the same run, sees it end as killed."""
    sender, watcher = Supervisor(env=python_env(), backoff=0.2), Supervisor(env=python_env(), backoff=0.2)
    run = tmp_path / "run"
    _spawn(sender, run, restart_limit=3)
    _trainer(run)
    _wait(lambda: _state(run).get("status") == "running")
    assert watcher.check(run) is None  # alive: watched from now on
    sender.kill(run)
    ended = _ended(watcher, run)
    assert ended.status == KILLED and ended.requested is None and "killed by the operator" in ended.error
    time.sleep(0.6)  # longer than the back-off: no keeper is left to restart it
    assert _state(run)["status"] == KILLED


def test_a_crash_is_recorded_with_its_last_error_line(sup, tmp_path):
    run = tmp_path / "run"
    _spawn(sup, run, "crash")
    ended = _ended(sup, run)
    state = _state(run)
    assert state["status"] == CRASHED and state["exit_code"] == 1 and ended.exit_code == 1
    assert "RuntimeError: the stand-in crashed" in state["error"] and "exit 1" in state["error"]
    assert ended.restart_at is None and state["attempt_ended"] == state["pid"]
    crashed = {"status": CRASHED, "restarts": 0, "restart_limit": 2}
    assert restartable(crashed, 1) and restartable(crashed, -11)
    assert not restartable(crashed, 3)  # bad input: a restart cannot help (nor 2, 4 out of memory, 5 disk full)
    assert not restartable({**crashed, "restarts": 2}, 1)  # used up
    assert not restartable({**crashed, "status": STOPPED}, 0)


def test_the_keeper_restarts_a_crash_with_no_dashboard_watching(tmp_path):
    """Nobody calls check(): the dashboard is gone. The keeper alone records the crash, waits its back-off,
    and resumes the run with --resume; Stop from a new dashboard then ends it for good."""
    run = tmp_path / "run"
    _spawn(Supervisor(env=python_env(), backoff=0.3), run, "crash_once", restart_limit=2)
    first = _trainer(run)
    _wait(lambda: _state(run).get("restarts") == 1 and _state(run).get("pid") not in (None, first)
          and _state(run).get("status") == "running")
    log = (run / "train.log").read_text()
    assert "RuntimeError: the stand-in crashed" in log and "restart 1 of 2 in 0 s" in log
    assert "stand-in argv ['--resume']" in log  # the second attempt resumes
    state = _state(run)
    assert state["error"] is None and state["restart_at"] is None and state["exit_code"] is None
    fresh = Supervisor(env=python_env())
    assert fresh.check(run) is None
    fresh.stop(run)
    ended = _ended(fresh, run)
    assert (ended.status, ended.exit_code, ended.restart_at) == (STOPPED, 0, None)
    _wait(lambda: not is_same_process(state["keeper_pid"], state["keeper_start_time"]))
    assert _state(run)["restarts"] == 1


def test_a_dashboard_sees_the_crash_and_when_the_keeper_restarts_it(tmp_path):
    run = tmp_path / "run"
    sup = Supervisor(env=python_env(), backoff=60.0)
    _spawn(sup, run, "crash", restart_limit=1)
    ended = _ended(sup, run)
    assert ended.status == CRASHED and "the stand-in crashed" in ended.error
    crashed_at = _state(run)["ended_at"]
    # The keeper sets the restart one back-off (60 s) after it saw the crash: after the crash, before now.
    assert ended.restart_at is not None and crashed_at <= ended.restart_at - 60 <= time.time()
    with pytest.raises(SupervisorError, match="restarts by itself"):
        sup.resume(run)  # no second trainer beside the one the keeper is about to start
    state = _state(run)
    sup.set_restart_limit(run, 0)  # R: the operator calls the restart off during the back-off
    _wait(lambda: not is_same_process(state["keeper_pid"], state["keeper_start_time"]), timeout=20)
    state = _state(run)
    assert state["status"] == CRASHED and state["restart_at"] is None and state["restarts"] == 0
    assert "restart cancelled" in (run / "train.log").read_text()


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
    sup.resume(run)
    _wait(lambda: "argv ['--resume']" in (run / "train.log").read_text())
    state = read_json(run / "state.json")
    assert state["restarts"] == 1 and state["launch_command"] == ["/old/python", "-c", script]
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


def test_a_trainer_command_that_cannot_run_is_one_line_in_state_and_log(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    missing = str(tmp_path / "no-such-python")
    sup = Supervisor(env=python_env())
    sup._spawn(run, [missing, "-m", "training", "run"], launch_command=[missing], restarts=0, restart_limit=2,
               preparing=False)
    ended = _ended(sup, run)
    state = _state(run)
    assert ended.status == CRASHED and ended.restart_at is None and ended.exit_code == 127
    assert state["error"].startswith("cannot start the trainer: [Errno 2] No such file or directory")
    assert "Traceback" not in (run / "train.log").read_text() and missing in (run / "train.log").read_text()


def test_a_crash_restarted_between_two_looks_is_still_said_once(tmp_path, live_process):
    """The keeper can see a crash and restart it (a short back-off, a busy machine) between two of the
    watcher's looks: the dashboard never sees the run dead, and must still say that it crashed."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "train.log").write_text("step 3\nRuntimeError: test hook: crash once at step 3\n")
    keeper = live_process()
    sup = Supervisor(env=python_env())
    alive = {"status": "running", "keeper_pid": keeper["pid"], "keeper_start_time": keeper["pid_start_time"],
             "restart_limit": 2, "restarts": 0, **live_process()}
    write_json_atomic(run / "state.json", alive)
    assert sup.check(run) is None and sup.watching(run)
    write_json_atomic(run / "state.json", {**alive, "restarts": 1, **live_process()})  # crashed and restarted
    ended = sup.check(run)
    assert ended is not None and ended.restarted and ended.status == CRASHED
    assert (ended.restarts, ended.restart_limit) == (1, 2) and "crash once at step 3" in ended.error
    assert sup.check(run) is None  # said once
    # A crash seen while it lasted is said then, with its restart to come, and not again when the restart runs.
    dead = subprocess.Popen(["true"])
    dead.wait()
    write_json_atomic(run / "state.json", {**alive, "restarts": 1, "status": "crashed", "restart_at": time.time() + 1,
                                           "pid": dead.pid, "attempt_ended": dead.pid, "error": "RuntimeError: again"})
    seen = sup.check(run)
    assert seen is not None and not seen.restarted and seen.restart_at is not None
    write_json_atomic(run / "state.json", {**alive, "restarts": 2, **live_process()})
    assert sup.check(run) is None  # the restart it announced
    assert sup.watching(run)
