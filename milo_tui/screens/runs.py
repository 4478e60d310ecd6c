"""The runs view: every run, and for the selected one its loss chart, per-layer losses, train.log tail and
the GPU's health; the speech server's line when there is one. Compact below 110x36 (one pane at a time, `v`
switches), everything at once above: the same widgets, arranged by milo.tcss from the screen's classes."""
from __future__ import annotations

import time
from pathlib import Path

from rich.markup import escape
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import DataTable, Footer

from milo_tui.format import fmt_duration, fmt_num
from milo_tui.keys import ExplainDisabled
from contract.runfolder import CRASHED, EXTERNAL, STOPPED
from milo_tui.widgets.charts import LayerPanel, LossChart, TrendPanel
from milo_tui.widgets.log_tail import LogTail
from milo_tui.widgets.status_line import OneLine
from milo_tui.widgets.tables import METRIC_WORD, STATUS_STYLE, RunsTable
from milo_tui.widgets.telemetry import TelemetryPanel
from milo_tui.widgets.theme import ERROR, SUCCESS, WARNING

VIEWS = ("chart", "trend", "layers", "log")
WIDE = (110, 36)  # columns, rows from which every pane shows at once


def _set(widget, attribute: str, value) -> None:
    """Assign only a new value: every assignment costs a repaint, some a layout."""
    if getattr(widget, attribute) != value:
        setattr(widget, attribute, value)


def _titled(widget, title: str):
    widget.border_title = title
    return widget


class RunsScreen(ExplainDisabled, Screen):
    BINDINGS = [
        Binding("n", "app.new_run", "New run", id="new_run", tooltip="Start a training run from a form"),
        Binding("s", "app.stop", "Stop", id="stop", tooltip="Stop gracefully: the trainer saves a resume point"),
        Binding("K", "app.kill", "Kill", id="kill", tooltip="Kill the run's whole process group (asks first)"),
        Binding("r", "app.resume", "Resume", id="resume", tooltip="Continue from the newest resume point"),
        Binding("c", "app.checkpoints", "Checkpoints", id="checkpoints", tooltip="The selected run's checkpoints"),
        Binding("A", "app.adopt", "Adopt", id="adopt", show=False,
                tooltip="Adopt an official-script folder: hard-link its identical files, read its log (docs/adopt.md)"),
        Binding("C", "app.corpus", "Corpus", id="corpus", show=False, tooltip="The corpus report of the selected run's data "
                "(flagged clips, reasons, play one)"),
        Binding("D", "app.delete_run", "Delete run", id="delete_run", show=False,
                tooltip="Delete the selected run's folder, after a y/n naming what goes (not while it runs)"),
        Binding("R", "app.restart_policy", "Restart policy", id="restart_policy", show=False,
                tooltip="Restart this run when it crashes: off, or N times with back-off"),
        Binding("m", "app.smooth", "Smooth", id="smooth", show=False, tooltip="EMA smoothing of the loss chart on/off"),
        Binding("right_square_bracket", "app.overlay(1)", "Next layer", id="next_layer", show=False,
                tooltip="Overlay the next codebook layer on the loss chart"),
        Binding("left_square_bracket", "app.overlay(-1)", "Previous layer", id="previous_layer", show=False,
                tooltip="Overlay the previous codebook layer on the loss chart"),
        Binding("backslash", "app.overlay(0, True)", "No layer", id="no_layer", show=False,
                tooltip="Remove the overlaid layer from the loss chart"),
        Binding("v", "view", "View", id="view",
                tooltip="Show the loss chart, the scores per epoch, the layers or the log (compact layout)"),
        Binding("z", "zoom", "Zoom", id="zoom", show=False, tooltip="Fill the screen with the focused pane"),
        Binding("X", "app.stop_server", "Stop server", id="stop_server", show=False,
                tooltip="Stop the speech server the server line shows (milo-serve; S in the checkpoints view serves)"),
        Binding("M", "app.record", "Record", id="record", show=False,
                tooltip="Record a corpus, every take checked"),
        Binding("h", "app.host_log", "Host log", id="host_log", show=False,
                tooltip="A run across hosts: show the next host's log"),
    ]
    AUTO_FOCUS = "#runs"
    wide = reactive(False)
    _bindings_state: tuple = (None, None, None, False)  # what the footer was last drawn for
    _server_state: tuple = (None, None)

    def compose(self) -> ComposeResult:
        # One tree for both layouts; milo.tcss arranges it by the classes -wide and -view-<pane>.
        yield OneLine(self.app.title_line(), id="title")
        yield _titled(RunsTable(id="runs", classes="pane"), "Runs")
        yield OneLine(id="detail")
        yield OneLine(id="server")
        with Horizontal(id="middle"):
            with Vertical(id="left"):
                with Horizontal(id="top"):
                    yield LossChart(id="chart", classes="pane")
                    yield TrendPanel(id="trend", classes="pane")
                yield LayerPanel(id="layers", classes="pane")
            with Vertical(id="right"):
                yield TelemetryPanel(id="telemetry", classes="pane")
                yield _titled(LogTail(id="log", classes="pane"), "train.log")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.set_view(self.app.view)
        self.app.mark_dirty()
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self.app.mark_dirty())  # cells hold its colours

    def on_resize(self, event) -> None:
        self.wide = event.size.width >= WIDE[0] and event.size.height >= WIDE[1]

    def watch_wide(self, wide: bool) -> None:
        self.set_class(wide, "-wide")
        self.app.mark_dirty("chart", "telemetry")

    def set_view(self, view: str) -> None:
        """The pane the compact layout shows (the wide one shows them all)."""
        for name in VIEWS:
            self.set_class(name == view, f"-view-{name}")

    def on_screen_resume(self) -> None:
        self.app.mark_dirty()

    # ---------------------------------------------------------------- drawing (called by the app's draw timer)

    def draw(self, parts: set[str]) -> None:
        app = self.app
        if "runs" in parts:
            table = self.query_one(RunsTable)
            table.show(app.runs.values())
            _set(table, "border_title", app.runs_title())
            if app.selected is not None and str(app.selected) in table.rows:
                index = table.get_row_index(str(app.selected))
                if table.cursor_row != index:
                    table.move_cursor(row=index)
            self.query_one("#title", OneLine).show(app.title_line())
            self.query_one("#detail", OneLine).show(self.detail_line())
            r = app.selected_summary()
            state = (app.selected, r and r.status, r and r.has_resume, self.wide)
            if state != self._bindings_state:  # the footer redraws only when what is possible changed
                self._bindings_state = state
                self.refresh_bindings()
        if "chart" in parts:
            m = app.selected_metrics()
            points, vals = (m.points, m.validations) if m else ([], [])
            self.query_one(LossChart).show(points, vals, smooth=app.smooth, overlay=app.overlay, ascii=app.ascii)
            self.query_one(LayerPanel).show(points, overlay=app.overlay, ascii=app.ascii)
        if "trend" in parts or "chart" in parts:
            checkpoints, _free = app.checkpoints.get(app.selected, ((), None))
            judgement = app.judgements.get(app.selected)
            self.query_one(TrendPanel).show(checkpoints, ((judgement.baseline if judgement else None) or {}).get("means"),
                                            ascii=app.ascii)
        if "log" in parts:
            title, lines = app.shown_log()
            log = self.query_one(LogTail)
            _set(log, "border_title", title)
            log.show(lines)
        if "servers" in parts:
            line = self.query_one("#server", OneLine)
            text = self.server_line()
            line.set_class(bool(text), "-shown")
            line.show(text)
            server, _more = app.shown_server()
            state = (server and server.status, server and server.live)
            if state != self._server_state:  # X is dimmed unless a server is live
                self._server_state = state
                self.refresh_bindings()
        if "telemetry" in parts:
            r = app.selected_summary()
            self.query_one(TelemetryPanel).show(app.history, app.run_pids(), app.ascii, hosts=app.selected_hosts(),
                                                home=r.hosts[0] if r and r.hosts else "this host")

    def detail_line(self) -> str:
        r = self.app.selected_summary()
        if r is None:
            return " no run selected: [b]n[/] starts one" if not self.app.runs else ""
        style = STATUS_STYLE.get(r.status, "")
        parts = [f" [b]{escape(r.name)}[/]", f"[{style}]{r.status}[/]" if style else r.status]
        if r.hosts:
            parts.append(self.hosts_text(r))
        if r.live:
            if r.step is not None:
                parts.append(f"step {r.step}" + (f"/{r.total_steps}" if r.total_steps else ""))
            if r.eta_s is not None:
                parts.append(f"ETA {fmt_duration(r.eta_s)}")
        elif r.error:
            code = f" (exit {r.exit_code})" if r.exit_code not in (None, 0) else ""
            parts.append(f"[{ERROR}]{escape(r.error)}{code}[/]")
        elif r.stop_reason and r.status == STOPPED:
            parts.append(f"[{WARNING}]stopped by the scores: {escape(r.stop_reason)}[/]")
        elif r.status == EXTERNAL and not r.adopted:
            parts.append("checkpoints made elsewhere: read-only; [b]A[/] adopts it (docs/adopt.md)")
        elif r.status == EXTERNAL:
            parts.append("adopted: read-only; " + (f"scored against {escape(Path(r.data).name)}" if r.data else
                                                    f"[{WARNING}]no corpus to score against: [b]A[/] gives it[/]"))
        if r.best_val is not None:
            parts.append(f"best {fmt_num(r.best_val)} @ epoch {r.best_epoch}")
        if r.voice is not None and r.voice.name is not None:
            value = f" {METRIC_WORD.get(r.voice.metric, r.voice.metric)} {r.voice.value:.2f}" if r.voice.value is not None else ""
            if r.voice.beats_zero_shot is False:
                parts.append(f"[{WARNING}]\u2605 {escape(r.voice.name)}{value}, not above zero-shot[/]")
            else:
                parts.append(f"[{SUCCESS}]\u2605 {escape(r.voice.name)}{value}[/]")
        if r.restart_limit:
            parts.append(f"restarts {r.restarts}/{r.restart_limit}")
        if r.restart_at is not None and r.status == CRASHED:
            parts.append(f"restart at {time.strftime('%H:%M:%S', time.localtime(r.restart_at))}")
        return " · ".join(parts)

    RANK_WORDS = {"up": ("live", SUCCESS), "starting": ("starting", WARNING), "gone": ("gone", ERROR),
                  "unreachable": ("unreachable", ERROR), "unknown": ("not known", WARNING),
                  "connecting": ("connecting", "")}

    def hosts_text(self, r) -> str:
        """"on spark1 + spark2", and while the run is live each host's rank as its sampler last said
        ("on spark1 (live) + spark2 (live)"): the home host's is this dashboard's own look at the run."""
        if not r.live or not r.remote:
            return escape(r.hosts_text)
        said = [(r.hosts[0], "up")] + [(v.host, v.rank) for v in self.app.selected_hosts()]
        words = []
        for host, rank in said:
            word, style = self.RANK_WORDS.get(rank, (rank, ""))
            words.append(f"{escape(host)} ([{style}]{word}[/])" if style else f"{escape(host)} ({word})")
        return "on " + " + ".join(words)

    def server_line(self) -> str:
        """The speech server in one line ("" when no server has a state file): its state, what it serves, where, its
        counters (`milo-serve ready · epoch-0004 (milo_demo) of voice-1 · http://127.0.0.1:8767 · 12 requests ...`)."""
        from contract.serve import LOADING, READY, STOPPED, STOPPING

        server, more = self.app.shown_server()
        if server is None:
            return ""
        style = (SUCCESS if server.status == READY else WARNING if server.status in (LOADING, STOPPING) else
                 "dim" if server.status == STOPPED else ERROR)
        word, *rest = server.state_words()  # the state first: at 80 columns the counters may not fit
        line = " · ".join([f" [b]milo-serve[/] [{style}]{escape(word)}[/]", escape(server.what()), escape(server.url),
                           *map(escape, rest)])
        if server.live:
            line += " · [b]X[/] stops it"
        return line + (f" · +{more} more live" if more else "")

    # ---------------------------------------------------------------- input

    @on(DataTable.RowHighlighted, "#runs")
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        # Only the cursor's current row counts: the table also reports row 0 when its first rows arrive,
        # before draw() has moved the cursor to the selected run.
        if event.cursor_row == event.data_table.cursor_row and event.row_key.value is not None:
            self.app.select_run(event.row_key.value)

    def why_not(self, action: str) -> str | None:
        return self.app.why_not(action)  # the run actions are the app's (its state decides)

    def action_view(self) -> None:
        self.app.view = VIEWS[(VIEWS.index(self.app.view) + 1) % len(VIEWS)]
        self.set_view(self.app.view)
        self.app.mark_dirty("chart", "trend", "log")

    def action_zoom(self) -> None:
        if self.maximized is not None:
            self.minimize()
        elif self.focused is not None and self.focused.id != "runs":
            self.maximize(self.focused)
        else:
            pane = self.query_one("#chart" if self.wide else f"#{self.app.view}")
            pane.focus()
            self.maximize(pane)
