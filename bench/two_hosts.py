"""A run across hosts against one host, same data, same seed (docs/benchmarks.md, "Across hosts").

    python bench/two_hosts.py --hosts spark2 --master-addr 169.254.10.1 --iface enp1s0f0np0 \
        --base BASE --data DATA.jsonl                              # two Sparks: 1 process (GPU) per host
    python bench/two_hosts.py                                       # here: the tiny model, 1-host arms only
    python bench/two_hosts.py --quick                               # 1 epoch: does it run

Arms (each `milo-train run` in a child process, `--no-score`, the same hyper-parameters and seed):
  1 host x 1     the plain trainer;
  1 host x N     torchrun --standalone with N processes (N = 1 + the number of --hosts);
  hosts         `milo-train run --hosts ...`: one process on this host and one on each other host.
Reported per arm: wall seconds from launch to exit, samples trained, samples/s over the steps (first to last
step record), and the ratio of each arm's samples/s to 1 host x 1, measured in the same run. The last
objective of every multi-process arm is printed too: they must agree (the same training).
"""
from __future__ import annotations

import argparse
import json
import os
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


def measure(name: str, argv: list[str], run: Path) -> dict:
    started = time.monotonic()
    done = subprocess.run(argv, env=env(), capture_output=True, text=True, stdin=subprocess.DEVNULL)
    wall = time.monotonic() - started
    if done.returncode != 0:
        sys.exit(f"{name}: exit {done.returncode}: {(done.stderr or done.stdout)[-2000:]}")
    steps = [r for r in (json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines())
             if r.get("kind") == "step"]
    samples = sum(r["samples"] for r in steps)
    span = steps[-1]["time"] - steps[0]["time"] if len(steps) > 1 else 0.0
    rate = sum(r["samples"] for r in steps[1:]) / span if span > 0 else float("nan")
    return dict(arm=name, wall_s=wall, samples=samples, rate=rate, last=steps[-1]["objective"])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hosts", help="the other hosts by SSH name (the hosts arm runs only with them)")
    p.add_argument("--master-addr")
    p.add_argument("--iface")
    p.add_argument("--base", help="the Base model (default: a tiny one, made here)")
    p.add_argument("--data", help="the training JSONL (default: the demo corpus, prepared here)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-hosts-"))
    base, data = args.base, args.data
    if not base or not data:
        from contract.synth import write_corpus

        write_corpus(work / "demo" / "corpus")
        made = subprocess.run([sys.executable, "-m", "training", "demo-assets", str(work / "demo")], env=env(),
                              capture_output=True, text=True)
        if made.returncode != 0:
            sys.exit(made.stderr[-2000:])
        base = base or str(next((work / "demo").rglob("speech_tokenizer")).parent)
        data = data or str(next((work / "demo").rglob("*.jsonl")))
    nproc = 1 + len([h for h in (args.hosts or "").split(",") if h.strip()]) if args.hosts else 2
    epochs = 1 if args.quick else args.epochs
    hyper = ["--base", base, "--data", data, "--epochs", str(epochs), "--batch-size", "2", "--grad-accum", "1",
             "--seed", "3", "--no-score"]
    arms = [("1 host x 1", [sys.executable, "-m", "training", "run", "--run", str(work / "one"), *hyper], work / "one"),
            (f"1 host x {nproc}", [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                   f"--nproc_per_node={nproc}", "-m", "training", "run", "--run-dir",
                                   str(work / "many"), *hyper], work / "many")]
    if args.hosts:
        arms.append((f"{nproc} hosts x 1", [sys.executable, "-m", "training", "run", "--hosts", args.hosts,
                                            "--master-addr", args.master_addr, "--run", str(work / "hosts"),
                                            *(["--iface", args.iface] if args.iface else []), *hyper], work / "hosts"))
    results = [measure(name, argv, run) for name, argv, run in arms]
    base_rate = results[0]["rate"]
    print(f"{'arm':>14} {'wall s':>7} {'samples':>8} {'samples/s':>10} {'ratio':>6} {'last objective':>15}")
    for r in results:
        print(f"{r['arm']:>14} {r['wall_s']:7.1f} {r['samples']:8d} {r['rate']:10.1f} {r['rate'] / base_rate:6.2f} "
              f"{r['last']:15.6f}")
    if not args.hosts:
        print("the hosts arm needs --hosts and --master-addr (docs/multi-node.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
