"""Audio constants every process shares.

SAMPLE_RATE is the 12 Hz codec's output rate (24 kHz mono): the trainer resamples clips to it, the
engine produces it, samples are saved at it and milo-listen plays it. DEFAULT_PORT is the listener's
port on 127.0.0.1 at both ends of the SSH tunnel. Both are defined in listen.py, which must stand alone
on a laptop; everything else takes them from here.
"""
from __future__ import annotations

from contract.listen import DEFAULT_PORT, PROTOCOL as LISTEN_PROTOCOL, SAMPLE_RATE
from contract.runfolder import NUM_CODEBOOKS  # defined there: the dashboard reads it without numpy

FRAME_RATE = 12.5  # codec frames per second of audio
SAMPLES_PER_FRAME = int(SAMPLE_RATE / FRAME_RATE)  # 1920

__all__ = ["DEFAULT_PORT", "FRAME_RATE", "LISTEN_PROTOCOL", "NUM_CODEBOOKS", "SAMPLE_RATE", "SAMPLES_PER_FRAME"]
