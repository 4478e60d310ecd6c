"""The scores on the dashboard: the checkpoints view's score columns, the pinned baseline and ceiling rows,
each checkpoint's scoring state and the ears' verdicts, the best mark by the configured rule (and the
cursor on it), scores that land while the dashboard is open, the score key starting the run's real scorer,
and the trend panel on the runs screen. Snapshots at 80x24 and 120x40."""
from __future__ import annotations

import asyncio
import re

import pytest

from contract import scores as sc
from contract.scores import BestRule
from tests.dashboard.conftest import immutable, make_app, screen_text, settle, wait_for, write_run, write_scores

SCORED = {
    1: dict(similarity=0.71, wer=0.31, rate_ratio=0.80),
    2: dict(similarity=0.86, wer=0.18, rate_ratio=0.95, dnsmos_ovrl=2.9),
    3: dict(similarity=0.91, wer=0.45, rate_ratio=1.10, dnsmos_ovrl=3.3),
    4: dict(similarity=0.89, wer=0.20, rate_ratio=1.02, runaway=2, dnsmos_ovrl=3.5),
}
BASELINE = dict(similarity=0.62, wer=0.17, rate_ratio=0.93)
CEILING = dict(similarity=0.94, wer=0.05, dnsmos_ovrl=3.4)


@pytest.fixture
def scored_run(runs_root):
    """Five epochs: 1-4 scored, 5 being scored; the baseline and ceiling made; 2 and 3 rated and compared."""
    run = write_run(runs_root, "voice", 500, status="finished")
    write_scores(run, scored=SCORED, states={5: sc.RUNNING}, baseline=BASELINE, ceiling=CEILING,
                 ratings={2: [4, 5], 3: [3]}, preferences=[(2, 3, 2)])
    return run


def cells(table, key: str) -> list[str]:
    return [str(c) for c in table.get_row(key)]


async def open_checkpoints(pilot):
    from milo_tui.screens.checkpoints import CheckpointsScreen

    app = pilot.app
    await wait_for(pilot, lambda: app.selected is not None and app.checkpoints.get(app.selected)
                   and app.judgements.get(app.selected), what="the run's checkpoints and scores")
    await pilot.press("c")
    await wait_for(pilot, lambda: isinstance(app.screen, CheckpointsScreen), what="the checkpoints view")
    return app.screen


def test_scores_pinned_rows_states_ratings_and_the_best_mark(scored_run):
    from milo_tui.widgets.tables import CheckpointsTable

    async def go():
        app = make_app(scored_run.parent)
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await open_checkpoints(pilot)
            table = screen.query_one(CheckpointsTable)
            keys = [k.value for k in table.rows]
            assert keys[:2] == ["baseline", "ceiling"]  # pinned above the checkpoints
            assert [k.rsplit("/", 1)[-1] for k in keys[2:]] == [f"epoch-{e:04d}" for e in range(1, 6)]
            assert cells(table, "baseline")[2:4] == ["0.62", "0.17"] and cells(table, "ceiling")[2] == "0.94"
            ck = {k.rsplit("/", 1)[-1]: k for k in keys[2:]}
            # epoch 2: the best by the default rule (3 has the higher similarity but WER 0.45 > 0.17 + 0.05;
            # 4 ran away twice); rated 4 and 5, won its A/B pair
            two = cells(table, ck["epoch-0002"])
            assert two[0] == "epoch-0002 \u2605" and two[2:6] == ["0.86", "0.18", "2.90", "0.95"]
            assert two[7] == "4.5* 1-0" and two[8] == "done"
            assert cells(table, ck["epoch-0003"])[7] == "3.0* 0-1"
            assert cells(table, ck["epoch-0004"])[6] == "2"        # runaway prompts
            assert cells(table, ck["epoch-0005"])[2] == "-" and cells(table, ck["epoch-0005"])[8] == "scoring"
            assert screen.highlighted().name == "epoch-0002"  # the cursor starts on the best
            text = screen_text(app)
            assert "\u2605 epoch-0002: highest similarity 0.860 among 1 of 4 scored with WER <= 0.22" in text
            assert "epoch-0002: done" in text
            # on a pinned row: what it is, and the keys that need a checkpoint say why not
            await pilot.press("up", "up")
            await settle(pilot)
            assert screen._row_key() == "ceiling"
            assert "ceiling: real held-out clips of the corpus" in screen_text(app)
            assert screen.why_not("audition") == "the ceiling row is the run's reference, not a checkpoint"
            # epoch 5 is being scored: e says so
            await pilot.press(*["down"] * 6)
            await settle(pilot)
            assert screen.highlighted().name == "epoch-0005"
            assert screen.why_not("score") == "epoch-0005 is already scoring"

    asyncio.run(go())


def test_changing_the_rule_in_config_moves_the_mark(scored_run, tmp_path):
    from milo_tui.config import load_settings

    cfg = tmp_path / "config.toml"
    cfg.write_text('[best]\nmetric = "dnsmos_ovrl"\nwer_margin = 0.1\nmax_runaway = 2\n')
    rule = load_settings(path=cfg, environ={}).best
    assert rule == BestRule("dnsmos_ovrl", 0.1, 2)

    async def best_with(rule: BestRule | None):
        app = make_app(scored_run.parent, settings={"best": rule} if rule else {})
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await open_checkpoints(pilot)
            await settle(pilot)
            return screen.highlighted().name, app.best_of(app.selected)

    default_pick, (default_best, _) = asyncio.run(best_with(None))
    moved_pick, (moved_best, why) = asyncio.run(best_with(rule))
    assert default_best == default_pick == "epoch-0002"
    # OVRL, WER within 0.27, up to 2 runaway: epoch 4 (OVRL 3.5) now qualifies and wins
    assert moved_best == moved_pick == "epoch-0004" and why.startswith("highest dnsmos_ovrl 3.500")


def test_a_checkpoint_scored_while_the_dashboard_is_open_appears(scored_run):
    from milo_tui.widgets.tables import CheckpointsTable

    async def go():
        app = make_app(scored_run.parent, poll_s=0.2)
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await open_checkpoints(pilot)
            table = screen.query_one(CheckpointsTable)
            five = str(scored_run / "epoch-0005")
            assert cells(table, five)[2] == "-"
            # the run's scorer finishes epoch 5: eval.json gains its scores, scoring.json says done
            write_scores(scored_run, scored={5: dict(similarity=0.93, wer=0.19, rate_ratio=1.0)})
            await wait_for(pilot, lambda: cells(table, five)[2] == "0.93", timeout=15, what="epoch 5's scores")
            assert cells(table, five)[8] == "done" and cells(table, five)[0] == "epoch-0005 \u2605"  # the new best
            assert cells(table, str(scored_run / "epoch-0002"))[0] == "epoch-0002"

    asyncio.run(go())


def test_the_runs_table_says_which_checkpoint_is_each_runs_voice(scored_run, runs_root):
    """One column across runs: the best checkpoint by the rule (the checkpoints view's mark), "none" when
    scores exist but none meets the rule, "-" before any score; it follows scores that land, and the rule."""
    from milo_tui.widgets.tables import RunsTable

    write_run(runs_root, "fresh", 200, status="finished")   # never scored
    runaway = write_run(runs_root, "wild", 200, status="finished")
    write_scores(runaway, scored={1: dict(similarity=0.9, runaway=3), 2: dict(similarity=0.8, runaway=1)},
                 baseline=BASELINE)

    async def voices(rule: BestRule | None = None, then=None):
        app = make_app(runs_root, poll_s=0.2, settings={"best": rule} if rule else {})
        async with app.run_test(size=(120, 40)) as pilot:
            table = app.screen.query_one(RunsTable)
            await wait_for(pilot, lambda: len(table.rows) == 3 and cells(table, str(scored_run))[-1] != "-",
                           what="three runs, the voice of one")
            seen = {name: cells(table, str(runs_root / name))[-1] for name in ("voice", "fresh", "wild")}
            seen["title"] = str(list(table.columns.values())[-1].label)
            if rule is None:
                app.select_run(str(scored_run))
                await wait_for(pilot, lambda: "\u2605 epoch-0002 sim 0.86" in screen_text(app),
                               what="the voice in the selected run's line")
            if then is not None:
                then()
                await wait_for(pilot, lambda: cells(table, str(scored_run))[-1] == "0.93 @5", timeout=15,
                               what="the new best in the runs table")
            return seen

    land = lambda: write_scores(scored_run, scored={5: dict(similarity=0.93, wer=0.19, rate_ratio=1.0)})  # noqa: E731
    assert asyncio.run(voices()) == {"voice": "0.86 @2", "fresh": "-", "wild": "none", "title": "\u2605 sim"}
    moved = asyncio.run(voices(BestRule("dnsmos_ovrl", 0.1, 2)))
    assert (moved["voice"], moved["title"]) == ("3.50 @4", "\u2605 OVRL")
    asyncio.run(voices(then=land))


@pytest.mark.slow
def test_the_score_key_starts_the_runs_scorer(runs_root):
    """`e` queues the highlighted checkpoint and starts the real scorer (python -m inference.scoring queue);
    this checkpoint's weights are not a model, so the scorer records why it failed, and the view shows it. The
    scorer generates where [scoring] device says (here "auto"), and the view says so."""
    import psutil

    run = write_run(runs_root, "voice", 200, status="finished", epochs=2)
    (run / "epoch-0002" / "config.json").write_text("{}")

    def scorer_command() -> list[str] | None:
        return next((p.info["cmdline"] for p in psutil.process_iter(["cmdline"])
                     if "inference.scoring" in (p.info["cmdline"] or []) and str(run) in p.info["cmdline"]), None)

    async def go():
        app = make_app(runs_root, poll_s=0.2, settings={"score_device": "auto"})
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await open_checkpoints(pilot)
            while screen.highlighted().name != "epoch-0002":
                await pilot.press("down")
            assert "scorer on auto" in screen_text(app)
            await pilot.press("e")
            await wait_for(pilot, lambda: (sc.states(run).get("epoch-0002") or {}).get("by") == "dashboard",
                           what="epoch-0002 queued by the dashboard")
            await wait_for(pilot, scorer_command, timeout=30, what="the scorer process")
            command = scorer_command() or []
            assert command[command.index("--device") + 1:][:1] == ["auto"], command
            await wait_for(pilot, lambda: (sc.states(run).get("epoch-0002") or {}).get("state") == sc.FAILED,
                           timeout=120, what="the scorer to finish epoch-0002")
            await wait_for(pilot, lambda: "epoch-0002: failed" in screen_text(app), timeout=10,
                           what="the failure in the view")
            assert (run / sc.SCORING_LOG).read_text().strip()  # the scorer ran and said what happened
            assert screen.why_not("score") is None  # a failed checkpoint can be scored again

    asyncio.run(go())


def test_a_scoring_queue_write_that_fails_says_so_in_one_line(runs_root):
    """`e` on a run whose folder cannot be written (immutable: even root cannot write scoring.json there): the
    score worker fails, and the dashboard says so in one line, the worker's name and the error, no traceback."""
    run = write_run(runs_root, "voice", 200, status="finished", epochs=2)
    with immutable(run):
        async def go():
            app = make_app(runs_root, poll_s=0.2)
            async with app.run_test(size=(120, 40)) as pilot:
                await open_checkpoints(pilot)
                await pilot.press("e")
                await wait_for(pilot, lambda: any(n.message.startswith("score voice failed: ") for n in app._notifications),
                               what="the error line")
                said = [n.message for n in app._notifications if "failed" in n.message]
                assert len(said) == 1 and "\n" not in said[0] and "PermissionError" in said[0], said
                assert not app._exit_renderables and app.is_running

        asyncio.run(go())
    assert sc.states(run) == {}  # nothing queued


def test_trend_panel_is_a_view_of_the_compact_layout(scored_run):
    from milo_tui.widgets.charts import TrendPanel

    async def go():
        app = make_app(scored_run.parent)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.judgements.get(app.selected) is not None, what="the scores")
            assert app.view == "chart" and not app.screen.query_one(TrendPanel).display  # compact: one pane at a time
            await pilot.press("v")
            await settle(pilot)
            assert app.view == "trend"
            panel = app.screen.query_one(TrendPanel)
            labels = [s[0] for s in panel.series]
            assert labels == ["sim", "WER", "rate"]
            sim = panel.series[0]
            assert sim[2] == [(e, SCORED[e]["similarity"]) for e in sorted(SCORED)] and sim[3] == BASELINE["similarity"]
            text = screen_text(app)
            assert "Scores per epoch" in text and "sim 0.89  base 0.62  @4" in text and "WER 0.20  base 0.17" in text
            # each plot's y range at the right of its title: the baseline (0.62) below the lowest score (0.71)
            assert re.search(r"sim 0\.89  base 0\.62  @4 +0\.62\.\.0\.91│", text), text
            assert re.search(r"WER 0\.20  base 0\.17  @4 +0\.17\.\.0\.45│", text), text

    asyncio.run(go())


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_checkpoints_with_scores_snapshot(snap_compare, scored_run, size):
    async def run_before(pilot):
        await open_checkpoints(pilot)
        await settle(pilot)

    assert snap_compare(make_app(scored_run.parent), terminal_size=size, run_before=run_before)


def test_trend_snapshot_80x24(snap_compare, scored_run):
    async def run_before(pilot):
        app = pilot.app
        await wait_for(pilot, lambda: app.judgements.get(app.selected) is not None, what="the scores")
        await pilot.press("v")
        await settle(pilot)

    assert snap_compare(make_app(scored_run.parent), terminal_size=(80, 24), run_before=run_before)


def test_runs_with_trend_snapshot_120x40(snap_compare, scored_run):
    async def run_before(pilot):
        app = pilot.app
        await wait_for(pilot, lambda: app.judgements.get(app.selected) is not None, what="the scores")
        await settle(pilot)

    assert snap_compare(make_app(scored_run.parent), terminal_size=(120, 40), run_before=run_before)


def test_the_audition_screen_accepts_best(scored_run):
    """`best` as the audition screen's checkpoint, and first in its checkpoint picker (no worker started)."""
    from textual.app import App

    from milo_tui.audition.picker import CheckpointPicker
    from milo_tui.audition.screen import AuditionScreen

    screen = AuditionScreen(scored_run, "best")
    assert screen.session.checkpoint_a == (scored_run / "epoch-0002").absolute()
    assert screen.session.status.text.startswith("best in voice is epoch-0002: highest similarity 0.860")
    unscored = write_run(scored_run.parent, "fresh", 100, status="finished", epochs=1)
    lost = AuditionScreen(unscored, "best")
    assert lost.session.checkpoint_a is None and lost.session.status.error
    assert lost.session.status.text.startswith(
        f"{unscored}: no best checkpoint yet: no checkpoint meets the rule (0 scored")

    picked = []

    class Host(App):
        def on_mount(self) -> None:
            checkpoints = sorted(p for p in scored_run.iterdir() if p.name.startswith("epoch-"))
            self.push_screen(CheckpointPicker("pick", checkpoints, checkpoints[0], scored_run / "epoch-0002"),
                             picked.append)

    async def go():
        app = Host()
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause(0.1)
            options = app.screen.query_one("OptionList")
            assert str(options.get_option_at_index(0).prompt).strip() == "best: epoch-0002"
            assert options.highlighted == 1  # the current one stays highlighted
            await pilot.press("up", "enter")
            await pilot.pause(0.1)
        assert picked == [scored_run / "epoch-0002"]

    asyncio.run(go())


# The tiny demo model as it scores: every prompt runs away, nothing is heard (WER 1.0), as its zero-shot baseline.
RUNAWAY = {1: dict(similarity=0.38, wer=1.0, runaway=5), 2: dict(similarity=0.41, wer=1.0, runaway=5),
           3: dict(similarity=0.39, wer=1.0, runaway=5)}
RUNAWAY_BASELINE = dict(similarity=0.38, wer=1.0, runaway=4)


def runaway_runs(root, *, demo_rule: bool = True):
    """Two runs with the same runaway scores: "demo" started on the demo workspace (its run.json holds the demo's
    own rule and where its scorer runs, as the trainer writes them from the dashboard's demo flags), "real" not."""
    import json

    from milo_tui.demo import DEMO_BEST_FLAGS, DEMO_BEST_NOTE

    runs = {}
    for name in ("demo", "real"):
        run = write_run(root, name, 300, status="finished", epochs=3)
        write_scores(run, scored=RUNAWAY, baseline=RUNAWAY_BASELINE)
        runs[name] = run
    assert DEMO_BEST_FLAGS[:2] == ("--best-max-runaway", "5")
    run_json = json.loads((runs["demo"] / "run.json").read_text())
    run_json.update(score_device="auto", best=sc.rule_block(BestRule(max_runaway=5), DEMO_BEST_NOTE))
    (runs["demo"] / "run.json").write_text(json.dumps(run_json))
    return runs


def test_a_demo_run_gets_a_star_by_its_own_rule_and_a_real_one_with_the_same_scores_none(runs_root):
    """The tiny demo model runs away on every prompt: the demo run's own rule (run.json) allows it and the screen
    names that rule; a run without one is held to the configured rule, which stays as strict as it was."""
    from milo_tui.widgets.tables import RunsTable

    runs = runaway_runs(runs_root)

    async def go():
        app = make_app(runs_root, poll_s=0.2)
        async with app.run_test(size=(160, 40)) as pilot:
            table = app.screen.query_one(RunsTable)
            await wait_for(pilot, lambda: len(table.rows) == 2 and cells(table, str(runs["demo"]))[-1] != "-",
                           what="the demo run's voice")
            assert cells(table, str(runs["demo"]))[-1] == "0.41 @2"
            assert cells(table, str(runs["real"]))[-1] == "none"  # the default rule is not loosened
            app.select_run(str(runs["demo"]))
            screen = await open_checkpoints(pilot)
            assert screen.highlighted().name == "epoch-0002"
            text = screen_text(app)
            assert ("\u2605 epoch-0002 by this run's rule (demo: runaway allowed, the tiny model never stops): "
                    "highest similarity 0.410 among 3 of 3 scored") in text, text
            assert "scorer on auto" in text  # where this run's scorer generates (its run.json)
            await pilot.press("q")
            app.select_run(str(runs["real"]))
            screen = await open_checkpoints(pilot)
            await wait_for(pilot, lambda: "no best yet" in screen_text(app), what="the real run's verdict")
            text = screen_text(app)
            assert "no best yet: no checkpoint meets the rule (3 scored" in text and "runaway <= 0" in text
            assert "scorer on cpu" in text  # none recorded: the [scoring] default

    asyncio.run(go())


def test_every_reader_of_a_runs_best_uses_its_own_rule(runs_root):
    """best_checkpoint (milo-say, the audition picker), retention's ranking and the quality stop's count all
    read the run's own rule; a run without one keeps the configured."""
    from contract import retention

    runs = runaway_runs(runs_root)
    strict = BestRule()
    best, why = sc.best_checkpoint(runs["demo"], strict)
    assert best.name == "epoch-0002" and why.endswith("by this run's rule (demo: runaway allowed, the tiny model "
                                                      "never stops)")
    assert sc.best_checkpoint(runs["real"], strict)[0] is None
    plan = retention.plan(runs["demo"], retention.Policy(keep_best=0, keep_last=0), strict)
    assert plan.keep["epoch-0002"].startswith("the best by this run's rule (demo:")
    assert "epoch-0002" not in retention.plan(runs["real"], retention.Policy(keep_best=0, keep_last=0), strict).keep
    rule, source = sc.rule_for(runs["demo"], strict)
    assert rule == BestRule(max_runaway=5) and source.startswith("this run's rule")
    assert sc.unimproved(sc.checkpoint_rows(runs["demo"]), RUNAWAY_BASELINE, rule)[:2] == (1, "epoch-0002")


def test_a_tie_goes_to_the_checkpoint_saved_first_whatever_its_files_times(runs_root):
    """Two checkpoints with the same scores: the star and the cursor go to the one saved first (the step in its
    eval.json), as milo-say RUN/best, the runs table and retention read it, also when its files are the newer
    (a run folder copied in another order): the view ordered its rows by the weights' file times."""
    import os

    from tests.dashboard.conftest import FIXED_NOW

    run = write_run(runs_root, "voice", 300, status="finished", epochs=3)
    write_scores(run, scored={1: dict(similarity=0.8), 2: dict(similarity=0.8), 3: dict(similarity=0.5)},
                 baseline=BASELINE, ceiling=CEILING)
    first = run / "epoch-0001"
    for path in (*first.iterdir(), first):
        os.utime(path, (FIXED_NOW - 10, FIXED_NOW - 10))  # newer than epoch-0002's
    assert sc.best_checkpoint(run, BestRule())[0].name == "epoch-0001"

    async def go():
        app = make_app(runs_root)
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await open_checkpoints(pilot)
            await settle(pilot)
            return screen.highlighted().name, app.best_of(app.selected)[0]

    assert asyncio.run(go()) == ("epoch-0001", "epoch-0001")
