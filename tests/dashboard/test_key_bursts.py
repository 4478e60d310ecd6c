"""Keys that arrive together (one read from the terminal, as over SSH) land where the operator meant:
a key after Tab goes into the field Tab moved to, never into the one just left."""
from __future__ import annotations

import sys
import time

import pytest
from textual import events

from milo_tui.screens.new_run import NewRunScreen
from tests.dashboard.conftest import make_app, wait_for
from tests.terminal import Tmux


def burst(app, *keys: str) -> None:
    """Post keys to the app at once, as the driver does for the keys of one read."""
    for key in keys:
        char = key if len(key) == 1 else None
        app.post_message(events.Key(key, char))


async def test_a_key_in_the_same_read_as_tab_goes_to_the_next_field(base, tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text("{}\n")
    app = make_app(tmp_path / "ck", settings={"data": data})
    app.settings = app.settings.with_values("test", base_model=base)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, NewRunScreen))
        await pilot.pause()
        form = app.screen
        assert app.focused.id == "run_name"
        name = form.query_one("#run_name").value
        burst(app, "tab", "7")
        await pilot.pause(0.3)
        assert form.query_one("#run_name").value == name  # nothing typed into the field left
        assert app.focused.id == "lr" and form.query_one("#lr").value.endswith("7")
        burst(app, "shift+tab", "shift+tab", "x")
        await pilot.pause(0.3)
        assert form.query_one("#lr").value.endswith("7") and not form.query_one("#lr").value.endswith("x")
        assert app.focused.id == "data" and form.query_one("#data").value.endswith("x")


def _field(screen: str, label: str) -> str:
    """The value shown after a form label on a captured screen."""
    line = next(line for line in screen.splitlines() if label in line)
    return line.split(label, 1)[1].split("│")[0].strip()


@pytest.mark.tmux
@pytest.mark.slow
def test_tab_then_a_key_in_one_write_in_a_real_terminal(demo_workspace, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("[ui]\nscore_checkpoints = false\n")
    env = {"MILO_DEMO_DIR": str(demo_workspace.root), "MILO_CONFIG": str(config)}
    with Tmux(100, 30) as term:
        term.start([sys.executable, "-m", "milo_tui", "--demo", "--checkpoints", str(tmp_path / "runs")], env=env)
        term.wait_for("n starts one", timeout=60)
        term.send("n")
        term.wait_for("tab moves", timeout=20)
        screen = term.wait_for("demo/data/train.jsonl", timeout=10)
        name = _field(screen, "Run name")
        term.send("Tab", "7")  # one send-keys: one write to the terminal
        deadline = time.monotonic() + 10
        while _field(screen, "Learning rate") != "7" and time.monotonic() < deadline:
            time.sleep(0.2)
            screen = term.screen()
        assert (_field(screen, "Run name"), _field(screen, "Learning rate")) == (name, "7"), screen
        term.send("BTab", "BTab", "x")
        deadline = time.monotonic() + 10
        while _field(screen, "Data (JSONL or corpus folder)") != "x" and time.monotonic() < deadline:
            time.sleep(0.2)
            screen = term.screen()
        assert (_field(screen, "Data (JSONL or corpus folder)"), _field(screen, "Learning rate")) == ("x", "7"), screen
        assert _field(screen, "Run name") == name
        term.send("Escape")  # alone: an escape and a key in one read are alt+key
        deadline = time.monotonic() + 10
        while "tab moves" in term.screen() and time.monotonic() < deadline:
            time.sleep(0.2)
        term.send("q")
        assert "EXITED:0" in term.wait_for("EXITED:", timeout=20)
