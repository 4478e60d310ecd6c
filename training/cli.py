"""`milo-train`: the trainer's command line.

    milo-train tiny-model OUT_DIR [--seed N]     a tiny random-weight Base model for tests and the demo
"""
from __future__ import annotations

import argparse
import sys
import time


def _cmd_tiny_model(args: argparse.Namespace) -> int:
    from training.tiny_model import build_tiny_model

    started = time.monotonic()
    out = build_tiny_model(args.out_dir, seed=args.seed)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"tiny Qwen3-TTS Base model written to {out} ({size / 1e6:.1f} MB, {time.monotonic() - started:.1f} s)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="milo-train", description="Fine-tune Qwen3-TTS-12Hz voices.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("tiny-model", help="write a tiny random-weight Qwen3-TTS Base model folder",
                       description="Write a tiny random-weight Qwen3-TTS Base model (real qwen_tts classes) "
                                   "that Qwen3TTSModel.from_pretrained loads with no network. Same seed, same weights.")
    p.add_argument("out_dir", metavar="OUT_DIR", help="folder to create (replaced if it exists)")
    p.add_argument("--seed", type=int, default=0, help="random seed for the weights (default 0)")
    p.set_defaults(func=_cmd_tiny_model)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("milo-train: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        print(f"milo-train: error: {exc}", file=sys.stderr)
        return 1
