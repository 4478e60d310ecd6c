"""The demo workspace's synthetic corpus: speech-like clips (voiced syllables with formants and pauses)
with their transcripts, made from a seed with numpy alone. The dashboard writes it into a new demo
workspace; the benchmarks and tests use the same clips.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from contract.audio import SAMPLE_RATE

SPEAKER = "milo_demo"
SENTENCES = [
    "Hello, this is a demo voice.",
    "The quick brown fox jumps over the lazy dog.",
    "Training runs on the Spark overnight.",
    "Every checkpoint deserves a listen.",
    "Stop the run, then resume it tomorrow.",
    "Loss is falling on all sixteen layers.",
    "This sentence is short.",
    "We keep the best epoch and drop the rest.",
    "Good morning from the terminal.",
    "Speak clearly and not too fast.",
    "A small corpus for a tiny model.",
    "The dashboard shows the GPU temperature.",
    "One more clip for the validation split.",
    "Audio at twenty four kilohertz, mono.",
    "Nothing is lost when the link drops.",
    "Milo says goodbye for now.",
]
# (F1, F2) of a few vowels, Hz: the synthetic "syllables" cycle through them.
VOWELS = [(730, 1090), (270, 2290), (530, 1840), (570, 840), (300, 870), (660, 1720)]


def synth_clip(text: str, rng: np.random.Generator, f0: float = 130.0) -> np.ndarray:
    """A speech-like clip (voiced syllables with formants and pauses), 1-3 s, float32 mono at 24 kHz."""
    syllables = max(3, min(11, len(text) // 5))
    pieces = [np.zeros(int(0.1 * SAMPLE_RATE), np.float32)]
    for i in range(syllables):
        dur = rng.uniform(0.14, 0.22)
        n = int(dur * SAMPLE_RATE)
        t = np.arange(n) / SAMPLE_RATE
        pitch = f0 * (1 + 0.08 * np.sin(2 * np.pi * rng.uniform(1, 3) * t)) * (1.1 - 0.2 * i / syllables)
        phase = 2 * np.pi * np.cumsum(pitch) / SAMPLE_RATE
        f1, f2 = VOWELS[int(rng.integers(len(VOWELS)))]
        wave = np.zeros(n)
        for h in range(1, 30):
            freq = pitch * h
            gain = np.exp(-((freq - f1) / 120) ** 2) + 0.6 * np.exp(-((freq - f2) / 180) ** 2) + 0.02 / h
            wave += gain * np.sin(h * phase)
        envelope = np.sin(np.pi * np.arange(n) / n) ** 0.6
        pieces.append((wave * envelope).astype(np.float32))
        pieces.append(np.zeros(int(rng.uniform(0.03, 0.08) * SAMPLE_RATE), np.float32))
    pieces.append(np.zeros(int(0.1 * SAMPLE_RATE), np.float32))
    audio = np.concatenate(pieces)
    audio += rng.normal(0, 0.003, audio.shape).astype(np.float32)
    audio *= 0.5 / np.abs(audio).max()
    return audio[: 3 * SAMPLE_RATE].astype(np.float32)


def write_corpus(folder: Path, seed: int = 0) -> list[Path]:
    """Write clip_NN.wav + clip_NN.txt for each demo sentence."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = []
    for i, text in enumerate(SENTENCES):
        wav = folder / f"clip_{i:02d}.wav"
        sf.write(wav, synth_clip(text, rng), SAMPLE_RATE, subtype="PCM_16")
        (folder / f"clip_{i:02d}.txt").write_text(text + "\n", encoding="utf-8")
        out.append(wav)
    return out
