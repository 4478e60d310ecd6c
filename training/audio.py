"""Reading audio the way the 12 Hz codec and the speaker encoder want it: 24 kHz, mono, float32."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from contract.audio import SAMPLE_RATE


class AudioError(Exception):
    """An audio file that cannot be read (the message says why)."""


def read_audio(path: str | Path) -> tuple[np.ndarray, int, int]:
    """(samples [n, channels] float32, sample rate, channels) of any file soundfile can read (WAV, FLAC,
    OGG, MP3 ... at any bit depth); other formats go through librosa's audioread fallback."""
    import soundfile as sf

    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except sf.LibsndfileError as exc:
        try:
            import warnings

            import librosa

            with warnings.catch_warnings():  # librosa warns on every audioread fallback
                warnings.simplefilter("ignore")
                mono, sr = librosa.load(str(path), sr=None, mono=False)
        except Exception:
            from contract.corpus import not_audio

            raise AudioError(not_audio(Path(path), exc)) from None
        data = np.atleast_2d(mono).T.astype(np.float32)
    except OSError as exc:
        raise AudioError(f"cannot read ({exc.strerror or exc})") from None
    declared = wav_declared_frames(path)
    if declared is not None and declared > len(data):
        raise AudioError(f"truncated: the file ends after {len(data) / sr:.2f} s of the {declared / sr:.2f} s its header "
                         "declares (an interrupted copy?)")
    return data, int(sr), int(data.shape[1])


def wav_declared_frames(path: str | Path) -> int | None:
    """The frame count a RIFF/WAVE header declares for its data chunk, or None (not a WAV, or a streamed
    one whose header leaves the size open). libsndfile reads a truncated WAV without a word and returns
    the frames that are there; this is how a cut-off copy is told apart."""
    import struct

    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            block_align = None
            while True:
                chunk = f.read(8)
                if len(chunk) < 8:
                    return None
                cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if cid == b"fmt ":
                    fmt = f.read(size + (size & 1))
                    block_align = struct.unpack("<H", fmt[12:14])[0] if len(fmt) >= 14 else None
                elif cid == b"data":
                    if not block_align or size in (0, 0xFFFFFFFF):
                        return None
                    return size // block_align
                else:
                    f.seek(size + (size & 1), 1)
    except OSError:
        return None


def to_24k_mono(data: np.ndarray, sr: int) -> np.ndarray:
    """Average the channels and resample to 24 kHz (soxr, high quality)."""
    mono = data.mean(axis=1) if data.ndim == 2 else data
    mono = np.ascontiguousarray(mono, dtype=np.float32)
    if sr != SAMPLE_RATE and mono.size:
        import soxr

        mono = soxr.resample(mono, sr, SAMPLE_RATE, quality="HQ").astype(np.float32)
    return mono


def load_24k_mono(path: str | Path) -> np.ndarray:
    data, sr, _ = read_audio(path)
    return to_24k_mono(data, sr)
