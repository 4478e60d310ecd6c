"""GPU and host health: one line a field, N/A where a field is not available, a sparkline of the history."""
from __future__ import annotations

from rich.text import Text

from milo_tui.chart import sparkline
from milo_tui.format import fmt_bytes
from milo_tui.telemetry.history import TelemetryHistory
from milo_tui.widgets.lines import LinesWidget
from milo_tui.widgets.theme import INFO, MUTED, WARNING, themed

LABEL = 7


class TelemetryPanel(LinesWidget, can_focus=True):
    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.history: TelemetryHistory | None = None
        self.run_pids: dict[int, str] = {}
        self.ascii = False
        self.border_title = "GPU"

    def show(self, history: TelemetryHistory, run_pids: dict[int, str], ascii: bool) -> None:
        self.history, self.run_pids, self.ascii = history, run_pids, ascii
        self.redraw()

    def _line(self, label: str, value: str, key: str | None, width: int) -> Text:
        text = Text(label.ljust(LABEL), themed(self.app, MUTED))
        text.append(value)
        room = width - len(text) - 1
        if key and room >= 4 and self.history is not None:
            series = list(self.history.series[key])[-room:]
            if any(v is not None for v in series):
                text.append(" " + sparkline([v for v in series if v is not None], room, self.ascii),
                            themed(self.app, INFO))
        text.truncate(width)
        return text

    def lines(self, width: int, height: int) -> list[Text]:
        w = width
        t = self.history.latest if self.history else None
        if t is None:
            return [Text("sampling…", themed(self.app, MUTED))]
        lines: list[Text] = []
        if t.gpus:
            g = t.gpus[0]
            title = (g.name or "GPU") + (f" (+{len(t.gpus) - 1})" if len(t.gpus) > 1 else "")
            if title != self.border_title:
                self.border_title = title
            na = "N/A"
            lines.append(self._line("temp", f"{g.temperature_c:.0f}°C" if g.temperature_c is not None else na, "temp", w))
            power = f"{g.power_w:.0f}" if g.power_w is not None else na
            limit = f"/{g.power_limit_w:.0f}" if g.power_limit_w is not None else ""
            lines.append(self._line("power", f"{power}{limit} W", "power", w))
            lines.append(self._line("util", f"{g.util_percent:.0f}%" if g.util_percent is not None else na, "util", w))
            sm = f"{g.sm_clock_mhz}" if g.sm_clock_mhz is not None else na
            mem = f"{g.mem_clock_mhz}" if g.mem_clock_mhz is not None else na
            lines.append(self._line("sm/mem", f"{sm}/{mem} MHz", None, w))
            if g.memory_supported:
                used = f"{fmt_bytes(g.memory_used)}/{fmt_bytes(g.memory_total)}" if g.memory_used is not None else na
                lines.append(self._line("memory", used, "gpu_mem", w))
            else:
                # GB10: one memory for CPU and GPU; NVML has no device figure, the system's is the one
                lines.append(self._line("memory", "N/A (unified)", None, w))
                h = t.host
                lines.append(self._line("shared", f"{fmt_bytes(h.memory_used)}/{fmt_bytes(h.memory_total)}",
                                        "host_mem", w))
            procs = sorted(g.processes, key=lambda p: -(p.used_bytes or 0))
            total = g.process_bytes
            lines.append(self._line("procs", f"{len(procs)}: {fmt_bytes(total)} GPU mem" if procs else "none", "gpu_mem"
                                    if not g.memory_supported else None, w))
            for p in procs[:2]:
                who = self.run_pids.get(p.pid, f"pid {p.pid}")
                lines.append(self._line("", f"{who} {fmt_bytes(p.used_bytes)}", None, w))
        else:
            if self.border_title != "Host":
                self.border_title = "Host"
            lines.extend(Text(t.gpu_error or "no GPU", themed(self.app, f"bold {WARNING}")).wrap(self.app.console, max(1, w)))
        h = t.host
        cpus = f" of {h.cpu_count}" if h.cpu_count else ""
        lines.append(self._line("cpu", f"{h.cpu_percent:.0f}%{cpus}" if h.cpu_percent is not None else "N/A", "cpu", w))
        if t.gpus and not t.gpus[0].memory_supported:
            pass  # system memory is shown above, labelled as the GPU's shared memory
        else:
            lines.append(self._line("memory" if not t.gpus else "host", f"{fmt_bytes(h.memory_used)}/{fmt_bytes(h.memory_total)}",
                                    "host_mem", w))
        lines.append(self._line("disk", f"{fmt_bytes(h.disk_free)} free" if h.disk_free is not None else "N/A", None, w))
        return lines
