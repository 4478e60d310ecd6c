"""Which checkpoints to keep, and deleting the rest safely (docs/retention.md).

Policy: keep the best K (by the [best] rule's ranking: the checkpoints that meet the rule by its metric,
then the other scored ones by validation loss, then the unscored ones; ties to the one saved first), the
newest N (in save order), within an optional disk budget (what the kept ones take together, as du counts
them; a budget alone deletes only to get under it). Never deleted: the best by the rule, the best by
validation loss, a checkpoint in use (loaded by the audition worker or read by the scorer: they hold a shared
flock on it, contract.runfolder.InUse), a scored checkpoint while the baseline's WER is unknown (the rule
cannot rank it), and the run's resume point (it is not a checkpoint: prune never touches resume/). Bytes
freed count a hard-linked file once: deleting a link frees nothing while another link to the same data stays.

A deletion renames the folder to a hidden name first (one atomic step: it stops being a checkpoint for
every reader), then removes it; a removal that fails halfway leaves only the hidden folder, which the next
prune finishes. Used by `milo-train prune`, the trainer after each save (--keep-best/--keep-last), the
run's scorer after the scores it lands (the same policy, from run.json: a run whose scorer lags its trainer
still ends with the policy's checkpoints), and the dashboard's prune key. One policy per run (`policy_for`:
the run's own where it has one, else the configuration's). One prune at a time per run (`pruning`): a plan
made on older scores never deletes what a plan on newer scores keeps. Torch-free.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path

from contract.configfile import parsed, read_table, true_or_false, whole
from contract.runfolder import EVAL_JSON, RUN_JSON, claim, locked, read_json, record
from contract.scores import (QUEUED, RUNNING, BestRule, RUN_RULE_SOURCE, checkpoint_rows, is_score, pick_best, read_row,
                             remember_pruned, rule_for, states)
from contract.units import fmt_bytes, parse_size

TRASH_PREFIX = ".deleting-"
RETENTION_TABLE = "retention"
PRUNE_LOCK = ".prune.lock"  # in the run folder: held while a prune plans and deletes


@dataclass(frozen=True)
class Policy:
    keep_best: int = 3
    keep_last: int = 2
    budget_bytes: int | None = None     # keep no more than this on disk (protected checkpoints always stay)
    # for runs started from the dashboard: prune after each save, stop when the scores stop improving
    after_each_save: bool = False
    stop_unimproved: int = 0

    def describe(self, rule: BestRule | None = None) -> str:
        """The policy in the operator's words, with the ranking that "best" means."""
        rule = rule or BestRule()
        budget = f"within {fmt_bytes(self.budget_bytes)}" if self.budget_bytes is not None else "no disk budget"
        return (f"keep the best {self.keep_best} (first those meeting the [best] rule: {rule.describe()}; then the "
                f"other scored ones by validation loss; unscored last), the newest {self.keep_last}, {budget}")

    def trainer_flags(self) -> list[str]:
        """The `milo-train run` flags that carry this policy into a run."""
        flags = []
        if self.after_each_save:
            flags += ["--keep-best", str(self.keep_best), "--keep-last", str(self.keep_last)]
            if self.budget_bytes is not None:
                flags += ["--disk-budget", str(self.budget_bytes)]
        return flags + (["--stop-unimproved", str(self.stop_unimproved)] if self.stop_unimproved else [])


@dataclass
class Plan:
    keep: dict[str, str] = field(default_factory=dict)     # name -> why it stays
    delete: list[str] = field(default_factory=list)        # names, worst first
    freed_bytes: int = 0                                   # what deleting them frees (hard links counted once)
    kept_bytes: int = 0
    over_budget: bool = False                              # protected checkpoints alone exceed the budget

    def describe(self) -> str:
        if not self.delete:
            return f"nothing to delete ({len(self.keep)} checkpoints kept)"
        return (f"delete {len(self.delete)} checkpoint(s) ({', '.join(self.delete)}), freeing "
                f"{fmt_bytes(self.freed_bytes)}; keep {len(self.keep)}")


RETENTION_KEYS = {"keep_best": whole(Policy.keep_best), "keep_last": whole(Policy.keep_last),
                  "budget": parsed(None, parse_size), "after_each_save": true_or_false(False),
                  "stop_unimproved": whole(Policy.stop_unimproved)}


def policy_from(config: dict | None, origin: str | Path = "the configuration file") -> Policy:
    """The [retention] table (keep_best, keep_last, budget), checked; ConfigError when wrong."""
    values = read_table(config, RETENTION_TABLE, RETENTION_KEYS, origin)
    values["budget_bytes"] = values.pop("budget")
    return Policy(**values)


def _entries(folder: Path) -> list[os.stat_result]:
    """The folder itself, its subfolders and its files (not following links), as `du` walks them."""
    out = []
    for root, _dirs, names in os.walk(folder):
        for path in [root] + [os.path.join(root, n) for n in names]:
            try:
                out.append(os.lstat(path))
            except OSError:
                pass
    return out


@dataclass(frozen=True)
class DiskBytes:
    """What some folders take on disk, each file's blocks counted once by (st_dev, st_ino) however many
    hard links to it they hold."""
    used: int                 # blocks of everything in them, each file once: what `du -sc` says for them together
    freed: int                # only the files whose every link is among them: what deleting them all frees
    own: dict[Path, int]      # per folder: the files only it holds (every link inside it): what deleting it alone frees


def disk_bytes(folders: list[Path]) -> DiskBytes:
    """One walk of `folders`: the one place sizes of checkpoints are counted (prune, the trainer's budget and
    the checkpoints view). A folder's own entries (itself, its subfolders) are always its own."""
    inodes: dict[tuple[int, int], list] = {}  # (dev, ino) -> [links seen, stat, folders holding it]
    for folder in folders:
        for st in _entries(Path(folder)):
            entry = inodes.setdefault((st.st_dev, st.st_ino), [0, st, set()])
            entry[0] += 1
            entry[2].add(Path(folder))
    used = freed = 0
    own = {Path(f): 0 for f in folders}
    for seen, st, holders in inodes.values():
        size = st.st_blocks * 512
        used += size
        alone = stat.S_ISDIR(st.st_mode) or seen >= st.st_nlink
        if alone:
            freed += size
            if len(holders) == 1:
                own[next(iter(holders))] += size
    return DiskBytes(used, freed, own)


def freed_by(folders: list[Path]) -> int:
    """Bytes that deleting all of `folders` frees: a file's blocks count once, and only when every link to
    it is among them."""
    return disk_bytes(folders).freed


def ranking(run_dir: Path, rule: BestRule) -> tuple[list[str], str | None, str | None]:
    """(checkpoint names best first, the best by the rule, the best by validation loss): the checkpoints that
    meet the rule by its metric (pick_best again and again), then the other scored ones by validation loss,
    then the unscored ones by validation loss (ties: the one saved first). A scored checkpoint outranks every
    unscored one: it has been listened to, and scoring it again costs minutes, while an unscored one is only a
    number. Before the baseline's WER is known the rule cannot be applied (its WER part compares to it): no
    checkpoint is ranked by it then (NEEDS_BASELINE)."""
    return _rank(checkpoint_rows(run_dir), baseline_means(run_dir), rule)


def _rank(rows: list[tuple[str, dict | None, float | None]], baseline: dict | None,
          rule: BestRule) -> tuple[list[str], str | None, str | None]:
    """ranking, on the rows (checkpoint_rows, in save order) and the baseline (baseline_means) already read."""
    at = {r[0]: i for i, r in enumerate(rows)}  # save order
    eligible, remaining = [], list(rows)
    while baseline is not None and (name := pick_best(remaining, baseline, rule)[0]) is not None:
        eligible.append(name)
        remaining = [r for r in remaining if r[0] != name]
    by_loss = sorted(remaining, key=lambda r: (r[1] is None, r[2] is None, r[2] or 0.0, at[r[0]]))
    losses = [r for r in rows if r[2] is not None]
    best_loss = min(losses, key=lambda r: (r[2], at[r[0]]))[0] if losses else None
    return eligible + [r[0] for r in by_loss], (eligible[0] if eligible else None), best_loss


def baseline_means(run_dir: Path) -> dict | None:
    """The baseline row's means when it has a WER (what the [best] rule's WER part compares to), else None."""
    means = (read_row(run_dir, "baseline") or {}).get("means")
    return means if isinstance(means, dict) and is_score(means.get("wer")) else None


NEEDS_BASELINE = "scored, but the baseline's WER (what the [best] rule compares WER to) is not scored yet"


def _blocks(folders: list[Path]) -> dict[str, dict[tuple[int, int], int]]:
    """Per folder name: each of its entries (device, inode) -> blocks in bytes, to add up any set of folders
    with a file shared by hard links counted once."""
    return {Path(f).name: {(st.st_dev, st.st_ino): st.st_blocks * 512 for st in _entries(Path(f))} for f in folders}


def _together(blocks: dict[str, dict[tuple[int, int], int]], names) -> int:
    """What the folders `names` take on disk together: `du -sc` of them (a file they share once)."""
    union: dict[tuple[int, int], int] = {}
    for name in names:
        union.update(blocks[name])
    return sum(union.values())


def plan(run_dir: Path, policy: Policy, rule: BestRule | None = None, *, protect: dict[str, str] | None = None) -> Plan:
    """What `policy` keeps and deletes in `run_dir` now. `protect` adds names that must stay, with why.
    A policy of a budget alone (keep-best 0, newest 0) keeps every checkpoint the budget has room for."""
    run_dir = Path(run_dir)
    rule, source = rule_for(run_dir, rule or BestRule())  # one rule per run: the run's own where it has one
    rows, baseline = checkpoint_rows(run_dir), baseline_means(run_dir)  # read once: the plan is made on one state
    names = [r[0] for r in rows]
    checkpoints = [run_dir / n for n in names]
    order, best, best_loss = _rank(rows, baseline, rule)
    keep: dict[str, str] = {}
    if best:
        keep[best] = f"the best by {source if source.startswith(RUN_RULE_SOURCE) else 'the rule'} ({rule.describe()})"
    if best_loss and best_loss not in keep:
        keep[best_loss] = "the best by validation loss"
    for name, why in (protect or {}).items():
        if name in names:
            keep.setdefault(name, why)
    if baseline is None:  # no prune ranks by a rule it cannot apply yet
        for name, got, _loss in rows:
            if got is not None:
                keep.setdefault(name, NEEDS_BASELINE)
    protected = set(keep)
    budget_only = not (policy.keep_best or policy.keep_last) and policy.budget_bytes is not None
    for name in order if budget_only else order[: policy.keep_best]:
        keep.setdefault(name, "within the disk budget" if budget_only else f"among the best {policy.keep_best}")
    for name in names[len(names) - policy.keep_last:] if policy.keep_last else []:
        keep.setdefault(name, f"among the newest {policy.keep_last}")
    blocks = _blocks(checkpoints)
    result = Plan()
    rank = {n: i for i, n in enumerate(order)}
    if policy.budget_bytes is not None:
        # over the budget: give up kept checkpoints from the worst ranked, never a protected one
        for name in sorted((n for n in keep if n not in protected), key=lambda n: -rank.get(n, len(order))):
            if _together(blocks, keep) <= policy.budget_bytes:
                break
            del keep[name]
        result.over_budget = _together(blocks, keep) > policy.budget_bytes
    result.keep = {n: keep[n] for n in names if n in keep}
    result.delete = sorted((n for n in names if n not in keep), key=lambda n: -rank.get(n, len(order)))
    result.freed_bytes = freed_by([run_dir / n for n in result.delete])
    result.kept_bytes = _together(blocks, result.keep)
    return result


@dataclass
class Outcome:
    deleted: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)   # name -> why it was not deleted
    freed_bytes: int = 0
    left: dict[str, str] = field(default_factory=dict)      # hidden .deleting-* folder -> why it could not be removed

    def describe(self) -> str:
        return (f"pruned {len(self.deleted)} checkpoint(s) ({', '.join(self.deleted) or 'none'}), freed "
                f"{fmt_bytes(self.freed_bytes)}" + "".join(f"; kept {n}: {why}" for n, why in self.skipped.items())
                + "".join(f"; NOT REMOVED {n}: {why}; remove it by hand to free its space"
                          for n, why in self.left.items()))

    def event(self, **extra) -> dict:
        """The `prune` record of metrics.jsonl (docs/run-folder.md) for what this prune did."""
        return record("event", event="prune", message=self.describe(), deleted=self.deleted,
                      freed_bytes=self.freed_bytes, skipped=self.skipped, left=self.left, **extra)


def apply(run_dir: Path, to_delete: list[str]) -> Outcome:
    """Delete these checkpoints: each is claimed (skipped when in use), its eval.json remembered
    (scores.remember_pruned), and renamed out of sight; then removed. The bytes freed are those of what was
    removed: a hidden folder that could not be removed (and those earlier prunes left) is reported, not counted."""
    run_dir = Path(run_dir)
    out = Outcome()
    out.left.update(finish_trash(run_dir))
    moved: dict[str, Path] = {}
    for name in to_delete:
        path = run_dir / name
        if not path.is_dir():
            out.skipped[name] = "already gone"
            continue
        fd = claim(path)
        if fd is None:
            out.skipped[name] = "in use (loaded for audition, or being scored)"
            continue
        try:
            remember_pruned(run_dir, {name: read_json(path / EVAL_JSON) or {}})
            trash = run_dir / f"{TRASH_PREFIX}{name}-{os.getpid()}"
            os.rename(path, trash)  # atomic: from here on it is no checkpoint to any reader
        except OSError as exc:
            out.skipped[name] = f"cannot rename it ({exc.strerror or exc})"
            continue
        finally:
            os.close(fd)
        out.deleted.append(name)
        moved[name] = trash
    before = freed_by(list(moved.values()))
    for trash in moved.values():
        if (why := _remove(trash)) is not None:
            out.left[trash.name] = why
    out.freed_bytes = before - freed_by([t for t in moved.values() if t.exists()])
    return out


def _remove(folder: Path) -> str | None:
    """Remove a folder tree; None when it is gone, else the first error, in a few words."""
    errors: list[str] = []
    shutil.rmtree(folder, onerror=lambda _fn, path, info: errors.append(f"{path}: {info[1].strerror or info[1]}"))
    if not folder.exists():
        return None
    return errors[0] if errors else "still there after removing it"


@contextlib.contextmanager
def pruning(run_dir: Path):
    """Hold the run's prune lock (flock on .prune.lock, waiting for another prune to finish): plan and delete
    inside it. Not reentrant: take it once per process."""
    with locked(Path(run_dir) / PRUNE_LOCK):
        yield


def waiting_for_scores(run_dir: Path) -> dict[str, str]:
    """Checkpoints queued or being scored (scoring.json): they stay, their scores may make one of them best."""
    return {name: "waiting to be scored" for name, e in states(Path(run_dir)).items()
            if e.get("state") in (QUEUED, RUNNING)}


def run_policy(run_dir: Path) -> Policy | None:
    """The after-save policy the run was started (or resumed) with: run.json's hyper keep_best, keep_last and
    disk_budget (the trainer's --keep-best/--keep-last/--disk-budget); None when it has none."""
    hyper = (read_json(Path(run_dir) / RUN_JSON) or {}).get("hyper")
    if not isinstance(hyper, dict):
        return None
    best, last, budget = hyper.get("keep_best") or 0, hyper.get("keep_last") or 0, hyper.get("disk_budget") or ""
    if not (isinstance(best, int) and isinstance(last, int)) or not (best or last or budget):
        return None
    try:
        return Policy(best, last, parse_size(budget) if budget else None)
    except ValueError:
        return None


RUN_POLICY_SOURCE = "the run's own policy (run.json; its trainer and scorer apply it after each save)"


def policy_for(run_dir: Path, fallback: Policy, fallback_source: str) -> tuple[Policy, str]:
    """One policy per run: the run's own (run_policy) where it has one, else `fallback` (the configuration's
    [retention]); with where it came from, for the operator to read."""
    own = run_policy(run_dir)
    return (own, RUN_POLICY_SOURCE) if own is not None else (fallback, fallback_source)


def apply_if_unchanged(run_dir: Path, confirmed: list[str], policy: Policy, rule: BestRule | None = None, *,
                       protect: dict[str, str] | None = None) -> tuple[Plan, Outcome | None]:
    """Delete what the operator confirmed only if the policy still deletes exactly that: plan again under the
    prune lock (scores, saves and other prunes may have landed since the plan was shown). (the plan now, what
    was deleted or None when the plan changed and nothing was touched)."""
    with pruning(run_dir):
        now = plan(run_dir, policy, rule, protect={**waiting_for_scores(run_dir), **(protect or {})})
        if set(now.delete) != set(confirmed) or not now.delete:
            return now, None
        return now, apply(run_dir, now.delete)


def enforce(run_dir: Path, policy: Policy, rule: BestRule | None = None, *,
            protect: dict[str, str] | None = None) -> Outcome | None:
    """Plan and delete under the prune lock, keeping what waits to be scored and `protect`; None when nothing
    was to go."""
    with pruning(run_dir):
        chosen = plan(run_dir, policy, rule, protect={**waiting_for_scores(run_dir), **(protect or {})})
        return apply(run_dir, chosen.delete) if chosen.delete else None


def finish_trash(run_dir: Path) -> dict[str, str]:
    """Remove what an interrupted deletion left (hidden .deleting-* folders); those that cannot be removed, with
    why (they are reported by every prune until someone removes them)."""
    left = {}
    for p in sorted(Path(run_dir).glob(f"{TRASH_PREFIX}*")):
        if p.is_dir() and (why := _remove(p)) is not None:
            left[p.name] = why
    return left
