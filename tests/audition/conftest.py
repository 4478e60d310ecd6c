"""Audition fixtures: a private PulseAudio with a null sink (real sound, recorded from its monitor),
a run folder holding two tiny custom-voice checkpoints, and a worker client that records its events."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import need_binary, python_env

SINK = "milo_null"
RATE = 24000


class Recording:
    """parec of a sink's monitor into a file, as 24 kHz mono s16le."""

    def __init__(self, pulse: "Pulse", sink: str, path: Path) -> None:
        self.path = path
        self._file = open(path, "wb")
        self.proc = subprocess.Popen(
            ["parec", "-d", f"{sink}.monitor", f"--rate={RATE}", "--channels=1", "--format=s16le", "--raw",
             "--latency-msec=20"], stdout=self._file, stderr=subprocess.DEVNULL, env=pulse.env, start_new_session=True)
        # Connected once the monitor's samples (silence from a null sink) arrive: then nothing played is missed.
        if not _poll(lambda: path.stat().st_size > 0, timeout=20):
            self.proc.kill()
            pytest.fail("parec did not start recording the sink's monitor")

    def audio(self) -> np.ndarray:
        """What has been recorded so far."""
        return np.fromfile(self.path, dtype="<i2").astype(np.float32) / 32768.0

    def wait_for_sound(self, seconds: float, timeout: float = 60) -> dict:
        """Wait until the recording holds `seconds` of sound (or `timeout` passes); its sound_stats."""
        _poll(lambda: sound_stats(self.audio())["sound_s"] >= seconds, timeout)
        return sound_stats(self.audio())

    def stop(self, sound_s: float | None = None, timeout: float = 60) -> np.ndarray:
        """Stop recording, once `sound_s` seconds of sound have been heard when given (audio sent is not yet
        audio heard: the sound server plays it out in real time after the sender is done)."""
        if sound_s is not None:
            self.wait_for_sound(sound_s, timeout)
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._file.close()
        return np.fromfile(self.path, dtype="<i2").astype(np.float32) / 32768.0


def _poll(condition, timeout: float, every: float = 0.05) -> bool:
    """Wait for `condition()` to hold, checking every `every` seconds; whether it did within `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(every)
    return True


def sound_stats(audio: np.ndarray, threshold: float = 0.01, window: int = 480) -> dict:
    """Seconds of recording, seconds that hold sound (20 ms windows with RMS above `threshold`), RMS."""
    n = len(audio) // window
    frames = audio[: n * window].reshape(n, window) if n else np.zeros((0, window), np.float32)
    rms = np.sqrt((frames ** 2).mean(axis=1)) if n else np.zeros(0)
    return {"seconds": len(audio) / RATE, "sound_s": float((rms > threshold).sum() * window / RATE),
            "rms": float(np.sqrt((audio ** 2).mean())) if len(audio) else 0.0}


class Pulse:
    def __init__(self, runtime: Path) -> None:
        self.runtime = runtime
        self.env = python_env(XDG_RUNTIME_DIR=str(runtime), PULSE_SERVER=f"unix:{runtime}/pulse/native")
        self.env.pop("PULSE_SINK", None)

    def pactl(self, *args: str) -> str:
        return subprocess.run(["pactl", *args], env=self.env, capture_output=True, text=True, check=True,
                              timeout=20).stdout.strip()

    def load_sink(self, name: str) -> str:
        return self.pactl("load-module", "module-null-sink", f"sink_name={name}")

    def unload(self, module: str) -> None:
        self.pactl("unload-module", module)

    def record(self, path: Path, sink: str = SINK) -> Recording:
        return Recording(self, sink, path)


def start_pulse(runtime: Path, sink: str = SINK) -> Pulse:
    """Start a user-mode PulseAudio daemon in `runtime` with one null sink, `sink`, as its default."""
    need_binary("pulseaudio")
    need_binary("parec")
    need_binary("pactl")
    runtime.mkdir(parents=True, exist_ok=True)
    runtime.chmod(0o700)
    p = Pulse(runtime)
    env = dict(p.env)
    env.pop("PULSE_SERVER")
    subprocess.run(["pulseaudio", "--daemonize=yes", "--exit-idle-time=-1", "-n",
                    "--load=module-native-protocol-unix", f"--load=module-null-sink sink_name={sink}"],
                   env=env, check=True, timeout=30, capture_output=True)
    deadline = time.monotonic() + 15
    while True:
        try:
            if sink in p.pactl("list", "short", "sinks"):
                return p
        except subprocess.CalledProcessError:
            pass
        if time.monotonic() > deadline:
            pytest.fail("the test PulseAudio did not come up")
        time.sleep(0.2)


def stop_pulse(p: Pulse) -> None:
    try:
        os.kill(int((p.runtime / "pulse" / "pid").read_text().split()[0]), signal.SIGTERM)
    except (OSError, ValueError):
        pass


@pytest.fixture(scope="session")
def pulse(tmp_path_factory):
    """This test process's PulseAudio daemon, with the null sink `milo_null` as its default."""
    p = start_pulse(Path(tmp_path_factory.mktemp("pulse-runtime")))
    yield p
    stop_pulse(p)


@pytest.fixture(scope="session")
def no_audio_env(tmp_path_factory) -> dict:
    """An environment in which PortAudio finds no output device at all."""
    runtime = Path(tmp_path_factory.mktemp("no-pulse"))
    runtime.chmod(0o700)
    env = python_env(XDG_RUNTIME_DIR=str(runtime), PULSE_SERVER=f"unix:{runtime}/nothing-here")
    return env


@pytest.fixture(scope="session")
def audition_run(tiny_custom_voice, tmp_path_factory) -> Path:
    """A run folder with two checkpoints: epoch-0001 (the tiny custom voice) and epoch-0002 (the same
    model with another speaker embedding, so A/B compares two different voices)."""
    import torch
    from safetensors.torch import load_file, save_file

    run = tmp_path_factory.mktemp("runs") / "demo-run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"speaker": "milo_demo"}))
    first = run / "epoch-0001"
    shutil.copytree(tiny_custom_voice, first)
    second = run / "epoch-0002"
    shutil.copytree(tiny_custom_voice, second)
    weights = load_file(second / "model.safetensors")
    key = "talker.model.codec_embedding.weight"
    gen = torch.Generator().manual_seed(2)
    weights[key][3000] = torch.randn(weights[key].shape[1], generator=gen) * weights[key][3000].std()
    save_file(weights, str(second / "model.safetensors"), metadata={"format": "pt"})
    return run


class Events:
    """Events a WorkerClient delivered, with waiting helpers."""

    def __init__(self) -> None:
        self.items: list[dict] = []
        self._cond = threading.Condition()

    def __call__(self, event: dict) -> None:
        with self._cond:
            self.items.append(event)
            self._cond.notify_all()

    def wait(self, predicate, timeout: float = 120.0, start: int = 0) -> dict:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for e in self.items[start:]:
                    if predicate(e):
                        return e
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no matching event within {timeout} s; got {self.items[start:][-12:]}")
                self._cond.wait(left)

    def wait_for(self, kind: str, job_id: str | None = None, timeout: float = 120.0, start: int = 0, **match) -> dict:
        return self.wait(lambda e: e.get("event") == kind and (job_id is None or e.get("id") == job_id)
                         and all(e.get(k) == v for k, v in match.items()), timeout, start)

    def of(self, job_id: str) -> list[dict]:
        return [e for e in self.items if e.get("id") == job_id]

    def mark(self) -> int:
        return len(self.items)


def start_client(env: dict, tmp_path: Path, **kwargs):
    from milo_tui.audition.client import WorkerClient

    events = Events()
    client = WorkerClient(events, device="cpu", env=env, log_path=tmp_path / "worker.log", **kwargs)
    client.start()
    events.wait_for("ready", timeout=120)
    return client, events


# Short auditions keep the suite fast: a random-weight model rarely says end-of-speech by itself.
QUICK = {"max_new_tokens": 30}
