"""The dashboard serves a checkpoint (docs/serving.md, "From the dashboard"): `S` in the checkpoints view starts the
real milo-serve detached on the tiny custom voice, the runs view's line shows it loading, then ready and counting
a real request, replacing it asks first, the server outlives the dashboard and a later one stops it with `X`. Every
failure is one line: the port taken by another program, a server that ends at once, a state file whose process is
gone (never signalled)."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from contract.serve import state_path, write_state
from milo_tui.supervisor import is_same_process
from tests.conftest import python_env
from tests.dashboard.conftest import make_app, screen_text, settle, wait_for, write_run

SPEECH = {"model": "x", "input": "Hello there.", "voice": "default"}
LOAD = 60  # s: the server's imports and the tiny model's load and warm-up (about 5 s here)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def serve_dir(tmp_path, monkeypatch):
    """The state files' folder of this test (MILO_SERVE_DIR, inherited by the servers the dashboard starts); after
    the test every server it started is killed, whatever the test left."""
    folder = tmp_path / "serve"
    monkeypatch.setenv("MILO_SERVE_DIR", str(folder))
    yield folder
    for child in serve_children():
        try:
            child.kill()
            child.wait(10)
        except psutil.Error:
            pass


def serve_children() -> list:
    """This test process's milo-serve children (another child that has ended, a zombie, has no command line
    to read: skipped, not an error)."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if "inference.serve" in child.cmdline():
                found.append(child)
        except psutil.Error:
            pass
    return found


@pytest.fixture
def voice_run(runs_root, tiny_custom_voice) -> Path:
    """A finished run with two real checkpoints of the tiny custom voice (hard links: no copy of the weights)."""
    run = write_run(runs_root, "voice-1", 200, status="finished", epochs=2, checkpoints=False)
    (run / "run.json").write_text(json.dumps({"speaker": "milo_demo"}))
    for name in ("epoch-0001", "epoch-0002"):
        shutil.copytree(tiny_custom_voice, run / name, copy_function=os.link)
    return run


def serving_app(runs_root, port: int):
    return make_app(runs_root, settings={"device": "cpu", "serve_port": port}, python=sys.executable, env=python_env(),
                    poll_s=0.2)


def said(app) -> list[str]:
    return [n.message for n in app._notifications]


def line(app) -> str:
    """The runs view's server line as the terminal shows it (no markup); "" on another screen."""
    from textual.content import Content

    from milo_tui.widgets.status_line import OneLine

    return Content.from_markup(app.screen.query_one("#server", OneLine).text).plain if app.screen.query("#server") else ""


def log_text(port: int) -> str:
    from contract.serve import log_path

    return log_path(port).read_text(errors="replace") if log_path(port).exists() else ""


def state(port: int) -> dict:
    try:
        return json.loads(state_path(port).read_text())
    except (OSError, ValueError):
        return {}


async def highlight(pilot, run: Path, name: str) -> None:
    """Open the checkpoints view of the selected run (from the runs view) and put the cursor on `name`."""
    from milo_tui.screens.checkpoints import CheckpointsScreen
    from milo_tui.widgets.tables import CheckpointsTable

    app = pilot.app
    if not isinstance(app.screen, CheckpointsScreen):
        await wait_for(pilot, lambda: app.selected == run, what="the run")
        await pilot.press("c")
    await wait_for(pilot, lambda: len(app.checkpoints.get(run, ((),))[0]) == 2, what="its checkpoints")
    table = app.screen.query_one(CheckpointsTable)
    await wait_for(pilot, lambda: str(run / name) in table.rows, what=f"{name}'s row")
    table.move_cursor(row=table.get_row_index(str(run / name)))
    await settle(pilot)
    assert app.screen.highlighted() == run / name


def speak(port: int) -> tuple[int, str, bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/audio/speech", data=json.dumps(SPEECH).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.status, r.headers.get("content-type", ""), r.read()


async def test_the_dashboard_serves_shows_replaces_and_stops_a_checkpoint(voice_run, runs_root, serve_dir):
    port = free_port()
    first = voice_run / "epoch-0001"
    app = serving_app(runs_root, port)
    async with app.run_test(size=(220, 40)) as pilot:
        await highlight(pilot, voice_run, "epoch-0001")
        await pilot.press("S")
        await pilot.press("escape")
        seen = []  # the runs view's line as it changes: loading, then ready

        def ready() -> bool:
            text = line(app)
            if not seen or seen[-1] != text:
                seen.append(text)
            return text.startswith(" milo-serve ready ·")

        try:
            await wait_for(pilot, ready, LOAD, "the server, ready, on the runs view")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: lines {seen}, said {said(app)}, log {log_text(port)[-1500:]}") from None
        assert any(s.startswith(" milo-serve loading ·") for s in seen) and "epoch-0001 (milo_demo) of voice-1" in seen[-1], seen
        s = state(port)
        pid, started = s["pid"], s["process_started"]
        assert s["checkpoint"]["name"] == "epoch-0001" and is_same_process(pid, started)
        assert os.getsid(pid) == pid  # its own session: a closed terminal or a dead dashboard does not take it down

        status, kind, body = await asyncio.to_thread(speak, port)
        assert status == 200 and kind.startswith("audio/wav") and body[:4] == b"RIFF" and len(body) > 1000
        await wait_for(pilot, lambda: "· 1 request ·" in line(app), 10, "the request counted on the runs view")
        assert "first audio p50" in line(app) and f"http://127.0.0.1:{port}" in screen_text(app)

        # the same checkpoint again: nothing restarts
        await highlight(pilot, voice_run, "epoch-0001")
        await pilot.press("S")
        await settle(pilot)
        assert any("epoch-0001 (milo_demo) of voice-1 is already served" in m for m in said(app)), said(app)

        # another checkpoint asks first; n keeps the first server
        from milo_tui.screens.dialogs import ConfirmScreen

        await highlight(pilot, voice_run, "epoch-0002")
        await pilot.press("S")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation")
        assert "Replace the server on" in app.screen.question and "epoch-0001" in app.screen.detail
        await pilot.press("n")
        await pilot.pause(0.5)
        assert state(port)["pid"] == pid and state(port)["status"] == "ready" and is_same_process(pid, started)
        assert serve_children() == [psutil.Process(pid)]
        await pilot.press("escape")

    # the dashboard is gone; the server is not, and a new dashboard shows it and stops it
    assert is_same_process(pid, started) and state(port)["status"] == "ready"
    app = serving_app(runs_root, port)
    async with app.run_test(size=(220, 40)) as pilot:
        await wait_for(pilot, lambda: line(app).startswith(" milo-serve ready ·") and "· 1 request ·" in line(app), 10,
                       "the server, shown again")
        assert "X stops it" in line(app) and first.name in line(app)
        await pilot.press("X")
        await wait_for(pilot, lambda: line(app).startswith(" milo-serve stopped ·"), 30, "the server stopped")
        assert line(app).endswith("· served 1 request") and "X stops it" not in line(app)
        assert state(port)["status"] == "stopped" and not is_same_process(pid, started)
        assert app.why_not("stop_server").startswith("no speech server is running")


async def test_failures_are_one_line_and_a_gone_server_is_never_signalled(voice_run, runs_root, serve_dir,
                                                                         live_process):
    port = free_port()
    app = serving_app(runs_root, port)
    async with app.run_test(size=(160, 30)) as pilot:
        # the port is taken by a program that is not a milo-serve: nothing is started
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", port))
            taken.listen()
            await highlight(pilot, voice_run, "epoch-0001")
            await pilot.press("S")
            await wait_for(pilot, lambda: any("in use by another program" in m for m in said(app)), 10, "the refusal")
        assert not state_path(port).exists()

        # a server that ends at once (a checkpoint it cannot serve) says why in one line
        broken = voice_run / "epoch-0003"
        broken.mkdir()
        (broken / "config.json").write_text("{}")
        await pilot.press("escape")
        await wait_for(pilot, lambda: len(app.checkpoints.get(voice_run, ((),))[0]) == 3, what="the third one")
        await pilot.press("c")
        from milo_tui.widgets.tables import CheckpointsTable

        table = app.screen.query_one(CheckpointsTable)
        await wait_for(pilot, lambda: str(broken) in table.rows, what="its row")
        table.move_cursor(row=table.get_row_index(str(broken)))
        await settle(pilot)
        await pilot.press("S")
        await wait_for(pilot, lambda: any("milo-serve ended at once (exit 3)" in m for m in said(app)), 30, "the exit")
        message = next(m for m in said(app) if "ended at once" in m)
        assert "\n" not in message and "epoch-0003" in message, message

        # a state file that says ready, whose pid is another process now (PID reuse): gone, X dimmed, not signalled
        other = live_process()
        write_state(port, {"pid": other["pid"], "process_started": other["pid_start_time"] - 100, "started": time.time(),
                           "port": port, "host": "127.0.0.1", "url": f"http://127.0.0.1:{port}", "status": "ready",
                           "checkpoint": {"name": "epoch-0001", "path": str(voice_run / "epoch-0001"), "run": "voice-1"}})
        await pilot.press("escape")
        await wait_for(pilot, lambda: line(app).startswith(" milo-serve gone: its process"), 10, "the gone server")
        assert app.why_not("stop_server").startswith("no speech server is running")
        await pilot.press("X")
        await settle(pilot)
        assert psutil.Process(other["pid"]).status() != psutil.STATUS_ZOMBIE
        from milo_tui.serving import ServeError, server_on

        with pytest.raises(ServeError, match="is not running"):
            app.serve_control.stop(server_on(port))
        assert psutil.Process(other["pid"]).is_running()

