"""A short history of telemetry for the panel's sparklines (owned by the app's handler)."""
from __future__ import annotations

from collections import deque

from milo_tui.telemetry import Telemetry

HISTORY = 120  # samples (two minutes at 1 Hz); the panel shows as many as it has columns for


class TelemetryHistory:
    KEYS = ("util", "temp", "power", "gpu_mem", "cpu", "host_mem")

    def __init__(self, size: int = HISTORY) -> None:
        self.series: dict[str, deque] = {k: deque(maxlen=size) for k in self.KEYS}
        self.latest: Telemetry | None = None

    def add(self, t: Telemetry) -> None:
        self.latest = t
        g = t.gpus[0] if t.gpus else None
        values = {
            "util": g and g.util_percent,
            "temp": g and g.temperature_c,
            "power": g and g.power_w,
            "gpu_mem": g and (g.memory_used if g.memory_supported else g.process_bytes),
            "cpu": t.host.cpu_percent,
            "host_mem": t.host.memory_used,
        }
        for key, value in values.items():
            self.series[key].append(value)
