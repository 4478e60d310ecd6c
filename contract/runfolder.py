"""The run folder: the contract between the trainer (writer) and the dashboard (reader).

Torch-free on purpose: the trainer imports it to write, the dashboard to read. docs/run-folder.md is the
human-readable version of this module; keep the two in step.

    <checkpoints>/<run>/
      run.json        what was asked (written once by the trainer, before the first step)
      state.json      status, pid + process start time, host, exit code, last error line
      metrics.jsonl   append-only records: kind "step" | "validation" | "event" (schema v1)
      train.log       the trainer's stdout and stderr
      epoch-0004/     a custom-voice checkpoint (+ eval.json); step-00001200/ for mid-epoch saves
      resume/         newest optimizer/scheduler/RNG/data-position state
      samples/        auditioned WAVs + index.jsonl
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable

SCHEMA_VERSION = 1
NUM_CODEBOOKS = 16  # codes per frame of the 12 Hz codec: the talker predicts codebook 0, the sub-talker 1..15
NUM_LAYERS = NUM_CODEBOOKS  # the per-layer losses of metrics.jsonl and eval.json: one per codebook

RUN_JSON = "run.json"
STATE_JSON = "state.json"
METRICS = "metrics.jsonl"
TRAIN_LOG = "train.log"
RESUME_DIR = "resume"
SAMPLES_DIR = "samples"
EVAL_JSON = "eval.json"

# Statuses in state.json. "starting" is written by the supervisor before the trainer takes over; "killed" by
# the dashboard that sent the operator's SIGKILL (resumable like "stopped", never restarted).
STARTING, RUNNING, STOPPING, STOPPED, CRASHED, FINISHED, KILLED = (
    "starting", "running", "stopping", "stopped", "crashed", "finished", "killed")
LIVE_STATUSES = (STARTING, RUNNING, STOPPING)
EXTERNAL = "external"  # a folder of checkpoints made elsewhere (the official script): no trainer, read-only

# Our checkpoints (epoch-0004, step-00001200) and the official fine-tuning script's (checkpoint-epoch-3,
# a full copy of the base model folder per epoch; docs/adopt.md).
CHECKPOINT_RE = re.compile(r"^(epoch-(?P<epoch>\d{4,})|step-(?P<step>\d{8,})|checkpoint-epoch-(?P<official>\d+))$")
OFFICIAL_PREFIX = "checkpoint-epoch-"



def epoch_dir_name(epoch: int) -> str:
    return f"epoch-{epoch:04d}"


def step_dir_name(step: int) -> str:
    return f"step-{step:08d}"


def is_checkpoint_dir(path: Path) -> bool:
    return path.is_dir() and CHECKPOINT_RE.match(path.name) is not None


def write_atomic(path: Path, write: Callable[[Path], Any]) -> None:
    """Replace `path` with what `write(tmp)` puts in a temporary file beside it, so that a reader sees the old or
    the new file, never half (state, checkpoints' JSON, a recording session's audio and tables)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; state and run files are read by other users' tools
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_json_atomic(path: Path, obj: Any) -> None:
    """Replace `path` with `obj` as JSON so that a reader sees the old or the new file, never half."""
    write_atomic(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8"))


def read_json(path: Path) -> dict | None:
    """The JSON object in `path`, or None when it is missing, unreadable or not an object."""
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def update_state(run_dir: Path, **fields) -> dict:
    """Read-modify-write state.json (atomic replace), stamping updated_at. The run folder is locked
    (flock) meanwhile: the trainer, its keeper and a dashboard each write some fields, and none may undo
    another's update."""
    path = Path(run_dir) / STATE_JSON
    with locked(Path(run_dir)):
        state = read_json(path) or {}
        state.update(fields)
        state["updated_at"] = time.time()
        state.setdefault("host", socket.gethostname())
        write_json_atomic(path, state)
    return state


@contextlib.contextmanager
def locked(path: Path):
    """An exclusive flock on a folder, or on a lock file (created when missing), for the duration of the
    block; released when its descriptor closes, so also when the holder dies."""
    import fcntl

    fd = os.open(path, os.O_RDONLY) if Path(path).is_dir() else os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


class InUse:
    """A shared flock on a checkpoint folder, held for as long as a reader needs the folder: the audition
    worker while the checkpoint is loaded, the scorer while it scores it. Pruning takes the exclusive lock
    without waiting and leaves a folder in use alone (contract/retention.py). Released by `release()`, or
    when the holder dies."""

    def __init__(self, path: Path) -> None:
        import fcntl

        self.path = Path(path)
        self._fd: int | None = os.open(self.path, os.O_RDONLY)
        fcntl.flock(self._fd, fcntl.LOCK_SH)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "InUse":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def claim(path: Path, *, create: bool = False) -> int | None:
    """An exclusive flock on `path` (a folder, or with `create` a lock file made when missing) if nobody
    holds it (InUse, another scorer), taken without waiting, as an open descriptor to close when done; None
    when it is held."""
    import fcntl

    fd = os.open(path, os.O_RDONLY | (os.O_CREAT if create else 0), 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def record(kind: str, **fields) -> dict:
    """A metrics record with the schema version, kind and wall-clock time filled in."""
    return {"v": SCHEMA_VERSION, "kind": kind, "time": fields.pop("time", time.time()), **fields}


def append_records(path: Path, records: Iterable[dict]) -> None:
    """Append whole lines with one write on an O_APPEND descriptor, so a reader never sees a line
    interleaved with another writer's; a crash can at worst leave one torn last line."""
    data = "".join(json.dumps(r, separators=(",", ":"), allow_nan=True) + "\n" for r in records).encode()
    if not data:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def parse_lines(buf: bytes) -> tuple[list[dict], bytes, int]:
    """Split `buf` into parsed records and the unfinished tail (bytes after the last newline).

    Returns (records, tail, bad) where `bad` counts complete lines that were not JSON objects; those
    are skipped, never fatal. Unknown kinds and fields are kept as they are (readers ignore them)."""
    end = buf.rfind(b"\n")
    if end < 0:
        return [], buf, 0
    records, bad = [], 0
    for line in buf[:end].split(b"\n"):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if isinstance(obj, dict):
            records.append(obj)
        else:
            bad += 1
    return records, buf[end + 1:], bad


def is_official_output(path: Path) -> bool:
    """A folder the official fine-tuning script wrote (checkpoint-epoch-N folders in it), not one of ours."""
    try:
        return not (Path(path) / RUN_JSON).is_file() and any(
            p.name.startswith(OFFICIAL_PREFIX) and is_checkpoint_dir(p) for p in Path(path).iterdir())
    except OSError:
        return False


def is_adopted(path: Path) -> bool:
    """An official output folder adopted (docs/adopt.md): its run.json says `adopted: true`."""
    return (read_json(Path(path) / RUN_JSON) or {}).get("adopted") is True


def list_runs(checkpoints: Path) -> list[Path]:
    """Run folders under `checkpoints`: folders holding a run.json or a state.json, and output folders of the
    official script (read-only runs); `checkpoints` itself when it is such an output folder, adopted or not
    (adoption writes run.json into it: OUTPUT stays one run)."""
    root = Path(checkpoints)
    if is_official_output(root) or is_adopted(root):
        return [root]
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return []
    return [p for p in entries if p.is_dir() and not p.name.startswith(".")
            and ((p / RUN_JSON).is_file() or (p / STATE_JSON).is_file() or is_official_output(p))]


def checkpoint_order(path: Path) -> tuple:
    """Sort key: by epoch (or step) as a number, so checkpoint-epoch-10 follows checkpoint-epoch-9."""
    m = CHECKPOINT_RE.match(Path(path).name)
    if m is None:
        return (2, 0, Path(path).name)
    if m["step"]:
        return (1, int(m["step"]), "")
    return (0, int(m["epoch"] or m["official"]), "")


def checkpoint_epoch(name: str) -> int | None:
    m = CHECKPOINT_RE.match(name)
    return int(m["epoch"] or m["official"]) if m and (m["epoch"] or m["official"]) else None


def save_order_of(name: str, evaluation: dict | None) -> tuple:
    """Sort key in save order for a checkpoint named `name` whose eval.json is `evaluation`: by the optimizer
    step it was saved at (the trainer writes it to eval.json; a run's step-* and epoch-* checkpoints interleave,
    and at the same step the step-* save comes first), else by its name's number (the official script's
    checkpoints, saved one per epoch). A name alone does not say it, nor does a file time (a copied run folder
    gets new ones)."""
    kind, number, rest = checkpoint_order(Path(name))
    step = (evaluation or {}).get("step")
    if isinstance(step, int) and not isinstance(step, bool):
        return (1, step, 0 if kind == 1 else 1, number, rest)
    return (0, kind, number, rest)


def save_order(path: Path) -> tuple:
    """Sort key: `path` among its run's checkpoints in the order they were saved (save_order_of)."""
    return save_order_of(Path(path).name, read_json(Path(path) / EVAL_JSON))


def list_checkpoints(run_dir: Path) -> list[Path]:
    """The run's checkpoints in the order they were saved (save_order): oldest first."""
    try:
        return sorted((p for p in Path(run_dir).iterdir() if is_checkpoint_dir(p)), key=save_order)
    except OSError:
        return []
