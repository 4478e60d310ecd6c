"""The demo workspace: a tiny random-weight Qwen3-TTS Base model and a small synthetic corpus, so that
milo-tui can be tried (and tested) on any machine without the real 3.8 GB model.

Created once, on first use, in the XDG data folder (or `demo_dir` from the configuration), and reused
after. Creation happens in a temporary folder renamed into place, under a lock, so an interrupted or
concurrent start never leaves a half-made workspace behind.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

WORKSPACE_VERSION = 2  # 2: data/train.jsonl prepared from the corpus
SAMPLE_RATE = 24000
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


@dataclass(frozen=True)
class DemoWorkspace:
    root: Path

    @property
    def base(self) -> Path:
        return self.root / "base"

    @property
    def corpus(self) -> Path:
        return self.root / "corpus"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def train_jsonl(self) -> Path:
        return self.data / "train.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def reference(self) -> Path:
        return self.corpus / "clip_00.wav"


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


def _is_complete(root: Path) -> bool:
    try:
        marker = json.loads((root / "workspace.json").read_text())
    except (OSError, ValueError):
        return False
    return marker.get("version") == WORKSPACE_VERSION and (root / "base" / "config.json").is_file()


def _python_module(args: list[str], cwd: Path) -> None:
    """Run `python -m <args>` in the engine's interpreter; raise with its last error line on failure."""
    proc = subprocess.run([sys.executable, "-m", *args], cwd=cwd, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [l for l in (proc.stderr or proc.stdout).strip().splitlines() if l.strip()]
        raise RuntimeError(f"`{' '.join(args[:2])}` failed: {lines[-1] if lines else f'exit {proc.returncode}'}")


def ensure_demo_workspace(root: Path, progress: Callable[[str], None] = lambda s: None) -> DemoWorkspace:
    """Return the demo workspace at `root`, creating it first if needed."""
    root = Path(root).expanduser().absolute()
    ws = DemoWorkspace(root)
    if _is_complete(root):
        return ws
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _is_complete(root):  # another milo-tui made it while we waited
            return ws
        started = time.monotonic()
        tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
        try:
            progress(f"Creating the demo workspace in {root} (once)…")
            progress("  synthetic corpus: 16 clips of 1-3 s at 24 kHz")
            write_corpus(tmp / "corpus")
            progress("  tiny random-weight Qwen3-TTS Base model, and the corpus prepared as training data")
            # One child for both (torch + qwen_tts import once); data paths are relative to data/, since the
            # workspace is renamed into place after this.
            _python_module(["training", "demo-assets", str(tmp), "--seed", "0"], cwd=tmp)
            (tmp / "checkpoints").mkdir()
            (tmp / "workspace.json").write_text(json.dumps(
                {"version": WORKSPACE_VERSION, "created": time.time(), "speaker": SPEAKER}, indent=2) + "\n")
            if root.exists():
                shutil.rmtree(root)
            os.rename(tmp, root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        progress(f"  done in {time.monotonic() - started:.1f} s")
    return ws
