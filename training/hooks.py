"""MILO_TEST_HOOKS: faults the trainer's tests ask for (a slow step, a crash, out of memory, a full disk)."""
from __future__ import annotations

import errno
import json
import os
import time
from pathlib import Path

from training.failures import UsageError


class TestHooks:
    """MILO_TEST_HOOKS=step_delay=S,crash_at_step=N,crash_once_at_step=N,oom_at_step=N[,disk_full_at_save=N]
    Only for tests of the dashboard and of the trainer; absent, it costs nothing per step."""

    KEYS = ("step_delay", "crash_at_step", "crash_once_at_step", "oom_at_step", "disk_full_at_save")

    def __init__(self, spec: str, run_dir: Path):
        self.run_dir, self.values = run_dir, {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            key, _, value = part.partition("=")
            if key not in self.KEYS:
                raise UsageError(f"MILO_TEST_HOOKS: unknown hook {key!r} (known: {', '.join(self.KEYS)})")
            try:
                self.values[key] = float(value) if key == "step_delay" else int(value)
            except ValueError:
                raise UsageError(f"MILO_TEST_HOOKS: {key} needs a number, got {value!r}") from None

    def during_save(self, count: int, tmp: Path) -> None:
        """Only where a small tmpfs cannot be mounted: the disk-full test's stand-in for a real ENOSPC, raised
        with the checkpoint's temporary folder already holding its weights (recorded for the test)."""
        if self.values.get("disk_full_at_save") == count:
            (self.run_dir / ".test-hook-disk-full.json").write_text(json.dumps(
                {"temporary": tmp.name, "files": sorted(p.name for p in tmp.iterdir())}))
            raise OSError(errno.ENOSPC, f"No space left on device (test hook disk_full_at_save={count})")

    @classmethod
    def from_env(cls, run_dir: Path) -> "TestHooks | None":
        spec = os.environ.get("MILO_TEST_HOOKS", "").strip()
        return cls(spec, run_dir) if spec else None

    def after_step(self, step: int, is_main: bool) -> None:
        import torch

        v = self.values
        if v.get("step_delay"):
            time.sleep(v["step_delay"])
        if v.get("crash_at_step") == step:
            raise RuntimeError(f"test hook: crash at step {step}")
        if v.get("crash_once_at_step") == step:
            marker = self.run_dir / f".test-hook-crashed-once-at-step-{step}"
            if not marker.exists():
                if is_main:
                    marker.write_text("crashed here once\n")
                raise RuntimeError(f"test hook: crash once at step {step}")
        if v.get("oom_at_step") == step:
            raise torch.cuda.OutOfMemoryError(
                f"CUDA out of memory. Tried to allocate 2.00 GiB (test hook oom_at_step={step})")
