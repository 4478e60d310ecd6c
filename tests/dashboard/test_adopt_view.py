"""`A` on a folder of the official script's checkpoints: a dialog asks for the corpus (prefilled with the
configured data; empty allowed), the run then reads as adopted everywhere, adopting again says so, and a run
with no corpus refuses scoring at once with how to give one. The official script counts epochs from 0."""
from __future__ import annotations

import asyncio

from contract import scores as sc
from tests.dashboard.conftest import make_app, screen_text, settle, wait_for
from tests.dashboard.test_retention_view import _official
from tests.dashboard.test_scores_view import cells, open_checkpoints


def _said(app, start: str) -> list[str]:
    return [n.message for n in app._notifications if n.message.startswith(start)]


async def _adopt(pilot, corpus: str | None = None) -> None:
    """A, then enter in the dialog (after replacing its text with `corpus` when given)."""
    from textual.widgets import Input

    from milo_tui.screens.adopt import AdoptScreen

    app = pilot.app
    await pilot.press("A")
    await wait_for(pilot, lambda: isinstance(app.screen, AdoptScreen), what="the adopt dialog")
    if corpus is not None:
        app.screen.query_one("#corpus", Input).value = corpus
    await pilot.press("enter")


def test_A_asks_for_the_corpus_and_the_run_reads_as_adopted(runs_root, tmp_path):
    from textual.widgets import Input

    out = _official(runs_root)
    corpus = tmp_path / "train.jsonl"
    corpus.write_text("")

    async def go():
        app = make_app(runs_root, poll_s=0.2, settings={"data": corpus})
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: out in app.runs, what="the official folder as a run")
            app.select_run(out)
            await settle(pilot)
            assert "A adopts it" in screen_text(app)
            await pilot.press("A")
            await wait_for(pilot, lambda: app.screen.query("#corpus"), what="the adopt dialog")
            assert app.screen.query_one("#corpus", Input).value == str(corpus)  # the configured data
            await pilot.press("enter")
            await wait_for(pilot, lambda: _said(app, "adopted official:"), what="the adoption")
            assert f"scored against {corpus}" in _said(app, "adopted official:")[0]
            await wait_for(pilot, lambda: app.runs[out].adopted, what="the run to read as adopted")
            await settle(pilot)
            text = screen_text(app)
            assert "A adopts it" not in text and "adopted: read-only; scored against train.jsonl" in text
            assert " adopted " in text  # the runs table's status column
            assert not app.why_not("stop").endswith("A adopts it)")
            # again: says it was adopted already, and that the log was read then (not "no log beside it")
            await _adopt(pilot)
            await wait_for(pilot, lambda: _said(app, "official was adopted already"), what="the second adoption")
            again = _said(app, "official was adopted already")[0]
            assert "its loss lines were read before" in again and "no log beside it" not in again, again
            # the official script's first epoch is 0, not missing
            screen = await open_checkpoints(pilot)
            table = screen.query_one("#checkpoints")
            await wait_for(pilot, lambda: table.row_count == 2 + 3, what="three checkpoint rows")
            epoch_col = [c.key.value for c in table.columns.values()].index("epoch")
            assert [cells(table, str(out / f"checkpoint-epoch-{e}"))[epoch_col] for e in range(3)] == ["0", "1", "2"]

    asyncio.run(go())


def test_an_adopted_run_without_a_corpus_refuses_scoring_at_once(runs_root, tmp_path):
    out = _official(runs_root)

    async def go():
        app = make_app(runs_root, poll_s=0.2)
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: out in app.runs, what="the official folder as a run")
            app.select_run(out)
            await settle(pilot)
            await _adopt(pilot, str(tmp_path / "missing.jsonl"))  # a path that is not there: said in the dialog
            await settle(pilot)
            error = str(app.screen.query_one("#adopt-error").render())
            assert error == f"{tmp_path / 'missing.jsonl'} does not exist: give the training JSONL or the clips folder, or leave it empty"
            assert "does not exist: give the training JSONL" in " ".join(screen_text(app).split())  # seen whole, wrapped
            await _adopt_empty(pilot)
            await wait_for(pilot, lambda: app.runs[out].adopted, what="the run to read as adopted")
            await settle(pilot)
            assert "no corpus to score against: A gives it" in screen_text(app)
            await open_checkpoints(pilot)
            await pilot.press("E")
            await wait_for(pilot, lambda: _said(app, "not scoring:"), what="the refusal")
            assert _said(app, "not scoring:")[0] == ("not scoring: official names no corpus to score against: give it "
                                                     f"with A on the runs screen, or milo-train adopt {out} --data CORPUS")
            assert not sc.states(out)  # nothing queued, no scorer started

    asyncio.run(go())


async def _adopt_empty(pilot) -> None:
    from textual.widgets import Input

    pilot.app.screen.query_one("#corpus", Input).value = ""
    await pilot.press("enter")


def test_an_adopted_output_folder_is_still_one_run(runs_root, tmp_path):
    """Adoption writes run.json into OUTPUT: as --checkpoints, or under a folder above, it is listed as that one
    run before and after, and reads as adopted (docs/adopt.md)."""
    from contract.adopt import adopt
    from contract.runfolder import list_runs
    from milo_tui.runs import read_summary

    out = _official(runs_root)
    assert list_runs(out) == [out] and list_runs(runs_root) == [out]
    adopt(out)
    assert (out / "run.json").is_file()
    assert list_runs(out) == [out] and list_runs(runs_root) == [out]
    summary = read_summary(out)
    assert summary.adopted and summary.status == "external"


def test_A_on_a_dashboard_opened_on_the_output_folder_keeps_the_run(runs_root, tmp_path):
    out = _official(runs_root)

    async def go():
        app = make_app(out, poll_s=0.2)  # milo-tui --checkpoints OUTPUT
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: out in app.runs, what="the official folder as a run")
            app.select_run(out)
            await settle(pilot)
            await _adopt(pilot, "")
            await wait_for(pilot, lambda: _said(app, "adopted official:"), what="the adoption")
            await wait_for(pilot, lambda: out in app.runs and app.runs[out].adopted, what="the run, now adopted")
            await pilot.pause(1.0)  # a few more scans of the folder: it stays
            await settle(pilot)
            assert list(app.runs) == [out] and app.runs[out].adopted
            assert " adopted " in screen_text(app)  # still in the runs table, now adopted

    asyncio.run(go())


def test_an_adoption_that_cannot_write_says_so_and_leaves_the_folder_as_it_was(runs_root, tmp_path):
    """The adopt worker's error path: the output folder cannot be written (immutable: even root cannot write
    run.json there); one error line, the dashboard goes on, the folder is still the official script's."""
    import os

    from tests.dashboard.conftest import immutable

    out = _official(runs_root)
    before = sorted(os.listdir(out))
    with immutable(out):
        async def go():
            app = make_app(out, poll_s=0.2)
            async with app.run_test(size=(120, 40)) as pilot:
                await wait_for(pilot, lambda: out in app.runs, what="the official folder as a run")
                app.select_run(out)
                await settle(pilot)
                await _adopt(pilot, "")
                await wait_for(pilot, lambda: _said(app, f"cannot adopt {out.name}: "), what="the error line")
                assert app.is_running and not app.runs[out].adopted
                await pilot.press("j")  # the dashboard still answers keys
                await settle(pilot)

        asyncio.run(go())
    assert sorted(os.listdir(out)) == before
