"""A real terminal for tests: a private tmux server, keys in, the screen read back with capture-pane."""
from __future__ import annotations

import os
import shlex
import subprocess
import time
import uuid

from tests.conftest import need_binary, python_env


class Tmux:
    def __init__(self, width: int = 100, height: int = 30) -> None:
        need_binary("tmux")
        self.socket = f"milo-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.width, self.height = width, height
        self.session = "milo"

    def _tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=check)

    def start(self, argv: list[str], env: dict | None = None, cwd: str | None = None) -> "Tmux":
        env = python_env(**(env or {}))
        env.update(TERM="xterm-256color")
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()
                           if k in ("PYTHONPATH", "PATH", "HOME", "TERM", "COLORTERM") or k.startswith(("XDG_", "MILO_", "HF_", "PULSE")))
        # `; sleep` keeps the pane open after the program exits so its last screen can be read.
        # COLUMNS/LINES are dropped: a pytest process can carry them in its C environment (80x24) without
        # os.environ showing them, and programs would believe them rather than the pane's real size.
        cmd = (f"cd {shlex.quote(cwd or os.getcwd())} && env -u COLUMNS -u LINES {exports} {shlex.join(argv)}; "
               f"echo EXITED:$?; sleep 30")
        self._tmux("-f", "/dev/null", "new-session", "-d", "-s", self.session,
                   "-x", str(self.width), "-y", str(self.height), cmd)
        return self

    def send(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", self.session, *keys)

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", self.session, check=False).stdout

    def wait_for(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if text in screen:
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} did not appear within {timeout} s; screen:\n{screen}")
            time.sleep(0.2)

    def close(self) -> None:
        self._tmux("kill-server", check=False)

    def __enter__(self) -> "Tmux":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
