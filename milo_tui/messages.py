"""App-wide messages: what the off-loop sources (RunWatcher, the telemetry sampler, launch workers, the
audition worker's reader thread) tell the app or a screen, and what a screen asks of the app.
Small dataclasses; the handlers own the state they carry."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from textual.message import Message

from milo_tui.metrics import MetricsBatch
from milo_tui.runs import CheckpointRow, RunJudgement, RunSummary
from milo_tui.serving import Server
from milo_tui.supervisor import Ended
from milo_tui.telemetry import Telemetry
from milo_tui.telemetry.remote import HostReport

if TYPE_CHECKING:
    from contract.retention import Outcome, Plan


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
class ServersScanned(Message):
    """Every speech server with a state file (milo_tui/serving.py), whenever one of them changed."""
    servers: tuple[Server, ...]

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ServersScanned)


@dataclass
class ServerStarted(Message):
    """A speech server this dashboard started has written its first state (`server`), or not yet (None)."""
    checkpoint: Path
    server: Server | None


@dataclass
class TelemetrySampled(Message):
    telemetry: Telemetry

    def can_replace(self, message: Message) -> bool:
        return False  # each sample feeds the history


@dataclass
class HostReported(Message):
    """One other host of a run across hosts: its rank, telemetry and new log lines (milo_tui/telemetry/remote.py)."""
    report: HostReport

    def can_replace(self, message: Message) -> bool:
        return False  # each report carries log lines


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


# What the app's thread workers for checkpoints and runs end with (milo_tui/checkpoint_ops.py,
# milo_tui/run_control.py). A worker that raises instead reaches MiloApp.on_worker_state_changed.

@dataclass
class OperationFailed(Message):
    """A worker's operation could not be done; `error` says why in one line (nothing was changed unless it says)."""
    error: str


@dataclass
class ScoringStarted(Message):
    """These checkpoints are queued in the run's scoring.json and its scorer started."""
    run_dir: Path
    names: list[str]


@dataclass
class RunAdopted(Message):
    """An official-script folder was adopted (contract.adopt); `headline` says what was linked and recorded."""
    run_dir: Path
    headline: str
    has_corpus: bool


@dataclass
class CheckpointsPruned(Message):
    """The confirmed prune ran (contract.retention.apply_if_unchanged): `done` is what it deleted and kept."""
    run_dir: Path
    done: Outcome


@dataclass
class PrunePlanChanged(Message):
    """Nothing was pruned: the plan shown is no longer the run's; `show(plan)` asks about the new one."""
    run_dir: Path
    plan: Plan
    show: Callable[[Plan], None]


@dataclass
class RunDeleted(Message):
    """The run's folder is gone; `freed` bytes."""
    run_dir: Path
    freed: int
