"""Layout snapshots at 80x24 and 120x40: fixed clock, fixed telemetry (fake NVML and psutil), fixed run
folders, UTC. The GB10 (memory NotSupported) and no-driver cases included. Update with --snapshot-update
after checking the SVGs by eye (snapshot_report.html)."""
from __future__ import annotations

import pytest

from milo_tui.messages import TelemetrySampled
from tests.dashboard.conftest import latest_step, make_app, settle, wait_for


async def _settle(pilot, samples: int = 40) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: len(app.runs) == 3 and latest_step(app) == 250 and len(app.log_lines) > 5
                   and app.checkpoints.get(app.selected), what="the runs to load")
    for _ in range(samples):
        app.post_message(TelemetrySampled(app.telemetry.sample()))
    await settle(pilot)


@pytest.mark.parametrize("profile", ["h100", "gb10", "nodriver"])
def test_runs_80x24(snap_compare, three_runs, profile):
    assert snap_compare(make_app(three_runs, profile), terminal_size=(80, 24), run_before=_settle)


@pytest.mark.parametrize("profile", ["gb10", "nodriver"])
def test_runs_120x40(snap_compare, three_runs, profile):
    assert snap_compare(make_app(three_runs, profile), terminal_size=(120, 40), run_before=_settle)


def test_checkpoints_80x24(snap_compare, three_runs):
    async def open_checkpoints(pilot):
        await _settle(pilot, samples=1)
        await pilot.press("down")  # bravo: five epochs, five checkpoints
        await wait_for(pilot, lambda: len(pilot.app.checkpoints.get(pilot.app.selected, ((),))[0]) == 5)
        await pilot.press("c")
        await settle(pilot)

    assert snap_compare(make_app(three_runs, "gb10"), terminal_size=(80, 24), run_before=open_checkpoints)
