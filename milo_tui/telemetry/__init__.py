"""GPU and host telemetry: NVML (milo_tui.telemetry.nvml) and psutil (milo_tui.telemetry.host), sampled
off the event loop about once a second. Every field may be None (not available): no field's failure
takes the panel down."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class GpuProcess:
    pid: int
    used_bytes: int | None


@dataclass(frozen=True)
class GpuSample:
    index: int
    name: str | None = None
    temperature_c: float | None = None
    power_w: float | None = None
    power_limit_w: float | None = None
    sm_clock_mhz: int | None = None
    sm_clock_max_mhz: int | None = None
    mem_clock_mhz: int | None = None
    util_percent: float | None = None
    memory_total: int | None = None
    memory_used: int | None = None
    memory_supported: bool = True  # False on a GB10: NVML has no device memory to report (it is shared)
    processes: tuple[GpuProcess, ...] = ()

    @property
    def process_bytes(self) -> int | None:
        known = [p.used_bytes for p in self.processes if p.used_bytes is not None]
        return sum(known) if known else None


@dataclass(frozen=True)
class HostSample:
    cpu_percent: float | None = None
    cpu_count: int | None = None
    memory_total: int | None = None
    memory_used: int | None = None
    disk_free: int | None = None
    disk_total: int | None = None


@dataclass(frozen=True)
class Telemetry:
    time: float
    gpus: tuple[GpuSample, ...] = ()
    host: HostSample = field(default_factory=HostSample)
    gpu_error: str | None = None  # why there is no GPU data (no driver, NVML failed)
