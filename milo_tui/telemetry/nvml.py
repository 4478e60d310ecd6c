"""NVML sampling with per-field degradation.

The pynvml module is a parameter (tests pass a fake with the real library's behaviour and error classes).
Slow fields (name, total memory, limits, max clocks) are read once. On a GB10 (DGX Spark)
nvmlDeviceGetMemoryInfo raises NVMLError_NotSupported: memory is shared with the CPU, so the panel shows
system memory and each process's GPU memory instead; that is remembered, not retried every second.
"""
from __future__ import annotations

from milo_tui.telemetry import GpuProcess, GpuSample

_MISSING = object()


class NvmlSampler:
    def __init__(self, nvml=None) -> None:
        self._nvml = nvml
        self.handles: list = []
        self.error: str | None = None
        self._slow: dict[tuple[int, str], object] = {}
        self._memory_supported: dict[int, bool] = {}

    def open(self) -> str | None:
        """Initialise NVML; returns why there is no GPU data, or None."""
        try:
            if self._nvml is None:
                import pynvml

                self._nvml = pynvml
            self._nvml.nvmlInit()
            count = self._nvml.nvmlDeviceGetCount()
            self.handles = [self._nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            self.error = None if count else "NVML found no GPU"
        except Exception as exc:  # NVMLError_LibraryNotFound, _DriverNotLoaded, ... or no pynvml at all
            self.handles = []
            self.error = f"no NVIDIA driver ({exc})" if _is_no_driver(self._nvml, exc) else f"NVML failed: {exc}"
        return self.error

    def close(self) -> None:
        if self.handles:
            try:
                self._nvml.nvmlShutdown()
            except Exception:
                pass
            self.handles = []

    def _get(self, fn: str, *args, default=None):
        try:
            return getattr(self._nvml, fn)(*args)
        except Exception:
            return default

    def _cached(self, index: int, key: str, fn: str, *args):
        value = self._slow.get((index, key), _MISSING)
        if value is _MISSING:
            value = self._get(fn, *args)
            if value is not None:  # a failure is retried next time; a value is kept
                self._slow[(index, key)] = value
        return value

    def _memory(self, index: int, handle) -> tuple[int | None, int | None, bool]:
        if not self._memory_supported.get(index, True):
            return None, None, False
        try:
            mem = self._nvml.nvmlDeviceGetMemoryInfo(handle)
            return int(mem.total), int(mem.used), True
        except Exception as exc:
            not_supported = getattr(self._nvml, "NVMLError_NotSupported", None)
            if not_supported is not None and isinstance(exc, not_supported):
                self._memory_supported[index] = False
                return None, None, False
            return None, None, True

    def sample(self) -> tuple[GpuSample, ...]:
        n = self._nvml
        out = []
        for i, h in enumerate(self.handles):
            name = self._cached(i, "name", "nvmlDeviceGetName", h)
            if isinstance(name, bytes):
                name = name.decode(errors="replace")
            power = self._get("nvmlDeviceGetPowerUsage", h)
            limit = self._cached(i, "power_limit", "nvmlDeviceGetEnforcedPowerLimit", h)
            util = self._get("nvmlDeviceGetUtilizationRates", h)
            total, used, supported = self._memory(i, h)
            procs = self._get("nvmlDeviceGetComputeRunningProcesses", h, default=[]) or []
            out.append(GpuSample(
                index=i,
                name=name,
                temperature_c=_num(self._get("nvmlDeviceGetTemperature", h, getattr(n, "NVML_TEMPERATURE_GPU", 0))),
                power_w=power / 1000 if isinstance(power, (int, float)) else None,
                power_limit_w=limit / 1000 if isinstance(limit, (int, float)) else None,
                sm_clock_mhz=_num(self._get("nvmlDeviceGetClockInfo", h, getattr(n, "NVML_CLOCK_SM", 1))),
                sm_clock_max_mhz=_num(self._cached(i, "sm_max", "nvmlDeviceGetMaxClockInfo", h,
                                                   getattr(n, "NVML_CLOCK_SM", 1))),
                mem_clock_mhz=_num(self._get("nvmlDeviceGetClockInfo", h, getattr(n, "NVML_CLOCK_MEM", 2))),
                util_percent=_num(getattr(util, "gpu", None)),
                memory_total=total, memory_used=used, memory_supported=supported,
                processes=tuple(GpuProcess(int(p.pid), _int_or_none(getattr(p, "usedGpuMemory", None)))
                                for p in procs if getattr(p, "pid", None) is not None),
            ))
        return tuple(out)


def _num(v):
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _int_or_none(v):
    return int(v) if isinstance(v, int) and not isinstance(v, bool) else None


def _is_no_driver(nvml, exc: Exception) -> bool:
    kinds = tuple(k for k in (getattr(nvml, "NVMLError_LibraryNotFound", None),
                              getattr(nvml, "NVMLError_DriverNotLoaded", None)) if isinstance(k, type))
    return isinstance(exc, (ImportError, *kinds))
