"""The player's start policy with real sound and a real clock: a slow producer (a tone made at 0.6x real
time in 0.24 s chunks, as the engine streams on a slow machine) through `listen.Player` into a private
PulseAudio null sink, recorded from its monitor. The baseline, measured in the same run, is the same
Player told nothing about the clip's length (expected_s None: it starts with the first chunk, as the
player did before the policy).

    .venv/bin/python bench/start_policy.py [--rate 0.6] [--seconds 3] [--runs 2] [--quick]

Prints, per arm, the start delay, rebuffers, and the silent 20 ms windows inside the heard tone; then
the ratio of gaps, baseline / policy. Needs pulseaudio, pactl and parec (scripts/bootstrap.sh installs
them). Timings depend on the machine's load: that is why this is a benchmark and not a test
(tests/audition/test_start_policy.py checks the policy itself with a scripted clock).
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from contract.audio import SAMPLE_RATE  # noqa: E402

CHUNK = 3 * 1920  # 3 codec frames: 0.24 s
SINK = "milo_bench"


def start_pulse(runtime: Path) -> dict:
    runtime.mkdir(parents=True, exist_ok=True)
    runtime.chmod(0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
    env.pop("PULSE_SERVER", None)
    env.pop("PULSE_SINK", None)
    subprocess.run(["pulseaudio", "--daemonize=yes", "--exit-idle-time=-1", "-n",
                    "--load=module-native-protocol-unix", f"--load=module-null-sink sink_name={SINK}"],
                   env=env, check=True, timeout=30, capture_output=True)
    env["PULSE_SERVER"] = f"unix:{runtime}/pulse/native"
    deadline = time.monotonic() + 15
    while SINK not in subprocess.run(["pactl", "list", "short", "sinks"], env=env, capture_output=True,
                                     text=True).stdout:
        if time.monotonic() > deadline:
            sys.exit("bench: the private PulseAudio did not come up")
        time.sleep(0.1)
    return env


def silent_windows_inside(audio: np.ndarray, window: int = 480, threshold: float = 0.02) -> tuple[int, float]:
    n = len(audio) // window
    rms = np.sqrt((audio[: n * window].reshape(n, window) ** 2).mean(axis=1))
    loud = np.flatnonzero(rms > threshold)
    if len(loud) == 0:
        return 0, 0.0
    inside = rms[loud[0]:loud[-1] + 1]
    return int((inside <= threshold).sum()), (loud[-1] - loud[0] + 1) * window / SAMPLE_RATE


def one_run(env: dict, out: Path, rate: float, seconds: float, policy: bool) -> dict:
    from contract.listen import Player

    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    tone = (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
    events: list[dict] = []
    finished = threading.Event()

    def on_event(e: dict) -> None:
        events.append(e)
        if e.get("state") in ("finished", "stopped", "device_lost", "no_device"):
            finished.set()

    with open(out, "wb") as f:
        rec = subprocess.Popen(["parec", "-d", f"{SINK}.monitor", f"--rate={SAMPLE_RATE}", "--channels=1",
                                "--format=s16le", "--raw", "--latency-msec=20"], stdout=f, env=env,
                               stderr=subprocess.DEVNULL)
        while out.stat().st_size == 0:
            time.sleep(0.02)
        player = Player(on_event=on_event)
        try:
            player.start("bench", expected_s=seconds if policy else None)
            time.sleep(0.1)  # the producer's prefill
            for pos in range(0, len(tone), CHUNK):
                time.sleep(CHUNK / SAMPLE_RATE / rate)  # the producer's pace, which is what is measured
                player.feed(tone[pos:pos + CHUNK])
            player.end()
            finished.wait(seconds / rate + 30)
            played_until = time.monotonic() + 0.8  # the sink's own buffer plays out
            while time.monotonic() < played_until:
                time.sleep(0.05)
        finally:
            player.close()
            rec.send_signal(signal.SIGINT)
            rec.wait(10)
    heard = np.fromfile(out, dtype="<i2").astype(np.float32) / 32768.0
    silent, span = silent_windows_inside(heard)
    playing = next((e for e in events if e.get("state") == "playing"), {})
    done = next((e for e in events if e.get("state") == "finished"), {})
    return {"start_delay_s": playing.get("start_delay_s"), "rebuffers": done.get("rebuffers"),
            "silent_windows": silent, "span_s": round(span, 2)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=0.6, help="the producer's speed, audio seconds per second")
    p.add_argument("--seconds", type=float, default=3.0, help="length of the tone")
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="the smallest setting, for tests/foundation/test_bench.py: proves the benchmark runs, measures nothing")
    args = p.parse_args(argv)
    if args.quick:
        args.seconds, args.runs = 1.0, 1
    with tempfile.TemporaryDirectory() as tmp:
        env = start_pulse(Path(tmp) / "pulse")
        os.environ.update({k: env[k] for k in ("XDG_RUNTIME_DIR", "PULSE_SERVER")})
        try:
            rows = {"baseline (starts with the first chunk)": [], "start policy": []}
            for i in range(args.runs):  # alternate, so a neighbour's burst on the cores hits both arms
                rows["baseline (starts with the first chunk)"].append(
                    one_run(env, Path(tmp) / f"base{i}.raw", args.rate, args.seconds, policy=False))
                rows["start policy"].append(one_run(env, Path(tmp) / f"policy{i}.raw", args.rate, args.seconds,
                                                    policy=True))
        finally:
            pid = (Path(tmp) / "pulse" / "pulse" / "pid")
            if pid.exists():
                os.kill(int(pid.read_text().split()[0]), signal.SIGTERM)
    print(f"{args.seconds:.1f} s tone produced at {args.rate}x real time in 0.24 s chunks, {args.runs} run(s) each")
    print(f"{'arm':42} {'start delay s':>14} {'rebuffers':>10} {'silent 20 ms':>13} {'span s':>7}")
    for name, runs in rows.items():
        for r in runs:
            print(f"{name:42} {r['start_delay_s'] if r['start_delay_s'] is not None else '-':>14} "
                  f"{r['rebuffers'] if r['rebuffers'] is not None else '-':>10} {r['silent_windows']:>13} "
                  f"{r['span_s']:>7}")
    base = np.median([r["silent_windows"] for r in rows["baseline (starts with the first chunk)"]])
    ours = np.median([r["silent_windows"] for r in rows["start policy"]])
    print(f"silent windows inside the tone, median: baseline {base:.0f}, policy {ours:.0f} "
          f"({'no gaps' if ours == 0 else f'{base / ours:.1f}x fewer'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
