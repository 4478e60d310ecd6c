"""`milo-tui --demo` in a real terminal: the dashboard shows the workspace and quits with q."""
from __future__ import annotations

import sys

import pytest

from tests.terminal import Tmux


@pytest.mark.tmux
@pytest.mark.parametrize("quit_key", ["q", "C-c"])
def test_dashboard_opens_on_the_demo_workspace_and_quits(demo_workspace, quit_key):
    with Tmux(80, 24) as term:
        term.start([sys.executable, "-m", "milo_tui", "--demo"], env={"MILO_DEMO_DIR": str(demo_workspace.root)})
        screen = term.wait_for("demo workspace", timeout=60)
        assert str(demo_workspace.base)[:40] in screen
        term.send(quit_key)
        screen = term.wait_for("EXITED:", timeout=20)
        assert "EXITED:0" in screen and "Traceback" not in screen
