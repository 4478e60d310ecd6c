"""The record screen, through Pilot, with a real microphone path: festival's SLT voice is played into a
virtual microphone (a PulseAudio null sink's monitor) while the real screen records it through sounddevice,
or through a real `milo-listen --mic` on a loopback socket; the real take checker judges every take. The
session's corpus then prepares and trains a tiny run."""
from __future__ import annotations

import json
import sys
import time

import numpy as np
import pytest

from contract import recording as cr
from tests.conftest import festival, python_env, run_module
from tests.dashboard.conftest import screen_text, settle, wait_for
from tests.recording.conftest import read_wav

PROMPTS = ("Check the fuse before you touch the wires.", "Please remind me to call my sister tomorrow.",
           "The soup needs another pinch of salt and some pepper.", "Turn left at the bakery and walk two more blocks.")
OTHER = "The library closes early on Sunday evenings."
SETTINGS = {**cr.record_settings(), "room_tone_s": 1.0}


@pytest.fixture(scope="module")
def voices(tmp_path_factory):
    folder = tmp_path_factory.mktemp("read")
    return {text: festival(text, folder / f"r{i}.wav") for i, text in enumerate((*PROMPTS, OTHER))}


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "script.txt"
    path.write_text("\n".join(PROMPTS) + "\n")
    return path


def recording_app(session, mic):
    from milo_tui.recording.app import RecordApp

    return RecordApp(session, mic, SETTINGS, checker_env=python_env(), python=sys.executable)


def shown(app) -> str:
    """The screen's text with its line wrapping undone."""
    return " ".join(screen_text(app).split())


async def hear(pilot, virtual_mic, path, seconds: float) -> None:
    """Press p and hear most of the take in the speakers' sink (what the operator would hear)."""
    from tests.audition.conftest import sound_stats

    heard = virtual_mic.pulse.record(path, sink="out")
    await pilot.press("p")
    await wait_for(pilot, lambda: sound_stats(heard.audio())["sound_s"] >= 0.6 * seconds, 30, "the take played")
    heard.stop()


def speech_end(audio: np.ndarray, rate: int, floor_dbfs: float = -40.0) -> float:
    """Where the last speech ends in a recording: its last 10 ms louder than `floor_dbfs`."""
    n = rate // 100
    blocks = audio[: len(audio) // n * n].reshape(-1, n)
    loud = np.nonzero(20 * np.log10(np.sqrt((blocks ** 2).mean(axis=1)) + 1e-9) > floor_dbfs)[0]
    return (loud[-1] + 1) * n / rate


async def room_tone(pilot, session) -> None:
    await pilot.press("space")
    await wait_for(pilot, lambda: session.data.get("room_tone") is not None, 15, "the room tone")


async def read_aloud(pilot, session, virtual_mic, wav, prompt_id: str, timeout: float = 60) -> str:
    """Start a take, speak into the microphone, let the auto-stop end it and the checker judge it."""
    takes_before = len(session.data["takes"])
    await pilot.press("space")
    await wait_for(pilot, lambda: pilot.app.screen.mode == "recording", 10, "the take to start")
    virtual_mic.say(wav)
    await wait_for(pilot, lambda: len(session.data["takes"]) > takes_before, timeout, "the auto-stop")
    take = session.state(prompt_id)["take"]
    await wait_for(pilot, lambda: session.take(take)["status"] != cr.CHECKING, timeout, f"the checks of {take}")
    return take


async def test_a_session_recorded_through_the_screen_is_checked_kept_and_resumable(
        virtual_mic, voices, script, tmp_path, tiny_base):
    from milo_tui.recording.mic import LocalMic

    folder = tmp_path / "session"
    with virtual_mic.activate():
        session = cr.Session.open(folder, script, heldout_every=3)   # prompt 2 of every 3 is held out
        app = recording_app(session, LocalMic())
        async with app.run_test(size=(110, 30)) as pilot:
            await settle(pilot)
            text = shown(app)
            assert "mic: Spark:" in text and "Hz" in text and "room tone" in text and "prompt 1 of 4" in text
            await room_tone(pilot, session)
            # its set length of samples, however late the busy screen stops the stream
            assert session.data["room_tone"]["seconds"] == pytest.approx(1.0, abs=0.01)

            # a good take passes, is kept, and the screen moves on to the next prompt
            first = await read_aloud(pilot, session, virtual_mic, voices[PROMPTS[0]], "p0001")
            assert session.take(first)["status"] == cr.KEPT, session.check(first).flags
            await wait_for(pilot, lambda: session.position == 1, 5, "the next prompt")
            # auto-stop: the take ends within a second of the end of the speech
            audio, rate = read_wav(session.original(first))
            latency = len(audio) / rate - speech_end(audio, rate)
            print(f"auto-stop latency {latency:.2f} s")
            assert 0.3 < latency < 1.0

            # a different sentence read for prompt 2 is a misread, said under the take; r retakes it
            wrong = await read_aloud(pilot, session, virtual_mic, voices[OTHER], "p0002")
            assert session.state("p0002")["status"] == cr.FLAGGED
            await settle(pilot)
            text = shown(app)
            assert f"{wrong}: " in text and "misread: CER" in text and "above 0.6" in text and "heard:" in text
            assert not (folder / "corpus" / "wavs" / "p0002.wav").exists()
            await pilot.press("r")
            await wait_for(pilot, lambda: app.screen.mode == "recording", 10, "the retake to start")
            virtual_mic.say(voices[PROMPTS[1]])
            await wait_for(pilot, lambda: session.state("p0002").get("take") not in (None, wrong), 60, "the retake")
            right = session.state("p0002")["take"]
            await wait_for(pilot, lambda: session.take(right)["status"] != cr.CHECKING, 60, "its checks")
            assert right == "p0002-2" and session.state("p0002")["status"] == cr.KEPT
            assert session.take(wrong)["status"] == cr.REPLACED and session.original(wrong).is_file()

            # p plays a take on the side the microphone is on (here the Spark's own output)
            await pilot.press("left")
            await wait_for(pilot, lambda: session.position == 1, 5, "the previous prompt")
            await hear(pilot, virtual_mic, tmp_path / "spark-out.raw", session.take(right)["trimmed_s"])
            await pilot.press("right")

            # c: every take's checks in the corpus view; esc comes back to the same prompt
            await pilot.press("c")
            await wait_for(pilot, lambda: type(app.screen).__name__ == "CorpusScreen", 10, "the corpus view")
            text = shown(app)
            assert "corpus report" in text and first in text and right in text and wrong not in text
            await pilot.press("escape")
            await wait_for(pilot, lambda: type(app.screen).__name__ == "RecordScreen", 10, "the record screen")

            # the third prompt is kept; then a take of the fourth is cut off by a killed session
            await read_aloud(pilot, session, virtual_mic, voices[PROMPTS[2]], "p0003")
            await wait_for(pilot, lambda: session.position == 3, 5, "the fourth prompt")
            await pilot.press("space")
            await wait_for(pilot, lambda: app.screen.mode == "recording", 10, "the take to start")
            kept = {p.id: (folder / "corpus" / "wavs" / f"{p.id}.wav").read_bytes() for p, _ in session.kept()}
            app.screen._recording = False   # the dashboard dies here: nothing more reaches the session
    assert sorted(kept) == ["p0001", "p0002", "p0003"]

    # the session reopens at the same prompt, every kept take intact
    again = cr.Session.open(folder)
    assert again.position == 3 and again.current.id == "p0004" and again.pending() == []
    assert {p.id: (folder / "corpus" / "wavs" / f"{p.id}.wav").read_bytes() for p, _ in again.kept()} == kept
    metadata = (folder / "corpus" / "metadata.csv").read_text().splitlines()
    assert [m.split("|")[0] for m in metadata] == ["p0001", "p0002", "p0003"]

    # the corpus prepares and trains a tiny run, unchanged
    data = tmp_path / "data" / "train.jsonl"
    done = run_module("training", "prepare", str(folder / "corpus"), "--base", str(tiny_base), "--out", str(data),
                      "--device", "cpu", timeout=600)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in data.read_text().splitlines()]
    assert len(lines) == 3 and {line["text_source"] for line in lines} == {"txt"}
    assert {line["text"] for line in lines} == set(PROMPTS[:3])
    assert (folder / "corpus" / "heldout.txt").read_text() == "p0002\n"
    assert [line.get("split") for line in lines] == [None, "val", None]   # held out from the first take on
    run = tmp_path / "runs" / "r1"
    done = run_module("training", "run", "--base", str(tiny_base), "--data", str(data), "--run", str(run),
                      "--epochs", "1", "--batch-size", "1", "--grad-accum", "1", "--no-score", timeout=600)
    assert done.returncode == 0, done.stderr
    assert (run / "epoch-0001").is_dir()


async def test_the_laptop_microphone_records_through_milo_listen(virtual_mic, voices, script, tmp_path, laptop):
    from milo_tui.recording.mic import LaptopMic

    session = cr.Session.open(tmp_path / "session", script)
    app = recording_app(session, LaptopMic(port=laptop("--mic")))
    async with app.run_test(size=(110, 30)) as pilot:
        await settle(pilot)
        assert "mic: laptop (milo-listen):" in shown(app)
        await room_tone(pilot, session)
        take = await read_aloud(pilot, session, virtual_mic, voices[PROMPTS[0]], "p0001")
        assert session.take(take)["status"] == cr.KEPT, session.check(take).flags
        assert session.take(take)["mic"].startswith("laptop (milo-listen):")
        await wait_for(pilot, lambda: session.position == 1, 5, "the next prompt")
        await pilot.press("left")
        await hear(pilot, virtual_mic, tmp_path / "laptop-out.raw", session.take(take)["trimmed_s"])
        await pilot.press("escape")


def test_a_killed_recording_session_resumes_at_the_same_prompt_with_every_take_intact(
        virtual_mic, voices, script, tmp_path):
    """`milo-tui record` in a real terminal, killed (SIGKILL) in the middle of a take, then started again."""
    import hashlib
    import os
    import signal

    import psutil

    from tests.terminal import Tmux

    config = tmp_path / "config.toml"
    config.write_text("[record]\nroom_tone_s = 1\n")
    env = {**virtual_mic.env, "MILO_CONFIG": str(config)}
    folder = tmp_path / "session"
    argv = [sys.executable, "-m", "milo_tui", "record", str(folder), "--script", str(script)]

    def saved() -> dict:
        try:
            return json.loads((folder / cr.SESSION_FILE).read_text())
        except (OSError, ValueError):
            return {}

    def until(condition, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}; screen:\n{term.screen()}"
            time.sleep(0.1)

    def digests() -> dict:
        return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
                for sub in ("corpus", "originals", "takes") for p in sorted((folder / sub).rglob("*")) if p.is_file()}

    with Tmux(110, 30) as term:
        term.start(argv, env=env)
        term.wait_for("room tone", 60)
        term.send("Space")
        until(lambda: saved().get("room_tone"), 30, "the room tone")
        term.send("Space")
        term.wait_for("● recording", 20)
        virtual_mic.say(voices[PROMPTS[0]])
        until(lambda: saved().get("prompts", {}).get("p0001", {}).get("status") == cr.KEPT, 60, "the first take kept")
        term.wait_for("prompt 2 of 4", 20)
        before = digests()
        term.send("Space")
        term.wait_for("● recording", 20)
        virtual_mic.say(voices[PROMPTS[1]])
        time.sleep(1.0)
        (proc,) = [p for p in psutil.process_iter(["cmdline"])
                   if p.info["cmdline"] and "record" in p.info["cmdline"] and str(folder) in p.info["cmdline"]]
        os.kill(proc.pid, signal.SIGKILL)
        term.wait_for("EXITED:137", 20)
    assert digests() == before and saved()["position"] == 1

    with Tmux(110, 30) as term:
        term.start(argv[:-2], env=env)   # no --script: the session's own copy
        screen = term.wait_for("prompt 2 of 4", 60)
        assert "kept 1" in screen and "Please remind me to call my sister tomorrow." in screen
        term.send("Escape")
        term.wait_for("EXITED:0", 30)
    assert digests() == before


async def test_m_in_the_runs_view_opens_a_session_or_says_in_one_line_why_not(virtual_mic, tmp_path):
    from textual.widgets import Input

    from milo_tui.recording.screen import RecordScreen
    from milo_tui.recording.setup import RecordSetup
    from milo_tui.screens.runs import RunsScreen
    from tests.dashboard.conftest import make_app

    runs = tmp_path / "checkpoints"
    runs.mkdir()
    app = make_app(runs)
    with virtual_mic.activate():
        async with app.run_test(size=(110, 30)) as pilot:
            await settle(pilot)
            await pilot.press("M")
            await wait_for(pilot, lambda: isinstance(app.screen, RecordSetup), 10, "the dialog")
            field = app.screen.query_one(Input)
            assert field.value == str(tmp_path / "recordings" / "session")
            field.value = str(tmp_path / "a-file")
            (tmp_path / "a-file").write_text("not a folder")
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), 10, "the runs view")
            said = [n.message for n in app._notifications]
            assert any("a-file is a file: give a folder for the session" in m for m in said), said
            await pilot.press("M")
            await wait_for(pilot, lambda: isinstance(app.screen, RecordSetup), 10, "the dialog")
            app.screen.query_one(Input).value = str(tmp_path / "mine")
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, RecordScreen), 20, "the record screen")
            assert "mic: Spark:" in shown(app) and "prompt 1 of 532" in shown(app)
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), 10, "the runs view again")
    assert (tmp_path / "mine" / cr.SESSION_FILE).is_file()
