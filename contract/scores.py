"""Checkpoint scores: where they live and what they hold (docs/run-folder.md, "Scores").

The scorer (`python -m inference.scoring`, engine side) writes them; the dashboard and `milo-say best`
read them. Torch-free.

    <run>/epoch-0004/eval.json   the trainer's validation fields, plus "scores" (below), replaced atomically
    <run>/scoring.json           per checkpoint: queued | running | done | failed | skipped, with why
    <run>/scoring.log            what the run's scorer printed
    <run>/scores-baseline.json   the Base model cloning zero-shot from the reference audio (once per run)
    <run>/scores-ceiling.json    held-out real clips of the corpus, scored the same way (once per run)

A score is a number, or the string "not scored: <why>" (a recognizer that failed to load, a clip too
short to embed, no corpus reference): a reader never has to guess why a number is missing.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from contract.runfolder import locked, read_json, write_json_atomic
from contract.configfile import number, one_of, read_table, whole
from contract.scorers import DEFAULT_SCORER_DEVICE, SCORING_KEYS, SCORING_TABLE, run_scorer_busy

SCORES_VERSION = 1
SCORES = "scores"                      # the key in eval.json
SCORING_JSON = "scoring.json"
SCORING_LOG = "scoring.log"            # what the run's scorer prints
BASELINE_JSON = "scores-baseline.json"
CEILING_JSON = "scores-ceiling.json"

QUEUED, RUNNING, DONE, FAILED, SKIPPED = "queued", "running", "done", "failed", "skipped"

# The default prompt set: five English sentences of different lengths, each with its own fixed seed, so a
# checkpoint's scores are repeatable and two checkpoints hear the same sentences.
DEFAULT_PROMPTS: tuple[tuple[str, int], ...] = (
    ("Good morning.", 11),
    ("Please check the fuse before you touch the wires.", 12),
    ("The quick brown fox jumps over the lazy dog near the river bank.", 13),
    ("We will meet at the station at half past nine, and then walk to the old market together.", 14),
    ("When the storm finally passed, the fishermen pulled their boats back onto the beach, counted the nets, "
     "and laughed about how close they had come to losing everything.", 15),
)

PROMPTS_TXT = "score-prompts.txt"       # in a run folder: that run's prompt set (else DEFAULT_PROMPTS)
# Scoring frames per prompt where the corpus has no speaking rate (score_bound): about twice what read
# speech needs (2 s + 8 letters a second), so a checkpoint that never says end-of-speech is caught (runaway)
# without minutes of noise to score.
SCORE_BUDGET_BASE_S, SCORE_BUDGET_PER_CHAR_S = 2.0, 0.125


# The bound a scored prompt is cut at, from its text and the corpus's speaking rate (the reference clips'
# median letters and digits per second): a prompt still speaking after SCORE_BOUND_MULTIPLE times the time
# the corpus's speaker would take, plus SCORE_BOUND_MARGIN_S (leading and trailing silence, which the rate
# leaves out), is runaway, and its cost is bounded by its text. Without a speaking rate: the budget above.
SCORE_BOUND_MULTIPLE, SCORE_BOUND_MARGIN_S = 1.5, 1.0
# MILO_SCORE_BOUND=budget: every prompt runs to the budget above, as before the bound (bench/scoring.py's
# "before" arm).
SCORE_BOUND_ENV = "MILO_SCORE_BOUND"


def score_budget_frames(text: str) -> int:
    from contract.audio import FRAME_RATE  # here, not at the top: contract.audio brings numpy (listen.py), which
    # the dashboard, reading scores, would otherwise load before its first frame
    return int((SCORE_BUDGET_BASE_S + SCORE_BUDGET_PER_CHAR_S * len(text)) * FRAME_RATE) + 1


def score_bound(text: str, rate_cps: float | None = None) -> dict:
    """The frames a scored prompt may take: `frames`, `seconds` (the same as audio), `expected_s` (the text
    at the corpus's pace; None without one) and `by` ("speaking rate", or "budget" where the rate is
    unknown or MILO_SCORE_BOUND=budget asks for the old budget)."""
    from contract.audio import FRAME_RATE

    chars = sum(1 for c in text if c.isalnum())  # what a speaking rate counts (inference.scoring.measures)
    if rate_cps and rate_cps > 0 and chars and os.environ.get(SCORE_BOUND_ENV, "") != "budget":
        expected = chars / rate_cps
        frames = int((SCORE_BOUND_MULTIPLE * expected + SCORE_BOUND_MARGIN_S) * FRAME_RATE) + 1
        return {"frames": frames, "seconds": round(frames / FRAME_RATE, 2), "expected_s": round(expected, 2),
                "by": "speaking rate"}
    frames = score_budget_frames(text)
    return {"frames": frames, "seconds": round(frames / FRAME_RATE, 2), "expected_s": None, "by": "budget"}


# The per-clip measures, in the order tables show them; the means of a checkpoint use the same names.
MEASURES = ("similarity", "wer", "cer", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "rate_cps", "rate_ratio",
            "silence_ratio", "clipping", "runaway")


def not_scored(why: str) -> str:
    """The value of a measure that could not be taken."""
    return f"not scored: {why}"


def is_score(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def means(rows: list[dict]) -> dict:
    """Mean of each measure over the rows that have a number for it; "runaway" is a count. A measure no
    row could take keeps the first row's reason."""
    out = {}
    for name in MEASURES:
        values = [r.get(name) for r in rows]
        if name == "runaway":
            out[name] = sum(1 for v in values if v is True)
            continue
        numbers = [float(v) for v in values if is_score(v)]
        if numbers:
            out[name] = round(sum(numbers) / len(numbers), 4)
        else:
            out[name] = next((v for v in values if isinstance(v, str)), not_scored("no clip"))
    return out


def set_state(run_dir: Path, checkpoint: str, state: str, *, section: str = "checkpoints", **fields) -> dict:
    """Record one checkpoint's scoring state in scoring.json (read-modify-write under the run folder's lock).
    `section` "rows" holds the run's baseline and ceiling rows the same way."""
    path = Path(run_dir) / SCORING_JSON
    with locked(Path(run_dir)):
        doc = read_json(path) or {"v": SCORES_VERSION, "checkpoints": {}}
        entry = {**doc.setdefault(section, {}).get(checkpoint, {}), "state": state, "updated_at": time.time(),
                 **fields}
        if state in (QUEUED, RUNNING, DONE):
            entry.pop("error", None)
        doc[section][checkpoint] = entry
        write_json_atomic(path, doc)
    return entry


def states(run_dir: Path, section: str = "checkpoints", *, as_written: bool = False) -> dict[str, dict]:
    """Checkpoint name (or, with section "rows", "baseline" / "ceiling") -> its scoring entry. An entry left
    `running` by a scorer process that is gone (killed, out of memory, a reboot) reads as `failed`, saying
    so: nothing would ever finish it (`as_written`: as scoring.json holds it)."""
    doc = read_json(Path(run_dir) / SCORING_JSON) or {}
    entries = doc.get(section)
    if not isinstance(entries, dict):
        return {}
    return entries if as_written else {name: _settled(e) for name, e in entries.items()}


def _settled(entry):
    pid = entry.get("pid") if isinstance(entry, dict) and entry.get("state") == RUNNING else None
    if not isinstance(pid, int) or _alive(pid):
        return entry
    return {**entry, "state": FAILED,
            "error": f"the scorer stopped before it finished (process {pid} is gone); e scores it again"}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # not ours to signal: it exists
        return True
    return True


def requeue_interrupted(run_dir: Path) -> list[str]:
    """Checkpoints a scorer left `running` back to `queued`. Only the scorer that holds the run's one-scorer lock
    calls it: while it holds that lock no other scorer runs, so every `running` entry was interrupted."""
    names = [name for name, e in states(run_dir, as_written=True).items() if isinstance(e, dict) and e.get("state") == RUNNING]
    for name in names:
        set_state(run_dir, name, QUEUED, pid=None)
    return names


# ---- reading them back (the dashboard, milo-say, the audition screen) --------------------------------------
def scores_of(eval_json: dict | None) -> dict | None:
    """A checkpoint's score means from its eval.json, or None when it has not been scored."""
    block = (eval_json or {}).get(SCORES)
    means_ = block.get("means") if isinstance(block, dict) else None
    return means_ if isinstance(means_, dict) else None


def read_row(run_dir: Path, row: str) -> dict | None:
    """The run's baseline or ceiling row ("baseline" / "ceiling"): {"means": ...} or {"error": "not scored: ..."};
    None when it has not been made."""
    doc = read_json(Path(run_dir) / (BASELINE_JSON if row == "baseline" else CEILING_JSON))
    if doc is None:
        return None
    if isinstance(doc.get("means"), dict):
        return {"means": doc["means"]}
    return {"error": str(doc.get("error") or not_scored("unreadable"))}


def missing_reference(run_dir: Path) -> str | None:
    """Why the run's checkpoints cannot be judged yet, in one line that says how to fix it, or None: a run
    whose run.json names no corpus (an adopted folder given none, or one not adopted) has no voice to compare
    with. Asked before any model loads (the dashboard's score keys, the run's scorer), not after minutes of
    synthesis that cannot give the main score."""
    from contract.runfolder import RUN_JSON

    run_dir = Path(run_dir)
    if (read_json(run_dir / RUN_JSON) or {}).get("data"):
        return None
    return (f"{run_dir.name} names no corpus to score against: give it with A on the runs screen, or "
            f"milo-train adopt {run_dir} --data CORPUS")


def scorer_device(config: dict | None = None, origin: str | Path = "the configuration file") -> str:
    """Where the scorer generates: [scoring] device of a configuration (contract.configfile.read_config()),
    checked; ConfigError if wrong. Other keys of [scoring] are left to their readers."""
    return read_table(config, SCORING_TABLE, SCORING_KEYS, origin, only=("device",))["device"]


def start_scorer(run_dir: Path, *, python: str, device: str = "cpu", env: dict | None = None):
    """Start the run's scorer (`python -m inference.scoring queue RUN`) unless it has one at work: call it
    after queueing. The Popen, or None when the run's scorer holds its lock (it looks at the queue again
    after letting the lock go, so what was just queued is its to score; contract/scorers.py). Niced by
    itself, in its own session (a Stop of the run does not cut a score short), its output appended to
    scoring.log. OSError if it cannot start."""
    import subprocess

    if run_scorer_busy(run_dir):
        return None
    with open(Path(run_dir) / SCORING_LOG, "ab") as out:
        return subprocess.Popen([python, "-m", "inference.scoring", "queue", str(run_dir), "--device", device],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True, close_fds=True)


# ---- the best checkpoint ----------------------------------------------------------------------------------
BEST_TABLE = "best"
HIGHER_IS_BETTER = {"similarity": True, "dnsmos_ovrl": True, "wer": False, "cer": False, "val_loss": False}


@dataclass(frozen=True)
class BestRule:
    """Which checkpoint is the voice: the best `metric` among the scored checkpoints whose WER is at most the
    baseline's plus `wer_margin` (when the baseline has a WER) and that ran away on at most `max_runaway`
    prompts. Set in the [best] table of the configuration file (docs/configuration.md)."""
    metric: str = "similarity"
    wer_margin: float = 0.05
    max_runaway: int = 0

    def describe(self) -> str:
        word = "highest" if HIGHER_IS_BETTER[self.metric] else "lowest"
        runaway = "no runaway" if self.max_runaway == 0 else f"at most {self.max_runaway} runaway"
        return f"{word} {self.metric}, WER <= baseline + {self.wer_margin:g}, {runaway}"


BEST_KEYS = {"metric": one_of(BestRule.metric, HIGHER_IS_BETTER), "wer_margin": number(BestRule.wer_margin, lo=0),
             "max_runaway": whole(BestRule.max_runaway, lo=0)}


def best_rule(config: dict | None = None, origin: str | Path = "the configuration file") -> BestRule:
    """The [best] table of a configuration (contract.configfile.read_config()), checked; ConfigError if wrong."""
    return BestRule(**read_table(config, BEST_TABLE, BEST_KEYS, origin))


def pick_best(candidates: list[tuple[str, dict | None, float | None]], baseline: dict | None,
              rule: BestRule) -> tuple[str | None, str]:
    """(the best checkpoint's name or None, one line saying why). `candidates` are (name, score means or None,
    validation loss or None); `baseline` is the baseline row's means (or None)."""
    base_wer = (baseline or {}).get("wer")
    limit = base_wer + rule.wer_margin if is_score(base_wer) else None
    eligible = []
    for name, got, val_loss in candidates:
        if got is None:
            continue
        value = val_loss if rule.metric == "val_loss" else got.get(rule.metric)
        if not is_score(value):
            continue
        if limit is not None and not (is_score(got.get("wer")) and got["wer"] <= limit):
            continue
        runaway = got.get("runaway")
        if is_score(runaway) and runaway > rule.max_runaway:
            continue
        eligible.append((float(value), len(eligible), name))
    scored = sum(1 for _n, got, _v in candidates if got is not None)
    wer_part = f"WER <= {limit:.2f} (baseline {base_wer:.2f} + {rule.wer_margin:g})" if limit is not None else \
        "no baseline WER to hold WER to"
    if not eligible:
        return None, f"no checkpoint meets the rule ({scored} scored; {wer_part}; runaway <= {rule.max_runaway})"
    higher = HIGHER_IS_BETTER[rule.metric]
    value, _at, name = sorted(eligible, key=lambda e: (-e[0] if higher else e[0], e[1]))[0]  # a tie: saved earlier
    word = "highest" if higher else "lowest"
    return name, (f"{word} {rule.metric} {value:.3f} among {len(eligible)} of {scored} scored with {wer_part}, "
                  f"runaway <= {rule.max_runaway}")



def against_baseline(candidates: list[tuple[str, dict | None, float | None]], best: str | None,
                     baseline: dict | None, rule: BestRule) -> tuple[bool | None, str]:
    """Whether `best` (pick_best's choice among `candidates`) beats the baseline row, the Base model cloning
    zero-shot from the reference audio, on the rule's metric (similarity when the rule ranks by validation loss,
    which zero-shot has none of): (True or False, "similarity 0.690, zero-shot 0.757"), or (None, why
    it cannot be told). A tie does not beat it. No best (none meets the rule) is False: nothing beats it."""
    metric = "similarity" if rule.metric == "val_loss" else rule.metric
    base = (baseline or {}).get(metric)
    if not is_score(base):
        return (False if best is None else None), f"zero-shot has no {metric} score yet"
    if best is None:
        return False, f"zero-shot's {metric} is {base:.3f}"
    got = next(((means or {}).get(metric) for name, means, _v in candidates if name == best), None)
    if not is_score(got):
        return None, f"{best} has no {metric} score"
    beats = got > base if HIGHER_IS_BETTER[metric] else got < base
    return beats, f"{metric} {got:.3f}, zero-shot {base:.3f}"


RUN_BEST = "best"  # run.json's block: the run's own rule (the trainer's --best-max-runaway), with a note why
RUN_RULE_SOURCE = "this run's rule"


def rule_block(rule: BestRule, note: str = "") -> dict:
    """What run.json holds for a run started with its own rule (contract.scores.run_rule reads it back)."""
    return {"metric": rule.metric, "wer_margin": rule.wer_margin, "max_runaway": rule.max_runaway,
            **({"note": note} if note else {})}


def run_rule(run_json: dict | None) -> tuple[BestRule, str] | None:
    """A run's own rule from its run.json (a dict as read) and the note that says why it has one; None when it
    has none, or one that does not read as a rule (then the configuration's applies)."""
    from contract.configfile import ConfigError

    block = (run_json or {}).get(RUN_BEST) if isinstance(run_json, dict) else None
    if not isinstance(block, dict):
        return None
    note = block.get("note") if isinstance(block.get("note"), str) else ""
    try:
        return best_rule({BEST_TABLE: {k: v for k, v in block.items() if k != "note"}}, "run.json"), note
    except ConfigError:
        return None


def rule_for(run_dir: Path, fallback: BestRule | None = None) -> tuple[BestRule, str]:
    """One rule per run, as one retention policy per run (contract.retention.policy_for): the run's own (run.json,
    written when it was started) where it has one, else `fallback` (the configuration's [best]; read here when
    None). With where it came from, for the operator to read. ConfigError only when the configuration is read
    and wrong."""
    from contract.runfolder import RUN_JSON

    own = run_rule(read_json(Path(run_dir) / RUN_JSON))
    if own is not None:
        rule, note = own
        return rule, RUN_RULE_SOURCE + (f" ({note})" if note else "")
    if fallback is None:
        from contract.configfile import read_config

        fallback = best_rule(read_config())
    return fallback, "the [best] rule"


def best_checkpoint(run_dir: Path, rule: BestRule | None = None) -> tuple[Path | None, str]:
    """The run's best checkpoint by its rule (rule_for: the run's own, else `rule`, else the configuration's),
    and why."""
    rule, source = rule_for(run_dir, rule)
    baseline = read_row(run_dir, "baseline")
    name, why = pick_best(checkpoint_rows(run_dir), (baseline or {}).get("means"), rule)
    if source.startswith(RUN_RULE_SOURCE):
        why = f"{why}; by {source}"
    return (Path(run_dir) / name if name else None), why


BEST = "best"  # RUN/best names the run's best checkpoint wherever a checkpoint is asked for


class NoBest(ValueError):
    """RUN/best was asked for and no checkpoint meets the rule; the message is one line."""


def resolve_checkpoint(arg: str | Path, rule: BestRule | None = None) -> tuple[Path, str | None]:
    """A checkpoint as given (path, None), or for RUN/best the run's best checkpoint and why it is the one.
    NoBest when the run has none yet; ConfigError (contract.configfile) when the [best] table is wrong."""
    path = Path(arg)
    if path.name != BEST or path.is_dir():
        return path, None
    run_dir = path.parent
    best, why = best_checkpoint(run_dir, rule)
    if best is None:
        raise NoBest(f"{run_dir}: no best checkpoint yet: {why}")
    return best, f"{BEST} in {run_dir.name} is {best.name}: {why}"


def checkpoint_rows(run_dir: Path, *, pruned: bool = False) -> list[tuple[str, dict | None, float | None]]:
    """(name, score means or None, validation loss or None) of the run's checkpoints, in save order; with
    `pruned`, also those retention deleted (remembered in scoring.json, `remember_pruned`), in their place."""
    from contract.runfolder import EVAL_JSON, list_checkpoints, save_order_of

    found = [(path.name, read_json(path / EVAL_JSON)) for path in list_checkpoints(Path(run_dir))]
    if pruned:
        present = {name for name, _ev in found}
        gone = (read_json(Path(run_dir) / SCORING_JSON) or {}).get(PRUNED)
        found += [(name, ev) for name, ev in (gone if isinstance(gone, dict) else {}).items()
                  if name not in present and isinstance(ev, dict)]
        found.sort(key=lambda item: save_order_of(*item))
    rows = []
    for name, ev in found:
        loss = (ev or {}).get("objective")
        rows.append((name, scores_of(ev), float(loss) if is_score(loss) else None))
    return rows


PRUNED = "pruned"  # scoring.json: name -> eval.json of a checkpoint retention deleted (its scores stay known)


def remember_pruned(run_dir: Path, evaluations: dict[str, dict]) -> None:
    """Keep the eval.json of checkpoints about to be deleted in scoring.json: quality-aware stopping counts
    scored checkpoints since the best, deleted ones included, across --resume."""
    if not evaluations:
        return
    path = Path(run_dir) / SCORING_JSON
    with locked(Path(run_dir)):
        doc = read_json(path) or {"v": SCORES_VERSION, "checkpoints": {}}
        doc.setdefault(PRUNED, {}).update(evaluations)
        write_json_atomic(path, doc)


def unimproved(rows: list[tuple[str, dict | None, float | None]], baseline: dict | None,
               rule: BestRule | None = None) -> tuple[int, str | None, int]:
    """(scored checkpoints saved after the best one, the best's name, how many are scored) over `rows` in save
    order (checkpoint_rows, plus any the caller remembers that were pruned since): how long the best score
    has not improved. With no best yet (none meets the rule) the count is 0: a run is not stopped for never
    having been good."""
    rule = rule or BestRule()
    scored = [r for r in rows if r[1] is not None]
    best, _why = pick_best(rows, baseline, rule)
    if best is None:
        return 0, None, len(scored)
    after = scored[[r[0] for r in scored].index(best) + 1:]
    return len(after), best, len(scored)
