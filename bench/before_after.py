"""Before/after: the same benchmarks on two checkouts, alternating in one run (docs/benchmarks.md).

A restructuring must not cost the operator anything: this runs each benchmark on BEFORE (another checkout,
e.g. `git worktree add /tmp/before <commit>`) and on this checkout, one after the other, --rounds times,
each in its own child process with its checkout first on the import path (both use this checkout's .venv),
and prints the last table each printed, labelled. Alternating spreads the machine's drift over both sides.

    python bench/before_after.py /tmp/before [--rounds 2] [--only dashboard,audition,training] [--quick]

Without BEFORE (or with --quick alone) it compares this checkout with itself.

Benchmarks: dashboard (bench/dashboard.py: start ratio, memory, CPU while following a run), audition
(bench/audition_latency.py: first audio and audio/wall on the tiny model, CPU), training
(bench/train_throughput.py: samples/s of our step on the tiny model, CPU).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
BENCHES = {
    "dashboard": ["bench/dashboard.py", "--repeat", "5", "--follow-seconds", "20"],
    "audition": ["bench/audition_latency.py", "--frames", "50", "--runs", "2"],
    "training": ["bench/train_throughput.py", "--steps", "3"],
}


def last_table(out: str) -> str:
    """The lines from the last blank line on: what each benchmark prints last is its table."""
    lines = out.rstrip().splitlines()
    for i in range(len(lines) - 1, -1, -1):
        if not lines[i].strip():
            return "\n".join(lines[i + 1:])
    return "\n".join(lines[-12:])


def run(tree: Path, args: list[str]) -> str:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, *args], cwd=tree, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode not in (0, 3):
        return f"(exit {done.returncode})\n{done.stderr[-1500:]}"
    return last_table(done.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", type=Path, nargs="?", default=HERE, help="the other checkout [this one]")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--only", default=",".join(BENCHES), help="comma-separated: " + ", ".join(BENCHES))
    ap.add_argument("--quick", action="store_true",
                    help="one round of each benchmark's --help on both sides: proves the loop runs (each benchmark's "
                         "own --quick is run by tests/foundation/test_bench.py)")
    args = ap.parse_args()
    before = args.before.resolve()
    if not (before / "bench").is_dir():
        print(f"before_after: {before} is not a checkout of this project (no bench/ in it)", file=sys.stderr)
        return 3
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        print(f"before_after: unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHES)}", file=sys.stderr)
        return 2
    for name in names:
        argv = [BENCHES[name][0], "--help"] if args.quick else BENCHES[name]
        for i in range(1 if args.quick else args.rounds):
            for label, tree in (("before", before), ("after", HERE)):
                print(f"\n## {name}, round {i + 1}, {label} ({tree})", flush=True)
                print(run(tree, argv), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
