"""The audition worker as a real child process: protocol, checkpoint switching, cancel, bad input,
crash and restart, missing or vanishing audio devices (the WAV is saved whatever happens)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from contract.samples import read_samples
from tests.audition.conftest import QUICK, start_client, start_pulse, stop_pulse
from tests.conftest import python_env


def test_protocol_channel_is_kept_clean_of_library_output():
    code = ("import os, sys\n"
            "from inference.worker import protect_stdout\n"
            "proto = protect_stdout()\n"
            "print('python noise')\n"
            "os.write(1, b'C-level noise\\n')\n"
            "proto.write('{\"event\": \"ok\"}\\n'); proto.flush()\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=python_env())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == '{"event": "ok"}\n'
    assert "python noise" in proc.stderr and "C-level noise" in proc.stderr


@pytest.fixture(scope="module")
def quiet_worker(audition_run, tmp_path_factory):
    """One worker with no playback, shared by the tests below."""
    client, events = start_client(python_env(), tmp_path_factory.mktemp("w"), output="none")
    yield client, events, audition_run
    client.close()


def test_switching_checkpoints_unloads_the_previous_one(quiet_worker):
    client, events, run = quiet_worker
    first = client.load(str(run / "epoch-0001"))
    loaded = events.wait_for("loaded", first)
    assert loaded["speakers"] == ["milo_demo"] and loaded["device"] == "cpu" and loaded["load_s"] > 0
    second = client.say("Hello.", checkpoint=str(run / "epoch-0002"), run_dir=str(run), seed=4, sampling=QUICK)
    switch = events.wait_for("loading", second)
    assert switch["previous"] == str(run / "epoch-0001")
    done = events.wait_for("done", second)["sample"]
    assert done["checkpoint"] == "epoch-0002" and done["load_s"] > 0
    # the same checkpoint again: no reload
    third = client.say("Hello.", checkpoint=str(run / "epoch-0002"), run_dir=str(run), seed=4, sampling=QUICK)
    again = events.wait_for("done", third)["sample"]
    assert not [e for e in events.of(third) if e["event"] == "loading"] and again["load_s"] == 0
    a, _ = sf.read(done["wav_path"])
    b, _ = sf.read(again["wav_path"])
    assert np.array_equal(a, b), "same checkpoint, text and seed must give the same audio"
    index = {s.id: s for s in read_samples(run)}
    assert index[done["id"]].checkpoint == "epoch-0002" and index[done["id"]].seed == 4


def test_bad_input_gets_one_clear_line_and_the_worker_lives_on(quiet_worker, tiny_custom_voice, tmp_path):
    client, events, run = quiet_worker
    ckpt = str(run / "epoch-0001")
    cases = {
        client.say("   ", checkpoint=ckpt, run_dir=str(run)): "nothing to say: the text is empty",
        client.say("la " * 500, checkpoint=ckpt, run_dir=str(run)): "the limit is 1200",
        client.say("Hi.", checkpoint=ckpt, speaker="nobody", run_dir=str(run)): "unknown speaker 'nobody'",
        client.say("Hi.", checkpoint=str(tmp_path / "gone"), run_dir=str(run)): "cannot load gone: no such folder",
        client.say("Hi.", checkpoint=str(run), run_dir=str(run)): "a folder of checkpoints, not a checkpoint",
        client.send("dance"): "unknown command 'dance'",
    }
    half = tmp_path / "epoch-0007"
    half.mkdir()
    (half / "config.json").write_text((tiny_custom_voice / "config.json").read_text())
    cases[client.load(str(half))] = "cannot load epoch-0007: model weights are missing"
    for job_id, expected in cases.items():
        error = events.wait_for("error", job_id, timeout=60)
        assert expected in error["message"] and "\n" not in error["message"], error
    assert any("speech_tokenizer/ is missing" in line for line in events.wait_for("error", list(cases)[-1])["lines"])
    ping = client.send("ping")
    events.wait_for("pong", ping, timeout=30)
    assert client.alive()


def test_stop_cancels_the_sentence_being_generated(quiet_worker):
    client, events, run = quiet_worker
    before = {s.id for s in read_samples(run)}
    job = client.say("This one is long enough to stop in the middle.", checkpoint=str(run / "epoch-0001"),
                     run_dir=str(run), seed=1, sampling={"max_new_tokens": 2000}, budget=False)
    events.wait_for("first_audio", job)
    client.stop()
    events.wait_for("cancelled", job, timeout=30)
    assert not [e for e in events.of(job) if e["event"] == "done"]
    assert {s.id for s in read_samples(run)} == before, "a cancelled audition is not saved"


def test_a_crashed_worker_is_reported_and_restarted_with_its_checkpoint(audition_run, tmp_path):
    client, events = start_client(python_env(), tmp_path, output="none")
    try:
        events.wait_for("loaded", client.load(str(audition_run / "epoch-0001")))
        old = client.pid
        mark = events.mark()
        os.kill(old, signal.SIGKILL)
        crash = events.wait_for("crashed", start=mark, timeout=30)
        assert crash["returncode"] == -signal.SIGKILL and "killed by signal 9" in crash["message"]
        restarted = events.wait_for("restarted", start=mark, timeout=30)
        assert restarted["checkpoint"] == str(audition_run / "epoch-0001") and client.pid != old
        events.wait_for("loaded", start=mark, timeout=120)
        job = client.say("Back again.", run_dir=str(audition_run), seed=2, sampling=QUICK)
        assert events.wait_for("done", job)["sample"]["checkpoint"] == "epoch-0001"
    finally:
        client.close()
    assert not client.alive()


def test_no_output_device_says_so_and_still_saves(audition_run, tmp_path, no_audio_env):
    client, events = start_client(no_audio_env, tmp_path)
    try:
        assert "no default audio output device" in events.items[0]["output_detail"]
        job = client.say("Nobody hears this.", checkpoint=str(audition_run / "epoch-0001"), run_dir=str(audition_run),
                         seed=3, sampling=QUICK)
        problem = events.wait_for("playback", job, state="no_device")
        assert "no default audio output device" in problem["message"]
        done = events.wait_for("done", job)["sample"]
        assert os.path.getsize(done["wav_path"]) > 1000
    finally:
        client.close()


@pytest.mark.audio
@pytest.mark.xdist_group("audio")
def test_a_device_that_disappears_mid_play_is_one_line_and_the_wav_is_saved(audition_run, tmp_path, capfd):
    # A daemon of its own: PulseAudio moves streams to another sink when there is one; with its only
    # sink gone, the stream has nowhere to go, as when a USB headset is pulled out.
    pulse = start_pulse(tmp_path / "pulse", sink="milo_lost")
    module = pulse.pactl("list", "short", "modules").splitlines()[-1].split()[0]
    client, events = start_client(pulse.env, tmp_path)
    try:
        job = client.say("This sentence loses its speaker halfway.", checkpoint=str(audition_run / "epoch-0001"),
                         run_dir=str(audition_run), seed=8, sampling={"max_new_tokens": 120})
        events.wait_for("playback", job, state="started")
        rec = pulse.record(tmp_path / "lost.raw", sink="milo_lost")
        heard = rec.wait_for_sound(0.5)  # half a second of the sentence has reached the sink: pull it out
        assert heard["sound_s"] >= 0.5, heard
        pulse.unload(module)
        lost = events.wait_for("playback", job, state="device_lost", timeout=60)
        rec.stop()
        assert lost["message"].startswith("the audio device stopped working mid-play"), lost
        assert "\n" not in lost["message"]
        done = events.wait_for("done", job)["sample"]
        audio, rate = sf.read(done["wav_path"])
        assert rate == 24000 and len(audio) / rate == pytest.approx(done["audio_s"], abs=0.01)
        # Some of it played before the device went (parec cannot tell: it loses its buffer when its
        # source is killed, so the player's own count is the evidence here).
        assert 0.3 < lost["played_s"] < done["audio_s"], lost
        events.wait_for("pong", client.send("ping"), timeout=30)
        # PortAudio/ALSA complained from C: into the worker's log, not onto the parent's terminal.
        log = (tmp_path / "worker.log").read_text(errors="replace")
        assert "alsa" in log.lower(), log[-2000:]
        out, err = capfd.readouterr()
        assert "alsa" not in (out + err).lower()
    finally:
        client.close()
        stop_pulse(pulse)


@pytest.mark.audio
@pytest.mark.xdist_group("audio")
def test_a_sound_server_started_after_the_worker_is_found(audition_run, tmp_path):
    # The worker starts where no sound server runs yet (the path PulseAudio will use is empty), as when the
    # operator starts one after opening the dashboard: PortAudio's device list, read once, has no output.
    runtime = tmp_path / "late"
    runtime.mkdir(mode=0o700)
    env = python_env(XDG_RUNTIME_DIR=str(runtime), PULSE_SERVER=f"unix:{runtime}/pulse/native")
    env.pop("PULSE_SINK", None)
    client, events = start_client(env, tmp_path)
    pulse = None
    try:
        ready = events.items[0]
        assert "no default audio output device" in ready["output_problem"] and "pulseaudio --start" in ready["output_problem"]
        job = client.say("Nobody hears this.", checkpoint=str(audition_run / "epoch-0001"), run_dir=str(audition_run),
                         seed=3, sampling=QUICK)
        assert "start the sound server" in events.wait_for("playback", job, state="no_device")["message"]
        events.wait_for("done", job)
        pulse = start_pulse(runtime, sink="milo_late")
        rec = pulse.record(tmp_path / "late.raw", sink="milo_late")
        job = client.say("Now it plays.", checkpoint=str(audition_run / "epoch-0001"), run_dir=str(audition_run),
                         seed=2, sampling=QUICK)
        events.wait_for("playback", job, state="finished", timeout=120)
        done = events.wait_for("done", job)["sample"]
        heard = rec.stop(sound_s=0.5 * done["audio_s"])
        from tests.audition.conftest import sound_stats

        assert sound_stats(heard)["sound_s"] >= 0.5 * done["audio_s"], (sound_stats(heard), done["audio_s"])
        switched = events.wait_for("output", client.send("output", target="local"))
        assert switched["problem"] is None and "spark speakers" in switched["detail"]
    finally:
        client.close()
        if pulse is not None:
            stop_pulse(pulse)
