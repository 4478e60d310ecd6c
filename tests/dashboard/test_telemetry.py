"""NVML sampling against a pynvml-compatible fake: every profile, field-by-field degradation, caching."""
from __future__ import annotations

import pynvml
import pytest

from milo_tui.telemetry.host import HostSampler
from milo_tui.telemetry.source import TelemetrySource
from milo_tui.telemetry.nvml import NvmlSampler
from tests.dashboard.fakes import GiB, FakeNvml, FakePsutil


def test_the_fake_raises_what_the_real_library_raises():
    with pytest.raises(pynvml.NVMLError_LibraryNotFound):
        FakeNvml("nodriver").nvmlInit()
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        FakeNvml("h100").nvmlDeviceGetCount()
    gb10 = FakeNvml("gb10")
    gb10.nvmlInit()
    with pytest.raises(pynvml.NVMLError_NotSupported):
        gb10.nvmlDeviceGetMemoryInfo(gb10.nvmlDeviceGetHandleByIndex(0))


def test_h100_every_field():
    s = NvmlSampler(FakeNvml("h100"))
    assert s.open() is None
    (g,) = s.sample()
    assert g.name == "NVIDIA H100 80GB HBM3" and g.memory_supported
    assert g.memory_total == 80 * GiB and g.memory_used == 61 * GiB
    assert 200 <= g.power_w <= 300 and g.power_limit_w == 700.0  # milliwatts -> watts
    assert g.sm_clock_mhz == 1980 and g.mem_clock_mhz == 2619 and 90 <= g.util_percent <= 100
    assert g.processes[0].pid == 4242 and g.processes[0].used_bytes == 58 * GiB


def test_gb10_memory_is_not_supported_and_not_asked_again():
    nvml = FakeNvml("gb10")
    s = NvmlSampler(nvml)
    s.open()
    for _ in range(5):
        (g,) = s.sample()
    assert not g.memory_supported and g.memory_total is None
    assert g.process_bytes == 18 * GiB + 200 * (1 << 20)
    assert g.power_limit_w is None and g.temperature_c is not None
    assert nvml.calls["nvmlDeviceGetMemoryInfo"] == 1
    assert nvml.calls["nvmlDeviceGetName"] == 1  # slow fields are read once
    assert nvml.calls["nvmlDeviceGetTemperature"] == 5


@pytest.mark.parametrize("profile, words", [("nodriver", "no NVIDIA driver"), ("driver_not_loaded", "Driver Not Loaded")])
def test_no_driver(profile, words):
    s = NvmlSampler(FakeNvml(profile))
    assert words in s.open()
    assert s.sample() == ()


def test_a_failing_field_is_none_and_the_rest_still_come():
    s = NvmlSampler(FakeNvml("h100", fail={"nvmlDeviceGetPowerUsage", "nvmlDeviceGetUtilizationRates",
                                           "nvmlDeviceGetComputeRunningProcesses"}))
    s.open()
    (g,) = s.sample()
    assert g.power_w is None and g.util_percent is None and g.processes == ()
    assert g.temperature_c is not None and g.memory_used == 61 * GiB


def test_host_sampler_and_source(tmp_path):
    host = HostSampler(tmp_path, FakePsutil(cpu=12.5)).sample()
    assert host.cpu_percent == 12.5 and host.cpu_count == 20 and host.disk_free == 1200 * GiB
    assert host.memory_used == host.memory_total - 58 * GiB

    class Broken(FakePsutil):
        def disk_usage(self, path):
            raise PermissionError(path)

    assert HostSampler(tmp_path, Broken()).sample().disk_free is None
    t = TelemetrySource(tmp_path, FakeNvml("nodriver"), FakePsutil(), clock=lambda: 42.0).sample()
    assert t.time == 42.0 and t.gpus == () and "no NVIDIA driver" in t.gpu_error and t.host.cpu_percent == 37.5


def test_the_real_library_on_this_machine_says_there_is_no_driver():
    """No NVIDIA driver here (nor in CI): the real pynvml must degrade as the fake's no-driver profile does."""
    import pynvml

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        pass
    else:
        pynvml.nvmlShutdown()
        pytest.skip("an NVIDIA driver answers on this machine")
    s = NvmlSampler()
    err = s.open()
    assert err == "no NVIDIA driver (NVML Shared Library Not Found)"
    assert s.handles == [] and s.sample() == ()
    s.close()
