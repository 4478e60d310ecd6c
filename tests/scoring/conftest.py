"""Speech nobody here recorded, made by Debian's synthesizers: festival's HTS voice (cmu_us_slt_arctic,
trained on a real speaker; pocketsphinx transcribes it) and two espeak-ng voices (other speakers), plus
white noise. Built once per test process."""
from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import festival, need_binary

REFERENCE = [
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It is easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
]
HELD_OUT = "Check the fuse before you touch the wires."


@dataclass(frozen=True)
class Voices:
    reference: Path          # folder: six SLT clips with transcripts
    slt: Path                # a held-out SLT sentence (HELD_OUT)
    espeak: tuple[Path, ...]  # HELD_OUT by two espeak-ng voices
    noise: Path              # 3 s of white noise at 0.3 RMS


def slt(text: str, out: Path) -> Path:
    return festival(text, out)


@pytest.fixture(scope="session")
def voices(tmp_path_factory) -> Voices:
    import soundfile as sf

    root = tmp_path_factory.mktemp("voices")
    (root / "reference").mkdir()
    for i, text in enumerate(REFERENCE):
        slt(text, root / "reference" / f"clip_{i:02d}.wav")
    held = slt(HELD_OUT, root / "slt_held_out.wav")
    held.with_suffix(".txt").unlink()
    need_binary("espeak-ng")
    others = []
    for voice in ("en-us+m3", "en-us+f4"):
        out = root / f"espeak_{voice.replace('+', '_')}.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(out), HELD_OUT], check=True, capture_output=True, timeout=60)
        others.append(out)
    noise = root / "noise.wav"
    rng = np.random.default_rng(0)
    sf.write(noise, np.clip(rng.normal(0, 0.3, 3 * 24000), -1, 1).astype(np.float32), 24000)
    return Voices(root / "reference", held, tuple(others), noise)
