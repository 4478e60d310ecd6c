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
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from contract.scores import DEFAULT_PROMPTS
from contract.synth import SENTENCES, SPEAKER, write_corpus

# The tiny random-weight model never says end-of-speech, so every score prompt runs away and no checkpoint
# would meet the default [best] rule (max_runaway = 0): runs started on the demo workspace get their own rule,
# kept in their run.json and named on the screen, so the demo shows a best checkpoint without the rule for
# real runs being loosened (contract.scores.rule_for).
DEMO_BEST_NOTE = "demo: runaway allowed, the tiny model never stops"
DEMO_BEST_FLAGS = ("--best-max-runaway", str(len(DEFAULT_PROMPTS)), "--best-note", DEMO_BEST_NOTE)
WORKSPACE_VERSION = 2  # 2: data/train.jsonl prepared from the corpus
STEPS = 5  # the synthetic corpus here, then the four of `milo-train demo-assets`


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


def _is_complete(root: Path) -> bool:
    try:
        marker = json.loads((root / "workspace.json").read_text())
    except (OSError, ValueError):
        return False
    return marker.get("version") == WORKSPACE_VERSION and (root / "base" / "config.json").is_file()


STEP = re.compile(r"^\[(\d+)/(\d+)\] (.+)$")  # `milo-train demo-assets` starting one of its steps


def _demo_assets(tmp: Path, step: Callable[[str], None]) -> None:
    """`milo-train demo-assets` in the engine's interpreter, its step lines passed on as they come; raise
    with its last error line on failure."""
    with tempfile.TemporaryFile("w+") as err:  # a file, not a pipe: nobody drains stderr while stdout is read
        proc = subprocess.Popen([sys.executable, "-u", "-m", "training", "demo-assets", str(tmp), "--seed", "0"],
                                cwd=tmp, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, text=True)
        with proc:
            for line in proc.stdout:
                if m := STEP.match(line.rstrip("\n")):
                    step(m[3])
        if proc.returncode != 0:
            err.seek(0)
            lines = [l for l in err.read().strip().splitlines() if l.strip()]
            raise RuntimeError(f"`training demo-assets` failed: {lines[-1] if lines else f'exit {proc.returncode}'}")


def ensure_demo_workspace(root: Path, progress: Callable[[str], None] = lambda s: None) -> DemoWorkspace:
    """Return the demo workspace at `root`, creating it first if needed. While creating, `progress` gets a
    title line, then "step i of n: what" as each step starts, then "done in N s"."""
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
        done = 0

        def step(what: str) -> None:
            nonlocal done
            done += 1
            progress(f"  step {done} of {STEPS}: {what}")

        try:
            progress(f"Creating the demo workspace in {root} (once, about a minute)")
            step(f"synthetic corpus: {len(SENTENCES)} clips of 1-3 s at 24 kHz")
            write_corpus(tmp / "corpus")
            # The engine's steps in one child (torch + qwen_tts import once); data paths are relative to
            # data/, since the workspace is renamed into place after this.
            _demo_assets(tmp, step)
            (tmp / "checkpoints").mkdir()
            (tmp / "workspace.json").write_text(json.dumps(
                {"version": WORKSPACE_VERSION, "created": time.time(), "speaker": SPEAKER}, indent=2) + "\n")
            if root.exists():
                shutil.rmtree(root)
            os.rename(tmp, root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        progress(f"  done in {time.monotonic() - started:.0f} s")
    return ws
