"""Recording fixtures: a virtual microphone (a private PulseAudio whose default source is the monitor of
the null sink `mic`, so what is played into `mic` is what the microphone hears) and real speech for it."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import wave
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from contract import listen
from tests.audition.conftest import start_pulse, stop_pulse
from tests.conftest import festival, need_binary

SPEECH = "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background."


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """A 16-bit mono WAV as float32, and its rate."""
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768.0, w.getframerate()


def write_wav(path: Path, audio: np.ndarray, rate: int) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    return path


class VirtualMic:
    """`env` for child processes; `activate()` points this process's PortAudio at it; `say()` speaks into it."""

    ENV_KEYS = ("PULSE_SERVER", "XDG_RUNTIME_DIR")

    def __init__(self, pulse, scratch: Path) -> None:
        self.pulse, self.scratch = pulse, scratch
        self.env = dict(pulse.env)
        self._n = 0

    @contextmanager
    def activate(self):
        """PortAudio reads the sound server's address when it initializes: set it, re-initialize, and put
        both back afterwards."""
        import sounddevice as sd

        saved = {k: os.environ.get(k) for k in self.ENV_KEYS}
        os.environ.update({k: self.env[k] for k in self.ENV_KEYS})
        sd._terminate()
        sd._initialize()
        try:
            yield self
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            sd._terminate()
            sd._initialize()

    def say(self, audio, rate: int | None = None) -> subprocess.Popen:
        """Play a WAV (or an array at `rate`) into the `mic` sink in the background; `.started` is when."""
        if not isinstance(audio, (str, Path)):
            self._n += 1
            audio = write_wav(self.scratch / f"say-{self._n}.wav", np.asarray(audio, np.float32), int(rate))
        proc = subprocess.Popen(["paplay", "-d", "mic", str(audio)], env=self.env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        proc.started = time.monotonic()
        return proc


@pytest.fixture(scope="session")
def virtual_mic(tmp_path_factory):
    """A private PulseAudio with null sinks `out` (the default output) and `mic` (its monitor: the default input)."""
    need_binary("paplay")
    pulse = start_pulse(Path(tmp_path_factory.mktemp("mic-pulse")), sink="out")
    try:
        pulse.load_sink("mic")
        pulse.pactl("set-default-sink", "out")
        pulse.pactl("set-default-source", "mic.monitor")
        yield VirtualMic(pulse, tmp_path_factory.mktemp("mic-say"))
    finally:
        stop_pulse(pulse)


@pytest.fixture(scope="session")
def speech(tmp_path_factory) -> tuple[Path, np.ndarray, int]:
    """Two sentences of festival's SLT voice: the WAV, its samples and rate."""
    path = festival(SPEECH, tmp_path_factory.mktemp("speech") / "speech.wav")
    return (path, *read_wav(path))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def laptop(virtual_mic, tmp_path):
    """Starts `python listen.py ARGS --port P` from a copy of the file, without this checkout on the path
    (as on the laptop), on the virtual microphone; yields the starter; stops them all."""
    shutil.copy(listen.__file__, tmp_path / "listen.py")
    env = {k: v for k, v in virtual_mic.env.items() if k != "PYTHONPATH"}
    procs = []

    def start(*args: str) -> int:
        port = free_port()
        log = tmp_path / f"listen-{port}.log"
        proc = subprocess.Popen([sys.executable, "listen.py", "--port", str(port), *args], cwd=tmp_path, env=env,
                                stdout=open(log, "wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        procs.append(proc)
        proc.log = log
        deadline = time.monotonic() + 30
        while "waiting for the Spark" not in log.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"milo-listen did not start: {log.read_text()}")
            time.sleep(0.05)
        start.proc = proc
        return port

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(10)


# The record screen's tests run through Pilot: the same `async def` test runner as the dashboard's.
from tests.dashboard.conftest import pytest_pyfunc_call  # noqa: E402,F401
