"""The run's scorer (`python -m inference.scoring queue RUN`, started by the trainer after a save and by the
dashboard's `e`): one per run under the run's lock, a few per machine (the scorer slots), the ceiling and
baseline rows first, then the queued checkpoints, newest first, and the run's retention applied again after
new scores (docs/scoring.md)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from contract import exits, scorers
from contract import scores as sc
from contract.errors import one_line
from contract.runfolder import InUse, claim, is_checkpoint_dir
from inference.scoring.hooks import TestHooks
from inference.scoring.prompts import read_prompts, run_reference
from inference.scoring.rows import baseline_row, ceiling_row
from inference.scoring.scorer import CEILING_CLIPS, Scorer, log, score_checkpoint, write_scores


def score_queue(args) -> int:
    """Drain the run's scoring queue: the ceiling and baseline rows first (no verdict is possible without the
    baseline's WER), then the queued checkpoints, the most recently saved first. One scorer per run and a few
    per machine (contract/scorers.py): a scorer that finds the run's lock held exits at once; one that has
    drained the queue lets the lock go, then looks again, so a save that found the lock held is never left."""
    run_dir = Path(args.run).absolute()
    if not run_dir.is_dir():
        print(f"milo-train eval: error: {run_dir} is not a run folder", file=sys.stderr)
        return exits.BAD_INPUT
    why = sc.missing_reference(run_dir)
    if why:  # at once, before any model loads: without a voice to compare with there is no score worth minutes
        log(f"not scoring: {why}")
        for name, entry in sc.states(run_dir).items():
            if entry.get("state") == sc.QUEUED:
                sc.set_state(run_dir, name, sc.FAILED, error=why)
        return exits.BAD_INPUT
    run_lock = claim(run_dir / scorers.RUN_LOCK, create=True)
    if run_lock is None:  # the run's scorer is at work: it takes what was queued (it looks again before it ends)
        return exits.OK
    try:
        os.nice(19)  # beside a training run: take only what it leaves
    except OSError:
        pass
    hooks = TestHooks.from_env(run_dir)
    work = _QueueWork(run_dir, args, hooks)
    try:
        while True:
            for name in sc.requeue_interrupted(run_dir):  # the lock is ours: whatever is `running` was cut short
                log(f"{name}: the last scorer stopped before it finished; scoring it again")
            bad = work.bad_prompts() or (work.bad_slots() if work.pending() else None)  # before any model loads
            if bad:  # nothing could be scored: each queued entry says why (else it waits, kept from pruning, forever)
                for name in work.queued():
                    sc.set_state(run_dir, name, sc.FAILED, error=bad)
                log(f"not scoring: {bad}")
            elif work.pending():
                work.drain()
            hooks.drained()
            scorers.release(run_lock)
            run_lock = None
            # A save that found the lock held before this point started nothing: its entry is in the queue now.
            if bad and not work.queued():
                return exits.BAD_INPUT
            if not bad and not work.pending():
                return exits.OK
            run_lock = claim(run_dir / scorers.RUN_LOCK, create=True)
            if run_lock is None:  # another scorer took the run over (it scans the queue after taking the lock)
                return exits.OK
    finally:
        scorers.release(run_lock)
        work.close()


class _QueueWork:
    """What a run's scorer does while it holds the run's lock. The machine-wide slot and the models are taken
    on the first work, not before: a scorer with nothing to do costs nothing."""

    def __init__(self, run_dir: Path, args, hooks: TestHooks) -> None:
        self.run_dir, self.args, self.hooks = run_dir, args, hooks
        self.slot: scorers.Slot | None = None
        self.loaded = None  # (scorer, reference, run.json, prompts)
        self.prompts = None
        self.engine = None

    def queued(self) -> list[str]:
        names = [name for name, e in sc.states(self.run_dir).items() if e.get("state") == sc.QUEUED]
        return scorers.newest_first(self.run_dir, names)

    def pending(self) -> bool:
        rows = [sc.CEILING_JSON] + ([] if self.args.no_baseline else [sc.BASELINE_JSON])
        return bool(self.queued()) or not all((self.run_dir / row).exists() for row in rows)

    def bad_prompts(self) -> str | None:
        """Why the run's prompt set (score-prompts.txt) cannot be used, in one line, or None (read once; the
        default five sentences without the file)."""
        if self.prompts is None:
            prompts_file = self.run_dir / sc.PROMPTS_TXT
            try:
                self.prompts = read_prompts(str(prompts_file)) if prompts_file.is_file() else sc.DEFAULT_PROMPTS
            except (OSError, ValueError) as exc:
                why = f"{prompts_file}: cannot read it ({exc.strerror or exc})" if isinstance(exc, OSError) else str(exc)
                return (f"{why}; or delete it to score with the default prompts, then e on the checkpoints view "
                        "scores them again")
        return None

    def bad_slots(self) -> str | None:
        """Takes a machine-wide scorer slot (before any model: the machine's cap; waits while all are held);
        why none can be had (its folder cannot be made or written), in one line, or None."""
        if self.slot is None:
            try:
                self.slot = scorers.Slot.take(_limit(self.args.device), say=log)
            except OSError as exc:
                return (f"the scorer slots' folder {scorers.slots_dir()} cannot be used ({exc.strerror or exc}): "
                        f"set {scorers.SLOTS_ENV} to a folder of yours, then e on the checkpoints view scores them again")
            log(f"scorer slot {self.slot.index + 1} of {self.slot.limit} taken")
        return None

    def _load(self):
        if self.loaded is None:
            scorer = Scorer(device=self.args.device)
            data, run_json = run_reference(self.run_dir)
            reference = scorer.reference(data, hold_out=CEILING_CLIPS)
            self.loaded = (scorer, reference, run_json, self.prompts)
        return self.loaded

    def drain(self) -> None:
        """The rows first, then the queue, newest first, until it is empty."""
        scorer, reference, run_json, prompts = self._load()
        ceiling_row(self.run_dir, scorer, reference)
        if not self.args.no_baseline:
            baseline_row(self.run_dir, run_json, scorer, reference, device=self.args.device, prompts=prompts)
        while True:
            queued = self.queued()  # asked after each checkpoint: a new save goes first
            if not queued:
                _retain(self.run_dir)
                return
            self._score(queued[0], scorer, reference, prompts)

    def _score(self, name: str, scorer, reference, prompts) -> None:
        run_dir, device = self.run_dir, self.args.device
        ckpt = run_dir / name
        if not is_checkpoint_dir(ckpt):
            sc.set_state(run_dir, name, sc.SKIPPED, error="the checkpoint is gone (deleted before it was scored)")
            return
        sc.set_state(run_dir, name, sc.RUNNING, pid=os.getpid())
        try:
            if self.engine is None:
                from inference.engine import Engine

                self.engine = Engine(device=device, tune_threads=True)
            with InUse(ckpt):  # pruning leaves a checkpoint being scored alone, until its scores are written
                scores = score_checkpoint(ckpt, scorer, reference, engine=self.engine, device=device,
                                          prompts=prompts, say=log)
                self.hooks.scored(ckpt)
                write_scores(ckpt, scores)
                sc.set_state(run_dir, name, sc.DONE, seconds=scores["seconds"])
        except Exception as exc:  # noqa: BLE001 - the queue goes on
            gone = not ckpt.is_dir()
            why = "the checkpoint was deleted while it was scored" if gone else one_line(exc)[:200]
            log(f"{name}: {why}")
            sc.set_state(run_dir, name, sc.SKIPPED if gone else sc.FAILED, error=why)
            return
        if (run_dir / sc.BASELINE_JSON).exists():  # before it, the rule cannot hold WER to the baseline's
            _retain(run_dir)

    def close(self) -> None:
        if self.slot is not None:
            self.slot.release()
            log(f"scorer slot {self.slot.index + 1} of {self.slot.limit} left")
            self.slot = None


def _limit(device: str) -> int:
    """[scoring] max_scorers; a wrong value is said in scoring.log and the default used (the scores go on)."""
    from contract.configfile import ConfigError, config_file, read_config

    try:
        return scorers.max_scorers(read_config(), device, config_file())
    except ConfigError as exc:
        default = scorers.default_max_scorers(device)
        log(f"{exc}; using {default}")
        return default


def _retain(run_dir: Path) -> None:
    """The run's after-save retention (run.json: --keep-best/--keep-last/--disk-budget), applied now that new
    scores changed the ranking: the trainer's prune after a save keeps what waits to be scored, so without
    this a scorer slower than the trainer would leave every checkpoint. A line in scoring.log and a `prune`
    event in metrics.jsonl, as the trainer's."""
    from contract import retention
    from contract.configfile import read_config
    from contract.runfolder import METRICS, append_records, list_checkpoints

    policy = retention.run_policy(run_dir)
    if policy is None:
        return
    # A checkpoint the trainer has just saved but not yet queued is not the scorer's to judge.
    known = sc.states(run_dir)
    fresh = {ck.name: "saved, not yet queued for scoring" for ck in list_checkpoints(run_dir) if ck.name not in known}
    try:
        rule = sc.best_rule(read_config())
        done = retention.enforce(run_dir, policy, rule, protect=fresh)
    except Exception as exc:  # noqa: BLE001 - a wrong [best] table or a prune that fails never stops the scoring
        log(f"retention skipped: {one_line(exc)}")
        return
    if done is None or not (done.deleted or done.skipped):
        return
    log(f"retention: {done.describe()}")
    append_records(run_dir / METRICS, [done.event(by="scorer")])
