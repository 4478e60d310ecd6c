"""One Telemetry value from NVML and the host, for the sampling thread (and for tests, one call at a time)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from milo_tui.telemetry import Telemetry
from milo_tui.telemetry.host import HostSampler
from milo_tui.telemetry.nvml import NvmlSampler


class TelemetrySource:
    def __init__(self, disk_path: Path, nvml=None, psutil_module=None, clock: Callable[[], float] = time.time) -> None:
        self.nvml = NvmlSampler(nvml)
        self.host = HostSampler(disk_path, psutil_module)
        self.clock = clock
        self.opened = False

    def sample(self) -> Telemetry:
        if not self.opened:
            self.nvml.open()
            self.opened = True
        return Telemetry(time=self.clock(), gpus=self.nvml.sample(), host=self.host.sample(), gpu_error=self.nvml.error)

    def close(self) -> None:
        self.nvml.close()
