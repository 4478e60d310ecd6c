"""A run's after-save policy, what the trainer does with each checkpoint it saves: queue it for scoring and
start the run's scorer, ask for a stop once the best score has stopped improving, prune by the run's
retention (contract/retention.py). Rank 0 only, torch-free.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from training.hyper import Hyper
from training.runlog import RunLog


def queue_scoring(run_dir: Path, name: str, device: str, log: RunLog,
                  lock: Callable[[], AbstractContextManager]) -> None:
    """Queue the checkpoint in scoring.json and start the run's scorer (`python -m inference.scoring
    queue`, niced, in its own session so a Stop of the run does not cut a score short), unless the run's
    scorer is at work: then the checkpoint only waits in its queue (contract/scorers.py). `lock` is held
    around the scoring.json write (the trainer's run_lock: the signal handler then leaves state.json alone)."""
    from contract import scores

    with lock():
        scores.set_state(run_dir, name, scores.QUEUED)
    try:
        scores.start_scorer(run_dir, python=sys.executable, device=device)
    except OSError as exc:  # training goes on; the checkpoint stays queued for `milo-train eval`
        log.info(f"could not start the scorer for {name}: {exc}")


def quality_stop(run_dir: Path, stop_unimproved: int, log: RunLog) -> str | None:
    """Why the run should stop (a normal stop: a resume point, status stopped, the reason in state.json): the
    best score has not improved for `stop_unimproved` scored checkpoints. None to go on."""
    from contract import scores
    from contract.configfile import ConfigError

    try:
        rule, _source = scores.rule_for(run_dir)  # the run's own where it has one
    except ConfigError as exc:  # as retention does: one run, one rule, or none
        log.info(f"quality stop skipped: {exc}")
        return None
    rows = scores.checkpoint_rows(run_dir, pruned=True)  # pruned ones too: their scores still count
    baseline = (scores.read_row(run_dir, "baseline") or {}).get("means")
    since, best, _scored = scores.unimproved(rows, baseline, rule)
    if best is None or since < stop_unimproved:
        return None
    reason = (f"the best score has not improved for {since} scored checkpoints (best {best}, "
              f"{rule.describe()}; --stop-unimproved {stop_unimproved})")
    log.info(f"stopping: {reason}")
    return reason


def retain(run_dir: Path, hyper: Hyper, saved: str, log: RunLog, append: Callable[[dict], None]) -> None:
    """Prune by the run's retention policy, if it has one; `append` writes the prune's event to metrics.
    Checkpoints waiting to be scored stay, and so does the one just saved."""
    h = hyper
    if not (h.keep_best or h.keep_last or h.disk_budget):
        return
    from contract import retention, scores
    from contract.configfile import ConfigError
    from contract.units import parse_size

    try:
        rule, _source = scores.rule_for(run_dir)  # the run's own where it has one
    except ConfigError as exc:
        log.info(f"retention skipped: {exc}")
        return
    policy = retention.Policy(h.keep_best, h.keep_last, parse_size(h.disk_budget) if h.disk_budget else None)
    done = retention.enforce(run_dir, policy, rule, protect={saved: "just saved"})
    if done is None:
        return
    append(done.event())
    log.info(f"retention: {done.describe()}")
