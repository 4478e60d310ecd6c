"""What the corpus audit costs (docs/benchmarks.md, "Corpus audit"): seconds of CPU wall time per minute of
audio, on festival's SLT voice, for each part of `milo-train prepare`'s audit, against the part prepare
did before the audit in the same run (reading and converting to 24 kHz mono: the baseline).

1. per clip, one part at a time over the same clips: read + convert (baseline), loudness (pyloudnorm),
   silero-vad, SNR, resemblyzer embedding, pocketsphinx transcript; the sum is the audit;
2. cutting a long recording (the clips joined with pauses) at VAD pauses;
3. `milo-train prepare` as a whole on the clips (audit, speech tokenizer, report) in its own process.

    .venv/bin/python bench/corpus_audit.py [--clips 24] [--repeats 2] [--quick]
"""
from __future__ import annotations

import argparse
import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SENTENCES = [
    "The birch canoe slid on the smooth planks.", "Glue the sheet to the dark blue background.",
    "It is easy to tell the depth of a well.", "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.", "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.", "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.", "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.", "A rod is used to catch pink salmon.",
]


def env() -> dict:
    return {**os.environ, "PYTHONPATH": f"{ROOT}:{os.environ.get('PYTHONPATH', '')}".rstrip(":"),
            "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def make_corpus(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        wav = folder / f"clip_{i:03d}.wav"
        text = SENTENCES[i % len(SENTENCES)]
        if i >= len(SENTENCES):
            text = f"{text[:-1]} again, number {i}."
        (folder / f"clip_{i:03d}.txt").write_text(text + "\n")
        subprocess.run(["text2wave", "-eval", "(voice_cmu_us_slt_arctic_hts)", str(wav.with_suffix(".txt")), "-o",
                        str(wav)], check=True, capture_output=True, timeout=60)
        out.append(wav)
    return out


def timed(fn, items) -> float:
    t = time.perf_counter()
    for item in items:
        fn(item)
    return time.perf_counter() - t


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=int, default=24)
    p.add_argument("--repeats", type=int, default=2, help="each part is timed this often; the best counts")
    p.add_argument("--quick", action="store_true", help="the smallest setting, for tests/foundation/test_bench.py: proves the benchmark runs, measures nothing")
    args = p.parse_args()
    if args.quick:
        args.clips, args.repeats = 2, 1

    import torch

    from contract.audio import SAMPLE_RATE
    from inference.scoring import measures as m
    from inference.scoring.audit import Auditor, plan_cuts
    from inference.scoring.models import RATE
    from training.audio import read_audio, to_24k_mono

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    tmp = Path(tempfile.mkdtemp(prefix="milo-audit-bench-"))
    atexit.register(shutil.rmtree, tmp, True)
    wavs = make_corpus(tmp / "corpus", args.clips)
    auditor = Auditor()
    mono = {w: to_24k_mono(*read_audio(w)[:2]) for w in wavs}
    a16 = {w: m.resample(mono[w], SAMPLE_RATE, RATE) for w in wavs}
    minutes = sum(len(x) for x in mono.values()) / SAMPLE_RATE / 60
    # load every model once, outside the timings (prepare pays this once per corpus: timed in part 3)
    auditor.vad.speech(a16[wavs[0]])
    auditor.speaker.embed(a16[wavs[0]])
    auditor.asr.transcribe(a16[wavs[0]])
    speech = {w: auditor.vad.speech(a16[w]) for w in wavs}
    parts = {
        "read + convert (baseline)": lambda w: to_24k_mono(*read_audio(w)[:2]),
        "loudness (BS.1770)": lambda w: m.loudness_lufs(mono[w], SAMPLE_RATE),
        "resample to 16 kHz": lambda w: m.resample(mono[w], SAMPLE_RATE, RATE),
        "silero-vad": lambda w: auditor.vad.speech(a16[w]),
        "SNR": lambda w: m.snr_db(a16[w], RATE, speech[w]),
        "resemblyzer embedding": lambda w: auditor.speaker.embed(a16[w]),
        "pocketsphinx transcript": lambda w: auditor.asr.transcribe(a16[w]),
    }
    print(f"{args.clips} SLT clips, {minutes:.2f} min of audio, torch threads {torch.get_num_threads()}, "
          f"best of {args.repeats}")
    best = {name: min(timed(fn, wavs) for _ in range(args.repeats)) for name, fn in parts.items()}
    base = best["read + convert (baseline)"] / minutes
    audit = sum(v for k, v in best.items() if k != "read + convert (baseline)") / minutes
    print(f"{'part':28s} {'s per min of audio':>19s} {'x baseline':>11s}")
    for name, seconds in best.items():
        print(f"{name:28s} {seconds / minutes:19.2f} {seconds / minutes / base:11.1f}")
    print(f"{'audit (all but baseline)':28s} {audit:19.2f} {audit / base:11.1f}")

    # 2. a long recording: the clips joined with 0.8 s pauses, cut at VAD pauses
    gap = np.zeros(int(0.8 * SAMPLE_RATE), np.float32)
    episode = np.concatenate([x for w in wavs for x in (mono[w], gap)])
    ep_min = len(episode) / SAMPLE_RATE / 60
    t = time.perf_counter()
    ep16 = m.resample(episode, SAMPLE_RATE, RATE)
    cuts, left_out = plan_cuts(auditor.vad.speech(ep16), len(episode) / SAMPLE_RATE)
    cut_s = time.perf_counter() - t
    print(f"long recording: {ep_min:.2f} min cut into {len(cuts)} clips ({left_out:g} s of speech left out) in "
          f"{cut_s:.2f} s: {cut_s / ep_min:.2f} s per min of audio")

    # 3. prepare as a whole, in its own process (models loaded, tokenizer, report)
    subprocess.run([sys.executable, "-m", "training", "tiny-model", str(tmp / "base")], check=True, env=env(),
                   capture_output=True)
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "training", "prepare", str(tmp / "corpus"), "--base", str(tmp / "base"),
                           "--out", str(tmp / "data" / "train.jsonl"), "--device", "cpu"], env=env(),
                          capture_output=True, text=True)
    whole = time.perf_counter() - t
    if proc.returncode:
        print(proc.stderr[-2000:])
        return 1
    flagged = [x for x in proc.stdout.splitlines() if x.strip().startswith("flagged ")]
    print(f"milo-train prepare (tiny tokenizer), whole process: {whole:.1f} s, {whole / minutes:.2f} s per min of "
          f"audio; {len(flagged)} clip(s) flagged")
    for line in flagged:
        print("  " + line.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
