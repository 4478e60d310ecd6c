"""`milo-tui --demo` in a real terminal: the dashboard shows the workspace and quits with q."""
from __future__ import annotations

import re
import sys
import time

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


@pytest.mark.tmux
def test_the_first_start_shows_each_step_and_its_seconds(tmp_path):
    """The demo workspace takes about a minute to make: every step shows as it starts, numbered, and the
    current one counts its seconds until the dashboard's first frame."""
    counts: dict[int, set[str]] = {}  # step -> the second counts seen on its line
    first_seen: list[int] = []
    with Tmux(100, 30) as term:
        term.start([sys.executable, "-m", "milo_tui", "--demo"], env={"MILO_DEMO_DIR": str(tmp_path / "demo")})
        deadline = time.monotonic() + 240
        while "milo-tui ·" not in (screen := term.screen()):
            assert time.monotonic() < deadline and "EXITED" not in screen, screen
            for step, seconds in re.findall(r"step (\d) of 5: .+  (\d+) s$", screen, re.M):
                if int(step) not in first_seen:
                    first_seen.append(int(step))
                counts.setdefault(int(step), set()).add(seconds)
            time.sleep(0.2)
        term.send("q")
        screen = term.wait_for("EXITED:", timeout=20)
    assert first_seen == sorted(first_seen) and 1 in first_seen and 5 in first_seen, first_seen
    assert any(len(seen) > 1 for seen in counts.values()), counts  # the current step's count moves
    # Back from the dashboard, the terminal still shows what was made and how long each step took.
    assert "done in" in screen and re.search(r"step 5 of 5: .+  \d+ s$", screen, re.M), screen


@pytest.mark.tmux
def test_ctrl_c_while_the_workspace_is_made_says_so_in_one_line(tmp_path):
    demo = tmp_path / "demo"
    with Tmux(100, 30) as term:
        # The pane's shell survives the interrupt (a trap), so that what milo-tui said can be read.
        term.start(["bash", "-c", 'trap : INT; "$@"', "-", sys.executable, "-m", "milo_tui", "--demo"],
                   env={"MILO_DEMO_DIR": str(demo)})
        term.wait_for("step 2 of 5", timeout=60)
        term.send("C-c")
        screen = term.wait_for("EXITED:", timeout=60)
    assert "EXITED:130" in screen and "Traceback" not in screen, screen
    assert "interrupted: the demo workspace was not made; the next start makes it" in screen, screen
    assert [p.name for p in tmp_path.iterdir()] == [".demo.lock"]  # no half-made workspace
