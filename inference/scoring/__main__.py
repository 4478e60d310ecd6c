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
import sys

from contract import exits
from inference.scoring.evaluate import evaluate
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


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.device in ("auto", ""):  # the dashboard passes its own device setting through
        from inference.engine import resolve_device

        args.device = resolve_device("auto")
    try:
        return evaluate(args) if args.command == "eval" else score_queue(args)
    except KeyboardInterrupt:
        print("milo-train eval: interrupted", file=sys.stderr)
        return exits.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
