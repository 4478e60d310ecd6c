"""What checkpoint scoring costs (docs/benchmarks.md, "Scoring"), on the tiny model on this machine:

1. seconds to score one checkpoint with the default prompt set (synthesis + every measure), cold (models
   loaded in the process) and warm (a second checkpoint in the same process, as the run's queue does),
   each prompt cut at its bound (contract.scores.score_bound) against the old frame budget
   (MILO_SCORE_BOUND=budget), both in this run;
2. a training run with scoring after each save against the same run with `--no-score`, alternating the
   two arms: the run's wall time and training samples/s, and their ratio; while the scored run trains and
   is scored, the scorer processes and the peak memory (RSS) of the trainer and scorers, sampled with
   psutil. The scorer is niced and in its own process, so what it takes from training is what this measures.

    .venv/bin/python bench/scoring.py [--epochs 10] [--runs 1 (0: the per-checkpoint cost only)] [--bound both|new|old] [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def env() -> dict:
    return {**os.environ, "PYTHONPATH": f"{ROOT}:{os.environ.get('PYTHONPATH', '')}".rstrip(":"),
            "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def workspace(tmp: Path, checkpoint: bool = True) -> tuple[Path, Path, Path | None]:
    """A tiny Base model, the synthetic corpus prepared as training data, and (`checkpoint`) a checkpoint of it."""
    from contract.synth import write_corpus

    corpus = tmp / "corpus"
    write_corpus(corpus)
    subprocess.run([sys.executable, "-m", "training", "tiny-model", str(tmp / "base")], check=True, env=env(),
                   capture_output=True)
    subprocess.run([sys.executable, "-m", "training", "prepare", str(corpus), "--base", str(tmp / "base"), "--out",
                    str(tmp / "train.jsonl")], check=True, env=env(), capture_output=True)
    if not checkpoint:
        return tmp / "base", tmp / "train.jsonl", None
    run = tmp / "ckpt-run"
    subprocess.run([sys.executable, "-m", "training", "run", "--base", str(tmp / "base"), "--data",
                    str(tmp / "train.jsonl"), "--run", str(run), "--epochs", "1", "--no-score", "--val-fraction", "0.2"],
                   check=True, env=env(), capture_output=True)
    return tmp / "base", tmp / "train.jsonl", run / "epoch-0001"


def time_scoring(checkpoint: Path, data: Path, prompts, bound: str, warm: bool = True) -> dict:
    """Score `checkpoint` twice in one process (cold, warm), each prompt cut at its bound ("new") or run to the
    old frame budget ("old")."""
    from contract import scores as sc
    from inference.engine import Engine
    from inference.scoring.scorer import CEILING_CLIPS, Scorer, score_checkpoint

    os.environ[sc.SCORE_BOUND_ENV] = "budget" if bound == "old" else ""
    try:
        t0 = time.perf_counter()
        scorer = Scorer()
        reference = scorer.reference(data, hold_out=CEILING_CLIPS)
        engine = Engine(device="cpu", tune_threads=True)
        cold = score_checkpoint(checkpoint, scorer, reference, engine=engine, prompts=prompts)
        cold_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        again = score_checkpoint(checkpoint, scorer, reference, engine=engine, prompts=prompts) if warm else cold
        warm_s = time.perf_counter() - t1 if warm else None
    finally:
        os.environ.pop(sc.SCORE_BOUND_ENV, None)
    return {"cold_s": round(cold_s, 1), "warm_s": warm_s and round(warm_s, 1),
            "audio_s": round(sum(c["audio_s"] for c in again["clips"]), 1),
            "bound_s": round(sum(c["bound_s"] for c in again["clips"]), 1),
            "rate_cps": reference.rate_cps and round(reference.rate_cps, 1),
            "generate_s": again["timing"]["generate_s"], "measure_s": again["timing"]["measure_s"],
            "runaway": again["means"]["runaway"], "same_numbers": cold["means"] == again["means"]}


class Sampler(threading.Thread):
    """Every 0.5 s: the processes whose command line names `run` (the trainer and its scorers), how many of
    them are scorers, and their summed RSS; keeps the peaks."""

    def __init__(self, run: Path) -> None:
        super().__init__(daemon=True)
        self.folder, self.stop = str(run), threading.Event()
        self.peak_scorers = self.peak_processes = 0
        self.peak_rss = self.peak_scorer_rss = 0

    def run(self) -> None:
        import psutil

        while not self.stop.wait(0.5):
            procs = []
            for proc in psutil.process_iter(["cmdline", "memory_info"]):
                cmd = proc.info["cmdline"] or []
                if any(a == self.folder or a.startswith(self.folder + "/") for a in cmd) and proc.info["memory_info"]:
                    procs.append((" ".join(cmd), proc.info["memory_info"].rss))
            scorers = [rss for cmd, rss in procs if "inference.scoring" in cmd]
            self.peak_processes = max(self.peak_processes, len(procs))
            self.peak_scorers = max(self.peak_scorers, len(scorers))
            self.peak_rss = max(self.peak_rss, sum(rss for _, rss in procs))
            self.peak_scorer_rss = max(self.peak_scorer_rss, sum(scorers))


def train(base: Path, data: Path, run: Path, epochs: int, score: bool, prompts) -> dict:
    from contract import scores as sc

    if prompts != sc.DEFAULT_PROMPTS:  # the run's own prompt set (contract/scores.py PROMPTS_TXT)
        run.mkdir(parents=True)
        (run / sc.PROMPTS_TXT).write_text("".join(f"{seed}\t{text}\n" for text, seed in prompts))
    args = [sys.executable, "-m", "training", "run", "--base", str(base), "--data", str(data), "--run", str(run),
            "--epochs", str(epochs), "--val-fraction", "0.2", "--patience", "0"] + ([] if score else ["--no-score"])
    sampler = Sampler(run)
    sampler.start()
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
    scored_s = time.perf_counter() - t0
    sampler.stop.set()
    sampler.join()
    return {"wall_s": round(wall, 1), "samples_per_s": round(samples / seconds, 2), "scored": scored,
            "scored_s": round(scored_s, 1) if score else None, "scorers": sampler.peak_scorers,
            "processes": sampler.peak_processes, "rss_mb": round(sampler.peak_rss / 2**20),
            "scorer_rss_mb": round(sampler.peak_scorer_rss / 2**20)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--bound", choices=("both", "new", "old"), default="both",
                   help="score one checkpoint cut at the bound (new), run to the old frame budget (old), or both")
    p.add_argument("--quick", action="store_true", help="the smallest setting, for tests/foundation/test_bench.py: proves the benchmark runs, measures nothing")
    args = p.parse_args(argv)
    from contract import scores as sc

    prompts = sc.DEFAULT_PROMPTS
    if args.quick:  # the shortest prompt, one run (scored), one cold score of its checkpoint, no "off" arm
        args.epochs, args.runs, args.bound, prompts = 1, 1, "new", sc.DEFAULT_PROMPTS[:1]
    tmp = Path(tempfile.mkdtemp(prefix="milo-bench-scoring-"))
    try:
        base, data, checkpoint = workspace(tmp, checkpoint=not args.quick)
        print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} cores")
        if args.quick:
            quick_run = train(base, data, tmp / "on-0", args.epochs, score=True, prompts=prompts)
            checkpoint = tmp / "on-0" / "epoch-0001"
        for bound in (("old", "new") if args.bound == "both" else (args.bound,)):
            cost = time_scoring(checkpoint, data, prompts, bound, warm=not args.quick)
            name = "cut at the bound" if bound == "new" else "to the old frame budget"
            print(f"scoring one checkpoint {name} (tiny model, CPU, {len(prompts)} prompt(s), corpus "
                  f"{cost['rate_cps']} chars/s, bound {cost['bound_s']} s, {cost['audio_s']} s of audio, "
                  f"{cost['runaway']} runaway): cold {cost['cold_s']} s, warm {cost['warm_s']} s "
                  f"(generate {cost['generate_s']} s, measure {cost['measure_s']} s); "
                  f"same numbers twice: {cost['same_numbers']}")
        arms = {"--no-score": [], "scoring after each save": []}
        for i in range(args.runs):
            if args.quick:
                arms["scoring after each save"].append(quick_run)
                continue
            arms["--no-score"].append(train(base, data, tmp / f"off-{i}", args.epochs, score=False, prompts=prompts))
            arms["scoring after each save"].append(train(base, data, tmp / f"on-{i}", args.epochs, score=True, prompts=prompts))
        print(f"\ntraining {args.epochs} epochs of the tiny model, {args.runs} run(s) per arm, alternating")
        print(f"{'arm':28} {'wall s':>8} {'samples/s':>10} {'scored':>7} {'all scored s':>13} {'scorers':>8} "
              f"{'processes':>10} {'peak RSS MB':>12} {'scorers MB':>11}")
        for name, runs in arms.items():
            for r in runs:
                print(f"{name:28} {r['wall_s']:>8} {r['samples_per_s']:>10} {str(r['scored'] or '-'):>7} "
                      f"{str(r['scored_s'] or '-'):>13} {r['scorers']:>8} {r['processes']:>10} {r['rss_mb']:>12} "
                      f"{r['scorer_rss_mb']:>11}")
        if all(arms.values()):
            med = {k: sorted(r["samples_per_s"] for r in v)[len(v) // 2] for k, v in arms.items()}
            wall = {k: sorted(r["wall_s"] for r in v)[len(v) // 2] for k, v in arms.items()}
            print(f"ratio with scoring / without: samples/s {med['scoring after each save'] / med['--no-score']:.2f}x, "
                  f"run wall time {wall['scoring after each save'] / wall['--no-score']:.2f}x")
        print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
