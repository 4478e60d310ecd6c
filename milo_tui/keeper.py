"""The keeper: the small process that owns one run's trainer for as long as the run may need restarting.

    python -m milo_tui.keeper RUN_DIR [--backoff S] -- TRAINER_ARGV...

The dashboard's supervisor starts this, not the trainer, in a session of its own (docs/supervision.md):
the keeper leads the process group, the trainer (or the shell that prepares a corpus first, or a torchrun
launcher) is its child in the same group, so Stop and Kill still reach everything with one killpg. It
writes the trainer's pid and start time to state.json, waits for it, records how each attempt ended and,
when the run's restart policy allows (state.json `restart_limit`, read afresh each time, so `R` in any
dashboard changes it), resumes the run after a back-off: `backoff * 2 ** restarts` seconds. So a crashed
run is restarted whether or not a dashboard is open.

SIGTERM or SIGINT to the keeper (the dashboard's Stop signals the whole group) means "no more restarts":
the trainer, which gets the same signal, saves its resume point and ends; the keeper waits for it and
leaves. No Textual, no torch: about 17 MiB resident for the life of a run.
"""
from __future__ import annotations

import argparse
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from contract import exits
from contract.runfolder import CRASHED, LIVE_STATUSES, STARTING, STATE_JSON, TRAIN_LOG, read_json, update_state
from milo_tui.supervisor import SupervisorError, ended_error, restartable, resume_argv, start_time

POLL_S = 0.25  # how often the back-off looks for a changed policy or a stop


def log(run_dir: Path, line: str) -> None:
    """A line in train.log, where the operator reads what happened to the run."""
    with open(run_dir / TRAIN_LOG, "a") as f:
        f.write(f"--- milo-tui keeper {time.strftime('%Y-%m-%d %H:%M:%S')}: {line}\n")


def run(run_dir: Path, argv: list[str], backoff: float, stop: threading.Event) -> int:
    """Attempts until one ends in a way a restart cannot or may not change; the last exit status."""
    while True:
        try:
            trainer = subprocess.Popen(argv, stdin=subprocess.DEVNULL, cwd=run_dir, close_fds=True)
        except OSError as exc:  # e.g. the interpreter moved since the run was launched: one line, no traceback
            error = f"cannot start the trainer: {exc}"
            update_state(run_dir, status=CRASHED, error=error, exit_code=exits.CANNOT_START, ended_at=time.time(),
                         restart_at=None)
            log(run_dir, error)
            return exits.CANNOT_START
        # One update for the keeper and the trainer (the trainer writes state.json only after its imports).
        update_state(run_dir, pid=trainer.pid, pid_start_time=start_time(trainer.pid), attempt_ended=None,
                     restart_at=None)
        code = trainer.wait()
        state = read_json(run_dir / STATE_JSON) or {}
        fields = {"attempt_ended": trainer.pid, "exit_code": code}
        preparation_failed = bool(state.get("preparing")) and state.get("status") == STARTING  # same data, same end
        if state.get("status") in LIVE_STATUSES:  # it ended without recording why
            fields.update(status=CRASHED, ended_at=time.time(),
                          error=ended_error(run_dir, state, code, "stop" if stop.is_set() else None))
        state = {**state, **fields}
        wait = backoff * 2 ** (state.get("restarts") or 0)
        again = not stop.is_set() and not preparation_failed and restartable(state, code)
        if again:
            fields["restart_at"] = time.time() + wait
        update_state(run_dir, **fields)
        if not again:
            return code
        log(run_dir, f"crashed: {state.get('error') or f'exit {code}'}; restart "
                     f"{(state.get('restarts') or 0) + 1} of {state.get('restart_limit')} in {wait:.0f} s")
        if not _back_off(run_dir, wait, stop):
            update_state(run_dir, restart_at=None)
            log(run_dir, "restart cancelled")
            return code
        state = read_json(run_dir / STATE_JSON) or {}
        try:
            argv = resume_argv(sys.executable, run_dir, state)
        except SupervisorError as exc:
            update_state(run_dir, restart_at=None)
            log(run_dir, f"no restart: {exc}")
            return code
        restarts = (state.get("restarts") or 0) + 1
        log(run_dir, f"restart {restarts}: {shlex.join(argv)}")
        update_state(run_dir, status=STARTING, restarts=restarts, pid=None, pid_start_time=None, exit_code=None,
                     error=None, ended_at=None, started_at=time.time(), preparing=False)


def _back_off(run_dir: Path, wait: float, stop: threading.Event) -> bool:
    """Sleep until the restart is due; False when it was called off meanwhile: a stop, a policy lowered
    to the restarts already made, or the run resumed or removed by someone else."""
    deadline = time.monotonic() + wait
    while True:
        state = read_json(run_dir / STATE_JSON) or {}
        if stop.is_set() or state.get("status") != CRASHED or not restartable(state, state.get("exit_code")):
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            return True
        stop.wait(min(POLL_S, left))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m milo_tui.keeper",
                                description="Run one trainer in RUN_DIR and restart it on a crash as its state.json allows.")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--backoff", type=float, default=5.0, help="seconds before the first restart; doubles each time")
    argv = sys.argv[1:] if argv is None else argv
    if "--" not in argv or argv.index("--") == len(argv) - 1:
        p.error("no trainer command: put it after --")
    cut = argv.index("--")
    args, command = p.parse_args(argv[:cut]), argv[cut + 1:]
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    code = run(args.run_dir.absolute(), command, max(0.0, args.backoff), stop)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
