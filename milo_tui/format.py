"""How numbers read on screen: bytes, durations, rates, times."""
from __future__ import annotations

import math
import time

from contract.units import fmt_bytes  # noqa: F401 - shared with prune and adopt; the dashboard imports it from here


def fmt_duration(s: float | None) -> str:
    if s is None or not math.isfinite(s) or s < 0:
        return "-"
    s = int(s)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def fmt_num(v: float | None, digits: int = 3) -> str:
    if v is None or not isinstance(v, (int, float)) or not math.isfinite(v):
        return "-"
    return f"{v:.{digits}f}"


def fmt_time(t: float | None) -> str:
    """Local date and time to the minute (the checkpoints view)."""
    if t is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t))
