"""Host CPU, memory and the checkpoints disk through psutil (a parameter, so tests can fix the numbers)."""
from __future__ import annotations

from pathlib import Path

from milo_tui.telemetry import HostSample


class HostSampler:
    def __init__(self, disk_path: Path, psutil_module=None) -> None:
        self.psutil = psutil_module  # imported on the first sample (in the sampling thread) when None
        self.disk_path = str(disk_path)
        self.cpu_count = None

    def _start(self) -> None:
        if self.psutil is None:
            import psutil

            self.psutil = psutil
        self.cpu_count = self._get(lambda: self.psutil.cpu_count())
        self._get(lambda: self.psutil.cpu_percent(None))  # the first call only starts the measurement

    @staticmethod
    def _get(fn):
        try:
            return fn()
        except Exception:
            return None

    def sample(self) -> HostSample:
        if self.cpu_count is None:
            self._start()
        vm = self._get(self.psutil.virtual_memory)
        du = self._get(lambda: self.psutil.disk_usage(self.disk_path))
        return HostSample(
            cpu_percent=self._get(lambda: self.psutil.cpu_percent(None)),
            cpu_count=self.cpu_count,
            memory_total=getattr(vm, "total", None),
            memory_used=(vm.total - vm.available) if vm is not None else None,
            disk_free=getattr(du, "free", None),
            disk_total=getattr(du, "total", None),
        )
