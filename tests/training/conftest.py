"""Fixtures of the trainer's tests: the demo corpus prepared once, and helpers to run `milo-train run`
as a real child process (signals, exit codes and files are what the dashboard sees)."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import python_env


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    # The tiny model's matrices are too small for two OpenMP threads to help, and spinning threads on a
    # shared 2-core machine make it tens of times slower (docs/training.md).
    import torch

    torch.set_num_threads(1)


def start_run(*args: str, hooks: str = "", log: Path | None = None, module: list[str] | None = None,
              **popen) -> subprocess.Popen:
    """`python -m training run ARGS` in its own session (as the dashboard's supervisor starts it)."""
    env = python_env()
    env.pop("MILO_TEST_HOOKS", None)
    if hooks:
        env["MILO_TEST_HOOKS"] = hooks
    out = open(log, "w") if log else subprocess.PIPE
    # Scoring after each save has its own tests (tests/scoring); here it would only load the machine.
    args = args if "--no-score" in args else (*args, "--no-score")
    cmd = [sys.executable, "-m", *(module or ["training"]), "run", *args]
    return subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **popen)


def run_training(*args: str, hooks: str = "", timeout: float = 240) -> subprocess.CompletedProcess:
    proc = start_run(*args, hooks=hooks)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def metrics(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def steps(run: Path) -> list[dict]:
    return [r for r in metrics(run) if r["kind"] == "step"]


def state(run: Path) -> dict:
    return json.loads((run / "state.json").read_text())


def wait_for(predicate, timeout: float = 120, what: str = "condition", proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process ended (exit {proc.returncode}) before {what}: {proc.stderr.read()}")
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def tree_digest(folder: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime_ns) of every file under `folder`: equal digests mean nothing was touched."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def train_in_process(*args: str, hooks: str = "") -> subprocess.CompletedProcess:
    """`milo-train run ARGS` in this process (torch and qwen_tts are already imported here, which saves a
    child's 7-9 s import): same code, same exit code, stdout and stderr captured. For runs that need no
    signals; the trainer restores the signal handlers it installs."""
    import contextlib
    import io
    import os

    from training.cli import main

    out, err = io.StringIO(), io.StringIO()
    before = os.environ.pop("MILO_TEST_HOOKS", None)
    if hooks:
        os.environ["MILO_TEST_HOOKS"] = hooks
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["run", *args, *(() if "--no-score" in args else ("--no-score",))])
    finally:
        os.environ.pop("MILO_TEST_HOOKS", None)
        if before is not None:
            os.environ["MILO_TEST_HOOKS"] = before
    return subprocess.CompletedProcess(["milo-train", "run", *args], code, out.getvalue(), err.getvalue())
