"""App-wide messages: what the off-loop sources (RunWatcher, the telemetry sampler, launch workers, the
audition worker's reader thread) tell the app or a screen, and what a screen asks of the app.
Small dataclasses; the handlers own the state they carry."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual.message import Message

from milo_tui.metrics import MetricsBatch
from milo_tui.runs import CheckpointRow, RunJudgement, RunSummary
from milo_tui.supervisor import Ended
from milo_tui.telemetry import Telemetry


@dataclass
class RunsScanned(Message):
    """Every run under the checkpoints folder, whenever any of them changed."""
    runs: tuple[RunSummary, ...]

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunsScanned)  # only the newest list matters


@dataclass
class MetricsRead(Message):
    """New metrics of the followed run (batch.reset: forget what was read before)."""
    run_dir: Path
    batch: MetricsBatch


@dataclass
class LogRead(Message):
    """New train.log lines of the followed run."""
    run_dir: Path
    lines: list[str]
    reset: bool


@dataclass
class CheckpointsScanned(Message):
    run_dir: Path
    checkpoints: tuple[CheckpointRow, ...]
    free_bytes: int | None
    judgement: RunJudgement | None = None
    used_bytes: int | None = None  # what the checkpoints take together, each hard-linked file once (as du counts)


@dataclass
class RunEnded(Message):
    """A trainer this dashboard watched is gone (finished, stopped, crashed or killed)."""
    ended: Ended


@dataclass
class RunLaunched(Message):
    run_dir: Path
    pid: int
    resumed: bool


@dataclass
class LaunchFailed(Message):
    run_dir: Path
    error: str


@dataclass
class TelemetrySampled(Message):
    telemetry: Telemetry

    def can_replace(self, message: Message) -> bool:
        return False  # each sample feeds the history


@dataclass
class AuditionRequested(Message):
    """Audition this checkpoint (the app opens milo_tui.audition.screen.AuditionScreen)."""
    run_dir: Path
    checkpoint: Path


@dataclass
class WorkerEvent(Message):
    """One event line from an audition worker (or its client: crashed, restarted, gave_up), posted from the
    client's reader thread to the screen that owns the worker (the audition and corpus screens)."""
    event: dict
