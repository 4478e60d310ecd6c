"""`python -m inference.scoring` (also `milo-train eval`): score checkpoints or audio files, or drain a
run's scoring queue.

    eval CHECKPOINT... [--run RUN] [--reference CORPUS_OR_JSONL] [--json]      writes each eval.json
    eval --audio WAV... [--reference CORPUS_OR_JSONL] [--text "..."] [--json]  prints only
    queue RUN                                                                 what the trainer starts after a save

Exit codes (contract/exits.py): 0 done (a checkpoint deleted meanwhile is skipped, saying so), 1 `eval`: a
checkpoint could not be scored (the others were), 2 bad command line, 3 bad input (no such checkpoint or file,
a prompt set that is blank or not UTF-8, a run with no corpus), 130 interrupted.
A model or a clip that fails makes its fields "not scored: <why>"; it never ends the command.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from contract import exits
from contract import scores as sc
from contract.errors import one_line
from contract.runfolder import InUse, is_checkpoint_dir, is_official_output
from inference.scoring.hooks import TestHooks
from inference.scoring.prompts import read_prompts, run_reference
from inference.scoring.queue import score_queue

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="milo-train", description="Score checkpoints (speaker similarity, "
                                "WER/CER, DNSMOS, speaking rate, runaway) with real offline models; docs/scoring.md.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    e = sub.add_parser("eval", help="score checkpoints (writes eval.json) or audio files (--audio)")
    e.add_argument("checkpoints", nargs="*", metavar="CHECKPOINT", help="checkpoint folders to score")
    e.add_argument("--audio", nargs="+", metavar="WAV", help="score these audio files instead (nothing is written)")
    e.add_argument("--text", help="what the --audio files say (for WER/CER and the speaking rate)")
    e.add_argument("--run", metavar="RUN", help="the run the checkpoints belong to (default: their folder)")
    e.add_argument("--reference", metavar="CORPUS_OR_JSONL",
                   help="the voice to compare with (default: the run's training data)")
    e.add_argument("--prompts", metavar="FILE", help="prompt set: one sentence a line, optionally 'SEED<TAB>text'")
    e.add_argument("--whisper", metavar="DIR", help="a local Whisper folder for WER (default: pocketsphinx)")
    e.add_argument("--wavlm", metavar="DIR", help="a local WavLMForXVector folder for similarity (default: resemblyzer)")
    e.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    e.add_argument("--json", action="store_true", help="print JSON instead of a table")
    q = sub.add_parser("queue", help="score a run's queued checkpoints, its baseline and ceiling (started by the trainer)")
    q.add_argument("run", metavar="RUN")
    q.add_argument("--device", default="cpu")
    q.add_argument("--no-baseline", action="store_true", help="skip the zero-shot baseline row")
    return p


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


def cmd_eval(args) -> int:
    from inference.scoring.scorer import CEILING_CLIPS, Scorer, log, score_checkpoint, write_scores

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


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.device in ("auto", ""):  # the dashboard passes its own device setting through
        from inference.engine import resolve_device

        args.device = resolve_device("auto")
    try:
        return cmd_eval(args) if args.command == "eval" else score_queue(args)
    except KeyboardInterrupt:
        print("milo-train eval: interrupted", file=sys.stderr)
        return exits.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
