"""A flagged clip of the corpus report, played from the dashboard's corpus view through the audition output:
`C` on the runs screen, `p` on the clip -> the audition worker -> sound in the PulseAudio null sink. The
clip is festival's kal voice at 16 kHz, so the worker's resampling to 24 kHz is on the way."""
from __future__ import annotations

import asyncio

import pytest
import soundfile as sf

from contract import audit as ca
from tests.audition.conftest import sound_stats
from tests.dashboard.conftest import make_app, wait_for, write_run
from tests.dashboard.test_corpus_view import _open_corpus, _point_run_at

pytestmark = [pytest.mark.audio, pytest.mark.xdist_group("audio"), pytest.mark.slow]


def test_a_flagged_clip_plays_from_the_corpus_view(audited_corpus, pulse, tmp_path, monkeypatch):
    for key in ("XDG_RUNTIME_DIR", "PULSE_SERVER"):
        monkeypatch.setenv(key, pulse.env[key])
    monkeypatch.setenv("MILO_AUDIO_OUTPUT", "local")
    root = tmp_path / "checkpoints"
    run = write_run(root, "voice", 100, status="finished")
    _point_run_at(run, audited_corpus)
    asyncio.run(asyncio.wait_for(_play(root, audited_corpus.parent / ca.CORPUS_REPORT, pulse, tmp_path), 240))


async def _play(root, report_file, pulse, tmp_path):
    app = make_app(root, settings={"device": "cpu"})
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await _open_corpus(pilot)
        while screen.highlighted()["clip"] != "other_voice.wav":
            await pilot.press("down")
        row = screen.highlighted()
        path = ca.clip_path(report_file, row)
        info = sf.info(path)
        assert info.samplerate == 16000
        rec = pulse.record(tmp_path / "corpus-clip.raw")
        await pilot.press("p")
        status = screen.query_one("#corpus-status")
        await wait_for(pilot, lambda: status.text.startswith("played other_voice.wav"), timeout=180,
                       what="the clip to play")
        heard = sound_stats(rec.stop(sound_s=0.6 * info.duration))
        assert heard["sound_s"] >= 0.6 * info.duration and heard["rms"] > 0.01, (heard, info.duration)
        assert not status.error, status.text
        await pilot.press("escape")  # leaving the view stops its worker
        await wait_for(pilot, lambda: not screen.client.alive(), timeout=20, what="the corpus view's worker to stop")
