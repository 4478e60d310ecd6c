"""The recording screen's microphones, with real sound: festival speech played into a virtual microphone
(a PulseAudio null sink whose monitor is the default input), recorded by LocalMic in this process, and by
LaptopMic through a real `milo-listen --mic` child (the laptop's copy of the file, alone) over loopback
(the SSH tunnel's two ends)."""
from __future__ import annotations

import select
import socket
import threading
import time

import numpy as np
import pytest

from contract.listen import KIND_PCM, Capture, dbfs, recv_frame, send_frame
from contract.playback import LaptopOutput
from milo_tui.recording.mic import LaptopMic, LocalMic, MicError
from tests.audition.conftest import Events, sound_stats, start_pulse, stop_pulse
from tests.recording.conftest import VirtualMic, free_port  # noqa: F401 (laptop: a fixture)

pytestmark = [pytest.mark.audio, pytest.mark.xdist_group("audio")]


def envelope(audio: np.ndarray, rate: int, step: float = 0.02) -> np.ndarray:
    """RMS per `step` seconds."""
    n = int(rate * step)
    frames = audio[: len(audio) // n * n].reshape(-1, n)
    return np.sqrt((frames ** 2).mean(axis=1))


def locate(take: np.ndarray, rate: int, source: np.ndarray, source_rate: int) -> tuple[float, float]:
    """Where the source's loudness contour best matches the take's: (correlation, offset in seconds)."""
    a, b = envelope(take, rate), envelope(source, source_rate)
    assert len(a) >= len(b), f"the take ({len(a) * 0.02:.2f} s) is shorter than the speech ({len(b) * 0.02:.2f} s)"
    b = (b - b.mean()) / b.std()
    best = (-1.0, 0.0)
    for lag in range(len(a) - len(b) + 1):
        w = a[lag:lag + len(b)]
        corr = float(((w - w.mean()) * b).mean() / (w.std() + 1e-12))
        best = max(best, (corr, lag * 0.02))
    return best


class Levels:
    """on_level's calls, with their arrival times."""

    def __init__(self) -> None:
        self.items: list[tuple[float, dict]] = []

    def __call__(self, level: dict) -> None:
        self.items.append((time.monotonic(), level))

    def __len__(self) -> int:
        return len(self.items)


def record_speech(mic, virtual_mic, wav, tail_s: float = 0.3) -> tuple[np.ndarray, Levels, dict]:
    """Start `mic`, say `wav` into the virtual microphone, stop: the take, its levels, and timings."""
    levels = Levels()
    t0 = time.monotonic()
    mic.start(levels)
    started = time.monotonic()
    virtual_mic.say(wav).wait(30)
    time.sleep(tail_s)
    before_stop = len(levels)
    t1 = time.monotonic()
    take = mic.stop()
    done = time.monotonic()
    return take, levels, {"start_s": started - t0, "elapsed_s": t1 - started, "stop_s": done - t1,
                          "levels_before_stop": before_stop}


def check_speech(take: np.ndarray, rate: int, speech, elapsed_s: float) -> float:
    _, source, source_rate = speech
    seconds = len(take) / rate
    assert abs(seconds - elapsed_s) < 0.4, (seconds, elapsed_s)  # the take spans the whole recording
    corr, at = locate(take, rate, source, source_rate)
    assert corr > 0.9 and at < 1.0, (corr, at)                     # the speech, whole, soon after the start
    assert 0.8 < np.abs(take).max() / np.abs(source).max() < 1.25  # at its own loudness
    return corr


def check_levels(levels: Levels, take: np.ndarray, rate: int) -> float:
    """The levels are the take's 50 ms blocks, in order, as they were recorded; their rate per second."""
    block = int(rate * 0.05)
    assert len(levels) == len(take) // block
    for i, (_, level) in enumerate(levels.items):
        x = take[i * block:(i + 1) * block]
        assert level["t"] == pytest.approx((i + 1) * 0.05, abs=1e-3)
        assert level["peak_dbfs"] == pytest.approx(dbfs(np.abs(x).max()), abs=0.02)
        assert level["rms_dbfs"] == pytest.approx(dbfs(np.sqrt((x.astype(np.float64) ** 2).mean())), abs=0.02)
    arrived = levels.items[-1][0] - levels.items[0][0]
    assert arrived > 0.8 * (len(take) / rate - 0.05)  # live: spread over the take, not delivered at the end
    return len(levels) / (len(take) / rate)


def test_local_mic_records_the_speech_played_into_it(virtual_mic, speech):
    with virtual_mic.activate():
        mic = LocalMic()
        try:
            take, levels, times = record_speech(mic, virtual_mic, speech[0])
        finally:
            mic.close()
    assert mic.label == f"Spark: default @ {mic.rate} Hz" and take.dtype == np.float32
    corr = check_speech(take, mic.rate, speech, times["elapsed_s"])
    per_s = check_levels(levels, take, mic.rate)
    assert 19 <= per_s <= 21
    print(f"\nLocalMic: {len(take) / mic.rate:.2f} s at {mic.rate} Hz, envelope corr {corr:.3f}, {per_s:.1f} levels/s, "
          f"start {times['start_s']:.3f} s, stop {times['stop_s']:.3f} s")


def test_local_mic_names_a_missing_device_in_one_line(virtual_mic):
    with virtual_mic.activate(), pytest.raises(MicError) as err:
        LocalMic("no-such-microphone")
    assert str(err.value).startswith("Spark: no microphone 'no-such-microphone'") and "\n" not in str(err.value)


def test_a_microphone_lost_mid_take_is_one_line_and_no_hang(tmp_path):
    # Its own sound server, killed mid-take (a pulled USB microphone looks the same to PortAudio).
    pulse = start_pulse(tmp_path / "pulse", sink="mic")
    pulse.pactl("set-default-source", "mic.monitor")
    with VirtualMic(pulse, tmp_path).activate():
        mic = LocalMic()
        try:
            mic.start()
            time.sleep(0.5)
            stop_pulse(pulse)
            time.sleep(Capture.STALL_S + 0.5)
            with pytest.raises(MicError, match=r"^Spark: microphone 'default' stopped delivering audio mid-take .*again$"):
                mic.stop()
            with pytest.raises(MicError, match=r"^Spark: cannot open microphone 'default'"):
                mic.start()
        finally:
            mic.close()
            stop_pulse(pulse)


# ---- the laptop's microphone through milo-listen --------------------------------------------------------


class Tunnel:
    """A loopback relay standing in for the SSH tunnel: it can flip one bit of the next take's PCM (one
    sample off by one step: inaudible, caught only by the checksum), or cut the link."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.corrupt_next = False
        self.socks: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                near, _ = self.server.accept()
            except OSError:
                return
            far = socket.create_connection(("127.0.0.1", self.target))
            self.socks += [near, far]
            threading.Thread(target=self._up, args=(near, far), daemon=True).start()
            threading.Thread(target=self._down, args=(far, near), daemon=True).start()

    def _up(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        self._close(src, dst)

    def _down(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while (frame := recv_frame(src)) is not None:
                kind, payload = frame
                if kind == KIND_PCM and self.corrupt_next:
                    self.corrupt_next = False
                    payload = bytearray(payload)
                    payload[len(payload) // 2 & ~1] ^= 1
                send_frame(dst, kind, bytes(payload))
        except OSError:
            pass
        self._close(src, dst)

    @staticmethod
    def _close(*socks: socket.socket) -> None:
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass

    def cut(self) -> None:
        self._close(*self.socks)
        self.socks = []

    def close(self) -> None:
        self.server.close()
        self.cut()


def test_laptop_mic_streams_levels_live_and_the_take_arrives_whole(laptop, virtual_mic, speech):
    port = laptop("--mic")
    assert "microphone: default @ " in laptop.proc.log.read_text()
    mic = LaptopMic(port=port)
    try:
        assert mic.label == f"laptop (milo-listen): default @ {mic.rate} Hz"
        take, levels, times = record_speech(mic, virtual_mic, speech[0])
    finally:
        mic.close()
    assert take.dtype == np.float32
    corr = check_speech(take, mic.rate, speech, times["elapsed_s"])
    assert times["levels_before_stop"] >= 0.9 * len(levels)  # they came while recording, not with the take
    per_s = check_levels(levels, take, mic.rate)
    assert 19 <= per_s <= 21
    print(f"\nLaptopMic: {len(take) / mic.rate:.2f} s at {mic.rate} Hz, envelope corr {corr:.3f}, {per_s:.1f} levels/s, "
          f"start {times['start_s']:.3f} s, take transfer (stop) {times['stop_s']:.3f} s")


def test_a_take_damaged_in_transit_is_refused_and_a_lost_link_reconnects(laptop, virtual_mic):
    tunnel = Tunnel(laptop("--mic"))
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(24000) / 24000)
    mic = LaptopMic(port=tunnel.port)
    try:
        tunnel.corrupt_next = True
        mic.start()
        virtual_mic.say(tone, 24000).wait(30)
        with pytest.raises(MicError, match=r"^take arrived damaged \(checksum mismatch\): record it again$"):
            mic.stop()
        mic.start()  # the same link: the next take is fine
        virtual_mic.say(tone, 24000).wait(30)
        assert sound_stats(mic.stop())["rms"] > 0.1

        mic.start()
        tunnel.cut()  # the tunnel drops mid-take
        with pytest.raises(MicError, match=r"^link to the laptop lost mid-take .*record the take again$"):
            mic.stop()
        mic.start()  # and the next take reconnects
        virtual_mic.say(tone, 24000).wait(30)
        assert sound_stats(mic.stop())["rms"] > 0.1
    finally:
        mic.close()
        tunnel.close()


def test_the_recorder_says_in_one_line_what_is_missing(laptop):
    port = free_port()
    with pytest.raises(MicError) as err:
        LaptopMic(port=port)
    assert str(err.value) == (f"nothing listens on 127.0.0.1:{port}: start `milo-listen --mic` on the laptop and "
                              f"`ssh -R {port}:127.0.0.1:{port} ...`")
    with pytest.raises(MicError) as err:
        LaptopMic(port=laptop())
    assert str(err.value) == "milo-listen on the laptop was started without --mic: restart it with `milo-listen --mic`"


def test_the_playback_link_works_alongside_the_recorder(laptop, virtual_mic, tmp_path):
    port = laptop("--mic")
    events = Events()
    out = LaptopOutput(port=port, on_event=events)
    heard = virtual_mic.pulse.record(tmp_path / "out.raw", sink="out")
    mic = LaptopMic(port=port)
    try:
        out.start("c1", {"text": "while recording"})  # connected before the take and kept open during it
        assert events.wait(lambda e: e.get("clip") == "c1", timeout=10)["state"] == "started", events.items
        mic.start()
        out.feed(0.3 * np.sin(2 * np.pi * 330 * np.arange(24000) / 24000).astype(np.float32))
        out.end()
        time.sleep(0.5)
        assert len(mic.stop()) > 0
        # the listener sent nothing on the playback link during the take (the sender would take it as gone)
        assert select.select([out._sock], [], [], 0)[0] == []
        events.wait(lambda e: e.get("clip") == "c1" and e["state"] == "finished", timeout=10)
        assert sound_stats(heard.stop(sound_s=0.8))["sound_s"] >= 0.8  # and the clip was played
    finally:
        mic.close()
        out.close()
