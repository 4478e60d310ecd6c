"""MILO_TEST_HOOKS for the scorer's tests (docs/scoring.md, "Test hooks")."""
from __future__ import annotations

import os
import time
from pathlib import Path

from inference.scoring.scorer import log


class TestHooks:
    """The scorer's holds; keys it does not know are the trainer's. Each holds once per process, writing a
    `.test-hook-*` marker in the run folder and waiting until a test removes it or SECONDS pass:
    `scorer_hold_drained=SECONDS` (queue): the first time the queue is found empty, before letting the run's
    lock go: the moment a save races the scorer's end.
    `scorer_hold_scored=SECONDS` (queue, eval): after the first checkpoint is scored, before its scores are
    written (the marker holds its name): the moment a prune races the scores' write."""

    KEYS = ("scorer_hold_drained", "scorer_hold_scored")

    def __init__(self, run_dir: Path, holds: dict[str, float]) -> None:
        self.run_dir, self.holds = run_dir, holds

    @classmethod
    def from_env(cls, run_dir: Path) -> "TestHooks":
        holds = {}
        for part in os.environ.get("MILO_TEST_HOOKS", "").split(","):
            key, _, value = part.strip().partition("=")
            if key in cls.KEYS:
                try:
                    holds[key] = float(value)
                except ValueError:
                    log(f"MILO_TEST_HOOKS: {key} needs seconds, got {value!r}; ignored")
        return cls(run_dir, holds)

    def drained(self) -> None:
        self._hold("scorer_hold_drained", ".test-hook-drained", f"{os.getpid()}\n",
                   "the queue is empty; holding the run's lock")

    def scored(self, ckpt: Path) -> None:
        self._hold("scorer_hold_scored", ".test-hook-scored", ckpt.name,
                   f"{ckpt.name} is scored; holding its scores (and the checkpoint)")

    def _hold(self, key: str, name: str, content: str, what: str) -> None:
        hold_s = self.holds.pop(key, None)  # once per process
        if hold_s is None:
            return
        marker = self.run_dir / name
        marker.write_text(content)
        log(f"test hook: {what} up to {hold_s:g} s")
        deadline = time.monotonic() + hold_s
        while marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        marker.unlink(missing_ok=True)
