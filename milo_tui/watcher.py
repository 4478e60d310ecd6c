"""RunWatcher: the dashboard's eyes on the checkpoints folder, in one thread off the event loop.

Each pass (woken by watchfiles, at least once a second as a fallback poll):
  - asks the supervisor about every live run (a trainer gone while state.json says live is a crash);
  - re-reads the summary of every run whose files changed (state.json, run.json, metrics.jsonl);
  - tails the followed run's metrics.jsonl and train.log by byte offset, and rescans its checkpoints;
  - reads the speech servers' state files (milo_tui/serving.py: a few small files, and their pids).
It posts messages (milo_tui.messages) and never touches a widget.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

from milo_tui.messages import CheckpointsScanned, LogRead, MetricsRead, RunEnded, RunsScanned, ServersScanned
from contract.runfolder import METRICS, RESUME_DIR, RUN_JSON, STATE_JSON, TRAIN_LOG, list_runs
from contract.samples import INDEX as SAMPLES_INDEX, samples_dir
from milo_tui.runs import (
    CheckpointScanner, RunSummary, judgement_files, read_judgement, read_summary, read_voice, voice_stamp_files,
)
from milo_tui.serving import read_servers
from milo_tui.supervisor import Supervisor
from milo_tui.tail import LogReader, MetricsReader

RUN_FILES = (STATE_JSON, RUN_JSON, METRICS, RESUME_DIR)
SUMMARY_EVERY = 1.0  # s: a run whose only change is new metrics is re-summarised at most this often
PROCESS_EVERY = 1.0  # s: live trainers are looked at this often (and when their state.json changes)
MIN_PASS_INTERVAL = 0.5  # s: at most two passes a second (the draw rate) however fast files change; a follow request wakes it at once
FREE_SPACE_EVERY = 10.0  # s: the checkpoints view's free space when nothing else changed


def _stamp(path: Path) -> tuple:
    try:
        st = os.stat(path)
    except OSError:
        return ()
    return st.st_mtime_ns, st.st_size, st.st_ino


class RunWatcher:
    def __init__(self, checkpoints: Path, post: Callable, supervisor: Supervisor, poll_s: float = 1.0,
                 use_watchfiles: bool = True, disk_usage: Callable | None = None,
                 best_rule: Callable | None = None) -> None:
        self.root = Path(checkpoints)
        self.best_rule = best_rule  # () -> contract.scores.BestRule, read each pass (the settings may change)
        self._voices: dict[Path, tuple] = {}  # run -> (rule, stamps of voice_stamp_files, Voice)
        self.post = post
        self.supervisor = supervisor
        self.poll_s = poll_s
        self.use_watchfiles = use_watchfiles
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._follow_request: tuple[Path | None] | None = None
        self._followed: Path | None = None
        self._metrics: MetricsReader | None = None
        self._log: LogReader | None = None
        self._scanner = CheckpointScanner(disk_usage) if disk_usage else CheckpointScanner()
        self._ckpt_seen: tuple = ()
        self._ckpt_posted = 0.0
        self._judged: tuple = ()              # (run, stamps of the files its RunJudgement was read from)
        self._judgement = None
        self._stamps: dict[Path, tuple] = {}
        self._summarised: dict[Path, float] = {}
        self._summaries: dict[Path, RunSummary] = {}
        self._posted: tuple[RunSummary, ...] | None = None
        self._cancelled: Callable[[], bool] = lambda: False
        self._processes_checked = 0.0
        self._state_stamps: dict[Path, tuple] = {}
        self._servers: tuple = ()  # as last posted

    # ----------------------------------------------------------------- called from the event loop

    def follow(self, run_dir: Path | None) -> None:
        """Tail this run from the start (None: none); takes effect on the next pass, which this wakes."""
        with self._lock:
            self._follow_request = (Path(run_dir) if run_dir else None,)
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()

    # ----------------------------------------------------------------- the thread

    def is_set(self) -> bool:
        """watchfiles' stop_event: leave the watch to follow another run, or to stop."""
        return self._wake.is_set() or self.stopping()

    def stopping(self) -> bool:
        return self._stop.is_set() or self._cancelled()

    def _relevant(self, _change, path: str) -> bool:
        try:
            parts = Path(path).relative_to(self.root).parts
        except ValueError:
            return False
        if len(parts) == 1:
            return not parts[0].startswith(".")
        if len(parts) == 2:
            return parts[1] in RUN_FILES or parts[1] == TRAIN_LOG or not parts[1].startswith(".")
        return False

    def run(self, cancelled: Callable[[], bool] | None = None) -> None:
        """Thread body: passes until close() (or `cancelled()` turns true)."""
        if cancelled is not None:
            self._cancelled = cancelled
        self.poll()
        while not self.stopping():
            if self.use_watchfiles and self.root.is_dir():
                try:
                    import watchfiles

                    # step: how often the watch looks at stop_event (a follow request); the pace of passes is
                    # set by MIN_PASS_INTERVAL, while the watch keeps collecting changes
                    for _changes in watchfiles.watch(self.root, watch_filter=self._relevant, debounce=500, step=50,
                                                     rust_timeout=int(self.poll_s * 1000), yield_on_timeout=True,
                                                     stop_event=self, raise_interrupt=False):
                        self.poll()
                        self._wake.wait(MIN_PASS_INTERVAL)
                except Exception:  # no inotify (limits, odd file systems): poll instead
                    self.use_watchfiles = False
            else:
                self._wake.wait(self.poll_s)
            self._wake.clear()
            if not self.stopping():
                self.poll()

    def poll(self) -> None:
        """One pass (see the module doc). Public so that tests can drive it without a thread."""
        with self._lock:
            request, self._follow_request = self._follow_request, None
        if request is not None:  # even the same run again: the app has started its store afresh
            self._start_following(request[0])
        self._check_processes()
        self._scan_runs()
        if self._followed is not None:
            self._tail_followed()
        self._scan_servers()

    def _scan_servers(self) -> None:
        try:
            servers = read_servers()
        except OSError:  # the serve folder unreadable: nothing to show
            servers = ()
        if servers != self._servers:  # their `updated` stamp is not part of a Server: an idle one posts nothing
            self._servers = servers
            self.post(ServersScanned(servers))

    def _start_following(self, run_dir: Path | None) -> None:
        for reader in (self._metrics, self._log):
            if reader is not None:
                reader.tail.close()
        self._followed = run_dir
        self._metrics = MetricsReader(run_dir / METRICS) if run_dir else None
        self._log = LogReader(run_dir / TRAIN_LOG) if run_dir else None
        self._ckpt_seen, self._ckpt_posted = (), 0.0

    def _check_processes(self) -> None:
        now = time.monotonic()
        if now - self._processes_checked < PROCESS_EVERY and not self._state_changed():
            return
        self._processes_checked = now
        for run_dir, summary in list(self._summaries.items()):
            if summary.live or self.supervisor.watching(run_dir):
                ended = self.supervisor.check(run_dir)
                if ended is not None:
                    self._stamps.pop(run_dir, None)  # re-read its summary in this pass
                    self.post(RunEnded(ended))

    def _state_changed(self) -> bool:
        """Did any live run's state.json change since the last look (a trainer's last words)?"""
        changed = False
        for run_dir, summary in self._summaries.items():
            if summary.live or self.supervisor.watching(run_dir):
                stamp = _stamp(run_dir / STATE_JSON)
                changed |= self._state_stamps.get(run_dir) != stamp
                self._state_stamps[run_dir] = stamp
        return changed

    def _scan_runs(self) -> None:
        now = time.monotonic()
        runs = list_runs(self.root)
        present = set(runs)
        for gone in set(self._summaries) - present:
            self._summaries.pop(gone, None)
            self._stamps.pop(gone, None)
            self._voices.pop(gone, None)
        for run_dir in runs:
            stamp = tuple(_stamp(run_dir / name) for name in RUN_FILES)
            old = self._stamps.get(run_dir)
            if stamp == old:
                continue
            only_metrics = old is not None and stamp[:2] == old[:2] and stamp[3:] == old[3:]
            if only_metrics and now - self._summarised.get(run_dir, 0.0) < SUMMARY_EVERY:
                continue  # the next pass (at most poll_s away) takes it
            self._stamps[run_dir] = stamp
            self._summarised[run_dir] = now
            self._summaries[run_dir] = read_summary(run_dir)
        summaries = tuple(self._with_voice(self._summaries[r]) for r in sorted(self._summaries))
        if summaries != self._posted:
            self._posted = summaries
            self.post(RunsScanned(summaries))

    def _with_voice(self, summary: RunSummary) -> RunSummary:
        """The summary with its run's Voice, re-read only when a file it depends on (or the rule) changed."""
        if self.best_rule is None:
            return summary
        rule = self.best_rule()
        stamps = tuple(_stamp(p) for p in voice_stamp_files(summary.path))
        cached = self._voices.get(summary.path)
        if cached is None or cached[:2] != (rule, stamps):
            cached = self._voices[summary.path] = (rule, stamps, read_voice(summary.path, rule))
        return summary if summary.voice == cached[2] else replace(summary, voice=cached[2])

    def _tail_followed(self) -> None:
        run_dir = self._followed
        batch = self._metrics.read()
        if batch is not None:
            self.post(MetricsRead(run_dir, batch))
        log = self._log.read()
        if log is not None:
            self.post(LogRead(run_dir, *log))
        now = time.monotonic()
        # the run folder changes when a checkpoint, a score (scoring.json) or a baseline lands, and with each
        # state.json write of a live run; the samples index when an audition is rated
        stamp = (_stamp(run_dir), _stamp(samples_dir(run_dir) / SAMPLES_INDEX))
        if stamp != self._ckpt_seen or now - self._ckpt_posted > FREE_SPACE_EVERY:
            checkpoints, free, used = self._scanner.scan(run_dir)
            self._ckpt_seen, self._ckpt_posted = stamp, now
            judged = (run_dir, tuple(_stamp(p) for p in judgement_files(run_dir)))
            if judged != self._judged:  # re-read only what changed: not once a second for each state.json write
                self._judged, self._judgement = judged, read_judgement(run_dir)
            self.post(CheckpointsScanned(run_dir, tuple(checkpoints), free, self._judgement, used))
