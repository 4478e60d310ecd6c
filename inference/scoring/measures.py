"""Signal and text measures of one clip: pure numpy (and jiwer for the error rates)."""
from __future__ import annotations

import re

import numpy as np

WINDOW_S = 0.02          # 20 ms analysis windows
SILENCE_RMS = 0.01       # -40 dBFS: below it a window counts as silence
FULL_SCALE = 0.999       # a sample at or above it (absolute) counts as clipped


def window_rms(audio: np.ndarray, rate: int) -> np.ndarray:
    n = max(1, int(WINDOW_S * rate))
    k = len(audio) // n
    if k == 0:
        return np.zeros(0, dtype=np.float32)
    frames = np.asarray(audio[: k * n], dtype=np.float32).reshape(k, n)
    return np.sqrt((frames ** 2).mean(axis=1))


def silence_ratio(audio: np.ndarray, rate: int) -> float:
    rms = window_rms(audio, rate)
    return float((rms < SILENCE_RMS).mean()) if len(rms) else 1.0


def speech_seconds(audio: np.ndarray, rate: int) -> float:
    """The span from the first to the last window above the silence level (leading and trailing silence
    do not count; pauses inside do)."""
    loud = np.flatnonzero(window_rms(audio, rate) >= SILENCE_RMS)
    return float((loud[-1] - loud[0] + 1) * WINDOW_S) if len(loud) else 0.0


def clipping(audio: np.ndarray) -> float:
    """Fraction of samples at full scale."""
    return float((np.abs(np.asarray(audio)) >= FULL_SCALE).mean()) if len(audio) else 0.0


def spoken_chars(text: str) -> int:
    """Letters and digits: what a speaking rate counts (punctuation and spaces take no time of their own)."""
    return sum(1 for c in text if c.isalnum())


def chars_per_second(text: str, audio: np.ndarray, rate: int) -> float | None:
    seconds = speech_seconds(audio, rate)
    return spoken_chars(text) / seconds if seconds > 0 else None


_PUNCT = re.compile(r"[^\w\s']+")


def normalize(text: str) -> str:
    """Lower case, punctuation dropped, spaces collapsed: how both sides are compared for WER/CER."""
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


def error_rates(reference: str, hypothesis: str) -> tuple[float, float]:
    """(WER, CER) of a transcript against the text, both normalized. An empty transcript is 1.0 each."""
    import jiwer

    ref, hyp = normalize(reference), normalize(hypothesis)
    if not ref:
        raise ValueError("the reference text is empty")
    if not hyp:
        return 1.0, 1.0
    return float(jiwer.wer(ref, hyp)), float(jiwer.cer(ref, hyp))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def resample(audio: np.ndarray, src: int, dst: int) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    if src == dst or not len(audio):
        return audio
    import soxr

    return soxr.resample(audio, src, dst, quality="HQ").astype(np.float32)
