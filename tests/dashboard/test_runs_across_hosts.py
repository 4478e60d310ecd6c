"""A run across hosts in the runs view: its line names the hosts, the home host (which keeps the run folder)
first, from state.json's home_host and hosts as the launcher (training/launch.py) writes them."""
from __future__ import annotations

import asyncio

from tests.dashboard.conftest import make_app, screen_text, wait_for, write_run


def test_a_run_across_hosts_names_them_on_its_line(runs_root):
    from milo_tui.widgets.tables import RunsTable

    across = write_run(runs_root, "duo", 150, status="stopped", state={
        "home_host": "spark1", "hosts": [{"host": "spark2", "pid": 4242, "log": str(runs_root / "duo/hosts/spark2.log")}]})
    alone = write_run(runs_root, "solo", 150, status="stopped")

    async def go():
        app = make_app(runs_root, poll_s=0.2)
        async with app.run_test(size=(100, 30)) as pilot:
            table = app.screen.query_one(RunsTable)
            await wait_for(pilot, lambda: len(table.rows) == 2, what="both runs")
            app.select_run(str(across))
            await wait_for(pilot, lambda: "duo · stopped" in screen_text(app), what="duo's line")
            duo = screen_text(app)
            app.select_run(str(alone))
            await wait_for(pilot, lambda: "solo · stopped" in screen_text(app), what="solo's line")
            return duo, screen_text(app)

    duo, solo = asyncio.run(go())
    assert "duo · stopped · on spark1 + spark2 · best" in duo, duo
    assert "solo · stopped · best" in solo and "spark1 + spark2" not in solo, solo


def test_the_hosts_of_a_run_before_the_launcher_records_them_come_from_its_launch_command():
    from milo_tui.runs import run_hosts

    launch = ["python", "-m", "training", "run", "--run", "/r", "--hosts", "spark2,spark3", "--master-addr", "10.0.0.1"]
    assert run_hosts({"launch_command": launch}) == ("this host", "spark2", "spark3")
    assert run_hosts({"launch_command": launch, "home_host": "spark1", "hosts": [{"host": "spark2"}]}) == (
        "spark1", "spark2")
    assert run_hosts({"launch_command": launch[:6]}) == () and run_hosts({}) == ()


def test_a_live_run_whose_other_host_cannot_be_reached_says_so_on_its_line_and_in_the_gpu_panel(
        runs_root, tmp_path, monkeypatch):
    """The dashboard's link to the other host is a real ssh, to a port nothing listens on: the rank shows
    `unreachable` on the runs line, and the GPU panel's section for that host says ssh's reason."""
    import socket
    import subprocess

    import psutil

    from milo_tui.widgets.telemetry import TelemetryPanel
    from tests.conftest import need_binary

    need_binary("ssh")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp_path / "ssh_config"
    config.write_text(f"Host spark2\n  HostName 127.0.0.1\n  Port {port}\n  StrictHostKeyChecking no\n"
                      f"  UserKnownHostsFile {tmp_path / 'known_hosts'}\n")
    monkeypatch.setenv("MILO_SSH_CONFIG", str(config))
    trainer = subprocess.Popen(["sleep", "120"])   # the live run's process
    try:
        write_run(runs_root, "duo", 150, status="running", state={
            "pid": trainer.pid, "pid_start_time": psutil.Process(trainer.pid).create_time(), "home_host": "spark1",
            "hosts": [{"host": "spark2", "pid": 4242, "log": str(runs_root / "duo/hosts/spark2.log")}]})

        async def go():
            app = make_app(runs_root, poll_s=0.2, telemetry_interval=0.2)
            async with app.run_test(size=(120, 50)) as pilot:
                await wait_for(pilot, lambda: "on spark1 (live) + spark2 (unreachable)" in screen_text(app), 20,
                               "the unreachable rank on the line")
                panel = app.screen.query_one(TelemetryPanel)
                return "\n".join(line.plain for line in panel.lines(200, 60)), str(panel.border_title)

        panel, title = asyncio.run(go())
    finally:
        trainer.kill()
        trainer.wait()
    assert title == "GPU · 2 hosts" and "\nspark2\n" in panel, panel
    assert "unreachable: ssh: connect to host 127.0.0.1 port" in panel and "Connection refused" in panel, panel
