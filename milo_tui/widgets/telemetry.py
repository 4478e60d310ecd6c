"""GPU and host health: one line a field, N/A where a field is not available, a sparkline of the history."""
from __future__ import annotations

import time
from functools import partial

from rich.text import Text

from milo_tui.chart import sparkline
from milo_tui.format import fmt_bytes
from milo_tui.telemetry.history import TelemetryHistory
from milo_tui.widgets.lines import LinesWidget
from milo_tui.widgets.theme import INFO, MUTED, WARNING, themed

LABEL = 7
NA = "N/A"


def _shown(value, form: str) -> str:
    """`value` in `form` ("{:.0f}°C"), or N/A where the field is not available."""
    return form.format(value) if value is not None else NA


def _pair(used, total) -> str:
    return f"{fmt_bytes(used)}/{fmt_bytes(total)}"


def _gpu_memory(g) -> str:
    return _pair(g.memory_used, g.memory_total) if g.memory_used is not None else NA


def _cpu(h) -> str:
    return _shown(h.cpu_percent, "{:.0f}%") + (f" of {h.cpu_count}" if h.cpu_count and h.cpu_percent is not None else "")


class TelemetryPanel(LinesWidget, can_focus=True):
    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.history: TelemetryHistory | None = None
        self.hosts: list = []  # the other hosts of the selected run (HostView), each a section under this host's
        self.run_pids: dict[int, str] = {}
        self.ascii = False
        self.border_title = "GPU"

    def show(self, history: TelemetryHistory, run_pids: dict[int, str], ascii: bool, hosts=(),
             home: str = "this host") -> None:
        self.history, self.run_pids, self.ascii, self.hosts, self.home = history, run_pids, ascii, list(hosts), home
        self.redraw()

    def _line(self, label: str, value: str, key: str | None, width: int, history: TelemetryHistory | None = None) -> Text:
        history = history or self.history
        text = Text(label.ljust(LABEL), themed(self.app, MUTED))
        text.append(value)
        room = width - len(text) - 1
        if key and room >= 4 and history is not None:
            series = list(history.series[key])[-room:]
            if any(v is not None for v in series):
                text.append(" " + sparkline([v for v in series if v is not None], room, self.ascii),
                            themed(self.app, INFO))
        text.truncate(width)
        return text

    def lines(self, width: int, height: int) -> list[Text]:
        t = self.history.latest if self.history else None
        if not self.hosts:
            return self._host_lines(t, self.history, width, title=True)
        # a run across hosts: a section a host, this one first, each headed by its name (the title says how many);
        # each section in full where they all fit, else three lines under its header (GPU, memory, CPU and disk)
        title = f"GPU · {1 + len(self.hosts)} hosts"
        if title != self.border_title:
            self.border_title = title
        sections = [(self.home, t, self.history, None, True)] + [
            (v.host, v.history.latest, v.history, v, False) for v in self.hosts]
        for full in (True, False):
            lines: list[Text] = []
            for host, latest, history, view, local in sections:
                lines.append(self._header(host, latest))
                if view is not None and view.error:
                    heard = (f" (last heard {time.strftime('%H:%M:%S', time.localtime(view.seen_at))})"
                             if view.seen_at else "")
                    state = Text(f"{view.rank}: {view.error}{heard}", themed(self.app, f"bold {WARNING}"))
                    lines.extend(state.wrap(self.app.console, max(1, width))[:None if full else 1])
                elif latest is None:
                    lines.append(Text(f"{view.rank}…" if view is not None else "sampling…", themed(self.app, MUTED)))
                if latest is not None:
                    lines.extend(self._host_lines(latest, history, width, local=local) if full
                                 else self._brief_lines(latest, history, width))
            if len(lines) <= height:
                break
        return lines

    def _brief_lines(self, t, history, w: int) -> list[Text]:
        """One host in three lines: its GPU (temperature, power, utilization), memory, CPU and disk."""
        line = partial(self._line, history=history)
        h = t.host
        if t.gpus:
            g = t.gpus[0]
            gpu = line("gpu", " ".join((_shown(g.util_percent, "{:.0f}%"), _shown(g.temperature_c, "{:.0f}°C"),
                                        _shown(g.power_w, "{:.0f} W"))), "util", w)
        else:
            gpu = Text(t.gpu_error or "no GPU", themed(self.app, f"bold {WARNING}"))
            gpu.truncate(w)
        if t.gpus and t.gpus[0].memory_supported:
            memory = line("memory", _gpu_memory(t.gpus[0]), "gpu_mem", w)
        else:  # a GB10's memory is the host's (or no GPU): the system's figure
            memory = line("shared" if t.gpus else "memory", _pair(h.memory_used, h.memory_total), "host_mem", w)
        disk = f", disk {fmt_bytes(h.disk_free)} free" if h.disk_free is not None else ""
        return [gpu, memory, line("cpu", _cpu(h) + disk, None, w)]

    def _header(self, host: str, t) -> Text:
        gpu = t.gpus[0].name if t is not None and t.gpus and t.gpus[0].name else None
        return Text(host + (f" · {gpu}" if gpu else ""), "bold")

    def _host_lines(self, t, history, w: int, title: bool = False, local: bool = True) -> list[Text]:
        """One host's lines; `title`: the panel's border names its GPU (a panel of one host)."""
        if t is None:
            return [Text("sampling…", themed(self.app, MUTED))]
        line = partial(self._line, history=history)
        lines: list[Text] = []
        if t.gpus:
            g = t.gpus[0]
            name = (g.name or "GPU") + (f" (+{len(t.gpus) - 1})" if len(t.gpus) > 1 else "")
            if title and name != self.border_title:
                self.border_title = name
            lines.append(line("temp", _shown(g.temperature_c, "{:.0f}°C"), "temp", w))
            limit = f"/{g.power_limit_w:.0f}" if g.power_limit_w is not None else ""
            lines.append(line("power", f"{_shown(g.power_w, '{:.0f}')}{limit} W", "power", w))
            lines.append(line("util", _shown(g.util_percent, "{:.0f}%"), "util", w))
            lines.append(line("sm/mem", f"{_shown(g.sm_clock_mhz, '{}')}/{_shown(g.mem_clock_mhz, '{}')} MHz", None, w))
            if g.memory_supported:
                lines.append(line("memory", _gpu_memory(g), "gpu_mem", w))
            else:
                # GB10: one memory for CPU and GPU; NVML has no device figure, the system's is the one
                lines.append(line("memory", f"{NA} (unified)", None, w))
                lines.append(line("shared", _pair(t.host.memory_used, t.host.memory_total), "host_mem", w))
            procs = sorted(g.processes, key=lambda p: -(p.used_bytes or 0))
            total = g.process_bytes
            lines.append(line("procs", f"{len(procs)}: {fmt_bytes(total)} GPU mem" if procs else "none",
                              "gpu_mem" if not g.memory_supported else None, w))
            for p in procs[:2]:
                who = self.run_pids.get(p.pid, f"pid {p.pid}") if local else f"pid {p.pid}"
                lines.append(line("", f"{who} {fmt_bytes(p.used_bytes)}", None, w))
        else:
            if title and self.border_title != "Host":
                self.border_title = "Host"
            lines.extend(Text(t.gpu_error or "no GPU", themed(self.app, f"bold {WARNING}")).wrap(self.app.console, max(1, w)))
        h = t.host
        lines.append(line("cpu", _cpu(h), "cpu", w))
        if not t.gpus or t.gpus[0].memory_supported:  # a GB10's system memory is shown above, as "shared"
            lines.append(line("memory" if not t.gpus else "host", _pair(h.memory_used, h.memory_total), "host_mem", w))
        lines.append(line("disk", f"{fmt_bytes(h.disk_free)} free" if h.disk_free is not None else NA, None, w))
        return lines
