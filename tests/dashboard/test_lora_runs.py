"""LoRA runs on the dashboard (issue 26): the runs table's method column, each voice bundle's own size in the
checkpoints view, its scores against the zero-shot baseline row as for full runs, and a verdict line that
says plainly while no bundle beats zero-shot. The run folders are real files written by hand: bundles with a
voice.json manifest (contract/bundle.py FORMAT) and small safetensors, eval.json with scores, a baseline row."""
from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from contract.bundle import ADAPTER, FORMAT, MANIFEST, SPEAKER, bundle_bytes, is_bundle
from contract.runfolder import write_json_atomic
from contract.scores import BestRule, against_baseline
from milo_tui.format import fmt_bytes
from tests.dashboard.conftest import make_app, screen_text, wait_for, write_run, write_scores
from tests.dashboard.test_scores_view import cells, open_checkpoints

ZERO_SHOT = dict(similarity=0.757, wer=0.17, rate_ratio=0.93)  # a peer's zero-shot figure, English


def write_lora_run(root, name: str, *, rank: int = 8, epochs: int = 3):
    """A finished LoRA run: run.json says method lora; each epoch-NNNN folder is a voice bundle (no weights of
    the model), with the trainer's eval.json."""
    from safetensors.numpy import save_file

    run = write_run(root, name, epochs * 100, status="finished", epochs=epochs)
    doc = json.loads((run / "run.json").read_text())
    doc["hyper"].update(method="lora", lora_rank=rank, lora_alpha=2.0 * rank, lora_targets="talker+mlp", lr=5e-5)
    write_json_atomic(run / "run.json", doc)
    for epoch in range(1, epochs + 1):
        ck = run / f"epoch-{epoch:04d}"
        (ck / "model.safetensors").unlink()
        save_file({f"talker.layers.0.self_attn.q_proj.lora_{ab}.weight": np.full((rank, 16), epoch, np.float32)
                   for ab in "AB"}, str(ck / ADAPTER))
        save_file({"speaker_embedding": np.zeros(16, np.float32)}, str(ck / SPEAKER))
        (ck / "config.json").write_text(json.dumps({"tts_model_type": "custom_voice",
                                                    "talker_config": {"spk_id": {"milo": 3000}}}))
        (ck / MANIFEST).write_text(json.dumps({
            "format": FORMAT, "slot": 3000, "method": "lora", "speaker": "milo",
            "base": {"path": "/models/Qwen3-TTS-12Hz-1.7B-Base", "size": 1, "sha256": "0" * 64},
            "lora": {"rank": rank, "alpha": 2.0 * rank, "targets": "talker+mlp"}}))
    return run


@pytest.fixture
def lora_run(runs_root):
    """cindy: three bundles scored below zero-shot's similarity (the best, epoch 2, at 0.70); a full run beside it."""
    run = write_lora_run(runs_root, "cindy")
    write_scores(run, scored={1: dict(similarity=0.61), 2: dict(similarity=0.70), 3: dict(similarity=0.66)},
                 baseline=ZERO_SHOT)
    write_run(runs_root, "full", 200, status="finished")
    return run


def test_the_runs_table_shows_each_runs_method(lora_run, runs_root):
    """run.json's hyper says it; a run without a method (before LoRA, or adopted) is full."""
    from milo_tui.widgets.tables import RunsTable

    async def go():
        app = make_app(runs_root, poll_s=0.2)
        async with app.run_test(size=(100, 30)) as pilot:
            table = app.screen.query_one(RunsTable)
            await wait_for(pilot, lambda: len(table.rows) == 2, what="both runs")
            assert [str(c.label) for c in table.columns.values()][:3] == ["run", "status", "method"]
            return {name: cells(table, str(runs_root / name))[2] for name in ("cindy", "full")}, screen_text(app)

    methods, text = asyncio.run(go())
    assert methods == {"cindy": "lora r8", "full": "full"}
    assert "lora r8" in text


def test_a_run_being_prepared_shows_the_method_of_its_launch_command():
    """Before the trainer writes run.json (a corpus is prepared first) the launch command in state.json says it."""
    from milo_tui.runs import run_method

    launch = ["python", "-m", "training", "run", "--run", "/r", "--method", "lora", "--rank", "4", "--alpha", "8.0"]
    assert run_method({}, {"launch_command": launch}) == ("lora", 4)
    assert run_method({}, {"launch_command": launch[:8]}) == ("lora", 16)  # no --rank: the trainer's default
    assert run_method({}, {"launch_command": launch[:6]}) == ("full", None)
    assert run_method({"method": "lora", "lora_rank": 32}, {"launch_command": launch}) == ("lora", 32)
    assert run_method({"epochs": 3}, {}) == ("full", None)


def test_the_checkpoints_view_shows_each_bundles_size_its_scores_and_says_no_bundle_beats_zero_shot(lora_run):
    """The size column is the bundle's own bytes (contract.bundle.bundle_bytes), the baseline row and the
    scores are those of a full run, and the verdict says plainly that none beats zero-shot, with the figures;
    once a bundle scores above zero-shot the line names it as the one that beats it."""
    from milo_tui.widgets.tables import CheckpointsTable

    bundles = sorted(lora_run.glob("epoch-*"))
    assert len(bundles) == 3 and all(is_bundle(b) for b in bundles)

    async def go():
        app = make_app(lora_run.parent, poll_s=0.2)
        async with app.run_test(size=(160, 40)) as pilot:
            app.select_run(str(lora_run))
            screen = await open_checkpoints(pilot)
            table = screen.query_one(CheckpointsTable)
            await wait_for(pilot, lambda: len(table.rows) == 5, what="baseline, ceiling and three bundles")
            sizes = {b.name: cells(table, str(b))[9] for b in bundles}
            sims = {b.name: cells(table, str(b))[2] for b in bundles}
            baseline = cells(table, "baseline")
            before = screen_text(app)
            write_scores(lora_run, scored={3: dict(similarity=0.80)})  # a bundle beats zero-shot now
            await wait_for(pilot, lambda: "beats zero-shot (" in screen_text(app), timeout=15,
                           what="the new verdict")
            return sizes, sims, baseline, before, screen_text(app)

    sizes, sims, baseline, before, after = asyncio.run(go())
    assert sizes == {b.name: fmt_bytes(bundle_bytes(b)) for b in bundles}
    assert sims == {"epoch-0001": "0.61", "epoch-0002": "0.70", "epoch-0003": "0.66"}
    assert baseline[0] == "baseline (Base)" and baseline[2] == "0.76"  # the zero-shot row, as for full runs
    assert "cindy · finished · lora r8 · 3 voice bundles" in before, before
    assert ("no bundle beats zero-shot yet: \u2605 epoch-0002 similarity 0.700, zero-shot 0.757; highest similarity "
            "0.700 among 3 of 3 scored") in before, before
    assert "no bundle beats zero-shot" not in after
    assert "\u2605 epoch-0003 beats zero-shot (similarity 0.800, zero-shot 0.757): highest similarity" in after


def test_a_lora_run_with_no_bundle_meeting_the_rule_says_none_beats_zero_shot(runs_root):
    """Every bundle ran away: none is the best, and the line says no bundle beats zero-shot, with the rule's why."""
    run = write_lora_run(runs_root, "wild")
    write_scores(run, scored={e: dict(similarity=0.9, runaway=2) for e in (1, 2, 3)}, baseline=ZERO_SHOT)

    async def go():
        app = make_app(runs_root, poll_s=0.2)
        async with app.run_test(size=(160, 40)) as pilot:
            await open_checkpoints(pilot)
            await wait_for(pilot, lambda: "zero-shot" in screen_text(app), what="the verdict")
            return screen_text(app)

    text = asyncio.run(go())
    assert "no bundle beats zero-shot yet: no checkpoint meets the rule (3 scored;" in text, text
    assert "zero-shot's similarity is 0.757" in text


def test_against_baseline_compares_the_best_with_zero_shot_on_the_rules_metric():
    rows = [("epoch-0001", {"similarity": 0.70, "wer": 0.30}, 3.1), ("epoch-0002", {"similarity": 0.80, "wer": 0.10}, 3.0),
            ("epoch-0003", None, 2.9)]
    base = {"similarity": 0.757, "wer": 0.17}
    assert against_baseline(rows, "epoch-0002", base, BestRule()) == (
        True, "similarity 0.800, zero-shot 0.757")
    assert against_baseline(rows, "epoch-0001", base, BestRule()) == (
        False, "similarity 0.700, zero-shot 0.757")
    assert against_baseline(rows, "epoch-0001", base, BestRule(metric="wer"))[0] is False  # lower is better
    assert against_baseline(rows, "epoch-0002", base, BestRule(metric="wer"))[0] is True
    assert against_baseline(rows, "epoch-0003", base, BestRule(metric="val_loss")) == (
        None, "epoch-0003 has no similarity score")  # zero-shot has no validation loss: similarity it is
    assert against_baseline(rows, "epoch-0002", {"similarity": 0.8}, BestRule())[0] is False  # a tie does not beat it
    assert against_baseline(rows, "epoch-0002", None, BestRule()) == (None, "zero-shot has no similarity score yet")
    assert against_baseline(rows, None, None, BestRule()) == (False, "zero-shot has no similarity score yet")
    assert against_baseline(rows, None, base, BestRule()) == (False, "zero-shot's similarity is 0.757")


def test_the_runs_view_says_when_a_runs_voice_does_not_beat_zero_shot(lora_run, runs_root):
    """The ★ cell and the detail line warn while the best does not beat the baseline row (the checkpoints view's
    verdict), and go back to the success colour once a bundle does."""
    from milo_tui.widgets.tables import RunsTable
    from milo_tui.widgets.theme import SUCCESS, WARNING, themed

    async def go():
        app = make_app(runs_root, poll_s=0.2)
        async with app.run_test(size=(120, 30)) as pilot:
            table = app.screen.query_one(RunsTable)
            await wait_for(pilot, lambda: len(table.rows) == 2, what="both runs")
            cell = lambda: table.get_row(str(lora_run))[-1]  # noqa: E731  (the Text, with its style)
            await wait_for(pilot, lambda: hasattr(cell(), "style") and "@2" in str(cell()), what="the voice cell")
            losing = (str(cell()), cell().style == themed(app, f"bold {WARNING}"), "not above zero-shot" in screen_text(app))
            write_scores(lora_run, scored={1: dict(similarity=0.61), 2: dict(similarity=0.70), 3: dict(similarity=0.80)},
                         baseline=ZERO_SHOT)
            await wait_for(pilot, lambda: "@3" in str(cell()), 10, "the new best")
            winning = (str(cell()), cell().style == themed(app, f"bold {SUCCESS}"), "not above zero-shot" in screen_text(app))
            return losing, winning

    losing, winning = asyncio.run(go())
    assert losing == ("0.70 @2", True, True)
    assert winning == ("0.80 @3", True, False)
