"""The corpus report view: `C` on the runs screen opens the report beside the selected run's data (a real
one, written by `milo-train prepare` on festival speech), lists the flagged clips with their reasons and
values, sorts and filters them; without a report the key says why. Snapshot at 80x24 and 120x40 on a
fixed report (fixed values, so the picture only changes when the view does)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from contract import audit as ca
from contract.runfolder import write_json_atomic
from tests.dashboard.conftest import make_app, screen_text, settle, wait_for, write_run


def _point_run_at(run, data) -> None:
    spec = json.loads((run / "run.json").read_text())
    write_json_atomic(run / "run.json", {**spec, "data": str(data)})


async def _open_corpus(pilot):
    from milo_tui.screens.corpus import CorpusScreen

    app = pilot.app
    await wait_for(pilot, lambda: app.selected is not None, what="a run to be selected")
    await pilot.press("C")
    await wait_for(pilot, lambda: isinstance(app.screen, CorpusScreen), what="the corpus view")
    await wait_for(pilot, lambda: app.screen.query_one("#corpus-clips").row_count > 0, what="the clips")
    return app.screen


@pytest.mark.slow
def test_the_corpus_view_lists_flagged_clips_sorts_and_filters(runs_root, audited_corpus):
    import asyncio

    run = write_run(runs_root, "voice", 200, status="finished")
    _point_run_at(run, audited_corpus)
    report = ca.read_report(audited_corpus.parent / ca.CORPUS_REPORT)
    flagged = [r["clip"] for r in ca.flagged_clips(report)]
    assert set(flagged) >= {"other_voice.wav", "noise.wav"}

    async def go():
        app = make_app(runs_root)
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await _open_corpus(pilot)
            table = screen.query_one("#corpus-clips")
            # what the table shows, row by row in its displayed order: the clip and the voice column
            keys = lambda: [str(c) for c in table.get_column("clip")]  # noqa: E731
            voices = lambda: [float(str(c)) for c in table.get_column("voice")]  # noqa: E731
            assert keys() == flagged  # the flagged clips, in file order
            text = screen_text(app)
            assert "corpus report" in text and f"{report['counts']['kept']} kept" in text
            # the highlighted clip's reasons, each with its value against the threshold
            while screen.highlighted()["clip"] != "other_voice.wav":
                await pilot.press("down")
            await settle(pilot)
            detail = str(screen.query_one("#corpus-detail").render())
            sim = report["clips"][[r["clip"] for r in report["clips"]].index("other_voice.wav")]["measures"]["speaker_similarity"]
            assert f"voice similarity {sim:.2f} to the corpus voice is below 0.75" in detail
            # sort: o steps through the columns; by voice, the least like the corpus voice comes first
            while screen.sort_name != "voice":
                await pilot.press("o")
            await settle(pilot)
            assert voices() == sorted(voices()) and keys()[0] == "noise.wav", list(zip(keys(), voices()))
            assert "sorted by voice" in screen_text(app)
            # f: every clip, still by voice, read from the table's own rows and voice column; the file order is
            # not the voice order, so a sort that left the rows as they came would show here
            await pilot.press("f")
            await settle(pilot)
            assert len(keys()) == len(report["clips"]) and "slt_0.wav" in keys()
            by_file = [r["clip"] for r in report["clips"]]
            assert voices() == sorted(voices()) and keys() != by_file, list(zip(keys(), voices()))
            await pilot.press("f")
            await settle(pilot)
            assert keys() == [] and "no clips to show" in screen_text(app)
            await pilot.press("escape")
            await wait_for(pilot, lambda: not hasattr(app.screen, "report_file"), what="the runs screen")

    asyncio.run(go())


def test_without_a_report_the_key_says_why(runs_root, tmp_path):
    import asyncio

    run = write_run(runs_root, "voice", 200, status="finished")
    _point_run_at(run, tmp_path / "nowhere" / "train.jsonl")

    async def go():
        app = make_app(runs_root)
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda: app.selected is not None, what="a run to be selected")
            await pilot.press("C")
            await settle(pilot)
            assert not hasattr(app.screen, "report_file")
            said = [n.message for n in app._notifications]
            assert any("no corpus report" in m and "milo-train prepare" in m for m in said), said

    asyncio.run(go())


def test_a_run_without_a_report_never_shows_the_configured_corpus(runs_root, tmp_path):
    """The configured data has a report, the selected run's data none: C says the run has none, where it
    looked and how to make one; it does not open the other corpus's report."""
    import asyncio

    from milo_tui.screens.corpus import CorpusScreen

    configured = _fixed_report(tmp_path / "configured")
    run = write_run(runs_root, "voice", 200, status="finished")
    _point_run_at(run, tmp_path / "elsewhere" / "train.jsonl")

    async def go():
        app = make_app(runs_root, settings={"data": configured})
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda: app.selected is not None, what="a run to be selected")
            await pilot.press("C")
            await settle(pilot)
            assert not isinstance(app.screen, CorpusScreen)
            said = [n.message for n in app._notifications]
            where = str(tmp_path / "elsewhere" / ca.CORPUS_REPORT)
            assert any(m.startswith("voice has no corpus report") and where in m and "milo-train prepare" in m
                       and "\n" not in m for m in said), said
            app.action_corpus()  # the palette's way in says the same
            await settle(pilot)
            assert not isinstance(app.screen, CorpusScreen) and len(app._notifications) >= 1

    asyncio.run(go())


# ---- snapshot on a fixed report --------------------------------------------------------------------------
def _fixed_report(folder):
    """A report of the schema prepare writes, with fixed values, and a short WAV for each clip."""
    def row(clip, status="kept", flags=(), reason=None, **measures):
        m = {"loudness_lufs": -23.1, "clipping": 0.0, "snr_db": 42.0, "speech_ratio": 0.91, "leading_silence_s": 0.2,
             "trailing_silence_s": 0.1, "speaker_similarity": 0.93, "wer": 0.0, "cer": 0.0, "heard": "a clip of the corpus"}
        m.update(measures)
        path = folder / "corpus" / clip
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, np.zeros(2400, np.float32), 24000)
        return {"clip": clip, "path": f"corpus/{clip}", "status": status, "reason": reason, "flags": list(flags),
                "text": "A clip of the corpus.", "text_source": "txt", "duration_s": 4.2, "source_sample_rate": 48000,
                "source_channels": 1, "measures": {} if reason else m}

    clips = [
        row("clip_001.wav"),
        row("interview/intro_jingle.wav", "flagged", [ca.flag("speaker", 0.41, 0.75, "voice similarity 0.41 to the "
            "corpus voice is below 0.75 (another speaker, music or noise?)"), ca.flag("speech_ratio", 0.22, 0.5,
            "speech in 0.22 of the clip is below 0.5")], speaker_similarity=0.41, speech_ratio=0.22, wer=1.0, cer=0.93),
        row("clip_014.wav", "flagged", [ca.flag("transcript", 0.81, 0.6, "CER 0.81 of what the recognizer heard "
            "against the transcript is above 0.6")], wer=1.0, cer=0.81, heard="the fuse is in the box"),
        row("clip_022.wav", "flagged", [ca.flag("clipping", 0.0123, 0.001, "1.23% of the samples at full scale is "
            "above 0.001"), ca.flag("loudness", -7.2, -10.0, "loudness -7.2 LUFS is above -10")],
            clipping=0.0123, loudness_lufs=-7.2),
        row("clips/episode-07-012.wav", "flagged", [ca.flag("snr", 9.4, 15.0, "SNR 9.4 dB is below 15"),
            ca.flag("trailing_silence", 2.3, 1.0, "2.30 s of silence after the speech is above 1")],
            snr_db=9.4, trailing_silence_s=2.3),
        row("clip_030.wav", "skipped", reason="transcript is not UTF-8 text (save it as UTF-8)"),
        row("clip_031.wav", "flagged", [ca.flag(ca.DUPLICATE_AUDIO, "clip_001.wav", None, "same audio as clip_001.wav")]),
    ]
    report = {"version": 1, "data": "train.jsonl", "corpus": "corpus", "reference": "corpus/clip_001.wav",
              "models": {"asr": "pocketsphinx en-us", "speaker": "resemblyzer GE2E", "vad": "silero-vad",
                         "loudness": "pyloudnorm BS.1770-4"},
              "thresholds": ca.audit_thresholds(), "drop_flagged": False,
              "counts": {"files": 7, "clips": 7, "kept": 6, "flagged": 5, "dropped": 0, "skipped": 1},
              "flags": {}, "voice": {"clips": 6, "judged": True, "centre_from": 5}, "problems": [], "recordings": [],
              "clips": clips}
    write_json_atomic(folder / ca.CORPUS_REPORT, report)
    return folder / "train.jsonl"


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_corpus_view_snapshot(snap_compare, runs_root, tmp_path, size):
    run = write_run(runs_root, "voice", 200, status="finished")
    _point_run_at(run, _fixed_report(tmp_path / "data"))

    async def open_it(pilot):
        await _open_corpus(pilot)  # the cursor on the jingle: two reasons in the detail pane

    assert snap_compare(make_app(runs_root), terminal_size=size, run_before=open_it)
