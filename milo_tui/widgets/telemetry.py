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
        # each section in full where they all fit, else in four lines (GPU, memory, CPU and disk)
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
        h, na = t.host, "N/A"
        if t.gpus:
            g = t.gpus[0]
            temp = f"{g.temperature_c:.0f}°C" if g.temperature_c is not None else na
            power = f"{g.power_w:.0f} W" if g.power_w is not None else na
            util = f"{g.util_percent:.0f}%" if g.util_percent is not None else na
            gpu = line("gpu", f"{util} {temp} {power}", "util", w)
        else:
            gpu = Text(t.gpu_error or "no GPU", themed(self.app, f"bold {WARNING}"))
            gpu.truncate(w)
        if t.gpus and t.gpus[0].memory_supported:
            g = t.gpus[0]
            memory = line("memory", f"{fmt_bytes(g.memory_used)}/{fmt_bytes(g.memory_total)}"
                          if g.memory_used is not None else na, "gpu_mem", w)
        else:  # a GB10's memory is the host's (or no GPU): the system's figure
            label = "shared" if t.gpus else "memory"
            memory = line(label, f"{fmt_bytes(h.memory_used)}/{fmt_bytes(h.memory_total)}", "host_mem", w)
        cpus = f" of {h.cpu_count}" if h.cpu_count else ""
        cpu = f"{h.cpu_percent:.0f}%{cpus}" if h.cpu_percent is not None else na
        disk = f", disk {fmt_bytes(h.disk_free)} free" if h.disk_free is not None else ""
        return [gpu, memory, line("cpu", cpu + disk, None, w)]

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
            na = "N/A"
            lines.append(line("temp", f"{g.temperature_c:.0f}°C" if g.temperature_c is not None else na, "temp", w))
            power = f"{g.power_w:.0f}" if g.power_w is not None else na
            limit = f"/{g.power_limit_w:.0f}" if g.power_limit_w is not None else ""
            lines.append(line("power", f"{power}{limit} W", "power", w))
            lines.append(line("util", f"{g.util_percent:.0f}%" if g.util_percent is not None else na, "util", w))
            sm = f"{g.sm_clock_mhz}" if g.sm_clock_mhz is not None else na
            mem = f"{g.mem_clock_mhz}" if g.mem_clock_mhz is not None else na
            lines.append(line("sm/mem", f"{sm}/{mem} MHz", None, w))
            if g.memory_supported:
                used = f"{fmt_bytes(g.memory_used)}/{fmt_bytes(g.memory_total)}" if g.memory_used is not None else na
                lines.append(line("memory", used, "gpu_mem", w))
            else:
                # GB10: one memory for CPU and GPU; NVML has no device figure, the system's is the one
                lines.append(line("memory", "N/A (unified)", None, w))
                h = t.host
                lines.append(line("shared", f"{fmt_bytes(h.memory_used)}/{fmt_bytes(h.memory_total)}", "host_mem", w))
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
        cpus = f" of {h.cpu_count}" if h.cpu_count else ""
        lines.append(line("cpu", f"{h.cpu_percent:.0f}%{cpus}" if h.cpu_percent is not None else "N/A", "cpu", w))
        if t.gpus and not t.gpus[0].memory_supported:
            pass  # system memory is shown above, labelled as the GPU's shared memory
        else:
            lines.append(line("memory" if not t.gpus else "host",
                              f"{fmt_bytes(h.memory_used)}/{fmt_bytes(h.memory_total)}", "host_mem", w))
        lines.append(line("disk", f"{fmt_bytes(h.disk_free)} free" if h.disk_free is not None else "N/A", None, w))
        return lines
