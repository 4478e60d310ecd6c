"""`milo-train eval` (`python -m inference.scoring eval`): score checkpoint folders (each eval.json written,
the run's scoring.json updated) or audio files (--audio: printed only), as a table or JSON."""
from __future__ import annotations

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
    say = log
    if bool(args.audio) == bool(args.checkpoints):
        print("milo-train eval: error: give checkpoint folders, or --audio WAV...", file=sys.stderr)
        return exits.USAGE
    try:
        prompts = read_prompts(args.prompts)
    except (OSError, ValueError) as exc:
        print(f"milo-train eval: error: --prompts: {exc}", file=sys.stderr)
        return exits.BAD_INPUT
    scorer = Scorer(whisper=args.whisper, wavlm=args.wavlm, device=args.device)
    if args.audio:
        missing = [a for a in args.audio if not Path(a).is_file()]
        if missing:
            print(f"milo-train eval: error: no such audio file: {missing[0]}", file=sys.stderr)
            return exits.BAD_INPUT
        reference = scorer.reference(Path(args.reference) if args.reference else None, hold_out=CEILING_CLIPS)
        rows = [scorer.score_file(Path(a), args.text, reference) for a in args.audio]
        print(json.dumps({"reference": reference.describe(), "models": scorer.models(), "clips": rows}, indent=2)
              if args.json else _table(rows, [Path(a).name for a in args.audio]))
        return exits.OK
    checkpoints = [Path(c).absolute() for c in args.checkpoints]
    missing = [c for c in checkpoints + ([Path(args.run).absolute()] if args.run else []) if not c.exists()]
    if missing:
        print(f"milo-train eval: error: {missing[0]} does not exist (check the path)", file=sys.stderr)
        return exits.BAD_INPUT
    bad = [c for c in checkpoints if not (c / "config.json").is_file()]
    if bad:
        print(f"milo-train eval: error: {bad[0]} is not a checkpoint folder (no config.json)", file=sys.stderr)
        return exits.BAD_INPUT
    run_dir = Path(args.run).absolute() if args.run else checkpoints[0].parent
    data, run_json = run_reference(run_dir)
    why = sc.missing_reference(run_dir) if not args.reference else None
    if why and (run_json.get("adopted") or is_official_output(run_dir)):  # checkpoints made elsewhere: no default
        print(f"milo-train eval: error: {why} (or give --reference CORPUS_OR_JSONL)", file=sys.stderr)
        return exits.BAD_INPUT
    source = Path(args.reference) if args.reference else data
    reference = scorer.reference(source, hold_out=CEILING_CLIPS)  # the same centroid as the run's queue uses
    results = []
    engine = None
    hooks = TestHooks.from_env(run_dir)
    for ckpt in checkpoints:
        try:
            if engine is None:
                from inference.engine import Engine

                engine = Engine(device=args.device, tune_threads=True)  # one for all: each load replaces the last
            # Pruning leaves a checkpoint being scored alone: claimed until its scores are in its eval.json.
            with InUse(ckpt):
                scores = score_checkpoint(ckpt, scorer, reference, engine=engine, device=args.device, prompts=prompts,
                                          say=say)
                hooks.scored(ckpt)
                write_scores(ckpt, scores)
                if is_checkpoint_dir(ckpt):
                    sc.set_state(ckpt.parent, ckpt.name, sc.DONE, seconds=scores["seconds"])
        except Exception as exc:  # noqa: BLE001 - one line per checkpoint, the others still scored
            if not ckpt.is_dir():  # deleted before it was claimed (a prune): nothing to score, nothing lost
                why = "the checkpoint is gone (deleted before it was scored)"
                say(f"{ckpt.name}: skipped: {why}")
                if ckpt.name in sc.states(ckpt.parent):
                    sc.set_state(ckpt.parent, ckpt.name, sc.SKIPPED, error=why)
                results.append({"checkpoint": ckpt.name, "skipped": why})
                continue
            say(f"{ckpt.name}: not scored: {one_line(exc)[:200]}")
            results.append({"checkpoint": ckpt.name, "error": str(exc)})
            continue
        results.append(scores)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(_table([r.get("means", {}) for r in results], [Path(c).name for c in checkpoints]))
    return exits.OK if all("error" not in r for r in results) else exits.ERROR
