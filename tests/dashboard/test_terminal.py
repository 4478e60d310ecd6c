"""`milo-tui --demo` in a real terminal (tmux): keys in, the screen read back; a demo run started from
the new-run form and stopped, all from the keyboard."""
from __future__ import annotations

import re
import sys
import time

import pytest

from tests.terminal import Tmux

pytestmark = [pytest.mark.tmux, pytest.mark.slow]


def _wait_re(term: Tmux, pattern: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        screen = term.screen()
        if re.search(pattern, screen):
            return screen
        if time.monotonic() > deadline:
            raise AssertionError(f"{pattern!r} did not appear within {timeout} s; screen:\n{screen}")
        time.sleep(0.3)


def test_demo_run_started_and_stopped_from_the_keyboard(demo_workspace, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("[ui]\nscore_checkpoints = false\n")  # scoring after a save is tests/scoring's subject
    env = {"MILO_DEMO_DIR": str(demo_workspace.root), "MILO_TEST_HOOKS": "step_delay=0.5", "MILO_CONFIG": str(config)}
    with Tmux(100, 30) as term:
        term.start([sys.executable, "-m", "milo_tui", "--demo", "--checkpoints", str(tmp_path / "runs")], env=env)
        term.wait_for("n starts one", timeout=60)
        term.send("n")
        term.wait_for("tab moves", timeout=20)  # the form's title line
        term.wait_for("demo/data/train.jsonl", timeout=10)  # the demo's prepared data is the default
        term.send("C-s")
        _wait_re(term, r"running · step [1-9]\d*/", timeout=180)
        term.send("s")
        screen = term.wait_for("stopped", timeout=120)
        assert "Traceback" not in screen
        term.send("q")
        screen = term.wait_for("EXITED:", timeout=20)
        assert "EXITED:0" in screen
