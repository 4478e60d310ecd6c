"""The dashboard's side of the audition worker: spawn it, talk to it, notice when it dies, restart it.

Torch-free: the worker (`python -m inference.worker`) is a separate process that imports torch; this
module only starts it, writes JSON command lines to its stdin and reads JSON event lines from its
stdout on a reader thread. Every event (and the client's own "crashed" / "restarted" / "gave_up"
events) goes to `on_event`, called from that thread: a Textual screen turns it into a message.

The child runs in its own session (Ctrl+C in the dashboard's terminal does not reach it) with stdin
a pipe (it exits when the pipe closes, so it never outlives the dashboard) and stderr appended to a log
file, so nothing a native audio library prints can reach the dashboard's screen.
"""
from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable

from platformdirs import user_log_path

from contract.protocol import FINISHING, TRACKED, Cmd, Event

RESTART_WINDOW_S = 60.0
MAX_RESTARTS = 3            # in RESTART_WINDOW_S; then the client gives up and says so


def output_settings(output: str | None = None, audio_device: str | None = None,
                    listen_port: int | None = None) -> tuple[str, str | None, int]:
    """(target, audio device, listener port): what is given, else $MILO_AUDIO_OUTPUT, $MILO_AUDIO_DEVICE and
    $MILO_LISTEN_PORT, else the Spark's own output, the default device and the default port."""
    from contract.audio import DEFAULT_PORT
    from contract.protocol import OUTPUT_TARGETS

    target = output or os.environ.get("MILO_AUDIO_OUTPUT", "local")
    if target not in OUTPUT_TARGETS:
        target = "local"
    device = audio_device if audio_device is not None else os.environ.get("MILO_AUDIO_DEVICE") or None
    return target, device, int(listen_port or os.environ.get("MILO_LISTEN_PORT") or DEFAULT_PORT)


def default_log_path() -> Path:
    return user_log_path("milo-tui") / "audition-worker.log"


def log_tail(path: Path, lines: int = 5) -> list[str]:
    """The last lines of the worker's log (for a crash report), tracebacks' last line first in mind."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]


class WorkerClient:
    def __init__(self, on_event: Callable[[dict], None], *, device: str = "auto", output: str = "local",
                 audio_device: str | None = None, port: int | None = None, log_path: Path | None = None,
                 env: dict | None = None, python: str = sys.executable, max_restarts: int = MAX_RESTARTS) -> None:
        self.on_event = on_event
        self.device = device
        self.output = {"target": output, "device": audio_device, "port": port}
        self.log_path = Path(log_path) if log_path else default_log_path()
        self.env = env
        self.python = python
        self.max_restarts = max_restarts
        self.proc: subprocess.Popen | None = None
        self.checkpoint: str | None = None       # the last one asked for: reloaded after a restart
        self.ready = threading.Event()
        self.pending: dict[str, dict] = {}       # commands sent and not yet finished, by id
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._closing = False
        self._restarts: deque[float] = deque()
        self.crashes = 0

    # ---- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        args = [self.python, "-m", "inference.worker", "--device", self.device, "--output", self.output["target"]]
        if self.output["device"] is not None:
            args += ["--audio-device", str(self.output["device"])]
        if self.output["port"]:
            args += ["--port", str(self.output["port"])]
        with open(self.log_path, "ab") as log:
            log.write(f"\n--- audition worker starting {time.strftime('%Y-%m-%d %H:%M:%S')} ---\n".encode())
            log.flush()
            proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                    env=self.env, start_new_session=True, close_fds=True)
        self.ready.clear()
        self.proc = proc
        threading.Thread(target=self._read, args=(proc,), name="audition-worker-reader", daemon=True).start()

    def close(self, timeout: float = 5.0) -> None:
        """Ask the worker to quit, then make sure it is gone."""
        self._closing = True
        proc = self.proc
        if proc is None:
            return
        try:
            self._write({"cmd": Cmd.QUIT})
            proc.stdin.close()
        except (OSError, ValueError):
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._signal(proc, signal.SIGTERM)
            try:
                proc.wait(2.0)
            except subprocess.TimeoutExpired:
                self._signal(proc, signal.SIGKILL)
                proc.wait()

    @staticmethod
    def _signal(proc: subprocess.Popen, sig: int) -> None:
        try:
            os.killpg(proc.pid, sig)  # its own session: the group is the worker and anything it started
        except (ProcessLookupError, PermissionError):
            pass

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # ---- commands --------------------------------------------------------------------------------
    def _write(self, cmd: dict) -> None:
        proc = self.proc
        if proc is None or proc.stdin is None:
            raise BrokenPipeError("the audition worker is not running")
        line = (json.dumps(cmd, separators=(",", ":")) + "\n").encode()
        with self._lock:
            proc.stdin.write(line)
            proc.stdin.flush()

    def send(self, cmd: Cmd, **fields) -> str:
        """Send a command; returns its id. A dead worker yields an "error" event, not an exception."""
        job_id = fields.pop("id", None) or f"{cmd}-{next(self._ids)}"
        message = {"cmd": cmd, "id": job_id, **fields}
        if cmd in TRACKED:
            self.pending[job_id] = message
        if cmd in (Cmd.LOAD, Cmd.SAY) and fields.get("checkpoint"):
            self.checkpoint = fields["checkpoint"]
        if cmd == Cmd.OUTPUT:
            self.output = {"target": fields.get("target", "local"), "device": fields.get("device"),
                           "port": fields.get("port")}
        try:
            self._write(message)
        except (OSError, ValueError):
            self.pending.pop(job_id, None)
            self.on_event({"event": Event.ERROR, "id": job_id, "message": "the audition worker is not running (restarting)",
                           "lines": []})
        return job_id

    def load(self, checkpoint: str) -> str:
        return self.send(Cmd.LOAD, checkpoint=str(checkpoint))

    def say(self, text: str, **fields) -> str:
        return self.send(Cmd.SAY, text=text, **fields)

    def play(self, wavs: list[str], **fields) -> str:
        return self.send(Cmd.PLAY, wavs=[str(w) for w in wavs], **fields)

    def stop(self) -> str:
        return self.send(Cmd.STOP)

    def set_output(self, target: str, device: str | None = None, port: int | None = None) -> str:
        return self.send(Cmd.OUTPUT, target=target, device=device, port=port)

    # ---- events ----------------------------------------------------------------------------------
    def _read(self, proc: subprocess.Popen) -> None:
        for raw in proc.stdout:
            try:
                event = json.loads(raw)
            except ValueError:
                continue  # cannot happen through the protected channel; never fatal
            if not isinstance(event, dict):
                continue
            kind = event.get("event")
            if kind == Event.READY:
                self.ready.set()
            if kind in FINISHING:
                self.pending.pop(event.get("id"), None)
            self.on_event(event)
        returncode = proc.wait()
        if proc is not self.proc or self._closing:
            return
        self._crashed(proc, returncode)

    def _crashed(self, proc: subprocess.Popen, returncode: int) -> None:
        self.crashes += 1
        lost = list(self.pending)
        self.pending.clear()
        how = f"killed by signal {-returncode}" if returncode < 0 else f"exited with code {returncode}"
        tail = log_tail(self.log_path)
        self.on_event({"event": Event.CRASHED, "returncode": returncode, "lost": lost, "log": str(self.log_path),
                       "log_tail": tail, "message": f"the audition worker {how}"
                       + (f": {tail[-1]}" if tail and returncode > 0 else "")})
        now = time.monotonic()
        while self._restarts and now - self._restarts[0] > RESTART_WINDOW_S:
            self._restarts.popleft()
        if len(self._restarts) >= self.max_restarts:
            self.on_event({"event": Event.GAVE_UP, "message": f"the audition worker crashed {len(self._restarts) + 1} times "
                           f"in {RESTART_WINDOW_S:.0f} s; not restarting (see {self.log_path})"})
            return
        self._restarts.append(now)
        self.start()  # with the output chosen last (start() passes it)
        if self.checkpoint:
            self.send(Cmd.LOAD, checkpoint=self.checkpoint)
        self.on_event({"event": Event.RESTARTED, "pid": self.pid, "attempt": len(self._restarts),
                       "checkpoint": self.checkpoint})
