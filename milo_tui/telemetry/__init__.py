"""GPU and host telemetry: NVML (milo_tui.telemetry.nvml) and psutil (milo_tui.telemetry.host), sampled
off the event loop about once a second. Every field may be None (not available): no field's failure
takes the panel down."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields


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


def to_dict(t: Telemetry) -> dict:
    """A Telemetry as plain JSON values: what the sampler on another host prints (milo_tui/telemetry/remote.py)."""
    return asdict(t)


def _known(cls, d: dict) -> dict:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in d.items() if k in names}  # a field the other side has and this one lacks is dropped


def from_dict(d: dict) -> Telemetry:
    """The Telemetry a `to_dict` value came from (ValueError/TypeError/KeyError: not one)."""
    gpus = tuple(GpuSample(**{**_known(GpuSample, g),
                              "processes": tuple(GpuProcess(**_known(GpuProcess, p)) for p in g.get("processes") or ())})
                 for g in d.get("gpus") or ())
    return Telemetry(time=float(d["time"]), gpus=gpus, host=HostSample(**_known(HostSample, d.get("host") or {})),
                     gpu_error=d.get("gpu_error"))
