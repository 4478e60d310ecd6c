"""Pruning from the dashboard (`P` in the checkpoints view: a confirmation naming exactly what goes and the
bytes freed; `n` keeps all, `y` deletes) and a folder of the official script's checkpoints (listed as a
read-only run; `A` adopts it: shared files hard-linked, its log's losses on the chart)."""
from __future__ import annotations

import asyncio
import json
import os

from contract import retention
from contract.units import fmt_bytes
from contract.retention import Policy
from contract.runfolder import list_checkpoints
from tests.dashboard.conftest import immutable, make_app, screen_text, settle, wait_for, write_run, write_scores
from tests.dashboard.test_scores_view import open_checkpoints as _open_checkpoints


async def _ask_prune(pilot) -> None:
    """The checkpoints view of the selected run, then P: its confirmation on screen."""
    from milo_tui.screens.dialogs import ConfirmScreen

    await _open_checkpoints(pilot)
    await pilot.press("P")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen), what="the confirmation")


def test_prune_asks_with_exactly_what_goes_then_deletes(runs_root):
    run = write_run(runs_root, "voice", 600, status="finished", epochs=6)
    write_scores(run, scored={1: dict(similarity=0.6), 2: dict(similarity=0.9), 3: dict(similarity=0.7),
                              4: dict(similarity=0.65), 5: dict(similarity=0.62), 6: dict(similarity=0.61)},
                 baseline=dict(similarity=0.5, wer=0.2))
    policy = Policy(keep_best=1, keep_last=1)
    expected = retention.plan(run, policy)
    # the rule's best (2), the best validation loss (6, also the newest); 1, 3, 4, 5 go
    assert expected.delete and set(expected.delete) == {"epoch-0001", "epoch-0003", "epoch-0004", "epoch-0005"}

    async def go():
        from milo_tui.screens.dialogs import ConfirmScreen

        app = make_app(runs_root, settings={"retention": policy}, poll_s=0.2)
        async with app.run_test(size=(120, 40)) as pilot:
            await _ask_prune(pilot)
            text = screen_text(app)
            assert f"Delete 4 checkpoint(s) of voice, freeing {fmt_bytes(expected.freed_bytes)}?" in text
            assert "Deleted" not in text and "Will delete on y:" in text  # nothing is gone before the answer
            assert all(f"  {name}" in text for name in expected.delete)
            assert "From: [retention] of the configuration." in text
            assert "epoch-0002: the best by the rule" in text
            await pilot.press("n")  # no: everything stays
            await settle(pilot)
            assert len(list_checkpoints(run)) == 6
            await pilot.press("P")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation again")
            await pilot.press("y")
            await wait_for(pilot, lambda: len(list_checkpoints(run)) == 2, what="the deletion")
            assert [p.name for p in list_checkpoints(run)] == ["epoch-0002", "epoch-0006"]
            await wait_for(pilot, lambda: app.screen.query_one("#checkpoints").row_count == 2 + 2,
                           what="the view to drop the deleted rows")
            said = [n.message for n in app._notifications]
            assert any(m == f"deleted 4 checkpoint(s) of voice, freed {fmt_bytes(expected.freed_bytes)}"
                       for m in said), said
            await pilot.press("P")  # nothing left to prune
            await settle(pilot)
            assert any(m.startswith("nothing to prune: the policy (best 1, newest 1; [retention] of the configuration)"
                                    " keeps all 2")
                       for m in (n.message for n in app._notifications))

    asyncio.run(go())


def test_P_applies_the_runs_own_policy_and_names_it(runs_root):
    """One policy per run: a run started with --keep-best/--keep-last is pruned by that (its trainer and scorer
    apply it after each save), not by the configuration's [retention]."""
    run = write_run(runs_root, "voice", 600, status="finished", epochs=6)
    doc = json.loads((run / "run.json").read_text())
    doc["hyper"].update(keep_best=1, keep_last=1, disk_budget="")
    (run / "run.json").write_text(json.dumps(doc))

    async def go():
        app = make_app(runs_root, settings={"retention": Policy(keep_best=10, keep_last=10)}, poll_s=0.2)
        async with app.run_test(size=(120, 40)) as pilot:
            await _ask_prune(pilot)
            detail = app.screen.detail
            assert "From: the run's own policy (run.json" in detail, detail
            assert "Policy: keep the best 1 (first those meeting the [best] rule: highest similarity" in detail
            assert "the newest 1, no disk budget." in detail
            assert app.screen.question.startswith("Delete 5 checkpoint(s) of voice")
            await pilot.press("y")
            await wait_for(pilot, lambda: [p.name for p in list_checkpoints(run)] == ["epoch-0006"], what="the prune")

    asyncio.run(go())


def test_y_plans_again_and_shows_a_plan_that_changed_instead_of_deleting(runs_root):
    """Scores that land between `P` and `y` can make a checkpoint on the list the best: `y` plans again under
    the run's prune lock, and deletes nothing when the plan changed; it shows the new one."""
    run = write_run(runs_root, "voice", 600, status="finished", epochs=6)

    async def go():
        from milo_tui.screens.dialogs import ConfirmScreen

        app = make_app(runs_root, settings={"retention": Policy(keep_best=1, keep_last=1)}, poll_s=0.2)
        async with app.run_test(size=(120, 40)) as pilot:
            await _ask_prune(pilot)
            first = app.screen
            assert "  epoch-0002" in first.detail.split("Keeps")[0]  # on the list to delete
            # the run's scorer lands a score: epoch 2 meets the rule, it is the voice now
            write_scores(run, scored={2: dict(similarity=0.9)}, baseline=dict(similarity=0.5, wer=0.2))
            await pilot.press("y")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen is not first,
                           what="the new plan")
            assert app.screen.question.startswith("The plan changed since it was shown")
            assert "epoch-0002: the best by the rule" in app.screen.detail
            assert len(list_checkpoints(run)) == 6  # nothing deleted on the old plan
            await pilot.press("y")
            await wait_for(pilot, lambda: len(list_checkpoints(run)) == 2, what="the deletion")
            assert [p.name for p in list_checkpoints(run)] == ["epoch-0002", "epoch-0006"]

    asyncio.run(go())


def _official(root, epochs: int = 3):
    """An output folder of the official script: checkpoint-epoch-N copies that share their tokenizer bytes."""
    out = root / "official"
    for e in range(epochs):
        ck = out / f"checkpoint-epoch-{e}"
        (ck / "speech_tokenizer").mkdir(parents=True)
        (ck / "config.json").write_text(json.dumps({"model_type": "qwen3_tts", "tts_model_type": "custom_voice",
                                                    "talker_config": {"spk_id": {"operator": 3000}}}))
        (ck / "model.safetensors").write_bytes(os.urandom(64 * 1024))
        (ck / "speech_tokenizer" / "model.safetensors").write_bytes(b"\1" * 256 * 1024)
        (ck / "vocab.json").write_text('{"a": 1}\n')
    (out / "train.log").write_text("".join(f"Epoch {e} | Step {s} | Loss: {9.0 - e - s / 100:.4f}\n"
                                           for e in range(epochs) for s in (0, 10)))
    return out


def test_an_official_folder_is_a_read_only_run_and_A_adopts_it(runs_root):
    out = _official(runs_root)

    async def go():
        app = make_app(runs_root, poll_s=0.2)
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: out in app.runs, what="the official folder as a run")
            app.select_run(out)
            await settle(pilot)
            r = app.runs[out]
            assert r.status == "external" and "checkpoints made elsewhere: read-only" in screen_text(app)
            for action in ("stop", "kill", "resume"):
                assert app.why_not(action).endswith("read-only (audition, score, prune; A adopts it)")
            await wait_for(pilot, lambda: len(app.checkpoints.get(out, ((), None))[0]) == 3, what="its checkpoints")
            await pilot.press("A")
            await wait_for(pilot, lambda: app.screen.query("#corpus"), what="the adopt dialog")
            await pilot.press("enter")  # no data configured: adopted without a corpus
            await wait_for(pilot, lambda: (out / "run.json").is_file() and any(
                n.message.startswith("adopted official:") for n in app._notifications), what="the adoption")
            said = next(n.message for n in app._notifications if n.message.startswith("adopted official:"))
            # per copy after the first: the speech tokenizer, vocab.json and config.json are the same bytes
            per_copy = sum((out / "checkpoint-epoch-1" / f).stat().st_blocks * 512
                           for f in ("speech_tokenizer/model.safetensors", "vocab.json", "config.json"))
            assert f"3 checkpoints; 6 identical files hard-linked, {fmt_bytes(2 * per_copy)} freed" in said
            assert "6 loss lines from train.log" in said
            await wait_for(pilot, lambda: app.run_metrics is not None and len(app.run_metrics.points) == 6,
                           timeout=15, what="its losses on the chart")
            assert app.runs[out].status == "external"  # still read-only: nothing trains it
            screen = await _open_checkpoints(pilot)
            assert [k.value.rsplit("/", 1)[-1] for k in screen.query_one("#checkpoints").rows][2:] == [
                f"checkpoint-epoch-{e}" for e in range(3)]

    asyncio.run(go())


def test_checkpoints_pointing_at_an_official_folder_lists_it(runs_root):
    """`milo-tui --checkpoints OUTPUT` on the official script's output folder itself: one run, not "Runs (0)"."""
    out = _official(runs_root)

    async def go():
        app = make_app(out)
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda: out in app.runs, what="the folder as a run")
            assert "Runs (1)" in screen_text(app) and app.runs[out].status == "external"
            await wait_for(pilot, lambda: len(app.checkpoints.get(out, ((), None))[0]) == 3, what="its checkpoints")

    asyncio.run(go())


def test_a_prune_that_cannot_write_the_run_folder_says_so_and_deletes_nothing(runs_root):
    """The prune worker's error path: the run folder cannot be written (here: immutable, so even root cannot
    create the prune lock there); one error line on the dashboard, every checkpoint still there."""
    run = write_run(runs_root, "voice", 600, status="finished", epochs=4)
    write_scores(run, scored={1: dict(similarity=0.6), 2: dict(similarity=0.9)}, baseline=dict(similarity=0.5, wer=0.2))
    before = [p.name for p in list_checkpoints(run)]
    with immutable(run):
        async def go():
            app = make_app(runs_root, settings={"retention": Policy(keep_best=1, keep_last=1)}, poll_s=0.2)
            async with app.run_test(size=(120, 40)) as pilot:
                await _ask_prune(pilot)
                await pilot.press("y")
                await wait_for(pilot, lambda: any(n.message.startswith("cannot prune voice: ")
                                                  for n in app._notifications), what="the error line")
                said = [n.message for n in app._notifications if n.message.startswith("cannot prune")]
                assert said[0].endswith("; nothing was deleted") and ".prune.lock" in said[0], said
                assert not app._exit_renderables and app.is_running

        asyncio.run(go())
    assert [p.name for p in list_checkpoints(run)] == before and len(before) > 2


def test_two_prunes_at_once_the_second_plans_on_what_landed_while_it_waited(runs_root):
    """One prune at a time per run: a `milo-train prune` that starts while another holds the run's prune lock
    waits for it (seen in /proc/locks, not hoped for), then plans on the scores that landed meanwhile."""
    import subprocess
    import sys
    import time

    from tests.conftest import python_env

    run = write_run(runs_root, "voice", 600, status="finished", epochs=4)
    write_scores(run, scored={1: dict(similarity=0.9), 2: dict(similarity=0.6), 3: dict(similarity=0.6),
                              4: dict(similarity=0.6)}, baseline=dict(similarity=0.5, wer=0.2))
    with retention.pruning(run):
        inode = os.stat(run / retention.PRUNE_LOCK).st_ino
        child = subprocess.Popen([sys.executable, "-m", "training", "prune", str(run), "--keep-best", "1",
                                  "--keep-last", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env=python_env())
        deadline = time.monotonic() + 60
        while not any(line.split()[1] == "->" and line.split()[-3].endswith(f":{inode}")
                      for line in open("/proc/locks") if len(line.split()) > 4):
            assert time.monotonic() < deadline and child.poll() is None, child.communicate()
            time.sleep(0.05)
        # the other prune's view changes while the second waits: epoch 3 becomes the rule's best
        write_scores(run, scored={3: dict(similarity=0.95)})
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert "epoch-0003" in {p.name for p in list_checkpoints(run)}, out
    assert "keep   epoch-0003: the best by the rule" in out, out
