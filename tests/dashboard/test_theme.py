"""Colours come from the theme: no colour literal in the dashboard's Python, and a theme change recolours
what Python draws (chart lines, table cells), not only what the stylesheet styles."""
from __future__ import annotations

import re
from pathlib import Path

import milo_tui
from milo_tui.widgets.tables import RunsTable
from milo_tui.widgets.theme import CHART, SUCCESS, themed
from tests.dashboard.conftest import latest_step, make_app, settle, wait_for


def test_the_dashboard_writes_no_colour_of_its_own():
    root = Path(milo_tui.__file__).parent
    hits = [f"{path.relative_to(root)}:{n}" for path in sorted(root.rglob("*.py"))
            for n, line in enumerate(path.read_text().splitlines(), 1) if re.search(r"#[0-9a-fA-F]{6}\b", line)]
    assert hits == []


def _chart_colours(app) -> set[str]:
    chart = app.screen.query_one("#chart")
    return {seg.style.color.triplet.hex for y in range(chart.content_size.height) for seg in chart.render_line(y)
            if seg.style and seg.style.color and seg.style.color.triplet}


async def test_a_theme_change_recolours_the_chart_and_the_runs_table(three_runs):
    app = make_app(three_runs)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: latest_step(app) == 250, what="alpha's metrics")
        await settle(pilot)
        table = app.screen.query_one(RunsTable)
        running = str(table.get_row_at(table.get_row_index(str(three_runs / "alpha")))[1].style)
        dark = themed(app, CHART.objective).lower()
        assert dark in _chart_colours(app) and themed(app, f"bold {SUCCESS}") == running

        app.theme = "nord"
        await pilot.pause()
        nord = themed(app, CHART.objective).lower()
        assert nord != dark
        await wait_for(pilot, lambda: nord in _chart_colours(app), what="the chart in nord's colours")
        assert dark not in _chart_colours(app)
        await wait_for(pilot, lambda: str(table.get_row_at(table.get_row_index(str(three_runs / "alpha")))[1].style)
                       == themed(app, f"bold {SUCCESS}"), what="the runs table in nord's colours")
