"""What checking a take costs (docs/benchmarks.md, "Recording"): seconds from a take's end to its checks, on
festival's SLT voice, for takes of about 3, 10 and 14 s, against the corpus audit's own per-clip measures of
the same take in the same run (the baseline: the same models, as `milo-train prepare` runs them). Target:
under 2 s for a 10 s take on 2 cores, so the speaker is not kept waiting. Also the auto-stop's decision
latency on the same speech fed in 50 ms level blocks, as the microphones deliver them.

    .venv/bin/python bench/record_checks.py [--repeats 3] [--quick]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SENTENCES = ["Check the fuse before you touch the wires.", "The train to the coast leaves at nine in the morning.",
             "Please remind me to call my sister tomorrow.", "It will rain this afternoon, so take an umbrella.",
             "The soup needs another pinch of salt and some pepper.", "Turn left at the bakery and walk two more blocks."]


def speak(text: str, folder: Path, i: int) -> tuple[np.ndarray, int]:
    import subprocess

    import soundfile as sf

    txt, wav = folder / f"s{i}.txt", folder / f"s{i}.wav"
    txt.write_text(text + "\n")
    subprocess.run(["text2wave", "-eval", "(voice_cmu_us_slt_arctic_hts)", str(txt), "-o", str(wav)], check=True,
                   capture_output=True)
    return sf.read(wav, dtype="float32")


def take_of(parts: list[np.ndarray], rate: int) -> np.ndarray:
    pause = np.zeros(int(0.3 * rate), dtype=np.float32)
    body = np.concatenate([np.concatenate([p, pause]) for p in parts])
    tail = np.zeros(int(0.7 * rate), dtype=np.float32)   # what the auto-stop leaves after the speech
    x = np.concatenate([pause, body, tail])
    return x + np.random.default_rng(0).standard_normal(len(x)).astype(np.float32) * 10 ** (-70 / 20)


def autostop_latency(take: np.ndarray, rate: int, silence_s: float) -> float:
    from milo_tui.recording.autostop import AutoStop

    block = rate // 20
    stop = AutoStop(-70.0, silence_s=silence_s)
    loud = None
    for k in range(len(take) // block):
        chunk = take[k * block:(k + 1) * block]
        rms = 20 * np.log10(np.sqrt(np.mean(chunk.astype(np.float64) ** 2)) + 1e-12)
        t = (k + 1) * block / rate
        if rms > -40:
            loud = t
        if stop.feed(t, rms):
            return t - loud
    return float("nan")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="one 3 s take, once (the suite's smoke run)")
    args = p.parse_args()
    import torch

    torch.set_num_threads(2)
    from contract import recording as cr
    from inference.recording.checks import Checker
    from inference.scoring.audit import Take
    from inference.scoring.measures import resample

    folder = Path(tempfile.mkdtemp(prefix="bench-record-"))
    spoken = [speak(t, folder, i) for i, t in enumerate(SENTENCES[: 1 if args.quick else len(SENTENCES)])]
    rate = spoken[0][1]
    audio = [a for a, _ in spoken]
    takes = {"3 s": ([audio[0]], SENTENCES[:1])}
    if not args.quick:
        takes |= {"10 s": (audio[:3], SENTENCES[:3]), "14 s": (audio[:4], SENTENCES[:4])}
    repeats = 1 if args.quick else args.repeats
    limits = {k: v for k, v in cr.record_settings().items() if k in cr.THRESHOLDS}
    checker = Checker()
    t0 = time.perf_counter()
    warm = checker.warm()
    print(f"checker: models loaded and warmed in {warm:.2f} s (once per session, while the room tone records); "
          f"{time.perf_counter() - t0:.2f} s wall")
    peers = {"embeddings": [], "paces": []}
    for _ in range(6):   # a session's worth of kept takes to compare the voice and the pace with
        r = checker.check(take_of([audio[0]], rate), rate, SENTENCES[0], room={"rms_dbfs": -70.0}, peers=peers,
                          limits=limits, pad=0.15)
        peers["embeddings"].append(r["embedding"])
        peers["paces"].append(r["pace"])
    print(f"{'take':>6} {'length':>8} {'checks':>8} {'audit (baseline)':>17} {'ratio':>6} {'flags':>6}")
    for name, (parts, texts) in takes.items():
        x = take_of(parts, rate)
        text = " ".join(texts)
        checks, audits, flags = [], [], []
        for _ in range(repeats):
            t = time.perf_counter()
            r = checker.check(x, rate, text, room={"rms_dbfs": -70.0}, peers=peers, limits=limits, pad=0.15,
                              out=folder / "trimmed.wav")
            checks.append(time.perf_counter() - t)
            flags.append(len(r["flags"]))
            t = time.perf_counter()
            checker.auditor.measure(Take("bench", resample(x, rate, 24000), text=text, source=x))
            audits.append(time.perf_counter() - t)
        c, a = statistics.median(checks), statistics.median(audits)
        print(f"{name:>6} {len(x) / rate:7.1f}s {c:7.2f}s {a:16.2f}s {c / a:6.2f} {max(flags):6d}")
    for silence in (0.7,):
        lat = autostop_latency(take_of(audio[:1], rate), rate, silence)
        print(f"auto-stop after {silence:g} s of quiet: the decision comes {lat:.2f} s after the last loud block "
              f"(50 ms blocks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
