"""Starting, finding and stopping speech servers (milo-serve, docs/serving.md) for the dashboard.

A server runs detached like a trainer (milo_tui/supervisor.py): its own session, stdin from /dev/null, its
output appended to its log (contract.serve.log_path). It outlives the dashboard that started it; any
dashboard finds it from its state file (contract.serve: one per port, rewritten by the server), whose pid
is believed only with its start time: a state whose process is gone, or whose pid now names another
process (PID reuse), is shown as gone and never signalled.

No Textual here: the app calls `start` and `replace` from a thread worker (fork, exec and the wait for the
first state), `stop` directly (one syscall), and RunWatcher calls `read_servers` from its thread.
"""
from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from contract.serve import LIVE, LOADING, READY, STOPPING, log_path, port_free, read_states, serve_dir
from milo_tui.supervisor import SupervisorError, is_same_process

START_WAIT_S = 60.0   # for the new server's first state file (its imports take seconds on a cold disk)
STOP_WAIT_S = 20.0    # for a replaced server to end (it gives the streams in flight 5 s)
GONE = "gone"         # a live status in the file, but its process is not there: shown, never signalled


class ServeError(SupervisorError):
    """A server action cannot be done; the message is one line saying why."""


@dataclass(frozen=True)
class Server:
    """One server as its state file tells it, and whether its process is really there (`live`)."""
    port: int
    host: str
    url: str
    status: str            # the file's status, or GONE when it says live but its process is not
    live: bool
    pid: int | None
    message: str
    checkpoint: str        # the served checkpoint's folder
    name: str              # its name (epoch-0004)
    run: str | None
    speaker: str | None
    requests: int = 0
    errors: int = 0
    active: int = 0
    queued: int = 0
    p50_ms: float | None = None
    p95_ms: float | None = None
    started: float = 0.0

    @property
    def log(self) -> Path:
        return log_path(self.port)

    def serves(self, checkpoint: Path) -> bool:
        return _same_path(self.checkpoint, checkpoint)

    def what(self) -> str:
        """"epoch-0004 (milo_demo) of voice-1"."""
        return self.name + (f" ({self.speaker})" if self.speaker else "") + (f" of {self.run}" if self.run else "")

    def state_words(self) -> list[str]:
        """Its state ("ready", "loading", "failed: why", ...), then its counters where it has any."""
        plural = lambda n, word: f"{n} {word}{'s' if n != 1 else ''}"  # noqa: E731
        if self.status == READY and self.live:
            words = ["ready", plural(self.requests, "request")]
            if self.p50_ms is not None:
                p95 = self.p95_ms if self.p95_ms is not None else self.p50_ms
                words.append(f"first audio p50 {self.p50_ms:.0f} ms / p95 {p95:.0f} ms")
            return words + [f"{self.active} active, {self.queued} queued", plural(self.errors, "error")]
        if self.status == GONE:
            return [f"gone: its process {self.pid} ended without saying why (log: {self.log})"]
        if self.status == "failed":
            return [f"failed: {self.message} (log: {self.log})"]
        if self.status in (LOADING, STOPPING):
            return [self.status]
        return [self.status, f"served {plural(self.requests, 'request')}"]


def _same_path(a, b) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except (OSError, RuntimeError, TypeError):
        return False


def _number(value, default=0):
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else default


def server_from(state: dict) -> Server:
    """A state file's contents as a Server; its process looked at (pid with its start time)."""
    checkpoint = state.get("checkpoint") if isinstance(state.get("checkpoint"), dict) else {}
    first = state.get("first_audio_ms") if isinstance(state.get("first_audio_ms"), dict) else {}
    status = str(state.get("status") or "unknown")
    pid = state.get("pid") if isinstance(state.get("pid"), int) else None
    live = status in LIVE and is_same_process(pid, state.get("process_started"))
    if status in LIVE and not live:
        status = GONE
    port = int(state["port"])
    host = str(state.get("host") or "127.0.0.1")
    path = str(checkpoint.get("path") or "")
    return Server(port=port, host=host, url=str(state.get("url") or f"http://{host}:{port}"), status=status, live=live,
                  pid=pid, message=str(state.get("message") or ""), checkpoint=path,
                  name=str(checkpoint.get("name") or Path(path).name or "?"), run=checkpoint.get("run") or None,
                  speaker=checkpoint.get("speaker") or None, requests=int(_number(state.get("requests"))),
                  errors=int(_number(state.get("errors"))), active=int(_number(state.get("active"))),
                  queued=int(_number(state.get("queued"))), p50_ms=_number(first.get("p50"), None),
                  p95_ms=_number(first.get("p95"), None), started=float(_number(state.get("started"), 0.0)))


def read_servers() -> tuple[Server, ...]:
    """Every server with a readable state file, newest first."""
    out = []
    for state in read_states():
        try:
            out.append(server_from(state))
        except (KeyError, TypeError, ValueError):
            continue
    return tuple(out)


def server_on(port: int, servers: tuple[Server, ...] | None = None) -> Server | None:
    return next((s for s in (read_servers() if servers is None else servers) if s.port == port), None)


def shown(servers: tuple[Server, ...], port: int) -> tuple[Server | None, int]:
    """The server the dashboard shows (the live one on the configured port, else another live one, else the
    configured port's last state, else the newest), and how many other servers are live."""
    live = [s for s in servers if s.live]
    pick = (next((s for s in live if s.port == port), None) or (live[0] if live else None)
            or server_on(port, servers) or (servers[0] if servers else None))
    return pick, len([s for s in live if s is not pick])


def serve_argv(python: str, checkpoint: Path, host: str, port: int, device: str) -> list[str]:
    return [python, "-m", "inference.serve", str(checkpoint), "--host", host, "--port", str(port), "--device", device]


def exit_line(port: int, since: int, code: int) -> str:
    """Why a server that was just started ended: its last `milo-serve:` line written after byte `since` of its
    log (else its last line), with the exit code."""
    try:
        with open(log_path(port), "rb") as f:
            f.seek(since)
            lines = [l.strip() for l in f.read().decode("utf-8", "replace").splitlines() if l.strip()]
    except OSError:
        lines = []
    said = [l.removeprefix("milo-serve: ") for l in lines if l.startswith("milo-serve: ")]
    line = (said or lines or [""])[-1][:300]
    return f"milo-serve ended at once (exit {code})" + (f": {line}" if line else f"; its log: {log_path(port)}")


@dataclass
class ServeControl:
    python: str = sys.executable
    env: dict | None = None
    _children: dict = field(default_factory=dict)   # pid -> Popen (servers this dashboard started: reaped here)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, checkpoint: Path, host: str, port: int, device: str, wait_s: float = START_WAIT_S) -> Server | None:
        """Start a server for `checkpoint` on host:port and wait for its first state (its loading): the Server,
        or None when it wrote none in `wait_s` (it may still come). ServeError when it cannot start or ends."""
        checkpoint = Path(checkpoint).resolve()
        current = server_on(port)
        if current is not None and current.live:
            raise ServeError(f"port {port} already serves {current.what()} ({current.status}, pid {current.pid}); "
                             "stop it first")
        if not port_free(host, port):
            raise ServeError(f"port {port} on {host} is in use by another program (no milo-serve state in "
                             f"{serve_dir()} names it); stop it, or set [serve] port in config.toml")
        argv = serve_argv(self.python, checkpoint, host, port, device)
        log = log_path(port)
        try:
            log.parent.mkdir(parents=True, exist_ok=True)
            with open(log, "ab") as out:
                since = out.tell()
                out.write(f"--- milo-tui {time.strftime('%Y-%m-%d %H:%M:%S')}: {shlex.join(argv)}\n".encode())
                out.flush()
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                        start_new_session=True, cwd=log.parent, env=self.env, close_fds=True)
        except OSError as exc:
            raise ServeError(f"cannot start milo-serve: {exc.strerror or exc}"
                             + (f" ({exc.filename})" if getattr(exc, "filename", None) else "")) from None
        with self._lock:
            self._children[proc.pid] = proc
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            server = server_on(port)
            if server is not None and server.pid == proc.pid:
                return server
            code = proc.poll()
            if code is not None:
                raise ServeError(exit_line(port, since, code))
            time.sleep(0.1)
        return None

    def stop(self, server: Server) -> None:
        """SIGTERM to the server, after checking again that its state file still names a live process: the
        server finishes the streams in flight (its grace) and writes `stopped`."""
        now = server_on(server.port)
        if now is None or now.pid != server.pid or not now.live:
            state = now.status if now is not None else "without a state file"
            raise ServeError(f"milo-serve on :{server.port} is not running (it is {state}); nothing to stop")
        try:
            os.kill(now.pid, signal.SIGTERM)
        except ProcessLookupError:
            raise ServeError(f"milo-serve on :{server.port}: its process {now.pid} is gone; nothing to stop") from None
        except PermissionError:
            raise ServeError(f"milo-serve on :{server.port}: not allowed to signal its process {now.pid}") from None

    def wait_gone(self, server: Server, timeout: float = STOP_WAIT_S) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.reap()
            now = server_on(server.port)
            if now is None or now.pid != server.pid or not now.live:
                return True
            time.sleep(0.1)
        return False

    def replace(self, old: Server, checkpoint: Path, host: str, port: int, device: str) -> Server | None:
        """Stop `old` (confirmed by the operator, or already stopping), wait for it to end, then serve `checkpoint`."""
        if old.status != STOPPING:  # a second SIGTERM would cut the streams in flight short
            try:
                self.stop(old)
            except ServeError:
                pass  # it ended meanwhile: serve the new one all the same
        if not self.wait_gone(old):
            raise ServeError(f"milo-serve on :{old.port} (pid {old.pid}) did not stop within {STOP_WAIT_S:.0f} s; "
                             f"nothing new served (its log: {old.log})")
        deadline = time.monotonic() + 5  # the port is released as the process ends
        while not port_free(host, port) and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.start(checkpoint, host, port, device)

    def reap(self) -> None:
        """Collect the servers this dashboard started that have ended (no zombies)."""
        with self._lock:
            for pid, proc in list(self._children.items()):
                if proc.poll() is not None:
                    del self._children[pid]

    def forget(self) -> None:
        """Drop the Popen objects (the servers keep running): for a dashboard that quits."""
        with self._lock:
            for proc in self._children.values():
                proc.returncode = proc.returncode if proc.returncode is not None else 0  # no ResourceWarning
            self._children.clear()
