"""The metrics store (rewinds, thinning, speed) and the charts drawn from it (braille and ASCII)."""
from __future__ import annotations

from milo_tui.chart import Canvas, downsample, ema, layer_rows, loss_chart, sparkline
from milo_tui.metrics import CAP, MetricsBatch, RunMetrics, StepPoint, ValPoint, decode_lines, speed, thin
from contract.runfolder import record
from tests.dashboard.conftest import step_records


def _batch(first, last, **kw):
    import json

    return decode_lines("".join(json.dumps(r) + "\n" for r in step_records(first, last, **kw)).encode())


def test_a_resume_from_an_earlier_step_replaces_the_abandoned_steps():
    m = RunMetrics()
    m.apply(_batch(1, 50))
    m.apply(MetricsBatch(validations=[ValPoint(1, 40, 3.0, 9.0, True)]))
    # crashed at 50, resumed from the resume point at step 30: steps 31.. are logged again
    start = record("event", event="start", message="resumed", resumed_from_step=30)
    m.apply(MetricsBatch(events=[start]))
    assert m.points[-1].step == 30 and m.validations == []
    m.apply(_batch(31, 35))
    assert [p.step for p in m.points][-6:] == [30, 31, 32, 33, 34, 35]
    # a fresh start in the same folder (no resume point) restarts the step count
    m.apply(_batch(1, 3))
    assert [p.step for p in m.points] == [1, 2, 3]


def test_thinning_keeps_the_ends_and_spreads_evenly():
    m = RunMetrics()
    for start in range(1, 20_001, 1000):
        m.apply(_batch(start, start + 999))
    steps = [p.step for p in m.points]
    assert len(steps) <= CAP and steps[0] == 1 and steps[-1] == 20_000
    gaps = [b - a for a, b in zip(steps, steps[1:])]
    assert max(gaps) <= 2 * 20_000 / (CAP // 2)  # no hole wider than twice the thinned spacing
    assert thin([StepPoint(s, 1.0, 1.0, None) for s in range(10)], 20)[-1].step == 9


def test_speed_from_recent_records():
    recs = step_records(1, 11, dt=0.5)
    assert abs(speed(recs) - 2.0) < 1e-9
    assert speed(recs[:1]) is None


def test_version_changes_only_with_new_data():
    m = RunMetrics()
    v = m.version
    m.apply(MetricsBatch())
    assert m.version == v
    m.apply(_batch(1, 2))
    assert m.version == v + 1


def test_canvas_braille_and_ascii():
    c = Canvas(2, 1)
    c.dot(0, 0, "red")
    c.dot(3, 3, "red")
    assert c.rows()[0].plain == "\u2801\u2880"
    a = Canvas(3, 1, ascii=True)
    a.dot(0, 0, "red")
    a.dot(1, 2, "red")
    a.line(2, 0, 2, 2, "red")
    assert a.rows()[0].plain == "'.|"


def test_downsample_means_per_bucket_and_ema_starts_at_the_first_value():
    out = downsample([0, 1, 2, 3], [1.0, 3.0, 5.0, 7.0], 0, 3, 2)
    assert out == [(0, 2.0), (1, 6.0)]
    assert abs(ema([4.0, 4.0, 4.0])[0] - 4.0) < 1e-9


def _points(n):
    return [StepPoint(s, 5 - s / n, 15 - s / n, tuple(1 + i / 10 - s / (10 * n) for i in range(16))) for s in range(1, n + 1)]


def test_loss_chart_fills_its_box_and_ascii_mode_is_ascii():
    pts = _points(500)
    vals = [ValPoint(1, 250, 4.6, 14.6, True)]
    for ascii in (False, True):
        lines = loss_chart(pts, vals, 60, 12, smooth=True, overlay=3, ascii=ascii)
        assert len(lines) == 12 and all(line.cell_len == 60 for line in lines)
        text = "".join(line.plain for line in lines)
        assert ("*" in text) if ascii else ("◆" in text)
        if ascii:
            assert text.isascii()
        else:
            assert any(0x2800 < ord(ch) <= 0x28FF for ch in text)
    assert "waiting" in "".join(l.plain for l in loss_chart([], [], 60, 12))


def test_layer_rows_fit_the_height_in_columns():
    pts = _points(300)
    tall = layer_rows(pts, 60, 16, overlay=2)
    assert len(tall) == 16 and tall[15].plain.startswith("L15")
    short = layer_rows(pts, 60, 8, ascii=True)
    assert len(short) == 8 and "L8" in short[0].plain and all(line.plain.isascii() for line in short)
    assert sparkline([1, 2, 3, 4], 4) == "▁▃▆█" and sparkline([], 3) == "   "


def test_the_eta_after_a_resume_counts_only_the_resumed_steps(tmp_path):
    """Stopped at step 20, resumed ten minutes later: the speed (and so the ETA) is the resumed steps' own
    (2 steps/s), not 30 steps over ten minutes."""
    from contract.runfolder import append_records, write_json_atomic
    from milo_tui.runs import read_summary

    run = tmp_path / "run"
    run.mkdir()
    write_json_atomic(run / "run.json", {"hyper": {"epochs": 1}})
    write_json_atomic(run / "state.json", {"status": "running"})
    t0 = 1_000_000.0
    before = step_records(1, 20, per_epoch=100, t0=t0, dt=0.5)
    resumed_at = before[-1]["time"] + 600
    start = record("event", time=resumed_at, event="start", message="resumed", resumed_from_step=20)
    after = step_records(21, 26, per_epoch=100, t0=resumed_at + 5 - 21 * 0.5, dt=0.5)
    append_records(run / "metrics.jsonl", [*before, record("event", time=before[-1]["time"], event="stop",
                                                            reason="signal", step=20), start, *after])
    r = read_summary(run)
    assert r.step == 26 and abs(r.eta_s - (100 - 26) / 2.0) < 1e-6, r.eta_s
