"""How `milo-train run` fails: its exceptions, the advice each failure carries, and the exit code for it
(the codes themselves are contract/exits.py's). Every failure ends as one line and one code.
"""
from __future__ import annotations

import errno
import sys
import traceback
from typing import NamedTuple

from contract import exits
from contract.errors import one_line


class UsageError(Exception):
    """Bad command line (exit 2)."""


class BadInput(Exception):
    """Bad base model, data or audio (exit 3): the message names the file and line."""


class DiskFull(Exception):
    """No space left while saving (exit 5)."""


class Failure(NamedTuple):
    code: int
    message: str
    trace: str | None = None  # for train.log only: an unexpected error's traceback


def oom_advice(batch_size: int, longest_s: float, step: int) -> str:
    return (f"CUDA out of memory at step {step + 1} (batch size {batch_size}, longest clip {longest_s:.1f} s): lower --batch-size "
            f"(raise --grad-accum to keep the effective batch), add --gradient-checkpointing, or drop clips longer "
            f"than about {max(1.0, longest_s / 2):.0f} s (milo-train prepare --max-seconds)")


def is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    # safetensors reports a full disk as its own SafetensorError ("... No space left on device (os error 28)")
    text = str(exc)
    return "No space left on device" in text or "Disk quota exceeded" in text


def failure(exc: Exception, batch_size: int | None, longest_s: float, step: int) -> Failure:
    """The exit code and one line for what ended the run; `batch_size` is None before the settings are known."""
    if isinstance(exc, UsageError):
        return Failure(exits.USAGE, str(exc))
    if isinstance(exc, BadInput):
        return Failure(exits.BAD_INPUT, str(exc))
    if isinstance(exc, DiskFull):
        return Failure(exits.DISK_FULL, str(exc))
    torch = sys.modules.get("torch")  # an out-of-memory error can only come once torch is loaded
    if torch is not None and isinstance(exc, torch.cuda.OutOfMemoryError):
        return Failure(exits.OOM, oom_advice(batch_size, longest_s, step) if batch_size is not None else str(exc))
    if is_disk_full(exc):
        return Failure(exits.DISK_FULL, f"disk full: {exc}; free space, then continue with --resume")
    return Failure(exits.ERROR, one_line(exc), traceback.format_exc())
