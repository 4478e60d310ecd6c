"""Speech-server fixtures: the real milo-serve as a child process on a free loopback port, serving the tiny
custom voice; its state files in a folder of the test's own."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import python_env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    proc: subprocess.Popen
    port: int
    state_dir: Path
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, headers: dict | None = None) -> tuple[int, dict]:
        req = urllib.request.Request(self.url + path, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def state(self) -> dict:
        return json.loads((self.state_dir / f"{self.port}.json").read_text())

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_ready(self, timeout: float = 120, headers: dict | None = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"milo-serve exited {self.proc.returncode}: {self.log_text()[-2000:]}")
            try:
                if self.get("/ready", headers)[0] == 200:
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        raise AssertionError(f"milo-serve not ready in {timeout} s: {self.log_text()[-2000:]}")

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start_server(checkpoint: Path, tmp: Path, *args: str, env: dict | None = None) -> Server:
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = tmp / f"serve-{port}.log"
    state_dir = tmp / "serve-state"
    proc = subprocess.Popen([sys.executable, "-m", "inference.serve", str(checkpoint), "--port", str(port),
                             "--device", "cpu", *args],
                            stdin=subprocess.DEVNULL, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            env=env or python_env(MILO_SERVE_DIR=str(state_dir)))
    return Server(proc, port, state_dir, log)


@pytest.fixture(scope="module")
def served(tiny_custom_voice, tmp_path_factory):
    """One server for a module: one stream at a time and one waiting, so the queue's limit is easy to reach."""
    server = start_server(tiny_custom_voice, tmp_path_factory.mktemp("serve"), "--max-active", "1", "--queue", "1")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
        if os.environ.get("MILO_KEEP_SERVE_LOG"):
            print(server.log_text())
