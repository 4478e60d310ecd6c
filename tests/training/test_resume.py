"""Stops and resumes: SIGTERM finishes the step, saves a resume point and exits 0; --resume then ends
with the same metrics and weights as the same run uninterrupted. After SIGKILL, --resume loses only the
steps since the last resume point."""
from __future__ import annotations

import json
import os
import signal

import pytest

from tests.training.conftest import metrics, run_training, start_run, state, steps, train_in_process, wait_for

COMMON = ("--epochs", "2", "--lr", "2e-3", "--batch-size", "2", "--grad-accum", "1", "--val-fraction", "0.2",
          "--speaker", "milo", "--seed", "7")


def _args(tiny_base, demo_data, run):
    return ("--base", str(tiny_base), "--data", str(demo_data), "--run", str(run), *COMMON)


@pytest.fixture(scope="module")
def reference(tiny_base, demo_data, tmp_path_factory):
    run = tmp_path_factory.mktemp("resume") / "uninterrupted"
    proc = train_in_process(*_args(tiny_base, demo_data, run))
    assert proc.returncode == 0, proc.stderr
    return run


def _last_per_step(run):
    """A resumed run repeats the steps after its resume point: the newest record of a step counts."""
    by_step = {}
    for r in steps(run):
        by_step[r["step"]] = r
    return by_step


def _assert_same_run(run, reference):
    from safetensors.torch import load_file

    ours, ref = _last_per_step(run), _last_per_step(reference)
    assert sorted(ours) == sorted(ref) == list(range(1, 15))
    for step in ref:
        assert ours[step]["objective"] == pytest.approx(ref[step]["objective"], rel=1e-5, abs=1e-6), step
        assert ours[step]["layers"] == pytest.approx(ref[step]["layers"], rel=1e-5, abs=1e-6), step
        assert ours[step]["lr"] == ref[step]["lr"]
    val = lambda r: [(v["epoch"], v["objective"]) for v in metrics(r) if v["kind"] == "validation"]  # noqa: E731
    assert val(run) == pytest.approx(val(reference), rel=1e-5)
    a = load_file(str(run / "epoch-0002" / "model.safetensors"))
    b = load_file(str(reference / "epoch-0002" / "model.safetensors"))
    assert a.keys() == b.keys()
    worst = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    assert worst < 1e-5, worst
    assert state(run)["status"] == "finished" and state(run)["best_epoch"] == state(reference)["best_epoch"]


def test_sigterm_stops_cleanly_and_resume_matches_uninterrupted(tiny_base, demo_data, reference, tmp_path):
    run = tmp_path / "stopped"
    proc = start_run(*_args(tiny_base, demo_data, run), hooks="step_delay=0.3")
    wait_for(lambda: len(steps(run)) >= 4, what="step 4", proc=proc)
    os.killpg(proc.pid, signal.SIGTERM)  # as the dashboard's supervisor signals the process group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    last = steps(run)[-1]["step"]
    assert 4 <= last < 14
    st = state(run)
    assert st["status"] == "stopped" and st["exit_code"] == 0 and st["error"] is None and st["step"] == last
    stop = [r for r in metrics(run) if r.get("event") == "stop"]
    assert len(stop) == 1 and stop[0]["reason"] == "signal" and stop[0]["step"] == last
    point = json.loads((run / "resume" / "trainer.json").read_text())
    assert point["step"] == last and point["epoch"] == 1 and point["micro"] == last
    assert "stop requested" in (run / "train.log").read_text()

    proc = run_training("--run", str(run), "--resume")
    assert proc.returncode == 0, proc.stderr
    start = [r for r in metrics(run) if r.get("event") == "start"]
    assert [s["resumed_from_step"] for s in start] == [None, last]
    assert [r["step"] for r in steps(run)] == list(range(1, 15)), "no step lost, none repeated"
    _assert_same_run(run, reference)


def test_after_sigkill_resume_repeats_only_the_steps_since_the_resume_point(tiny_base, demo_data, reference, tmp_path):
    run = tmp_path / "killed"
    proc = start_run(*_args(tiny_base, demo_data, run), "--resume-every-steps", "3", hooks="step_delay=0.3")
    wait_for(lambda: len(steps(run)) >= 8, what="step 8", proc=proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    killed_at = steps(run)[-1]["step"]
    saved = json.loads((run / "resume" / "trainer.json").read_text())["step"]
    # Resume points: every 3 steps and at each epoch's end (7 steps an epoch).
    assert saved == max(s for s in range(1, killed_at + 1) if s % 3 == 0 or s % 7 == 0)
    assert state(run)["status"] == "running"  # nobody was left to say otherwise (the supervisor would)

    proc = run_training("--run", str(run), "--resume")
    assert proc.returncode == 0, proc.stderr
    start = [r for r in metrics(run) if r.get("event") == "start"]
    assert start[-1]["resumed_from_step"] == saved
    _assert_same_run(run, reference)


STOP_DURING_SCORING_WRITE = r'''
import os, signal, sys, types
from pathlib import Path
from contract import runfolder as rf, scores
from training.runlog import RunLog
from training.after_save import queue_scoring
from training.dist import Dist
from training.trainer import Trainer
run = Path(sys.argv[1])
trainer = Trainer(types.SimpleNamespace(run=str(run)), Dist(), RunLog(None))
trainer.device = types.SimpleNamespace(type="cpu")
rf.update_state(run, status="running")
trainer.took_over = True
signal.signal(signal.SIGTERM, trainer.on_signal)
write = scores.write_json_atomic
def write_after_a_stop(path, doc):  # the operator's Stop lands while scoring.json is written under the lock
    os.kill(os.getpid(), signal.SIGTERM)
    write(path, doc)
scores.write_json_atomic = write_after_a_stop
queue_scoring(trainer.run_dir, "epoch-0001", trainer.score_device, trainer.log, trainer.run_lock)
print("queued", trainer.stop_requested, rf.read_json(run / "state.json")["status"], flush=True)
trainer.state(status="stopping")  # what the loop does after the step when the handler could not
'''


def test_a_stop_while_the_run_folder_is_locked_does_not_hang(tmp_path):
    """The signal handler writes state.json under the run folder's flock; arriving while the trainer itself
    holds that lock (queueing a checkpoint for scoring), it must leave the write to the loop instead of
    waiting on its own lock forever."""
    import subprocess
    import sys

    from tests.conftest import python_env

    from contract import scores
    from contract.runfolder import claim
    from contract.scorers import RUN_LOCK, release

    run = tmp_path / "run"
    run.mkdir()
    # the test holds the run's scorer lock, as a scorer at work would: queueing then starts no scorer (one
    # that outlived the test, scoring a checkpoint that is not there), and the entry stays queued
    held = claim(run / RUN_LOCK, create=True)
    assert held is not None
    try:
        out = subprocess.run([sys.executable, "-c", STOP_DURING_SCORING_WRITE, str(run)], capture_output=True,
                             text=True, timeout=60, env=python_env(), stdin=subprocess.DEVNULL)
    finally:
        release(held)
    assert out.returncode == 0, out.stderr
    assert "queued True running" in out.stdout
    assert state(run)["status"] == "stopping"
    assert json.loads((run / "scoring.json").read_text())["checkpoints"]["epoch-0001"]["state"] == "queued"
    assert not (run / scores.SCORING_LOG).exists()  # no scorer was started
