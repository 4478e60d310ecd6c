"""The whole path from the dashboard: runs view -> checkpoints view -> `a` -> the audition screen ->
type, Enter -> the real worker -> sound in the null sink; back with `q`, and the same screen (and its
worker) serves the next request."""
from __future__ import annotations

import asyncio
import time

import pytest

from contract.samples import read_samples
from tests.audition.conftest import sound_stats
from tests.dashboard.conftest import make_app, wait_for

pytestmark = [pytest.mark.audio, pytest.mark.xdist_group("audio")]


def test_audition_from_the_checkpoints_view(audition_run, pulse, tmp_path, monkeypatch):
    # The dashboard's worker inherits the dashboard's environment: point it at the test's PulseAudio.
    for key in ("XDG_RUNTIME_DIR", "PULSE_SERVER"):
        monkeypatch.setenv(key, pulse.env[key])
    monkeypatch.setenv("MILO_AUDIO_OUTPUT", "local")
    asyncio.run(asyncio.wait_for(_from_dashboard(audition_run, pulse, tmp_path), 300))


async def _from_dashboard(run, pulse, tmp_path):
    from milo_tui.audition.screen import AuditionScreen
    from milo_tui.screens.checkpoints import CheckpointsScreen

    app = make_app(run.parent, settings={"device": "cpu"})
    before = {s.id for s in read_samples(run)}
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.selected == run, timeout=20, what="the run to be selected")
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, CheckpointsScreen), what="the checkpoints view")
        await wait_for(pilot, lambda: app.screen.highlighted() is not None, what="a highlighted checkpoint")
        picked = app.screen.highlighted()  # the best by validation loss: the view starts there
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, AuditionScreen), what="the audition screen")
        screen = app.screen
        assert screen.session.run_dir == run and screen.session.checkpoint_a == picked.absolute()
        await wait_for(pilot, lambda: "(loaded)" in str(screen.query_one("#audition-info").render()),
                       timeout=120, what="the checkpoint to load in the worker")

        screen.session.fixed_seed = 1  # the same audio every run (3.12 s here); a random seed can stop after 0.16 s
        rec = pulse.record(tmp_path / "from-dashboard.raw")
        await pilot.press(*"Hello from the runs view.")
        await pilot.press("enter")
        await wait_for(pilot, lambda: {s.id for s in read_samples(run)} - before, timeout=120,
                       what="the audition to be saved")
        sample = next(s for s in read_samples(run) if s.id not in before)
        audio_s = float(sample.get("audio_s"))
        # Playback may start before or after the sample is saved: wait for it to start, then to end.
        deadline = time.monotonic() + 15
        while screen.session.playing is None and time.monotonic() < deadline:
            await pilot.pause(0.05)
        deadline = time.monotonic() + audio_s + 10
        while screen.session.playing is not None and time.monotonic() < deadline:
            await pilot.pause(0.2)
        heard = sound_stats(rec.stop(sound_s=0.8 * audio_s))
        assert sample.text == "Hello from the runs view." and sample.checkpoint == picked.name
        assert heard["sound_s"] >= 0.8 * audio_s and heard["rms"] > 0.02, (heard, audio_s)

        # Back to the checkpoints; `a` on epoch-0002 reuses the installed screen and its worker.
        worker_pid = screen.client.pid
        await pilot.press("escape", "q")
        await wait_for(pilot, lambda: isinstance(app.screen, CheckpointsScreen), what="back to checkpoints")
        await pilot.press("down", "a")
        await wait_for(pilot, lambda: isinstance(app.screen, AuditionScreen), what="the audition screen again")
        assert app.screen is screen and screen.session.checkpoint_a.name == "epoch-0002"
        assert screen.client.pid == worker_pid
        await wait_for(pilot, lambda: "epoch-0002 (loaded)" in str(screen.query_one("#audition-info").render()),
                       timeout=120, what="epoch-0002 to load")
