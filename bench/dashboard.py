"""Dashboard benchmarks (docs/benchmarks.md, "Dashboard"):

  1. cold start to first frame of milo-tui against a bare Textual app, measured in the same run (ratio);
  2. resident memory, idle and after loading a large run;
  3. time to load and show a 1,000,000-line metrics.jsonl (from the app's start to the frame whose chart
     ends at step 1,000,000);
  4. CPU use while a run appends 10 step lines (and 10 log lines) a second.

Every measurement runs in a fresh child process (Textual's headless driver: everything is computed and
composited, nothing is written to a terminal). Run from the repository root:

    python bench/dashboard.py [--repeat 5] [--follow-seconds 30] [--work /tmp/milo-bench] [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINES = 1_000_000
BASE = "/models/Qwen3-TTS-12Hz-1.7B-Base"


# ----------------------------------------------------------------------------------------- the children


def _report(**fields) -> None:
    print("BENCH " + json.dumps(fields), flush=True)


def child_bare() -> None:
    from textual.app import App
    from textual.widgets import Static

    class Bare(App):
        def compose(self):
            yield Static("hello")

        def on_ready(self) -> None:
            _report(ready=time.time())
            self.exit()

    Bare().run(headless=True, size=(100, 30))


def _milo_app(checkpoints: Path):
    from milo_tui.app import MiloApp
    from milo_tui.config import Settings

    return MiloApp, Settings(checkpoints=checkpoints, base_model=Path(BASE))


def child_milo(checkpoints: Path) -> None:
    MiloApp, settings = _milo_app(checkpoints)

    class Bench(MiloApp):
        def on_ready(self) -> None:
            _report(ready=time.time())
            self.set_timer(1.0, self._done)  # let the watcher's first pass land

        def _done(self) -> None:
            import psutil  # not before the first frame: it is not part of the dashboard's start

            _report(rss=psutil.Process().memory_info().rss)
            self.exit()

    Bench(settings).run(headless=True, size=(100, 30))


def child_load(checkpoints: Path, last_step: int) -> None:
    """Time from the app's start to the first frame whose chart ends at `last_step`."""
    import psutil

    started = time.time()
    MiloApp, settings = _milo_app(checkpoints)
    from milo_tui.widgets.charts import LossChart

    class Bench(MiloApp):
        def on_ready(self) -> None:
            self.set_interval(0.01, self._check)

        def _check(self) -> None:
            try:
                chart = self.screen.query_one(LossChart)
            except Exception:
                return
            if chart.points and chart.points[-1].step == last_step:
                self.call_after_refresh(self._shown)  # the frame with it is composited next

        def _shown(self) -> None:
            if not getattr(self, "reported", False):
                self.reported = True
                _report(shown=time.time() - started, rss=psutil.Process().memory_info().rss,
                        points=len(self.run_metrics.points))
                self.exit()

    Bench(settings).run(headless=True, size=(100, 30))


def child_follow(checkpoints: Path, seconds: float) -> None:
    import psutil

    MiloApp, settings = _milo_app(checkpoints)

    class Bench(MiloApp):
        def on_ready(self) -> None:
            _report(ready=time.time())
            self.set_timer(seconds + 10, self.exit)

    Bench(settings).run(headless=True, size=(100, 30))
    _report(rss=psutil.Process().memory_info().rss)


# ----------------------------------------------------------------------------------------- the parent


def _child(mode: str, *args: str, timeout: float = 300) -> tuple[dict, float]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    started = time.time()
    proc = subprocess.run([sys.executable, __file__, "--child", mode, *args], capture_output=True, text=True,
                          timeout=timeout, env=env, stdin=subprocess.DEVNULL)
    out = {}
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH "):
            out.update(json.loads(line[6:]))
    if proc.returncode != 0 or not out:
        raise SystemExit(f"child {mode} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return out, started


def step_line(step: int, t: float, layers: str, per_epoch: int = 1000) -> str:
    epoch, epoch_step = (step - 1) // per_epoch + 1, (step - 1) % per_epoch + 1
    return (f'{{"v":1,"kind":"step","time":{t!r},"epoch":{epoch},"step":{step},"epoch_step":{epoch_step},'
            f'"epoch_steps":{per_epoch},"objective":{4.0 - step / 500_000:.16f},"layer_sum":{12.0 - step / 200_000:.15f},'
            f'"layers":{layers},"lr":2e-05,"grad_norm":0.8731552362442017,"samples_per_s":9.81234,'
            f'"tokens_per_s":1226.54,"memory_bytes":20401094656,"samples":2,"tokens":250,"seconds":0.2038}}\n')


def make_run(run: Path, lines: int) -> None:
    """A run folder with `lines` step records at full float precision (about 620 bytes a line) and a
    validation record per 1000 steps, written as the trainer writes them."""
    run.mkdir(parents=True, exist_ok=True)
    metrics = run / "metrics.jsonl"
    if metrics.is_file() and (run / ".complete").is_file():
        return
    rng = random.Random(0)
    variants = [json.dumps([rng.uniform(0.2, 5.0) for _ in range(16)], separators=(",", ":")) for _ in range(997)]
    t0 = time.time() - lines * 0.2
    with open(metrics, "w") as f:
        buf = []
        for step in range(1, lines + 1):
            buf.append(step_line(step, t0 + step * 0.2, variants[step % 997]))
            if step % 1000 == 0:
                buf.append(f'{{"v":1,"kind":"validation","time":{t0 + step * 0.2!r},"epoch":{step // 1000},"step":{step},'
                           f'"objective":{3.9 - step / 600_000:.16f},"layer_sum":11.5,"layers":{variants[0]},'
                           f'"samples":40,"best":true}}\n')
            if len(buf) >= 20_000:
                f.write("".join(buf))
                buf = []
        f.write("".join(buf))
    (run / "run.json").write_text(json.dumps({"base_model": BASE, "data": "/data/train.jsonl", "speaker": "milo",
                                              "hyper": {"epochs": lines // 1000}}))
    (run / "state.json").write_text(json.dumps({"status": "stopped", "epoch": lines // 1000, "step": lines}))
    (run / "train.log").write_text("stopped\n")
    (run / ".complete").write_text("")


def bench_start(work: Path, repeat: int) -> dict:
    empty = work / "empty"
    empty.mkdir(parents=True, exist_ok=True)
    bare, milo, rss = [], [], []
    _child("bare")  # warm the page cache for both
    _child("milo", str(empty))
    for _ in range(repeat):
        out, t0 = _child("bare")
        bare.append(out["ready"] - t0)
        out, t0 = _child("milo", str(empty))
        milo.append(out["ready"] - t0)
        rss.append(out["rss"])
    # medians of alternating runs: a neighbour's burst on the shared cores moves single pairs a lot
    return {"bare": statistics.median(bare), "milo": statistics.median(milo), "bare_all": bare, "milo_all": milo,
            "ratio": statistics.median(milo) / statistics.median(bare), "rss_idle": statistics.median(rss)}


def bench_load(work: Path, repeat: int, lines: int = LINES) -> dict:
    ck = work / "large"
    make_run(ck / "million", lines)
    shown, rss, points = [], [], 0
    for _ in range(repeat):
        out, _t0 = _child("load", str(ck), str(lines))
        shown.append(out["shown"])
        rss.append(out["rss"])
        points = out["points"]
    return {"shown": statistics.median(shown), "shown_all": shown, "rss_loaded": statistics.median(rss),
            "points": points, "bytes": (ck / "million" / "metrics.jsonl").stat().st_size}


def bench_follow(work: Path, seconds: float) -> dict:
    """CPU of the dashboard process while a live run appends 10 step lines and 10 log lines a second."""
    import psutil

    ck = work / "follow"
    run = ck / "live"
    if run.exists():
        import shutil

        shutil.rmtree(run)
    run.mkdir(parents=True)
    sleeper = subprocess.Popen(["sleep", str(int(seconds) + 60)], start_new_session=True)
    (run / "run.json").write_text(json.dumps({"base_model": BASE, "data": "/d.jsonl", "speaker": "m",
                                              "hyper": {"epochs": 100}}))
    (run / "state.json").write_text(json.dumps({"status": "running", "pid": sleeper.pid,
                                                "pid_start_time": psutil.Process(sleeper.pid).create_time()}))
    rng = random.Random(1)
    layers = json.dumps([rng.uniform(0.2, 5.0) for _ in range(16)], separators=(",", ":"))
    step = 0

    def append(n: int) -> None:
        nonlocal step
        with open(run / "metrics.jsonl", "a") as m, open(run / "train.log", "a") as log:
            for _ in range(n):
                step += 1
                m.write(step_line(step, time.time(), layers))
                log.write(f"epoch {step // 1000 + 1} step {step % 1000}/1000 (#{step}) objective 3.9\n")

    append(2000)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, __file__, "--child", "follow", str(ck), str(seconds)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            stdin=subprocess.DEVNULL)
    try:
        p = psutil.Process(proc.pid)
        time.sleep(4.0)  # start-up and the first read are not what this measures
        cpu0, t0 = sum(p.cpu_times()[:2]), time.monotonic()
        next_at = time.monotonic()
        while time.monotonic() - t0 < seconds:
            append(1)
            next_at += 0.1
            time.sleep(max(0.0, next_at - time.monotonic()))
        cpu1, t1 = sum(p.cpu_times()[:2]), time.monotonic()
        proc.wait(timeout=60)
    finally:
        proc.kill()
        sleeper.kill()
    return {"cpu_percent": 100 * (cpu1 - cpu0) / (t1 - t0), "seconds": t1 - t0, "lines": step}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--follow-seconds", type=float, default=30.0)
    ap.add_argument("--work", type=Path, default=Path("/tmp/milo-bench"))
    ap.add_argument("--lines", type=int, default=LINES, help="lines of the large run's metrics.jsonl")
    ap.add_argument("--quick", action="store_true", help="the smallest setting, for tests/foundation/test_bench.py: proves the benchmark runs, measures nothing")
    args = ap.parse_args()
    if args.quick:
        args.repeat, args.follow_seconds, args.lines = 1, 1.0, 2000
    if args.child:
        mode, *rest = args.child
        if mode == "bare":
            child_bare()
        elif mode == "milo":
            child_milo(Path(rest[0]))
        elif mode == "load":
            child_load(Path(rest[0]), int(rest[1]))
        elif mode == "follow":
            child_follow(Path(rest[0]), float(rest[1]))
        return 0
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}", flush=True)
    start = bench_start(args.work, args.repeat)
    print("cold start (s): bare", ", ".join(f"{x:.3f}" for x in start["bare_all"]),
          "| milo-tui", ", ".join(f"{x:.3f}" for x in start["milo_all"]), flush=True)
    load = bench_load(args.work, max(1, args.repeat // 2 + 1), args.lines)
    print(f"{args.lines:,}-line file: {load['bytes'] / 1e6:.0f} MB, shown in", ", ".join(f"{x:.2f}" for x in load["shown_all"]),
          f"s, {load['points']} points kept", flush=True)
    follow = bench_follow(args.work, args.follow_seconds)
    print(f"following: {follow['lines']} lines in all, {follow['seconds']:.0f} s measured", flush=True)
    mib = 1 << 20
    rows = [
        ("cold start to first frame, bare Textual app", f"{start['bare']:.3f} s", ""),
        ("cold start to first frame, milo-tui", f"{start['milo']:.3f} s", ""),
        ("start ratio (medians, same run)", f"{start['ratio']:.2f}", "<= 1.5"),
        ("resident memory, idle / after the 1M-line run", f"{start['rss_idle'] / mib:.0f} / {load['rss_loaded'] / mib:.0f} MiB", ""),
        (f"{args.lines:,}-line metrics.jsonl shown", f"{load['shown']:.2f} s", "<= 2 s"),
        ("CPU while following 10 lines/s", f"{follow['cpu_percent']:.1f} % of one core", "< 5 %"),
    ]
    print()
    print(f"| {'figure':<48} | {'value':<22} | target |")
    print(f"|{'-' * 50}|{'-' * 24}|--------|")
    for name, value, target in rows:
        print(f"| {name:<48} | {value:<22} | {target:<6} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
