"""One scorer per run, a few per machine, the rows first and the newest checkpoint next (contract/scorers.py,
inference.scoring queue): with the real trainer and the real scorer of the tiny model, one short prompt."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time

import pytest

from contract import scorers
from contract import scores as sc
from contract.configfile import ConfigError
from contract.runfolder import claim
from tests.conftest import python_env

PROMPT = "31\tGood morning.\n"
STUB_ROW = '{"v": 1, "row": "%s", "error": "not scored: not in this test"}'


def _train(tiny_base, demo_data, run, *extra) -> None:
    run.mkdir()
    (run / sc.PROMPTS_TXT).write_text(PROMPT)
    proc = subprocess.run([sys.executable, "-m", "training", "run", "--base", str(tiny_base), "--data", str(demo_data),
                           "--run", str(run), "--batch-size", "2", "--grad-accum", "2", "--val-fraction", "0.2",
                           *extra], capture_output=True, text=True, timeout=600, env=python_env())
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="module")
def trained(tiny_base, demo_data, tmp_path_factory):
    """A one-epoch run, not scored; each test scores its own copy."""
    run = tmp_path_factory.mktemp("trained") / "run"
    _train(tiny_base, demo_data, run, "--epochs", "1", "--no-score")
    return run


def _copy_run(trained, dest, *, rows=True):
    shutil.copytree(trained, dest)
    (dest / sc.SCORING_LOG).unlink(missing_ok=True)
    if rows:  # this test is about the queue: the rows are stubbed
        for row, name in (("ceiling", sc.CEILING_JSON), ("baseline", sc.BASELINE_JSON)):
            (dest / name).write_text(STUB_ROW % row)
    return dest


def _add_checkpoint(run, name: str) -> None:
    """A copy of epoch-0001, renamed into place as the trainer does (checkpoints are complete or absent)."""
    tmp = run / f".{name}.tmp"
    shutil.copytree(run / "epoch-0001", tmp)
    os.rename(tmp, run / name)


def _scored_lines(run, name: str) -> int:
    """How many times the scorer said it scored `name` (one line per prompt; this run has one prompt)."""
    return sum(1 for line in (run / sc.SCORING_LOG).read_text().splitlines()
               if line.startswith(f"[scoring] {name}: 'Good morning.'"))


def _settled(run) -> bool:
    rows = sc.states(run, "rows")
    return (not any(e["state"] in (sc.QUEUED, sc.RUNNING) for e in sc.states(run).values())
            and all(rows.get(r, {}).get("state") not in (sc.QUEUED, sc.RUNNING) for r in rows)
            and not scorers.run_scorer_busy(run))


def _wait(condition, run, timeout=400) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, (sc.states(run), (run / sc.SCORING_LOG).read_text()[-3000:])
        time.sleep(0.2)


class Sampler(threading.Thread):
    """Calls `sample()` every `every` seconds until stopped; keeps what it returned."""

    def __init__(self, sample, every=0.05):
        super().__init__(daemon=True)
        self.sample, self.every, self.seen, self.done = sample, every, [], threading.Event()

    def run(self):
        while not self.done.is_set():
            try:
                self.seen.append(self.sample())
            except Exception:  # noqa: BLE001 - a file between two writes: the next sample reads it
                pass
            time.sleep(self.every)

    def stop(self):
        self.done.set()
        self.join(10)
        return self.seen


def scorer_processes(run) -> list[int]:
    import psutil

    pids = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = proc.info["cmdline"] or []
        if "inference.scoring" in cmd and "queue" in cmd and str(run) in cmd:
            pids.append(proc.info["pid"])
    return pids


def test_ten_quick_saves_leave_one_scorer_and_score_each_checkpoint_once(tiny_base, demo_data, tmp_path):
    """Every save queues its checkpoint; only the first finds no scorer at work and starts one. The rows come
    first: the baseline exists before any checkpoint's score."""
    run = tmp_path / "run"
    sampler = Sampler(lambda: scorer_processes(run), every=0.1)
    sampler.start()
    try:
        _train(tiny_base, demo_data, run, "--epochs", "10")
        _wait(lambda: _settled(run), run)
    finally:
        seen = sampler.stop()
    names = [f"epoch-{i:04d}" for i in range(1, 11)]
    log = (run / sc.SCORING_LOG).read_text()
    assert max(len(pids) for pids in seen) == 1, [p for p in seen if len(p) > 1][:5]
    assert len({pid for pids in seen for pid in pids}) < len(names), "a scorer was started for each save"
    states = sc.states(run)
    assert all(states[n]["state"] == sc.DONE for n in names), states
    assert [_scored_lines(run, n) for n in names] == [1] * len(names), log[-3000:]
    rows = sc.states(run, "rows")
    assert rows["baseline"]["state"] == rows["ceiling"]["state"] == sc.DONE
    assert rows["baseline"]["updated_at"] < min(states[n]["updated_at"] for n in names), (rows, states)
    assert "Traceback" not in log


def test_two_runs_under_a_limit_of_one_never_score_at_once(trained, tmp_path):
    """[scoring] max_scorers = 1: the second run's scorer waits for the slot before it loads anything."""
    config = tmp_path / "config.toml"
    config.write_text("[scoring]\nmax_scorers = 1\n")
    env = python_env(MILO_CONFIG=str(config))
    runs = [_copy_run(trained, tmp_path / f"run-{i}") for i in (1, 2)]
    for run in runs:  # one checkpoint each: both must be at work at some time, never at the same time
        sc.set_state(run, "epoch-0001", sc.QUEUED)

    def working():
        return [any(e.get("state") == sc.RUNNING for e in sc.states(run, as_written=True).values()) for run in runs]

    sampler = Sampler(working)
    sampler.start()
    try:
        procs = [sc.start_scorer(run, python=sys.executable, env=env) for run in runs]
        for proc in procs:
            assert proc.wait(400) == 0
    finally:
        seen = sampler.stop()
    assert not [s for s in seen if all(s)], "both runs were scored at once"
    assert any(s[0] for s in seen) and any(s[1] for s in seen)  # the sampler saw each at work
    logs = [(run / sc.SCORING_LOG).read_text() for run in runs]
    for run, log in zip(runs, logs):
        assert sc.states(run)["epoch-0001"]["state"] == sc.DONE, log[-2000:]
        assert "scorer slot 1 of 1 taken" in log and "scorer slot 1 of 1 left" in log
    assert sum("waiting for a scorer slot: 1 at work already ([scoring] max_scorers = 1)" in log for log in logs) == 1


def test_a_save_while_the_scorer_leaves_is_scored(trained, tmp_path):
    """The race, forced: the scorer has found its queue empty and still holds the run's lock when a save
    queues epoch-0002. start_scorer starts nothing; the scorer, looking again after releasing the lock,
    scores it: once, and by the same process."""
    run = _copy_run(trained, tmp_path / "run")
    sc.set_state(run, "epoch-0001", sc.QUEUED)
    first = sc.start_scorer(run, python=sys.executable, env=python_env(MILO_TEST_HOOKS="scorer_hold_drained=120"))
    assert first is not None
    marker = run / ".test-hook-drained"
    _wait(lambda: marker.exists() or first.poll() is not None, run)
    assert first.poll() is None and sc.states(run)["epoch-0001"]["state"] == sc.DONE
    _add_checkpoint(run, "epoch-0002")
    sc.set_state(run, "epoch-0002", sc.QUEUED)
    assert sc.start_scorer(run, python=sys.executable, env=python_env()) is None  # its scorer is at work
    marker.unlink()
    assert first.wait(300) == 0, (run / sc.SCORING_LOG).read_text()[-2000:]
    states = sc.states(run)
    assert states["epoch-0002"] == {**states["epoch-0002"], "state": sc.DONE, "pid": first.pid}
    assert [_scored_lines(run, n) for n in ("epoch-0001", "epoch-0002")] == [1, 1]
    assert scorer_processes(run) == []


def test_a_scorer_that_finds_the_run_at_work_exits_at_once(trained, tmp_path):
    run = _copy_run(trained, tmp_path / "run")
    sc.set_state(run, "epoch-0001", sc.QUEUED)
    held = claim(run / scorers.RUN_LOCK, create=True)
    try:
        assert sc.start_scorer(run, python=sys.executable, env=python_env()) is None
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "inference.scoring", "queue", str(run)], capture_output=True,
                              text=True, timeout=60, env=python_env())
        assert proc.returncode == 0 and time.monotonic() - started < 30, proc.stderr
    finally:
        scorers.release(held)
    assert sc.states(run)["epoch-0001"]["state"] == sc.QUEUED  # the holder's to score


def test_queued_checkpoints_go_newest_first_by_save_order(tmp_path):
    """step-* and epoch-* interleave: the step each was saved at orders them (eval.json), not the name nor a
    file time (here the files' times are the reverse of the save order, as in a copied run folder)."""
    run = tmp_path / "run"
    saved = {"epoch-0001": 3, "step-00000006": 6, "epoch-0002": 6, "step-00000010": 10, "epoch-0010": 9}
    for name, step in saved.items():
        (run / name).mkdir(parents=True)
        (run / name / "eval.json").write_text(json.dumps({"step": step}))
        os.utime(run / name, (1000 - step, 1000 - step))
    assert scorers.newest_first(run, sorted(saved)) == ["step-00000010", "epoch-0010", "epoch-0002",
                                                        "step-00000006", "epoch-0001"]


def test_max_scorers_comes_from_the_config_or_the_device(tmp_path):
    assert scorers.max_scorers({}, "cpu") == 1 and scorers.max_scorers({}, "cuda:0") == 2
    assert scorers.max_scorers({"scoring": {"max_scorers": 3}}, "cpu") == 3
    with pytest.raises(ConfigError, match=r"\[scoring\] max_scorers = 0 must be a whole number of 1 or more"):
        scorers.max_scorers({"scoring": {"max_scorers": 0}}, "cpu")
    held = [scorers.Slot.take(2, folder=tmp_path) for _ in range(2)]
    said = []
    waiter = threading.Thread(target=lambda: said.append(scorers.Slot.take(2, folder=tmp_path, say=said.append,
                                                                             poll_s=0.05)))
    waiter.start()
    time.sleep(0.5)
    assert said == ["waiting for a scorer slot: 2 at work already ([scoring] max_scorers = 2)"]
    held[1].release()
    waiter.join(10)
    assert said[-1].index == 1
    for slot in (held[0], said[-1]):
        slot.release()

