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
