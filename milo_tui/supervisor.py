"""Starting, signalling and watching trainers (docs/supervision.md).

A trainer runs detached under its keeper (milo_tui/keeper.py): the keeper's own session and process group
(so neither a closed SSH session nor a dead dashboard takes it down), stdin from /dev/null, stdout and
stderr appended to the run's train.log. The keeper restarts a crashed run as its policy allows, dashboard
or none. state.json records both processes' pids and start times; a dashboard started later re-attaches by
reading them, and a live pid with another start time is another process that happens to have the number
(PID reuse): never signalled.

No Textual here: the app calls `start`/`resume` from a thread worker, `stop`/`kill` directly (one
syscall), and RunWatcher calls `check` from its thread.
"""
from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from contract.defaults import RUN_DEFAULTS
from contract.exits import NO_RESTART, describe
from contract.runfolder import (
    CRASHED, KILLED, LIVE_STATUSES, RESUME_DIR, RUN_JSON, STARTING, STATE_JSON, TRAIN_LOG, claim, list_checkpoints,
    locked, read_json, update_state,
)
from contract.ssh import signal_group
from milo_tui.telemetry.remote import host_entries

PREPARED_DATA = "prepared.jsonl"  # where a corpus folder is prepared to, inside the run folder
START_TIME_TOLERANCE = 0.05  # s; psutil's create_time has clock-tick (10 ms) resolution


class SupervisorError(Exception):
    """An action the operator asked for cannot be done; the message is one line saying why."""


@dataclass(frozen=True)
class RunRequest:
    """What the new-run form asks for (validated by milo_tui.screens.new_run before it gets here)."""
    run_dir: Path
    base_model: Path
    data: Path  # a training JSONL, or a corpus folder to prepare first
    epochs: int = RUN_DEFAULTS["epochs"]
    lr: float = RUN_DEFAULTS["lr"]
    batch_size: int = RUN_DEFAULTS["batch_size"]
    grad_accum: int = RUN_DEFAULTS["grad_accum"]
    speaker: str = ""
    attention: str = RUN_DEFAULTS["attn"]
    restart_limit: int = 0
    device: str | None = None  # cpu, cuda, cuda:N; None: the trainer decides (cuda when available)
    score: bool = RUN_DEFAULTS["score"]  # score each checkpoint after it is saved (config: ui.score_checkpoints)
    retain: tuple[str, ...] = ()  # retention / quality-stop flags from the config's [retention] (Policy.trainer_flags)
    judging: tuple[str, ...] = ()  # the run's own [best] rule and scorer device flags (--best-max-runaway, ...)
    # full fine-tuning, or LoRA adapters saved as voice bundles (docs/training.md, "LoRA"); the lora_ fields
    # are passed for a LoRA run only, so a full run's command line is what it was before LoRA existed
    method: str = RUN_DEFAULTS["method"]
    lora_rank: int = RUN_DEFAULTS["lora_rank"]
    lora_alpha: float = RUN_DEFAULTS["lora_alpha"]
    lora_targets: str = RUN_DEFAULTS["lora_targets"]
    # one run over this host and these others, by SSH name (docs/multi-node.md); () : this host only. In the
    # launch command, so Resume relaunches on the same hosts
    hosts: tuple[str, ...] = ()
    master_addr: str | None = None  # this host's address on the link, which the others reach
    iface: str | None = None        # the interface of that link; None: as the environment has it

    @property
    def prepare_first(self) -> bool:
        return Path(self.data).is_dir()


def trainer_argv(python: str, req: RunRequest) -> list[str]:
    data = req.run_dir / PREPARED_DATA if req.prepare_first else req.data
    argv = [python, "-m", "training", "run", "--base", str(req.base_model), "--data", str(data), "--run", str(req.run_dir),
            "--epochs", str(req.epochs), "--lr", repr(req.lr), "--batch-size", str(req.batch_size),
            "--grad-accum", str(req.grad_accum), "--attn", req.attention]
    argv += ["--speaker", req.speaker] if req.speaker else []
    if req.method == "lora":
        argv += ["--method", "lora", "--rank", str(req.lora_rank), "--alpha", repr(req.lora_alpha),
                 "--targets", req.lora_targets]
    if req.hosts:
        argv += ["--hosts", ",".join(req.hosts), "--master-addr", str(req.master_addr)]
        argv += ["--iface", req.iface] if req.iface else []
        # a corpus prepared here first exists on this host only: the launcher copies it to the others
        argv += ["--sync"] if req.prepare_first else []
    argv += [] if req.score else ["--no-score"]
    argv += list(req.retain) + list(req.judging)
    return argv + (["--device", req.device] if req.device else [])


def prepare_argv(python: str, req: RunRequest) -> list[str]:
    argv = [python, "-m", "training", "prepare", str(req.data), "--base", str(req.base_model),
            "--out", str(req.run_dir / PREPARED_DATA)]
    return argv + (["--device", req.device.split(":")[0]] if req.device else [])


def start_time(pid: int) -> float | None:
    import psutil  # here, not at import: the dashboard's first frame does not wait for it

    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def is_same_process(pid, started) -> bool:
    """True when `pid` runs and is the process that started at `started` (not a reuse of its number)."""
    if not isinstance(pid, int) or pid <= 0 or not isinstance(started, (int, float)):
        return False
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return abs(proc.create_time() - started) < START_TIME_TOLERANCE
    except psutil.Error:
        return False


@dataclass(frozen=True)
class Ended:
    """A watched trainer is gone. `status` is what state.json says now (after `check` fixed it up)."""
    run_dir: Path
    status: str
    exit_code: int | None
    error: str | None
    requested: str | None  # "stop" or "kill" when the operator asked for it
    restarts: int = 0
    restart_limit: int = 0
    restart_at: float | None = None  # when the keeper restarts it (None: it will not)
    restarted: bool = False  # the keeper restarted it between two looks: the crash was not seen while it lasted


def restartable(state: dict, exit_code: int | None) -> bool:
    """The restart policy (applied by the keeper): a crash, restarts left, and an exit code that a restart
    can cure."""
    return (state.get("status") == CRASHED and (state.get("restarts") or 0) < (state.get("restart_limit") or 0)
            and exit_code not in NO_RESTART)


def resume_argv(python: str, run_dir: Path, state: dict) -> list[str]:
    """The command that continues a run from its newest resume point: its launch command with `--resume`
    (under `python`), or for a run started by hand `python -m training run --run RUN --resume`."""
    command = state.get("launch_command")
    if isinstance(command, list) and command and all(isinstance(a, str) for a in command):
        argv = [python, *command[1:]]
    elif (run_dir / RUN_JSON).is_file():
        argv = [python, "-m", "training", "run", "--run", str(run_dir)]
    else:
        raise SupervisorError(f"run {run_dir.name!r} cannot be resumed: the trainer never started; start a new run")
    return argv if "--resume" in argv else [*argv, "--resume"]


@dataclass
class Supervisor:
    python: str = sys.executable
    env: dict | None = None
    backoff: float = 5.0  # seconds before a crashed run's first restart (the keeper's --backoff)
    _children: dict = field(default_factory=dict)  # run_dir -> Popen (keepers this dashboard started)
    _watched: set = field(default_factory=set)  # run dirs seen alive: report their end once
    _requested: dict = field(default_factory=dict)  # run_dir -> "stop" | "kill"
    _launching: set = field(default_factory=set)
    _restarts: dict = field(default_factory=dict)  # run_dir -> the keeper's restart count as last seen (or expected)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # ------------------------------------------------------------------ launching (thread workers)

    def start(self, req: RunRequest) -> int:
        run_dir = Path(req.run_dir)
        try:
            run_dir.mkdir(parents=True)
        except FileExistsError:
            raise SupervisorError(f"a run named {run_dir.name!r} already exists; choose another name") from None
        except OSError as exc:
            raise SupervisorError(f"cannot create {run_dir}: {exc.strerror}") from None
        run = trainer_argv(self.python, req)
        argv = run
        if req.prepare_first:
            # one process group: the shell runs prepare, then becomes the trainer (exec keeps pid and start time)
            argv = ["/bin/sh", "-c", f"{shlex.join(prepare_argv(self.python, req))} && exec {shlex.join(run)}"]
        return self._spawn(run_dir, argv, launch_command=run, restarts=0, restart_limit=req.restart_limit,
                           preparing=req.prepare_first)

    def resume(self, run_dir: Path) -> int:
        """Continue a stopped or crashed run from its newest resume point (the trainer finds it)."""
        run_dir = Path(run_dir)
        state = read_json(run_dir / STATE_JSON) or {}
        if state.get("status") in LIVE_STATUSES and self.alive(run_dir, state):
            raise SupervisorError(f"run {run_dir.name!r} is still running")
        if is_same_process(state.get("keeper_pid"), state.get("keeper_start_time")):
            raise SupervisorError(f"run {run_dir.name!r} restarts by itself; R sets its restart policy")
        argv = resume_argv(self.python, run_dir, state)  # the interpreter of this dashboard
        return self._spawn(run_dir, argv, preparing=False)

    def _spawn(self, run_dir: Path, argv: list[str], **fields) -> int:
        with self._lock:
            self._launching.add(run_dir)
            self._requested.pop(run_dir, None)
        try:
            with open(run_dir / TRAIN_LOG, "ab") as log:
                log.write(f"--- milo-tui {time.strftime('%Y-%m-%d %H:%M:%S')}: {shlex.join(argv)}\n".encode())
                log.flush()
                update_state(run_dir, status=STARTING, pid=None, pid_start_time=None, exit_code=None, error=None,
                             ended_at=None, started_at=time.time(), keeper_pid=None, keeper_start_time=None,
                             attempt_ended=None, restart_at=None, **fields)
                keeper = [self.python, "-m", "milo_tui.keeper", str(run_dir), "--backoff", repr(float(self.backoff)),
                          "--", *argv]
                try:
                    proc = subprocess.Popen(keeper, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True, cwd=run_dir, env=self.env, close_fds=True)
                except OSError as exc:
                    update_state(run_dir, status=CRASHED, error=f"cannot start the trainer: {exc}", ended_at=time.time())
                    raise SupervisorError(f"cannot start the trainer: {exc}") from None
            update_state(run_dir, keeper_pid=proc.pid, keeper_start_time=start_time(proc.pid))
            with self._lock:
                self._children[run_dir] = proc
                self._watched.add(run_dir)
            return proc.pid
        finally:
            with self._lock:
                self._launching.discard(run_dir)

    # ------------------------------------------------------------------ signals (on the loop: one syscall)

    def stop(self, run_dir: Path) -> None:
        """Graceful: the trainer finishes its step, saves a resume point and exits 0 (status stopped)."""
        self._signal(Path(run_dir), signal.SIGTERM, "stop")

    def kill(self, run_dir: Path) -> None:
        """Force: SIGKILL to the whole process group. Work since the last resume point is lost. The run is
        recorded `killed` here, where the kill is sent: the keeper went with the group, so nothing else
        knows it was the operator (and a keeper or watcher must not call it a crash and restart it)."""
        run_dir = Path(run_dir)
        state = self._signal(run_dir, signal.SIGKILL, "kill")
        # A run across hosts: its launcher cannot pass a SIGKILL on, so it goes to each other host's side here,
        # over SSH from a thread of its own (a host out of reach must not hold the dashboard).
        remote = host_entries(run_dir, state)
        if remote:
            threading.Thread(target=lambda: [signal_group(e.host, e.pid, signal.SIGKILL) for e in remote],
                             name="kill other hosts", daemon=True).start()
        # The group cannot run another instruction, so nothing of it writes after this; a trainer that was
        # inside update_state held the run folder's lock, which its death releases.
        update_state(run_dir, status=KILLED, exit_code=-signal.SIGKILL, error=ended_error(run_dir, {}, None, "kill"),
                     ended_at=time.time(), restart_at=None)

    def _signal(self, run_dir: Path, sig: int, what: str) -> dict:
        """Send `sig`; the state.json it was sent by."""
        state = read_json(run_dir / STATE_JSON)
        if state is None:
            raise SupervisorError(f"run {run_dir.name!r} has no readable state.json; nothing to {what}")
        pid = state.get("pid")
        if state.get("status") not in LIVE_STATUSES:
            raise SupervisorError(f"run {run_dir.name!r} is not running (it is {state.get('status')})")
        if not is_same_process(pid, state.get("pid_start_time")):
            raise SupervisorError(f"run {run_dir.name!r}: its process {pid} is gone; nothing to {what}")
        with self._lock:  # before the signal: RunWatcher may find the processes gone before this returns
            self._requested[run_dir] = what
            self._watched.add(run_dir)
        try:
            # The keeper leads the group of the trainer and anything it started; a trainer started by hand
            # from a shell is in the shell's group and gets the signal alone.
            group = os.getpgid(pid)
            if group in (pid, state.get("keeper_pid")):
                os.killpg(group, sig)
            else:
                os.kill(pid, sig)
        except ProcessLookupError:
            with self._lock:
                self._requested.pop(run_dir, None)
            raise SupervisorError(f"run {run_dir.name!r}: its process {pid} is gone; nothing to {what}") from None
        except PermissionError:
            with self._lock:
                self._requested.pop(run_dir, None)
            raise SupervisorError(f"run {run_dir.name!r}: not allowed to signal process {pid}") from None
        return state

    # ------------------------------------------------------------------ watching (RunWatcher's thread)

    def watching(self, run_dir: Path) -> bool:
        with self._lock:
            return Path(run_dir) in self._watched

    def set_restart_limit(self, run_dir: Path, limit: int) -> None:
        """The restart policy of a run: restart it up to `limit` times when it crashes (0: never). The
        keeper reads it when the trainer ends, and again while it waits to restart."""
        update_state(Path(run_dir), restart_limit=int(limit))

    def alive(self, run_dir: Path, state: dict) -> bool:
        """The current attempt is alive while its trainer runs, or while its keeper runs and has not yet
        recorded the trainer's end (`attempt_ended`)."""
        if is_same_process(state.get("pid"), state.get("pid_start_time")):
            return True
        with self._lock:
            proc = self._children.get(run_dir)
        if proc is not None and proc.pid == state.get("keeper_pid", proc.pid):
            keeper = proc.poll() is None  # our child: poll() also reaps it
        else:
            keeper = is_same_process(state.get("keeper_pid"), state.get("keeper_start_time"))
        return keeper and (state.get("pid") is None or state.get("attempt_ended") != state.get("pid"))

    def check(self, run_dir: Path) -> Ended | None:
        """Look at one run; when its process is gone while state.json says it is live, record the crash.
        Returns Ended once per run that this supervisor saw alive (or started) and that has now ended."""
        run_dir = Path(run_dir)
        with self._lock:
            if run_dir in self._launching:
                return None
            proc = self._children.get(run_dir)
            watched = run_dir in self._watched
        state = read_json(run_dir / STATE_JSON)
        if state is None:
            return None
        if state.get("status") not in LIVE_STATUSES and not watched:
            return None
        if self.alive(run_dir, state):
            restarts = state.get("restarts") or 0
            with self._lock:
                self._watched.add(run_dir)
                seen = self._restarts.setdefault(run_dir, restarts)
                self._restarts[run_dir] = restarts
            if restarts > seen:  # crashed and restarted within one poll (a short back-off, a busy machine)
                from milo_tui.runs import log_error_line

                return Ended(run_dir, CRASHED, None, log_error_line(run_dir), None, restarts,
                             state.get("restart_limit") or 0, None, restarted=True)
            return None
        # The keeper records the trainer's exit status; a keeper killed with it (Kill) ends the same way.
        exit_code = state.get("exit_code")
        if exit_code is None and proc is not None and proc.returncode is not None:
            exit_code = proc.returncode
        with self._lock:
            requested = self._requested.pop(run_dir, None)
            self._children.pop(run_dir, None)
            self._watched.discard(run_dir)
        state = read_json(run_dir / STATE_JSON) or state  # the trainer may have written its end just now
        if state.get("status") in LIVE_STATUSES:
            error = ended_error(run_dir, state, exit_code, requested)
            state = update_state(run_dir, status=KILLED if requested == "kill" else CRASHED, exit_code=exit_code,
                                 error=error, ended_at=time.time())
        if not watched:
            return None
        with self._lock:  # a restart the keeper has scheduled is said now, not again when it runs
            self._restarts[run_dir] = (state.get("restarts") or 0) + (state.get("restart_at") is not None)
        return Ended(run_dir, state.get("status"), state.get("exit_code", exit_code), state.get("error"), requested,
                     state.get("restarts") or 0, state.get("restart_limit") or 0, state.get("restart_at"))

    # ------------------------------------------------------------------ deleting a run (a thread worker)

    def why_not_delete(self, run_dir: Path, root: Path) -> str | None:
        """Why the run folder may not be deleted now, or None. Only a folder directly in the checkpoints
        folder (not a link to one elsewhere), and nothing that runs in it: a trainer, a keeper waiting to
        restart it, its scorer, a prune."""
        run_dir, name = Path(run_dir), Path(run_dir).name
        if run_dir.is_symlink() or not run_dir.is_dir() or name.startswith(".") or \
                run_dir.parent.resolve() != Path(root).resolve():
            return f"{run_dir} is not a run folder in {root}; nothing deleted"
        with self._lock:
            if run_dir in self._launching:
                return f"{name} is starting; stop (s) or kill (K) it first"
        state = read_json(run_dir / STATE_JSON) or {}
        if state.get("status") in LIVE_STATUSES and (self.alive(run_dir, state) or state.get("host") not in (None, socket.gethostname())):
            return f"{name} is running; stop (s) or kill (K) it first"
        if is_same_process(state.get("keeper_pid"), state.get("keeper_start_time")):
            return f"{name}'s keeper is waiting to restart it; R with 0 calls that off, then delete"
        from contract.retention import PRUNE_LOCK

        for lock, what in ((".scoring.lock", "its scorer is scoring a checkpoint"), (PRUNE_LOCK, "a prune is deleting from it")):
            if (run_dir / lock).is_file():
                fd = claim(run_dir / lock)
                if fd is None:
                    return f"{name}: {what}; delete it once that is done"
                os.close(fd)
        return None

    def delete(self, run_dir: Path, root: Path) -> int:
        """Delete a run folder that nothing runs in; the bytes it freed. It is first renamed to a hidden
        `.deleting-*` name beside it (every reader ignores those), so no half-deleted run is ever listed; links
        inside are removed, never followed. SupervisorError when refused or when something stayed."""
        from contract.retention import freed_by

        run_dir = Path(run_dir)
        with locked(run_dir) if run_dir.is_dir() and not run_dir.is_symlink() else contextlib.nullcontext():
            why = self.why_not_delete(run_dir, root)  # under the run's lock: no state.json write slips in between
            if why:
                raise SupervisorError(why)
            freed = freed_by([run_dir])
            trash = run_dir.parent / f".deleting-{run_dir.name}-{os.getpid()}-{time.monotonic_ns()}"
            try:
                os.rename(run_dir, trash)
            except OSError as exc:
                raise SupervisorError(f"cannot delete {run_dir.name}: {exc.strerror or exc}") from None
        with self._lock:
            self._children.pop(run_dir, None)
            self._watched.discard(run_dir)
            self._requested.pop(run_dir, None)
        failed = []
        shutil.rmtree(trash, onerror=lambda _f, path, info: failed.append(f"{path}: {info[1]}"))
        if failed:
            raise SupervisorError(f"deleted {run_dir.name} in part: {failed[0]} (and {len(failed) - 1} more); "
                                  f"what is left is in {trash}")
        return freed

    def forget(self) -> None:
        """Drop the Popen objects (the trainers keep running): for a dashboard that quits."""
        with self._lock:
            for proc in self._children.values():
                proc.returncode = proc.returncode if proc.returncode is not None else 0  # no ResourceWarning
            self._children.clear()


def deletion_detail(run_dir: Path) -> str:
    """What deleting a run folder removes, for its confirmation: the folder, its checkpoints, resume point
    and samples, and the bytes it frees (a file shared by a hard link outside it frees nothing)."""
    from contract.retention import freed_by
    from contract.samples import samples_dir
    from contract.units import fmt_bytes

    run_dir = Path(run_dir)
    names = [p.name for p in list_checkpoints(run_dir)]
    parts = [f"{len(names)} checkpoint(s)" + (f" ({', '.join(names[:4])}{', ...' if len(names) > 4 else ''})" if names else "")]
    parts += ["the resume point"] if (run_dir / RESUME_DIR).is_dir() else []
    parts += ["the auditioned samples"] if samples_dir(run_dir).is_dir() else []
    return (f"Deletes the folder {run_dir} and everything in it: {', '.join(parts)}, the metrics and train.log; frees "
            f"{fmt_bytes(freed_by([run_dir]))}. Links inside it are removed, never followed. This cannot be undone.")


def ended_error(run_dir: Path, state: dict, exit_code: int | None, requested: str | None) -> str:
    """One line for a trainer that ended without recording why."""
    from milo_tui.runs import log_error_line

    if requested == "kill" or (exit_code == -signal.SIGKILL and requested is None):
        who = "by the operator" if requested == "kill" else "by SIGKILL (out of host memory?)"
        return f"killed {who}; r resumes from the newest resume point"
    line = log_error_line(run_dir)
    if state.get("preparing") and state.get("status") == STARTING:
        return f"data preparation failed: {line}" if line else "data preparation failed; see train.log"
    if requested == "stop":
        return "stopped before the trainer could save a resume point"
    if exit_code is not None:
        cause = describe(exit_code)
    elif state.get("pid"):
        cause = f"its process {state['pid']} is gone"
    else:
        cause = "state.json names no process"
    return f"the trainer ended without recording why ({cause})" + (f": {line}" if line else "")
