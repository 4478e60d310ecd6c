"""milo-listen: the wire format, the torch-free single file, and real playback of what the worker sends
over loopback (the SSH tunnel's two ends) into the null sink, across a reconnect."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from contract import listen
from contract.playback import LaptopOutput
from tests.audition.conftest import QUICK, Events, sound_stats, start_client


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_frames_and_pcm_round_trip():
    a, b = socket.socketpair()
    with a, b:
        listen.send_json(a, {"type": "start", "clip": "x"})
        audio = np.linspace(-1, 1, 2401, dtype=np.float32)
        listen.send_frame(a, listen.KIND_PCM, listen.pcm_bytes(audio, "s16le"))
        listen.send_frame(a, listen.KIND_PCM, listen.pcm_bytes(audio, "f32le"))
        a.close()
        kind, payload = listen.recv_frame(b)
        assert kind == listen.KIND_JSON and payload == b'{"type":"start","clip":"x"}'
        kind, payload = listen.recv_frame(b)
        assert kind == listen.KIND_PCM and len(payload) == 2 * 2401
        assert np.abs(listen.pcm_samples(payload, "s16le") - audio).max() < 1e-4
        assert np.array_equal(listen.pcm_samples(listen.recv_frame(b)[1], "f32le"), audio)
        assert listen.recv_frame(b) is None


def test_the_laptop_file_runs_alone_without_torch_or_milo_tui(tmp_path):
    shutil.copy(listen.__file__, tmp_path / "listen.py")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = ("import sys, listen\n"
            "heavy = {'torch', 'transformers', 'qwen_tts', 'textual', 'milo_tui', 'inference'}\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
    helped = subprocess.run([sys.executable, "listen.py", "--help"], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=60)
    assert helped.returncode == 0 and "ssh -R" in helped.stdout


def test_the_sender_says_what_is_missing_on_the_laptop_side():
    events = Events()
    port = free_port()
    out = LaptopOutput(port=port, on_event=events)
    out.start("c1", {"text": "hi"})
    problem = events.wait(lambda e: e.get("clip") == "c1" and e["state"] == "no_device", timeout=10)
    assert f"nothing listens on 127.0.0.1:{port}" in problem["message"]
    # With `ssh -R`, sshd accepts the connection even when milo-listen is not running, then closes it.
    server = socket.create_server(("127.0.0.1", 0))

    def fake_sshd():
        conn, _ = server.accept()
        conn.close()

    threading.Thread(target=fake_sshd, daemon=True).start()
    out = LaptopOutput(port=server.getsockname()[1], on_event=events)
    out.start("c2", {"text": "hi"})
    problem = events.wait(lambda e: e.get("clip") == "c2" and e["state"] == "no_device", timeout=10)
    assert "no milo-listen answered" in problem["message"]
    server.close()


def _listener(pulse, port: int, log_path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "contract.listen", "--port", str(port)], env=pulse.env,
                            stdout=open(log_path, "ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    else:
        pytest.fail("milo-listen did not start listening")
    return proc


@pytest.mark.audio
@pytest.mark.xdist_group("audio")
def test_milo_listen_plays_what_the_worker_sends_and_survives_a_reconnect(audition_run, pulse, no_audio_env, tmp_path):
    port = free_port()
    # The worker has no audio device of its own: whatever is heard came through milo-listen.
    client, events = start_client(no_audio_env, tmp_path, output="laptop", port=port)
    ear = _listener(pulse, port, tmp_path / "listen.log")
    try:
        rec = pulse.record(tmp_path / "laptop.raw")
        job = client.say("Played on the laptop.", checkpoint=str(audition_run / "epoch-0001"), run_dir=str(audition_run),
                         seed=21, sampling={"max_new_tokens": 40})
        started = events.wait_for("playback", job, state="started")
        assert f"127.0.0.1:{port}" in started["message"]
        done = events.wait_for("done", job)["sample"]
        events.wait_for("playback", job, state="finished")
        heard = sound_stats(rec.stop(sound_s=0.8 * done["audio_s"]))  # sent is not yet heard: the laptop plays it out
        print(f"\nmilo-listen: {done['audio_s']:.2f} s sent, recorded {heard}")
        assert heard["sound_s"] >= 0.8 * done["audio_s"] and heard["rms"] > 0.02, (heard, done["audio_s"])

        # The laptop's listener restarts (or the tunnel drops): the next audition reconnects.
        ear.send_signal(signal.SIGINT)
        ear.wait(10)
        job = client.say("Lost the link once.", run_dir=str(audition_run), seed=22, sampling=QUICK)
        events.wait_for("playback", job, state="no_device")  # nobody listening right now: one line, saved
        events.wait_for("done", job)
        ear = _listener(pulse, port, tmp_path / "listen.log")
        rec = pulse.record(tmp_path / "laptop2.raw")
        job = client.say("Back on the laptop.", run_dir=str(audition_run), seed=23, sampling={"max_new_tokens": 40})
        events.wait_for("playback", job, state="started")
        done = events.wait_for("done", job)["sample"]
        heard = sound_stats(rec.stop(sound_s=0.8 * done["audio_s"]))
        assert heard["sound_s"] >= 0.8 * done["audio_s"], heard
        log = (tmp_path / "listen.log").read_text()
        assert "connected; playing on" in log and "Back on the laptop." in log
    finally:
        client.close()
        ear.send_signal(signal.SIGINT)
        ear.wait(10)
