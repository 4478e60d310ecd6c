"""Signal and text measures of one clip: pure numpy (and jiwer for the error rates)."""
from __future__ import annotations

import re

import numpy as np

WINDOW_S = 0.02          # 20 ms analysis windows
SILENCE_RMS = 0.01       # -40 dBFS: below it a window counts as silence
FULL_SCALE = 0.999       # a sample at or above it (absolute) counts as clipped
SNR_CEILING_DB = 80.0    # an SNR estimate stops here (digital silence has no noise to measure)


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


_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
         "seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_NUMBER = re.compile(r"\d+(?:,\d{3})*")


def say_number(n: int) -> str:
    """An integer below a billion in English words, as a recognizer writes what it hears ("twenty one")."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    for size, word in ((1_000_000, "million"), (1000, "thousand"), (100, "hundred")):
        if n >= size:
            rest = n % size
            return f"{say_number(n // size)} {word}" + (f" {say_number(rest)}" if rest else "")
    raise AssertionError(n)  # pragma: no cover


def _spell(match: re.Match) -> str:
    n = int(match.group().replace(",", ""))
    return f" {say_number(n)} " if n < 1_000_000_000 else match.group()


def normalize(text: str) -> str:
    """Lower case, numbers in words ("12" and "twelve" are the same word to a listener), punctuation
    dropped, spaces collapsed: how both sides are compared for WER/CER."""
    return " ".join(_PUNCT.sub(" ", _NUMBER.sub(_spell, text.lower())).split())


def error_rates(reference: str, hypothesis: str) -> tuple[float, float]:
    """(WER, CER) of a transcript against the text, both normalized. An empty transcript is 1.0 each."""
    import jiwer

    ref, hyp = normalize(reference), normalize(hypothesis)
    if not ref:
        raise ValueError("the reference text is empty")
    if not hyp:
        return 1.0, 1.0
    return float(jiwer.wer(ref, hyp)), float(jiwer.cer(ref, hyp))


def loudness_lufs(audio: np.ndarray, rate: int) -> float | None:
    """Integrated loudness (ITU-R BS.1770-4, gated) in LUFS, through pyloudnorm; None for a clip shorter than
    one 400 ms gating block or with nothing above the absolute gate (-70 LUFS)."""
    import pyloudnorm

    audio = np.asarray(audio, dtype=np.float64)
    if len(audio) < int(0.4 * rate) + 1:
        return None
    value = pyloudnorm.Meter(rate).integrated_loudness(audio)
    return float(value) if np.isfinite(value) else None


def snr_db(audio: np.ndarray, rate: int, speech: list[tuple[float, float]]) -> float | None:
    """An SNR estimate: the mean power of the 20 ms windows inside speech (from a VAD) against the noise
    floor, the 10th percentile of all windows' power (pauses between words and around the speech). None
    when there is no speech to measure. Digital silence between words reads as SNR_CEILING_DB."""
    n = max(1, int(WINDOW_S * rate))
    power = window_rms(audio, rate).astype(np.float64) ** 2
    if not len(power) or not speech:
        return None
    inside = np.zeros(len(power), dtype=bool)
    for start, end in speech:
        inside[int(start * rate) // n: int(np.ceil(end * rate / n))] = True
    if not inside.any():
        return None
    noise = float(np.percentile(power, 10))
    signal = float(power[inside].mean()) - noise
    if signal <= 0:
        return 0.0
    if noise <= signal * 10 ** (-SNR_CEILING_DB / 10):
        return SNR_CEILING_DB
    return float(10 * np.log10(signal / noise))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def robust_centre(vectors: list[np.ndarray], spread: float = 3.0, floor: float = 0.02) -> tuple[np.ndarray, list[int]]:
    """The unit direction most clips share, and the indices it was taken from. Starts from the element-wise
    median (which one odd vector cannot drag), then averages the vectors whose cosine to it is within
    `spread` robust deviations (MAD, at least `floor`) of the median cosine: a second speaker, music or a
    jingle falls outside and leaves the centre where the corpus voice is."""
    matrix = np.asarray([v / (np.linalg.norm(v) + 1e-12) for v in vectors], dtype=np.float64)
    start = np.median(matrix, axis=0)
    start /= np.linalg.norm(start) + 1e-12
    sims = matrix @ start
    middle = float(np.median(sims))
    mad = max(1.4826 * float(np.median(np.abs(sims - middle))), floor)
    core = [i for i, s in enumerate(sims) if s >= middle - spread * mad]
    centre = matrix[core].mean(axis=0)
    return centre / (np.linalg.norm(centre) + 1e-12), core


def resample(audio: np.ndarray, src: int, dst: int) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    if src == dst or not len(audio):
        return audio
    import soxr

    return soxr.resample(audio, src, dst, quality="HQ").astype(np.float32)
