"""The audition screen in a small host app, driven by keys through Textual's Pilot, through the real
worker to real sound in the null sink: speak, rate, replay, blind A/B with a preference, a crash."""
from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
from textual.app import App
from textual.widgets import DataTable

from contract.samples import read_samples
from milo_tui.audition.picker import CheckpointPicker
from milo_tui.app import MiloApp
from milo_tui.audition.screen import AuditionScreen
from milo_tui.messages import WorkerEvent
from tests.audition.conftest import sound_stats

pytestmark = [pytest.mark.audio, pytest.mark.xdist_group("audio")]


SEED = 1  # "Hello from the dashboard." runs to the 40-frame limit (3.12 s) on the tiny model with it


class Host(App):
    """Stands in for the dashboard: pushes the screen as the checkpoints view will."""
    CSS_PATH = MiloApp.CSS_PATH  # the dashboard's stylesheet, which styles the screen

    def __init__(self, screen: AuditionScreen) -> None:
        super().__init__()
        self.audition = screen
        self.worker_events: list[dict] = []

    def on_mount(self) -> None:
        self.push_screen(self.audition)

    def on_worker_event(self, message: WorkerEvent) -> None:
        # The screen's handler has run; the message bubbles up here, where the test reads it.
        self.audition.seen_events.append(message.event)


async def until(pilot, predicate, timeout: float = 120.0, what: str = "", seen: list | None = None) -> None:
    """Poll `predicate`; with `seen`, also collect every status and info line shown meanwhile."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if seen is not None:
            seen.append(pilot.app.audition.session.status.text)
            seen.append(str(pilot.app.audition.query_one("#audition-info").render()).split("\n")[0])
        if time.monotonic() > deadline:
            screen = pilot.app.audition
            raise AssertionError(f"timed out waiting for {what}; status: {screen.session.status.text!r}")
        await pilot.pause(0.1)


@pytest.fixture
def screen_factory(audition_run, pulse, tmp_path):
    def make(**kw) -> AuditionScreen:
        screen = AuditionScreen(audition_run, audition_run / "epoch-0001", device="cpu", output="local",
                                sampling={"max_new_tokens": 40}, worker_env=pulse.env,
                                log_path=tmp_path / "worker.log", **kw)
        screen.seen_events = []
        # A fixed seed: the same audio every run. With a random one the tiny model sometimes stops after two
        # frames (0.16 s), too short for the heard-versus-generated comparison (measured: 1 run in 20).
        screen.session.fixed_seed = SEED
        return screen
    return make


def _saw(screen, kind: str, **match) -> bool:
    return any(e.get("event") == kind and all(e.get(k) == v for k, v in match.items()) for e in screen.seen_events)


def test_type_enter_hear_rate_replay_then_blind_ab(screen_factory, audition_run, pulse, tmp_path):
    asyncio.run(asyncio.wait_for(_speak_rate_replay_ab(screen_factory, audition_run, pulse, tmp_path), 400))


async def _speak_rate_replay_ab(screen_factory, audition_run, pulse, tmp_path):
    screen = screen_factory()
    app = Host(screen)
    before = {s.id for s in read_samples(audition_run)}
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: _saw(screen, "loaded"), what="the checkpoint to load")
        assert "epoch-0001 (loaded)" in str(screen.query_one("#audition-info").render())

        # Type a sentence, Enter: it plays through sounddevice into the null sink.
        rec = pulse.record(tmp_path / "screen.raw")
        await pilot.press(*"Hello from the dashboard.")
        await pilot.press("enter")
        await until(pilot, lambda: _saw(screen, "done"), what="the audition")
        await until(pilot, lambda: _saw(screen, "playback", state="finished"), what="playback to finish")
        done = next(e for e in screen.seen_events if e.get("event") == "done")["sample"]
        heard = sound_stats(rec.stop(sound_s=0.8 * done["audio_s"]))
        print(f"\nscreen audition: {done['audio_s']:.2f} s generated, recorded {heard}")
        assert heard["sound_s"] >= 0.8 * done["audio_s"] and heard["rms"] > 0.02, (heard, done["audio_s"])
        first = next(e for e in screen.seen_events if e.get("event") == "first_audio")
        assert 0 < first["first_audio_s"] < done["wall_s"]
        table = screen.query_one(DataTable)
        new = [s for s in read_samples(audition_run) if s.id not in before]
        assert len(new) == 1 and new[0].text == "Hello from the dashboard." and new[0].checkpoint == "epoch-0001"
        assert table.get_row(str(new[0].id))[1] == "epoch-0001"
        assert "real time" in screen.session.status.text and f"#{new[0].id:04d}" in screen.session.status.text

        # Leave the text box, rate the selected (newest) audition 4, replay it.
        await pilot.press("escape", "4")
        assert {s.id: s for s in read_samples(audition_run)}[new[0].id].rating == 4
        assert table.get_row(str(new[0].id))[5] == "****"
        await pilot.press("r")
        await until(pilot, lambda: _saw(screen, "replaying"), what="the replay")
        await until(pilot, lambda: sum(1 for e in screen.seen_events if e.get("event") == "playback"
                                       and e.get("state") == "finished") >= 2, what="the replay to finish")

        # A/B against epoch-0002, blind: pick B in the picker, blind on, speak once, both play.
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, CheckpointPicker), what="the picker")
        await pilot.press("enter")  # B's picker starts on a checkpoint that is not A
        assert screen.session.ab_mode and screen.session.checkpoint_b.name == "epoch-0002"
        await pilot.press("v", "t")
        assert screen.session.blind
        # Every state the screen draws while the blind pair is made and played, whatever the machine's speed.
        shown: list[str] = []
        draw = screen._refresh_view

        def draw_and_keep() -> None:
            draw()
            shown.extend([screen.session.status.text, str(screen.query_one("#audition-info").render()).split("\n")[0]])

        screen._refresh_view = draw_and_keep
        await pilot.press("enter")  # the same sentence is still in the box
        await until(pilot, lambda: _saw(screen, "replaying") and
                    sum(1 for e in screen.seen_events if e.get("event") == "replaying") >= 2, what="A then B")
        screen._refresh_view = draw
        leaks = [line for line in shown if "epoch-0001 (loaded)" in line or
                 ("epoch-000" in line and not line.startswith("run "))]
        assert any(line.startswith("A/B: generating both") for line in shown), shown  # the pair was being made
        assert any(line.startswith("A/B: playing A then B") for line in shown), shown
        assert not leaks, leaks  # blind: nothing drawn tells which is which
        # Whichever checkpoint spoke last, blind mode never marks A as loaded (that would reveal the order);
        # with blind off the same state shows the mark.
        screen.session.loaded = str(screen.session.checkpoint_a)
        screen._refresh_view()
        assert "(loaded)" not in str(screen.query_one("#audition-info").render())
        screen.session.blind = False
        screen._refresh_view()
        assert "epoch-0001 (loaded)" in str(screen.query_one("#audition-info").render())
        screen.session.blind = True
        screen._refresh_view()
        pair = [s for s in read_samples(audition_run) if s.ab_group is not None and s.id not in before]
        assert sorted(s.ab_label for s in pair) == ["A", "B"] and {s.checkpoint for s in pair} == {"epoch-0001", "epoch-0002"}
        assert len({s.seed for s in pair}) == 1 and all(s.blind for s in pair)
        cells = {table.get_row(str(s.id))[1] for s in pair}
        assert cells == {"A:?", "B:?"}, cells  # hidden until judged
        await pilot.press("escape", "a")       # prefer A
        folded = {s.ab_label: s for s in read_samples(audition_run) if s.ab_group == pair[0].ab_group}
        assert folded["A"].preferred is True and folded["B"].preferred is False
        cells = {table.get_row(str(s.id))[1] for s in folded.values()}
        assert cells == {f"A:{folded['A'].checkpoint} +", f"B:{folded['B'].checkpoint}"}, cells
        assert "A preferred" in screen.session.status.text

        # The worker dies: the screen says so, a new worker comes up, the app never went down.
        os.kill(screen.client.pid, signal.SIGKILL)
        await until(pilot, lambda: _saw(screen, "crashed"), what="the crash report")
        assert "killed by signal 9" in screen.session.status.text and screen.session.status.error
        await until(pilot, lambda: _saw(screen, "restarted") and sum(
            1 for e in screen.seen_events if e.get("event") == "loaded") >= 3, what="restart and reload")
        await pilot.press("t", "enter")
        await until(pilot, lambda: sum(1 for e in screen.seen_events if e.get("event") == "done") >= 4,
                    what="an audition after the restart")
        assert app.is_running
    assert not screen.client.alive()


def test_bad_input_in_the_screen_is_one_line(screen_factory):
    asyncio.run(asyncio.wait_for(_bad_input(screen_factory), 120))


async def _bad_input(screen_factory):
    screen = screen_factory()
    app = Host(screen)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("enter")
        assert screen.session.status.text == "nothing to say: the text is empty" and screen.session.status.error
        screen.query_one("#audition-text").value = "la " * 500
        await pilot.press("enter")
        assert "the limit is 1200" in screen.session.status.text
        assert not [j for j in screen.session.jobs.values() if j.kind == "say"], "nothing was sent to the worker"
        # dimmed actions: nothing to stop, no A/B to blind
        assert screen.check_action("stop", ()) is None and screen.check_action("toggle_blind", ()) is None
        # the dashboard reuses the screen for another checkpoint: it loads that one
        screen.retarget(screen.session.run_dir, screen.session.run_dir / "epoch-0002")
        await until(pilot, lambda: _saw(screen, "loaded", name="epoch-0002"), what="the retargeted checkpoint")
        assert "epoch-0002 (loaded)" in str(screen.query_one("#audition-info").render())
        # the status line shows what it is told as it is: brackets in a name are not markup
        screen.retarget(screen.session.run_dir, screen.session.run_dir / "epoch-[b]9")
        await pilot.pause()
        assert "epoch-[b]9" in screen.session.status.text
        assert str(screen.query_one("#audition-status").render()) == screen.session.status.text


class ReusingHost(App):
    """Installs the screen once and pushes it by name, as the dashboard does: a second visit reuses it."""
    CSS_PATH = MiloApp.CSS_PATH

    def __init__(self, screen: AuditionScreen) -> None:
        super().__init__()
        self.audition = screen

    def on_mount(self) -> None:
        self.install_screen(self.audition, name="audition")
        self.push_screen("audition")


def _burst(app, keys: str) -> None:
    """Keys posted together, as the driver posts the keys of one read (a paste, or typing over SSH)."""
    from textual import events

    for key in keys:
        app.post_message(events.Key(key, key))


def test_typing_never_runs_a_command(screen_factory):
    asyncio.run(asyncio.wait_for(_typing_never_runs_a_command(screen_factory), 120))


async def _typing_never_runs_a_command(screen_factory):
    from textual import events
    from textual.widgets import Input

    screen = screen_factory()
    app = ReusingHost(screen)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        box = screen.query_one("#audition-text", Input)
        assert app.focused is box
        await pilot.press("escape")  # leave the box: the history has focus, letters are commands
        assert isinstance(app.focused, DataTable)
        await pilot.press("q")  # back
        await until(pilot, lambda: app.screen is not screen, timeout=10, what="back")
        app.push_screen("audition")  # the second visit
        await until(pilot, lambda: app.screen is screen, timeout=10, what="the second visit")
        await pilot.pause()
        _burst(app, "Hello ok abc=12345")
        await pilot.pause(0.5)
        assert box.value == "Hello ok abc=12345"
        session = screen.session
        assert (session.output, session.fixed_seed, session.ab_mode, app.screen) == ("local", SEED, False, screen)
        # out of the box and back in within one read: the letters after `t` are text again
        box.value = ""
        app.post_message(events.Key("escape", "\x1b"))
        _burst(app, "tfox")
        await pilot.pause(0.5)
        assert box.value.endswith("fox") and session.output == "local" and session.fixed_seed == SEED
        # a sentence pasted while the history has focus goes into the box
        await pilot.press("escape")
        box.value = ""
        app.post_message(events.Paste("Once upon a\ntime, obviously."))
        await pilot.pause(0.5)
        assert app.focused is box and box.value == "Once upon a time, obviously."
        assert session.output == "local" and app.screen is screen
        # A/B: B's picker starts on another checkpoint than A, and B = A is refused in one line
        await pilot.press("escape", "x")
        await until(pilot, lambda: isinstance(app.screen, CheckpointPicker), timeout=10, what="the picker")
        picker = app.screen
        olist = picker.query_one("#picker-list")
        assert "epoch-0002" in str(olist.get_option_at_index(olist.highlighted).prompt)
        await pilot.press("up", "enter")
        await until(pilot, lambda: app.screen is screen, timeout=10, what="the picker to close")
        assert not session.ab_mode and session.status.error and session.status.text.startswith("B is A (epoch-0001)")


def test_an_audition_with_no_sound_device_ends_saying_it_did_not_play(audition_run, no_audio_env, tmp_path):
    asyncio.run(asyncio.wait_for(_no_device(audition_run, no_audio_env, tmp_path), 200))


async def _no_device(audition_run, no_audio_env, tmp_path):
    screen = AuditionScreen(audition_run, audition_run / "epoch-0001", device="cpu", output="local",
                            sampling={"max_new_tokens": 40}, worker_env=no_audio_env, log_path=tmp_path / "worker.log")
    screen.seen_events, screen.session.fixed_seed = [], SEED
    app = Host(screen)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: _saw(screen, "loaded"), what="the checkpoint to load")
        info = str(screen.query_one("#audition-info").render())
        assert "spark speakers (not playing: no device)" in info, info
        await pilot.press(*"Nobody hears this.")
        await pilot.press("enter")
        await until(pilot, lambda: _saw(screen, "done"), what="the audition")
        await pilot.pause(0.2)
        # The last line says the audition was saved and not played, and what to do; the header still says so.
        status = screen.session.status
        assert status.error and "saved #" in status.text and "NOT PLAYED" in status.text, status.text
        assert "start the sound server" in status.text and "o switches to the laptop" in status.text
        assert "(not playing: no device)" in str(screen.query_one("#audition-info").render())
        await pilot.press("escape", "o")  # to the laptop: the header no longer blames the speakers
        await until(pilot, lambda: _saw(screen, "output"), what="the output switch")
        assert "no device" not in str(screen.query_one("#audition-info").render())
