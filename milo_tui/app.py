"""The Textual application: its life cycle, the state that handlers own, the draw timer, the view actions.
Run control (milo_tui/run_control.py), the checkpoint operations (milo_tui/checkpoint_ops.py) and the speech
server's (milo_tui/serve_ops.py) are mixed in.

Data flows one way (docs/architecture.md, "The dashboard"): RunWatcher and the telemetry sampler run in
threads and post messages (milo_tui.messages); the handlers here update the state; a timer draws at
DRAW_HZ what changed since the last draw; widgets only render what they are given.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

from rich.markup import escape
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.worker import Worker, WorkerState, get_current_worker

from contract.runfolder import CRASHED, FINISHED, KILLED, NUM_LAYERS, STOPPED
from milo_tui.checkpoint_ops import CheckpointOps
from milo_tui.config import Settings
from milo_tui.keys import WhyNot
from milo_tui.palette import ActionCommands
from milo_tui.run_control import RunControl
from milo_tui.serve_ops import ServeOps
from milo_tui.telemetry.history import TelemetryHistory

if TYPE_CHECKING:  # the sources' modules are imported once the first frame is up (on_ready)
    from milo_tui.messages import (
        AuditionRequested, CheckpointsScanned, HostReported, LaunchFailed, LogRead, MetricsRead, OperationFailed,
        RunEnded, RunLaunched, RunsScanned, TelemetrySampled,
    )
    from milo_tui.metrics import RunMetrics
    from milo_tui.runs import RunJudgement, RunSummary
    from milo_tui.serving import ServeControl, Server
    from milo_tui.supervisor import Supervisor
    from milo_tui.telemetry.remote import HostLinks, HostView
    from milo_tui.telemetry.source import TelemetrySource
    from milo_tui.watcher import RunWatcher

DRAW_HZ = 2  # redraws per second at most, and only of what changed
PARTS = ("runs", "chart", "log", "telemetry", "checkpoints", "trend", "servers")
LOG_LINES = 1000


def locale_is_utf8(environ=os.environ) -> bool:
    for var in ("LC_ALL", "LC_CTYPE", "LANG"):
        value = environ.get(var)
        if value:
            return "utf-8" in value.lower() or "utf8" in value.lower()
    return False  # no locale set: the C locale, ASCII


class MiloApp(ServeOps, RunControl, CheckpointOps, WhyNot, App):
    CSS_PATH = Path(__file__).parent / "milo.tcss"  # absolute: subclasses (bench, tests) live elsewhere
    TITLE = "milo-tui"
    COMMANDS = App.COMMANDS | {ActionCommands}  # every key's action (milo_tui/palette.py)
    BINDINGS = [
        Binding("q", "quit", "Quit", id="quit", tooltip="Quit the dashboard; runs keep going"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True, id="quit_ctrl_c",
                tooltip="Quit the dashboard; runs keep going"),
        Binding("question_mark", "help", "Keys", id="help", tooltip="Every key of this screen"),
        # Focus moves are priority bindings: the app runs them as it reads the key, before it forwards the
        # next one. As plain bindings they ran only after the key had bubbled up from the focused field, so
        # a key in the same read (keys arrive together over SSH: `Tab 7`) went to the field just left.
        Binding("tab", "app.focus_next", "Next field", show=False, priority=True, id="focus_next",
                tooltip="Move to the next field or pane"),
        Binding("shift+tab", "app.focus_previous", "Previous field", show=False, priority=True, id="focus_previous",
                tooltip="Move to the previous field or pane"),
    ]

    def __init__(self, settings: Settings, *, nvml=None, psutil_module=None, clock: Callable[[], float] = time.time,
                 telemetry_interval: float | None = 1.0, ascii: bool | None = None, python: str = sys.executable,
                 env: dict | None = None, watch_files: bool = True, poll_s: float = 1.0,
                 restart_backoff: float | None = None) -> None:
        super().__init__()
        self.settings = settings
        self.clock = clock
        self.ascii = ascii if ascii is not None else (settings.ascii if settings.ascii is not None else not locale_is_utf8())
        self._sources = dict(python=python, env=env, nvml=nvml, psutil_module=psutil_module, poll_s=poll_s,
                             watch_files=watch_files)
        self.supervisor: Supervisor | None = None  # these four start in on_ready
        self.serve_control: ServeControl | None = None
        self.watcher: RunWatcher | None = None
        self.telemetry: TelemetrySource | None = None
        self.host_links: HostLinks | None = None  # the other hosts of live runs across hosts, over SSH
        self.telemetry_interval = telemetry_interval
        self.restart_backoff = settings.restart_backoff if restart_backoff is None else restart_backoff
        # the state, owned by the handlers below
        self.runs: dict[Path, RunSummary] = {}
        self.selected: Path | None = None
        self.run_metrics: RunMetrics | None = None  # of the selected run
        self.log_lines: deque[str] = deque(maxlen=LOG_LINES)
        self.checkpoints: dict[Path, tuple] = {}
        self.checkpoints_used: dict[Path, int | None] = {}  # run -> bytes its checkpoints take together (du)
        self.judgements: dict[Path, RunJudgement] = {}  # per run: baseline, ceiling, scoring states, ratings
        self.servers: tuple[Server, ...] = ()  # the speech servers' state files, as RunWatcher last read them
        self.history = TelemetryHistory()
        self.host_views: dict[tuple[Path, str], HostView] = {}  # (run, other host) -> its rank, GPU, log
        self.log_host: str | None = None  # the log pane shows this other host's log (None: train.log here)
        self.smooth = False
        self.overlay: int | None = None
        self.view = "chart"
        self._dirty: set[str] = set(PARTS)
        self._draw_timer = None
        self._last_draw = 0.0
        self._started = False  # no draws before the first frame (which shows the composed screen)
        self._warned: set = set()
        self._select_when_seen: Path | None = None
        self._stop_sampling = threading.Event()
        self.set_keymap(settings.keys)

    # ------------------------------------------------------------------ life cycle

    def get_default_screen(self):
        from milo_tui.screens.runs import RunsScreen

        return RunsScreen()

    def on_mount(self) -> None:
        if self.ascii:
            self.add_class("-ascii")
        self._check_keymap()

    def on_ready(self) -> None:
        # The sources start after the first frame, which their imports, file reads and NVML start-up
        # would otherwise delay; their first messages follow within milliseconds.
        from milo_tui.serving import ServeControl
        from milo_tui.supervisor import Supervisor
        from milo_tui.messages import HostReported
        from milo_tui.telemetry.remote import HostLinks
        from milo_tui.telemetry.source import TelemetrySource
        from milo_tui.watcher import RunWatcher

        self._started = True
        src, checkpoints = self._sources, Path(self.settings.checkpoints)
        self.supervisor = Supervisor(python=src["python"], env=src["env"], backoff=self.restart_backoff)
        self.serve_control = ServeControl(python=src["python"], env=src["env"])
        psutil_module = src["psutil_module"]
        self.watcher = RunWatcher(checkpoints, self.post_message, self.supervisor, poll_s=src["poll_s"],
                                  use_watchfiles=src["watch_files"],
                                  disk_usage=psutil_module.disk_usage if psutil_module is not None else None,
                                  best_rule=lambda: self.settings.best)
        self.telemetry = TelemetrySource(checkpoints, src["nvml"], psutil_module, self.clock)
        self.host_links = HostLinks(lambda report: self.post_message(HostReported(report)), python=src["python"])
        self.run_worker(self._watch, thread=True, group="watcher", name="run watcher", exit_on_error=False)
        if self.telemetry_interval:
            self.run_worker(self._sample, thread=True, group="telemetry", name="telemetry", exit_on_error=False)
        self.mark_dirty()

    def on_unmount(self) -> None:
        self._stop_sampling.set()
        if self.host_links is not None:
            self.host_links.close()
        if self.watcher is not None:
            self.watcher.close()
            self.supervisor.forget()
            self.serve_control.forget()

    def _watch(self) -> None:
        worker = get_current_worker()
        self.watcher.run(cancelled=lambda: worker.is_cancelled)

    def _sample(self) -> None:
        """Telemetry about once a second; the wait shortens by the sampling time, so polls never overlap."""
        from milo_tui.messages import TelemetrySampled

        worker = get_current_worker()
        try:
            while not (worker.is_cancelled or self._stop_sampling.is_set()):
                started = time.monotonic()
                self.post_message(TelemetrySampled(self.telemetry.sample()))
                self._stop_sampling.wait(max(0.05, self.telemetry_interval - (time.monotonic() - started)))
        finally:
            self.telemetry.close()

    def _check_keymap(self) -> None:
        if not self.settings.keys:
            return
        unknown = sorted(set(self.settings.keys) - all_binding_ids())
        if unknown:
            self.notify(f"config.toml [keys]: unknown action(s) {', '.join(unknown)}; see docs/keys.md",
                        severity="warning", timeout=8)

    # ------------------------------------------------------------------ drawing

    def mark_dirty(self, *parts: str, now: bool = False) -> None:
        """Redraw these parts soon (all of them, for a new screen or layout, when none given): at once
        after a quiet spell (or when `now`: a run's history just arrived), else 1/DRAW_HZ after the last
        draw. An idle dashboard runs no timer."""
        if not parts:
            parts = PARTS
        self._dirty.update(parts)
        if now and self._draw_timer is not None:
            self._draw_timer.stop()
            self._draw_timer = None
        if self._draw_timer is None and self._started:
            wait = 0.01 if now else max(0.01, self._last_draw + 1 / DRAW_HZ - time.monotonic())  # timers need > 0
            self._draw_timer = self.set_timer(wait, self._draw, name="draw")

    def _draw(self) -> None:
        self._draw_timer = None
        if not self._dirty:
            return
        self._last_draw = time.monotonic()
        parts, self._dirty = self._dirty, set()
        with self.batch_update():
            for screen in self.screen_stack:
                draw = getattr(screen, "draw", None)
                if draw is not None:
                    draw(parts)

    def draw_now(self) -> None:
        """Draw what is pending at once (tests and snapshots: no waiting for the timer)."""
        self._draw()

    # ------------------------------------------------------------------ handlers: the state changes here

    def on_runs_scanned(self, message: RunsScanned) -> None:
        from milo_tui.runs import UNREADABLE

        self.runs = {r.path: r for r in message.runs}
        for r in message.runs:
            if r.status == UNREADABLE and r.path not in self._warned:
                self._warned.add(r.path)
                self.notify(f"{r.name}: state.json is not readable JSON; shown as unreadable", severity="warning")
        if self._select_when_seen in self.runs:
            self.select_run(self._select_when_seen)
            self._select_when_seen = None
        elif self.selected not in self.runs:
            self.select_run(self._default_selection())
        self._follow_hosts()
        self.mark_dirty("runs", "checkpoints")

    def _follow_hosts(self) -> None:
        """One SSH link to each other host of every live run; a run that ends takes its hosts' views with it."""
        entries = [e for r in self.runs.values() if r.live for e in r.remote]
        if self.host_links is not None:
            self.host_links.want(entries)
        wanted = {(e.run_dir, e.host) for e in entries}
        gone = [key for key in self.host_views if key not in wanted]
        for key in gone:
            del self.host_views[key]
        if gone:
            self.mark_dirty("telemetry", "log")

    def on_host_reported(self, message: HostReported) -> None:
        from milo_tui.telemetry.remote import HostView

        r = message.report
        run = self.runs.get(r.run_dir)
        if run is None or not run.live or r.host not in {e.host for e in run.remote}:
            return  # a report that was on its way when its run ended
        view = self.host_views.setdefault((r.run_dir, r.host), HostView(r.host, r.run_dir))
        rank = view.rank
        view.apply(r, self.clock())
        self.mark_dirty("telemetry")
        if view.rank != rank:
            self.mark_dirty("runs")
        if r.run_dir == self.selected and self.log_host == r.host and (r.log or r.log_reset):
            self.mark_dirty("log")

    def selected_hosts(self) -> list[HostView]:
        """The other hosts of the selected run while it runs, as last reported (none for a run on this host)."""
        from milo_tui.telemetry.remote import HostView

        r = self.selected_summary()
        if r is None or not r.live:
            return []
        return [self.host_views.get((r.path, e.host)) or HostView(e.host, r.path) for e in r.remote]

    def shown_log(self) -> tuple[str, Iterable[str]]:
        """The log pane's title and lines: the selected run's train.log here, or the other host's log `h` chose."""
        view = next((v for v in self.selected_hosts() if v.host == self.log_host), None)
        return (f"{view.host}: its log", view.log) if view is not None else ("train.log", self.log_lines)

    def _default_selection(self) -> Path | None:
        if not self.runs:
            return None
        live = [r for r in self.runs.values() if r.live]
        return max(live or self.runs.values(), key=lambda r: r.updated_at or 0).path

    def on_metrics_read(self, message: MetricsRead) -> None:
        if message.run_dir != self.selected or self.run_metrics is None:
            return  # the watcher had not switched yet
        self.run_metrics.apply(message.batch)
        if self.run_metrics.bad_lines and ("bad", self.selected) not in self._warned:
            self._warned.add(("bad", self.selected))
            self.notify(f"{self.selected.name}: lines of metrics.jsonl that are not JSON were skipped",
                        severity="warning")
        self.mark_dirty("chart", now=message.batch.reset)

    def on_log_read(self, message: LogRead) -> None:
        if message.run_dir != self.selected:
            return
        if message.reset:
            self.log_lines.clear()
        self.log_lines.extend(message.lines)
        self.mark_dirty("log")

    def on_checkpoints_scanned(self, message: CheckpointsScanned) -> None:
        self.checkpoints[message.run_dir] = (message.checkpoints, message.free_bytes)
        self.checkpoints_used[message.run_dir] = message.used_bytes
        if message.judgement is not None:
            self.judgements[message.run_dir] = message.judgement
        self.mark_dirty("checkpoints", "trend")

    def on_telemetry_sampled(self, message: TelemetrySampled) -> None:
        self.history.add(message.telemetry)
        self.mark_dirty("telemetry")

    def on_run_launched(self, message: RunLaunched) -> None:
        what = "resumed" if message.resumed else "started"
        self.notify(f"{message.run_dir.name}: trainer {what} (pid {message.pid})")
        self.watcher.wake()

    def on_launch_failed(self, message: LaunchFailed) -> None:
        self.notify(message.error, severity="error", timeout=8)
        self.watcher.wake()

    def on_run_ended(self, message: RunEnded) -> None:
        e = message.ended
        name = e.run_dir.name
        if e.restarted:  # the crash and its restart both fell between two looks
            self.notify(f"{name} crashed ({e.error or 'see train.log'}); Restart {e.restarts} of {e.restart_limit} "
                        "has started", severity="warning", timeout=8)
        elif e.status == CRASHED and e.restart_at is not None:  # its keeper restarts it (docs/supervision.md)
            delay = max(0.0, e.restart_at - time.time())
            self.notify(f"{name} crashed: {e.error}. Restart {e.restarts + 1} of {e.restart_limit} in {delay:.0f} s",
                        severity="warning", timeout=8)
        elif e.status == CRASHED:
            self.notify(f"{name}: {e.error or 'crashed'}", severity="error", timeout=10)
        elif e.status == STOPPED:
            self.notify(f"{name} stopped; resume with r")
        elif e.status == KILLED and e.requested != "kill":  # a kill sent from here was said when sent
            self.notify(f"{name} was killed; r resumes from the newest resume point", severity="warning")
        elif e.status == FINISHED:
            self.notify(f"{name} finished")

    def on_audition_requested(self, message: AuditionRequested) -> None:
        """Open the audition screen on this checkpoint. The screen is installed once and reused, so its
        worker (and the checkpoint it has loaded) lives on between visits; it stops with the app."""
        from milo_tui.audition.screen import AuditionScreen

        if not self.is_screen_installed("audition"):
            self.install_screen(AuditionScreen(message.run_dir, message.checkpoint, device=self.settings.device),
                                name="audition")
        else:
            self.get_screen("audition").retarget(message.run_dir, message.checkpoint)
        self.push_screen("audition")

    # ------------------------------------------------------------------ workers that failed

    def on_operation_failed(self, message: OperationFailed) -> None:
        self.notify(message.error, severity="error", timeout=10)
        if self.watcher is not None:
            self.watcher.wake()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A worker of the app that raised, which none means to (each ends with a message), says so in one line:
        its name and the error, never a traceback."""
        if event.state == WorkerState.ERROR:
            from contract.errors import one_line

            self.notify(f"{event.worker.name} failed: {one_line(event.worker.error)}", severity="error", timeout=10)

    # ------------------------------------------------------------------ what the screens ask for

    def selected_summary(self) -> RunSummary | None:
        return self.runs.get(self.selected) if self.selected else None

    def selected_metrics(self) -> RunMetrics | None:
        return self.run_metrics

    def run_pids(self) -> dict[int, str]:
        return {r.pid: r.name for r in self.runs.values() if r.live and r.pid}

    def title_line(self) -> str:
        kind = "demo workspace" if self.settings.demo else "workspace"
        return f" [b]milo-tui[/] · {kind} · {escape(str(self.settings.base_model or 'no base model set'))}"

    def runs_title(self) -> str:
        live = sum(r.live for r in self.runs.values())
        return f"Runs ({len(self.runs)}" + (f", {live} running)" if live else ")")

    def select_run(self, run_dir: Path | str | None) -> None:
        run_dir = Path(run_dir) if run_dir else None
        if run_dir == self.selected:
            return
        from milo_tui.metrics import RunMetrics

        self.selected = run_dir
        self.run_metrics = RunMetrics() if run_dir else None
        self.log_lines.clear()
        self.log_host = None
        self.watcher.follow(run_dir)
        self.mark_dirty()

    def action_checkpoints(self) -> None:
        from milo_tui.screens.checkpoints import CheckpointsScreen

        self.push_screen(CheckpointsScreen())

    def corpus_report(self) -> tuple[Path | None, str | None]:
        """The corpus report beside the selected run's data (run.json), or None and why: never another
        corpus's report (the configured data's may be a different corpus)."""
        from contract.audit import CORPUS_REPORT, report_path
        from contract.runfolder import RUN_JSON, read_json

        if self.selected is None:
            return None, "no run selected"
        name = self.selected.name
        data = (read_json(self.selected / RUN_JSON) or {}).get("data")
        make = f"`milo-train prepare CORPUS --base BASE --out DATA.jsonl` writes {CORPUS_REPORT} beside DATA.jsonl"
        if not isinstance(data, str) or not data:
            return None, f"{name} has no corpus report: its run.json names no data; {make}"
        path = report_path(Path(data))
        if not path.is_file():
            return None, f"{name} has no corpus report: none at {path}; {make}"
        return path, None

    def action_corpus(self) -> None:
        from milo_tui.screens.corpus import CorpusScreen

        path, why = self.corpus_report()
        if path is None:
            self.notify(why, severity="warning", timeout=8)
            return
        self.push_screen(CorpusScreen(path, device=self.settings.device))

    def action_record(self) -> None:
        from milo_tui.recording.setup import RecordSetup, default_folder, default_mic, open_record

        def chosen(answer) -> None:
            if answer is not None:
                open_record(self, *answer)
        self.push_screen(RecordSetup(default_folder(self.settings.checkpoints), default_mic()), chosen)

    def best_rule_of(self, run_dir: Path | None):
        """One rule per run (contract.scores.rule_for): the run's own (run.json, as the watcher read it) where it
        has one, else the configured [best]; with a note naming the run's own, "" for the configured one."""
        run = self.runs.get(run_dir) if run_dir else None
        if run is not None and run.best_rule is not None:
            from contract.scores import RUN_RULE_SOURCE

            return run.best_rule, RUN_RULE_SOURCE + (f" ({run.best_note})" if run.best_note else "")
        return self.settings.best, ""

    def best_of(self, run_dir: Path | None) -> tuple[str | None, str]:
        """The run's best checkpoint by its rule (best_rule_of), and why."""
        return self.judged(run_dir)[:2]

    def judged(self, run_dir: Path | None) -> tuple[str | None, str, bool | None, str]:
        """best_of, and whether that best beats the zero-shot baseline row on the rule's metric, with the
        figures (contract.scores.against_baseline): the checkpoints view's verdict line."""
        from contract.scores import against_baseline, pick_best

        checkpoints, _free = self.checkpoints.get(run_dir, ((), None))
        j = self.judgements.get(run_dir)
        baseline = ((j.baseline if j else None) or {}).get("means")
        rule, _note = self.best_rule_of(run_dir)
        candidates = [(c.name, c.scores, c.val_loss) for c in checkpoints]
        best, why = pick_best(candidates, baseline, rule)
        return (best, why, *against_baseline(candidates, best, baseline, rule))

    def action_smooth(self) -> None:
        self.smooth = not self.smooth
        self.mark_dirty("chart")

    def action_overlay(self, delta: int, clear: bool = False) -> None:
        """Overlay the next/previous codebook layer (delta) on the loss chart, or none (clear)."""
        if clear:
            self.overlay = None
        elif self.overlay is None:
            self.overlay = 0 if delta > 0 else NUM_LAYERS - 1
        else:
            self.overlay = (self.overlay + delta) % NUM_LAYERS
        self.mark_dirty("chart")

    def set_overlay(self, layer: int | None) -> None:
        self.overlay = layer
        self.mark_dirty("chart")

    def deliver_screenshot(self, filename: str | None = None, path: str | None = None,
                           time_format: str | None = None) -> str | None:
        """The palette's Screenshot: Textual saves into the Downloads folder, which a Spark reached over SSH
        has not got (it said only "Failed to save screenshot"); ours go to a folder made for them."""
        if path is None:
            from platformdirs import user_data_path

            folder = user_data_path("milo-tui") / "screenshots"
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                self.notify(f"screenshot not saved: cannot make {folder} ({exc.strerror or exc})", severity="error")
                return None
            path = str(folder)
        return super().deliver_screenshot(filename, path, time_format)

    def action_help(self) -> None:
        from milo_tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    # ------------------------------------------------------------------ command palette

    def get_system_commands(self, screen) -> Iterable[SystemCommand]:
        """Textual's own commands but Keys and Quit: those are bindings, listed by ActionCommands."""
        for command in super().get_system_commands(screen):
            if command.title not in ("Keys", "Quit"):
                yield command


def binding_classes() -> tuple:
    """The app and every screen whose bindings a [keys] table may remap."""
    from milo_tui.audition.screen import AuditionScreen
    from milo_tui.screens.checkpoints import CheckpointsScreen
    from milo_tui.screens.corpus import CorpusScreen
    from milo_tui.screens.dialogs import ConfirmScreen, NumberPrompt
    from milo_tui.screens.help import HelpScreen
    from milo_tui.screens.new_run import NewRunScreen
    from milo_tui.recording.screen import ReasonPrompt, RecordScreen
    from milo_tui.recording.setup import RecordSetup
    from milo_tui.screens.runs import RunsScreen

    return (MiloApp, RunsScreen, CheckpointsScreen, NewRunScreen, ConfirmScreen, NumberPrompt, HelpScreen, AuditionScreen,
            CorpusScreen, RecordScreen, ReasonPrompt, RecordSetup)


def all_binding_ids() -> set[str]:
    """Every binding id a [keys] table in config.toml may remap (docs/keys.md)."""
    from milo_tui.keys import binding_ids

    return binding_ids(*binding_classes())
