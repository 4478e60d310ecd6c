"""What checkpoint scoring costs (docs/benchmarks.md, "Scoring"), on the tiny model on this machine:

1. seconds to score one checkpoint with the default prompt set (synthesis + every measure), cold (models
   loaded in the process) and warm (a second checkpoint in the same process, as the run's queue does);
2. a training run with scoring after each save against the same run with `--no-score`, alternating the
   two arms: the run's wall time and training samples/s, and their ratio. The scorer is niced and in its
   own process, so what it takes from training is what this measures.

    .venv/bin/python bench/scoring.py [--epochs 3] [--runs 2] [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def env() -> dict:
    return {**os.environ, "PYTHONPATH": f"{ROOT}:{os.environ.get('PYTHONPATH', '')}".rstrip(":"),
            "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def workspace(tmp: Path) -> tuple[Path, Path, Path]:
    """A tiny Base model, the synthetic corpus prepared as training data, and a checkpoint of it."""
    from contract.synth import write_corpus

    corpus = tmp / "corpus"
    write_corpus(corpus)
    subprocess.run([sys.executable, "-m", "training", "tiny-model", str(tmp / "base")], check=True, env=env(),
                   capture_output=True)
    subprocess.run([sys.executable, "-m", "training", "prepare", str(corpus), "--base", str(tmp / "base"), "--out",
                    str(tmp / "train.jsonl")], check=True, env=env(), capture_output=True)
    run = tmp / "ckpt-run"
    subprocess.run([sys.executable, "-m", "training", "run", "--base", str(tmp / "base"), "--data",
                    str(tmp / "train.jsonl"), "--run", str(run), "--epochs", "1", "--no-score", "--val-fraction", "0.2"],
                   check=True, env=env(), capture_output=True)
    return tmp / "base", tmp / "train.jsonl", run / "epoch-0001"


def time_scoring(checkpoint: Path, data: Path, prompts) -> dict:
    from inference.engine import Engine
    from inference.scoring.scorer import CEILING_CLIPS, Scorer, score_checkpoint

    t0 = time.perf_counter()
    scorer = Scorer()
    reference = scorer.reference(data, hold_out=CEILING_CLIPS)
    engine = Engine(device="cpu", tune_threads=True)
    cold = score_checkpoint(checkpoint, scorer, reference, engine=engine, prompts=prompts)
    cold_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    warm = score_checkpoint(checkpoint, scorer, reference, engine=engine, prompts=prompts)
    return {"cold_s": round(cold_s, 1), "warm_s": round(time.perf_counter() - t1, 1),
            "audio_s": round(sum(c["audio_s"] for c in warm["clips"]), 1),
            "runaway": warm["means"]["runaway"], "same_numbers": cold["means"] == warm["means"]}


def train(base: Path, data: Path, run: Path, epochs: int, score: bool, prompts) -> dict:
    from contract import scores as sc

    if prompts != sc.DEFAULT_PROMPTS:  # the run's own prompt set (contract/scores.py PROMPTS_TXT)
        run.mkdir(parents=True)
        (run / sc.PROMPTS_TXT).write_text("".join(f"{seed}\t{text}\n" for text, seed in prompts))
    args = [sys.executable, "-m", "training", "run", "--base", str(base), "--data", str(data), "--run", str(run),
            "--epochs", str(epochs), "--val-fraction", "0.2", "--patience", "0"] + ([] if score else ["--no-score"])
    t0 = time.perf_counter()
    subprocess.run(args, check=True, env=env(), capture_output=True)
    wall = time.perf_counter() - t0
    steps = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines() if '"kind":"step"' in l]
    samples = sum(s["samples"] for s in steps)
    seconds = sum(s["seconds"] for s in steps)
    scored = None
    if score:  # wait for the scorer to finish, so the next arm starts on a quiet machine
        while any(e.get("state") in (sc.QUEUED, sc.RUNNING) for e in sc.states(run).values()) or \
                sc.states(run, "rows").get("baseline", {}).get("state") in (None, sc.RUNNING):
            time.sleep(0.5)
        scored = sum(1 for e in sc.states(run).values() if e.get("state") == sc.DONE)
    return {"wall_s": round(wall, 1), "samples_per_s": round(samples / seconds, 2), "scored": scored}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="the smallest setting, for tests/foundation/test_bench.py: proves the benchmark runs, measures nothing")
    args = p.parse_args(argv)
    from contract import scores as sc

    prompts = sc.DEFAULT_PROMPTS
    if args.quick:
        args.epochs, args.runs, prompts = 1, 1, sc.DEFAULT_PROMPTS[:1]
    tmp = Path(tempfile.mkdtemp(prefix="milo-bench-scoring-"))
    try:
        base, data, checkpoint = workspace(tmp)
        cost = time_scoring(checkpoint, data, prompts)
        print(f"scoring one checkpoint (tiny model, CPU, {len(prompts)} prompt(s), {cost['audio_s']} s of audio, "
              f"{cost['runaway']} runaway): cold {cost['cold_s']} s, warm {cost['warm_s']} s; "
              f"same numbers twice: {cost['same_numbers']}")
        arms = {"--no-score": [], "scoring after each save": []}
        for i in range(args.runs):
            arms["--no-score"].append(train(base, data, tmp / f"off-{i}", args.epochs, score=False, prompts=prompts))
            arms["scoring after each save"].append(train(base, data, tmp / f"on-{i}", args.epochs, score=True, prompts=prompts))
        print(f"\ntraining {args.epochs} epochs of the tiny model, {args.runs} run(s) per arm, alternating")
        print(f"{'arm':28} {'wall s':>8} {'samples/s':>10} {'scored':>7}")
        for name, runs in arms.items():
            for r in runs:
                print(f"{name:28} {r['wall_s']:>8} {r['samples_per_s']:>10} {str(r['scored'] or '-'):>7}")
        med = {k: sorted(r["samples_per_s"] for r in v)[len(v) // 2] for k, v in arms.items()}
        wall = {k: sorted(r["wall_s"] for r in v)[len(v) // 2] for k, v in arms.items()}
        print(f"ratio with scoring / without: samples/s {med['scoring after each save'] / med['--no-score']:.2f}x, "
              f"run wall time {wall['scoring after each save'] / wall['--no-score']:.2f}x")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
