"""Audio as it leaves the server, one encoder per `response_format`, each fed chunk by chunk so the
bytes go out as the audio is made (docs/serving.md, "Formats").

wav:  a RIFF header whose two size fields are 0xFFFFFFFF (length unknown: what OpenAI's streaming WAV
      carries; players read to the end of the stream), then 16-bit PCM.
pcm:  raw 24 kHz 16-bit little-endian mono, no header (OpenAI's `pcm`).
flac: libsndfile's FLAC, frames as they are encoded; its header says "length unknown" (valid FLAC:
      ffmpeg, sox and browsers read it; libsndfile itself wants a length, so it cannot).
mp3:  LAME (lameenc), 64 kbit/s, frames as they are encoded, no header frame claiming a length.
"""
from __future__ import annotations

import io
import struct

import numpy as np

from contract.audio import SAMPLE_RATE

CONTENT_TYPES = {"wav": "audio/wav", "pcm": "audio/pcm", "flac": "audio/flac", "mp3": "audio/mpeg"}
UNKNOWN = 0xFFFFFFFF
MP3_KBPS = 64


def pcm16(audio: np.ndarray) -> bytes:
    """float32 [-1, 1] audio as 16-bit little-endian PCM, converted by libsndfile exactly as the WAVs
    milo-say and the audition save it (contract/samples.py), so the same audio gives the same samples."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.asarray(audio, dtype=np.float32), SAMPLE_RATE, format="RAW", subtype="PCM_16", endian="LITTLE")
    return buf.getvalue()


def wav_header(rate: int = SAMPLE_RATE) -> bytes:
    """A 44-byte PCM16 mono WAV header for a stream of unknown length."""
    return (b"RIFF" + struct.pack("<I", UNKNOWN) + b"WAVE" + b"fmt " +
            struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16) + b"data" + struct.pack("<I", UNKNOWN))


class Encoder:
    """`feed(audio)` -> the bytes ready now; `close()` -> the rest."""

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self._started = False
        if fmt == "flac":
            import soundfile as sf

            self._buf = io.BytesIO()
            self._sent = 0
            self._sf = sf.SoundFile(self._buf, "w", SAMPLE_RATE, 1, format="FLAC", subtype="PCM_16")
        elif fmt == "mp3":
            import lameenc

            self._lame = lameenc.Encoder()
            self._lame.set_bit_rate(MP3_KBPS)
            self._lame.set_in_sample_rate(SAMPLE_RATE)
            self._lame.set_channels(1)
            self._lame.set_quality(2)
        elif fmt not in ("wav", "pcm"):
            raise ValueError(f"unknown format {fmt!r}")

    def feed(self, audio: np.ndarray) -> bytes:
        if self.fmt == "flac":
            self._sf.write(np.frombuffer(pcm16(audio), dtype="<i2"))  # the same samples as wav and pcm
            return self._new_flac_bytes()
        data = pcm16(audio)
        if self.fmt == "mp3":
            return bytes(self._lame.encode(data))
        if self.fmt == "wav" and not self._started:
            self._started = True
            return wav_header() + data
        return data

    def close(self) -> bytes:
        if self.fmt == "flac":
            self._sf.close()  # it then rewrites the header it sent: those bytes are gone, only new ones go
            return self._new_flac_bytes()
        if self.fmt == "mp3":
            return bytes(self._lame.flush())
        if self.fmt == "wav" and not self._started:
            self._started = True
            return wav_header()
        return b""

    def _new_flac_bytes(self) -> bytes:
        data = self._buf.getbuffer()[self._sent:].tobytes()
        self._sent += len(data)
        return data
