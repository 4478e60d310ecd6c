"""`milo-train eval` (`python -m inference.scoring eval`): score checkpoint folders (each eval.json written,
the run's scoring.json updated) or audio files (--audio: printed only), as a table or JSON."""
from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

from contract import exits
from contract import scores as sc
from contract.errors import one_line
from contract.runfolder import InUse, is_checkpoint_dir, is_official_output
from inference.scoring.hooks import TestHooks
from inference.scoring.prompts import read_prompts, run_reference
from inference.scoring.scorer import CEILING_CLIPS, Scorer, log, score_checkpoint, write_scores


def _table(rows: list[dict], names: list[str]) -> str:
    cols = ["similarity", "wer", "cer", "dnsmos_ovrl", "rate_ratio", "runaway"]
    lines = [f"{'':28} " + " ".join(f"{c:>11}" for c in cols)]
    for name, row in zip(names, rows):
        cells = []
        for c in cols:
            v = row.get(c)
            cells.append(f"{v:>11.3f}" if sc.is_score(v) else f"{('-' if v is None else str(v).replace('not scored: ', '?')):>11.11}")
        lines.append(f"{name[:28]:28} " + " ".join(cells))
    reasons = sorted({v for row in rows for v in row.values() if isinstance(v, str) and v.startswith("not scored")})
    errors = [row["error"] for row in rows if isinstance(row.get("error"), str)]  # a file that is not audio
    return "\n".join(lines + [f"  ? {r}" for r in errors + reasons])


def evaluate(args) -> int:
    """The exit code (contract/exits.py): 1 when a checkpoint could not be scored (the others were)."""
    if bool(args.audio) == bool(args.checkpoints):
        return _refuse("give checkpoint folders, or --audio WAV...", exits.USAGE)
    try:
        prompts = read_prompts(args.prompts)
    except (OSError, ValueError) as exc:
        return _refuse(f"--prompts: {exc}")
    scorer = Scorer(whisper=args.whisper, wavlm=args.wavlm, device=args.device)
    return _eval_audio(args, scorer) if args.audio else _eval_checkpoints(args, scorer, prompts)


def _refuse(why: str, code: int = exits.BAD_INPUT) -> int:
    print(f"milo-train eval: error: {why}", file=sys.stderr)
    return code


def _eval_audio(args, scorer: Scorer) -> int:
    """--audio: each file scored against the reference, printed only."""
    missing = [a for a in args.audio if not Path(a).is_file()]
    if missing:
        return _refuse(f"no such audio file: {missing[0]}")
    reference = scorer.reference(Path(args.reference) if args.reference else None, hold_out=CEILING_CLIPS)
    rows = [scorer.score_file(Path(a), args.text, reference) for a in args.audio]
    print(json.dumps({"reference": reference.describe(), "models": scorer.models(), "clips": rows}, indent=2)
          if args.json else _table(rows, [Path(a).name for a in args.audio]))
    return exits.OK


def _eval_checkpoints(args, scorer: Scorer, prompts) -> int:
    """Each checkpoint folder scored in turn, its eval.json written (and its run's scoring.json entry)."""
    checkpoints = [Path(c).absolute() for c in args.checkpoints]
    missing = [c for c in checkpoints + ([Path(args.run).absolute()] if args.run else []) if not c.exists()]
    if missing:
        return _refuse(f"{missing[0]} does not exist (check the path)")
    bad = [c for c in checkpoints if not (c / "config.json").is_file()]
    if bad:
        return _refuse(f"{bad[0]} is not a checkpoint folder (no config.json)")
    run_dir = Path(args.run).absolute() if args.run else checkpoints[0].parent
    data, run_json = run_reference(run_dir)
    why = sc.missing_reference(run_dir) if not args.reference else None
    if why and (run_json.get("adopted") or is_official_output(run_dir)):  # checkpoints made elsewhere: no default
        return _refuse(f"{why} (or give --reference CORPUS_OR_JSONL)")
    source = Path(args.reference) if args.reference else data
    reference = scorer.reference(source, hold_out=CEILING_CLIPS)  # the same centroid as the run's queue uses
    hooks = TestHooks.from_env(run_dir)

    @functools.cache
    def engine():  # one for all, made for the first checkpoint (again if that failed): each load replaces the last
        from inference.engine import Engine

        return Engine(device=args.device, tune_threads=True)

    results = [_score_one(ckpt, scorer, reference, engine, args.device, prompts, hooks) for ckpt in checkpoints]
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(_table([r.get("means", {}) for r in results], [Path(c).name for c in checkpoints]))
    return exits.OK if all("error" not in r for r in results) else exits.ERROR


def _score_one(ckpt: Path, scorer: Scorer, reference, engine, device: str, prompts, hooks: TestHooks) -> dict:
    """One checkpoint's scores, or its one-line error or skip (the others are still scored)."""
    try:
        model = engine()
        # Pruning leaves a checkpoint being scored alone: claimed until its scores are in its eval.json.
        with InUse(ckpt):
            scores = score_checkpoint(ckpt, scorer, reference, engine=model, device=device, prompts=prompts,
                                      say=log)
            hooks.scored(ckpt)
            write_scores(ckpt, scores)
            if is_checkpoint_dir(ckpt):
                sc.set_state(ckpt.parent, ckpt.name, sc.DONE, seconds=scores["seconds"])
    except Exception as exc:  # noqa: BLE001 - one line per checkpoint, the others still scored
        if not ckpt.is_dir():  # deleted before it was claimed (a prune): nothing to score, nothing lost
            why = "the checkpoint is gone (deleted before it was scored)"
            log(f"{ckpt.name}: skipped: {why}")
            if ckpt.name in sc.states(ckpt.parent):
                sc.set_state(ckpt.parent, ckpt.name, sc.SKIPPED, error=why)
            return {"checkpoint": ckpt.name, "skipped": why}
        log(f"{ckpt.name}: not scored: {one_line(exc)[:200]}")
        return {"checkpoint": ckpt.name, "error": str(exc)}
    return scores
