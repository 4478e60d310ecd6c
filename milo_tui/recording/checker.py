"""The record screen's side of the take checker (`python -m inference.recording`, a child process: the
dashboard never imports torch). Takes go in one by one; results come back on a reader thread, in order.
A checker that dies is started again and is given the takes it had not answered."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable


class TakeChecker:
    def __init__(self, on_event: Callable[[dict], None], log_path: Path, *, env: dict | None = None,
                 python: str = sys.executable, max_restarts: int = 3) -> None:
        self.on_event, self.log_path, self.env, self.python = on_event, Path(log_path), env, python
        self.max_restarts, self.restarts = max_restarts, 0
        self.proc: subprocess.Popen | None = None
        self.pending: dict[str, dict] = {}     # take -> request, until its answer comes
        self.ready = threading.Event()
        self.models: dict = {}
        self._lock = threading.Lock()
        self._closing = False

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"\n--- take checker starting {time.strftime('%Y-%m-%d %H:%M:%S')} ---\n".encode())
            log.flush()
            proc = subprocess.Popen([self.python, "-m", "inference.recording"], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=log, env=self.env, start_new_session=True)
        self.ready.clear()
        self.proc = proc
        threading.Thread(target=self._read, args=(proc,), name="take-checker", daemon=True).start()
        for request in list(self.pending.values()):  # a restart: what the last one had not answered
            self._write(request)

    def submit(self, request: dict) -> None:
        """Check a take (request: inference/recording/__main__.py's fields; "id" is the take)."""
        self.pending[request["id"]] = request
        self._write(request)

    def _write(self, request: dict) -> None:
        proc = self.proc
        try:
            with self._lock:
                proc.stdin.write((json.dumps(request) + "\n").encode())
                proc.stdin.flush()
        except (OSError, ValueError, AttributeError):
            pass  # it died: the reader restarts it and sends what is pending

    def _read(self, proc: subprocess.Popen) -> None:
        for raw in proc.stdout:
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            if event.get("type") == "ready":
                self.models = event.get("models") or {}
                self.ready.set()
            elif event.get("id") is not None:
                self.pending.pop(event["id"], None)
            self.on_event(event)
        code = proc.wait()
        if self._closing or proc is not self.proc:
            return
        if self.restarts >= self.max_restarts:
            self.on_event({"type": "gave_up", "message": f"the take checker stopped {self.restarts + 1} times "
                           f"(exit {code}); takes are saved unchecked: see {self.log_path}"})
            return
        self.restarts += 1
        self.on_event({"type": "restarting", "message": f"the take checker stopped (exit {code}); starting it again"})
        self.start()

    def close(self, timeout: float = 5.0) -> None:
        self._closing = True
        proc = self.proc
        if proc is None:
            return
        try:
            proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
