"""How many checkpoint scorers run, and when one starts (docs/scoring.md, "When scores are made").

One scorer per run: it holds the run's `.scoring.lock` (an exclusive flock) for as long as it works. A save
queues its checkpoint in scoring.json first and then probes that lock without waiting (`run_scorer_busy`):
held, it starts nothing, because the holder looks at the queue again after it lets the lock go
(`inference.scoring queue`). A scorer that finds the lock held exits at once. No process waits on the run's
lock to find work.

A few per machine: before it loads a model, a run's scorer takes one of `[scoring] max_scorers` slots,
flock'd files in a per-user runtime folder (`slots_dir`), and waits for one when all are taken (it has work;
one idle process per run at most). The slot goes with the process, also when it dies.

Torch-free: the trainer and the dashboard start scorers through contract.scores.start_scorer.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from contract.configfile import one_of, read_table, whole
from contract.runfolder import claim

RUN_LOCK = ".scoring.lock"             # in a run folder: held by that run's one scorer
SCORING_TABLE = "scoring"              # the configuration file's table: device (where it generates), max_scorers
SCORER_DEVICES = ("cpu", "cuda", "auto")
# cpu by default: the scorer then never takes GPU memory or time from a run training beside it (at nice 19 it
# takes only the cores training leaves), and works the same on a machine without a GPU. docs/configuration.md
DEFAULT_SCORER_DEVICE = "cpu"
# [scoring]: max_scorers None means the device's default (default_max_scorers)
SCORING_KEYS = {"device": one_of(DEFAULT_SCORER_DEVICE, SCORER_DEVICES), "max_scorers": whole(None, lo=1)}
SLOTS_ENV = "MILO_SCORER_SLOTS"        # the slots' folder, in place of the default (tests give each session one)


def release(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)


def run_scorer_busy(run_dir: Path) -> bool:
    """Whether the run's scorer is at work (it holds the run's lock). Asked after the queue entry is written:
    a scorer that holds the lock now looks at the queue again after releasing it."""
    fd = claim(Path(run_dir) / RUN_LOCK, create=True)
    release(fd)
    return fd is None


def default_max_scorers(device: str) -> int:
    """One scorer at work at once where it runs on the CPU (two would halve each other and the trainer), two
    where it runs on a GPU (generation waits on the GPU, the recognizers on the CPU)."""
    return 2 if str(device).startswith("cuda") else 1


def max_scorers(config: dict | None, device: str, origin: str | Path = "the configuration file") -> int:
    """`[scoring] max_scorers` of a configuration (contract.configfile.read_config()), else the device's
    default. ConfigError (one line) when it is not a whole number of 1 or more. Other keys of the table are
    not this function's to judge."""
    value = read_table(config, SCORING_TABLE, SCORING_KEYS, origin, only=("max_scorers",))["max_scorers"]
    return default_max_scorers(device) if value is None else value


def slots_dir() -> Path:
    """$MILO_SCORER_SLOTS, else $XDG_RUNTIME_DIR/milo-scorers, else /tmp/milo-scorers-UID: per user, so one
    user's scorers never hold another's slots."""
    explicit = os.environ.get(SLOTS_ENV)
    if explicit:
        return Path(explicit)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return Path(runtime) / "milo-scorers"
    return Path("/tmp") / f"milo-scorers-{os.getuid()}"


class Slot:
    """One of `limit` machine-wide scorer slots, held from `take` until `release` (or the process ends)."""

    def __init__(self, index: int, limit: int, fd: int) -> None:
        self.index, self.limit, self._fd = index, limit, fd

    def release(self) -> None:
        release(self._fd)
        self._fd = None

    @classmethod
    def take(cls, limit: int, *, say=lambda line: None, poll_s: float = 0.5, folder: Path | None = None) -> "Slot":
        """The first free slot; waits (polling, so whichever slot frees first is taken) when all are held."""
        folder = folder or slots_dir()
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        waited = False
        while True:
            for index in range(limit):
                fd = claim(folder / f"slot-{index}", create=True)
                if fd is not None:
                    return cls(index, limit, fd)
            if not waited:
                say(f"waiting for a scorer slot: {limit} at work already ([scoring] max_scorers = {limit})")
                waited = True
            time.sleep(poll_s)


def newest_first(run_dir: Path, names) -> list[str]:
    """Queued checkpoint names, the most recently saved first (contract.runfolder.save_order), so quality stop
    and keep-best act on what training just made; the rest follow."""
    from contract.runfolder import save_order

    return sorted(names, key=lambda n: save_order(Path(run_dir) / n), reverse=True)
