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

import time
from pathlib import Path

from contract.audio import FRAME_RATE
from contract.runfolder import locked, read_json, write_json_atomic

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
# Scoring frames per sentence: about twice what read speech needs (2 s + 8 letters a second), so a
# checkpoint that never says end-of-speech is caught (runaway) without minutes of noise to score.
SCORE_BUDGET_BASE_S, SCORE_BUDGET_PER_CHAR_S = 2.0, 0.125


def score_budget_frames(text: str) -> int:
    return int((SCORE_BUDGET_BASE_S + SCORE_BUDGET_PER_CHAR_S * len(text)) * FRAME_RATE) + 1


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


def states(run_dir: Path, section: str = "checkpoints") -> dict[str, dict]:
    """Checkpoint name (or, with section "rows", "baseline" / "ceiling") -> its scoring entry."""
    doc = read_json(Path(run_dir) / SCORING_JSON) or {}
    entries = doc.get(section)
    return entries if isinstance(entries, dict) else {}
