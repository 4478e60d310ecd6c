"""What the scorer's pocketsphinx costs with its beam width bounded (inference/scoring/models.py
SPHINX_MAX_HMM_PER_FRAME) against pocketsphinx's default width, both in this run (docs/benchmarks.md,
"Recognizer"), on the two kinds of audio it hears:

1. babble: the tiny random-weight model cloning a voice zero-shot, each default score prompt cut at its
   frame budget, as an early checkpoint sounds (and as every checkpoint of the tiny model sounds);
2. speech: festival's SLT voice (a real speaker's HTS voice) reading sentences, as in a corpus audit.

For each: seconds of decoding per second of audio with each width, the ratio, and whether the bounded
search gave the same transcript as the default for each clip (with each one's WER on speech).

    .venv/bin/python bench/recognizer.py [--sentences 24] [--repeats 2] [--quick]
"""
from __future__ import annotations

import argparse
import atexit
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from corpus_audit import make_corpus  # noqa: E402  (bench/ is this script's folder)


def babble(folder: Path, ref_wav: Path, prompts) -> list[np.ndarray]:
    """The tiny Base model's zero-shot clone of `ref_wav` saying each prompt, to its frame budget, at 16 kHz."""
    import torch

    from contract import scores as sc
    from contract.audio import SAMPLE_RATE
    from inference.qwen import import_qwen_tts
    from inference.scoring import measures as m
    from inference.scoring.models import RATE
    from training.audio import read_audio, to_24k_mono
    from training.tiny_model import build_tiny_model

    base = build_tiny_model(folder / "tiny-base", seed=0)
    tts = import_qwen_tts().Qwen3TTSModel.from_pretrained(str(base), device_map="cpu", dtype=torch.float32)
    ref = to_24k_mono(*read_audio(ref_wav)[:2])
    clips = []
    for text, seed in prompts:
        torch.manual_seed(int(seed))
        wavs, rate = tts.generate_voice_clone(text, language="auto", ref_audio=(ref, SAMPLE_RATE),
                                              x_vector_only_mode=True,
                                              max_new_tokens=sc.score_bound(text, None)["frames"])
        clips.append(m.resample(np.asarray(wavs[0], dtype=np.float32), int(rate or SAMPLE_RATE), RATE))
    return clips


def decode_all(recognizer, clips: list[np.ndarray], repeats: int) -> tuple[float, list[str]]:
    """The best of `repeats` wall times for transcribing every clip, and the transcripts."""
    best, said = float("inf"), []
    for _ in range(repeats):
        t = time.perf_counter()
        said = [recognizer.transcribe(c) for c in clips]
        best = min(best, time.perf_counter() - t)
    return best, said


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sentences", type=int, default=24, help="festival SLT sentences (bench/corpus_audit.py's)")
    p.add_argument("--repeats", type=int, default=2, help="each width decodes every clip this often; the best counts")
    p.add_argument("--quick", action="store_true", help="the smallest setting, for tests/foundation/test_bench.py: proves the benchmark runs, measures nothing")
    args = p.parse_args()
    from contract import scores as sc
    prompts = sc.DEFAULT_PROMPTS
    if args.quick:
        args.sentences, args.repeats, prompts = 1, 1, sc.DEFAULT_PROMPTS[:1]

    from pocketsphinx import Decoder

    from inference.scoring import measures as m
    from inference.scoring.models import RATE, SPHINX_MAX_HMM_PER_FRAME, Recognizer
    from training.audio import read_audio, to_24k_mono

    tmp = Path(tempfile.mkdtemp(prefix="milo-recognizer-bench-"))
    atexit.register(shutil.rmtree, tmp, True)
    wavs = make_corpus(tmp / "corpus", args.sentences)
    texts = [w.with_suffix(".txt").read_text().strip() for w in wavs]
    speech = [m.resample(to_24k_mono(*read_audio(w)[:2]), 24000, RATE) for w in wavs]
    noise = babble(tmp, wavs[0], prompts)

    bounded = Recognizer()                               # what the scorer and the audit use
    default = Recognizer()
    default._model = Decoder(samprate=RATE, loglevel="FATAL")   # pocketsphinx's own widths
    for recognizer in (bounded, default):   # loaded outside the timings
        recognizer.transcribe(speech[0])

    print(f"pocketsphinx, at most {SPHINX_MAX_HMM_PER_FRAME} HMMs a frame against its default (30000); "
          f"best of {args.repeats}; load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores")
    print(f"{'audio':34s} {'clips':>5s} {'s audio':>8s} {'default s/s':>12s} {'bounded s/s':>12s} {'ratio':>6s} "
          f"{'same text':>10s}")
    for name, clips in ((f"babble (tiny model, {len(prompts)} prompts)", noise),
                        (f"speech (festival SLT, {len(speech)} sentences)", speech)):
        seconds = sum(len(c) for c in clips) / RATE
        t_default, said_default = decode_all(default, clips, args.repeats)
        t_bounded, said_bounded = decode_all(bounded, clips, args.repeats)
        same = sum(a == b for a, b in zip(said_default, said_bounded))
        print(f"{name:34s} {len(clips):5d} {seconds:8.1f} {t_default / seconds:12.3f} {t_bounded / seconds:12.3f} "
              f"{t_default / t_bounded:5.2f}x {same:>4d}/{len(clips)}")
        if clips is speech:
            wer_default = np.mean([m.error_rates(t, s)[0] for t, s in zip(texts, said_default)])
            wer_bounded = np.mean([m.error_rates(t, s)[0] for t, s in zip(texts, said_bounded)])
            print(f"{'':34s} mean WER default {wer_default:.3f}, bounded {wer_bounded:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
