"""Fakes at the hardware boundary only: a pynvml-compatible module (this machine has no NVIDIA driver)
and a psutil-compatible one for fixed host numbers in snapshots.

FakeNvml behaves like the real nvidia-ml-py: it raises the real pynvml.NVMLError subclasses and returns
the real ctypes structures (c_nvmlMemory_t, c_nvmlUtilization_t), power in milliwatts, clocks in MHz,
process objects with .pid and .usedGpuMemory in bytes.
"""
from __future__ import annotations

from collections import namedtuple
from types import SimpleNamespace

import pynvml

GiB = 1 << 30

PROFILES = {
    # every field works
    "h100": dict(name="NVIDIA H100 80GB HBM3", temp=54, power_mw=245_000, limit_mw=700_000, sm=1980, sm_max=1980,
                 mem_clock=2619, util=(97, 41), memory=(80 * GiB, 61 * GiB), procs=[(4242, 58 * GiB)]),
    # DGX Spark: nvmlDeviceGetMemoryInfo raises NotSupported (unified memory); per-process memory works
    "gb10": dict(name="NVIDIA GB10", temp=61, power_mw=38_500, limit_mw=None, sm=2405, sm_max=3003,
                 mem_clock=4266, util=(98, 0), memory=None, procs=[(4242, 18 * GiB + 200 * (1 << 20))]),
}


class FakeNvml:
    """A stand-in for the pynvml module. `profile` is one of PROFILES, "nodriver" or "driver_not_loaded"."""

    # the real library's error classes and constants
    NVMLError = pynvml.NVMLError
    NVMLError_NotSupported = pynvml.NVMLError_NotSupported
    NVMLError_LibraryNotFound = pynvml.NVMLError_LibraryNotFound
    NVMLError_DriverNotLoaded = pynvml.NVMLError_DriverNotLoaded
    NVMLError_Uninitialized = pynvml.NVMLError_Uninitialized
    NVMLError_GpuIsLost = pynvml.NVMLError_GpuIsLost
    NVML_TEMPERATURE_GPU = pynvml.NVML_TEMPERATURE_GPU
    NVML_CLOCK_SM = pynvml.NVML_CLOCK_SM
    NVML_CLOCK_MEM = pynvml.NVML_CLOCK_MEM

    def __init__(self, profile: str = "h100", fail: set[str] = frozenset()) -> None:
        self.profile = profile
        self.spec = PROFILES.get(profile)
        self.fail = set(fail)  # function names that raise NVMLError_GpuIsLost (a field going bad)
        self.calls: dict[str, int] = {}
        self.initialised = False

    def _call(self, name: str):
        self.calls[name] = self.calls.get(name, 0) + 1
        if name != "nvmlInit" and not self.initialised:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_UNINITIALIZED)
        if name in self.fail:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)

    def nvmlInit(self):
        self._call("nvmlInit")
        if self.profile == "nodriver":
            raise pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
        if self.profile == "driver_not_loaded":
            raise pynvml.NVMLError(pynvml.NVML_ERROR_DRIVER_NOT_LOADED)
        self.initialised = True

    def nvmlShutdown(self):
        self._call("nvmlShutdown")
        self.initialised = False

    def nvmlDeviceGetCount(self):
        self._call("nvmlDeviceGetCount")
        return 1

    def nvmlDeviceGetHandleByIndex(self, index):
        self._call("nvmlDeviceGetHandleByIndex")
        if index != 0:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return SimpleNamespace(index=index)

    def nvmlDeviceGetName(self, handle):
        self._call("nvmlDeviceGetName")
        return self.spec["name"]  # nvidia-ml-py decodes to str (convertStrBytes)

    def _wave(self, name: str, amplitude: float) -> float:
        """A deterministic wobble by call count, so that sparklines have a shape (same in every run)."""
        return amplitude * ((self.calls.get(name, 0) * 7) % 11 - 5) / 5

    def nvmlDeviceGetTemperature(self, handle, sensor):
        self._call("nvmlDeviceGetTemperature")
        return self.spec["temp"] + round(self._wave("nvmlDeviceGetTemperature", 3))

    def nvmlDeviceGetPowerUsage(self, handle):
        self._call("nvmlDeviceGetPowerUsage")
        return self.spec["power_mw"] + round(self._wave("nvmlDeviceGetPowerUsage", self.spec["power_mw"] / 10))

    def nvmlDeviceGetEnforcedPowerLimit(self, handle):
        self._call("nvmlDeviceGetEnforcedPowerLimit")
        if self.spec["limit_mw"] is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return self.spec["limit_mw"]

    def nvmlDeviceGetClockInfo(self, handle, kind):
        self._call("nvmlDeviceGetClockInfo")
        return self.spec["sm"] if kind == pynvml.NVML_CLOCK_SM else self.spec["mem_clock"]

    def nvmlDeviceGetMaxClockInfo(self, handle, kind):
        self._call("nvmlDeviceGetMaxClockInfo")
        return self.spec["sm_max"]

    def nvmlDeviceGetUtilizationRates(self, handle):
        self._call("nvmlDeviceGetUtilizationRates")
        util = pynvml.c_nvmlUtilization_t()
        util.gpu = max(0, min(100, self.spec["util"][0] + round(self._wave("nvmlDeviceGetUtilizationRates", 4))))
        util.memory = self.spec["util"][1]
        return util

    def nvmlDeviceGetMemoryInfo(self, handle, version=None):
        self._call("nvmlDeviceGetMemoryInfo")
        if self.spec["memory"] is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        mem = pynvml.c_nvmlMemory_t()
        mem.total, mem.used = self.spec["memory"]
        mem.free = mem.total - mem.used
        return mem

    def nvmlDeviceGetComputeRunningProcesses(self, handle):
        self._call("nvmlDeviceGetComputeRunningProcesses")
        return [pynvml.nvmlFriendlyObject({"pid": pid, "usedGpuMemory": used, "gpuInstanceId": 0xFFFFFFFF,
                                           "computeInstanceId": 0xFFFFFFFF}) for pid, used in self.spec["procs"]]


VMem = namedtuple("svmem", "total available percent used free")
Disk = namedtuple("sdiskusage", "total used free percent")


class FakePsutil:
    """Fixed host numbers (psutil's return types: named tuples in bytes, percent floats)."""

    def __init__(self, cpu=37.5, cpus=20, mem_total=119 * GiB + 700 * (1 << 20), mem_available=58 * GiB,
                 disk_total=3700 * GiB, disk_free=1200 * GiB) -> None:
        self.cpu, self.cpus = cpu, cpus
        self.vm = VMem(mem_total, mem_available, 100 * (1 - mem_available / mem_total), mem_total - mem_available,
                       mem_available)
        self.disk = Disk(disk_total, disk_total - disk_free, disk_free, 100 * (1 - disk_free / disk_total))

    def cpu_percent(self, interval=None):
        return self.cpu

    def cpu_count(self, logical=True):
        return self.cpus

    def virtual_memory(self):
        return self.vm

    def disk_usage(self, path):
        return self.disk
