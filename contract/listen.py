"""milo-listen: play on your laptop what milo-tui's audition worker sends from the Spark.

    laptop$ python3 listen.py --port 8768          (or `milo-listen --port 8768` where milo-tui is installed)
    laptop$ ssh -R 8768:127.0.0.1:8768 op@spark    (the Spark's 127.0.0.1:8768 now reaches this listener)

Self-contained on purpose: only the standard library, numpy and sounddevice (PortAudio), so the one file
can be copied to a laptop that has neither torch nor milo-tui. The Spark side imports the wire format and
the `Player` from here, so both ends speak and play the same way (docs/audition.md, "Laptop wire format").

Wire format (TCP, one connection carries any number of clips): every frame is
    4-byte big-endian payload length | 1 byte kind | payload
kind b"J": a UTF-8 JSON object;  kind b"P": PCM samples of the current clip (little-endian, mono).
The listener speaks first: {"type": "hello", "role": "listener", "protocol": 1, "device": "..."}.
The sender then sends, per clip: {"type": "start", "clip": id, "rate": 24000, "format": "s16le" | "f32le",
"channels": 1, "checkpoint": ..., "text": ..., optional "expected_s" and "rate_hint" (for the start policy)},
any number of P frames, {"type": "end", "clip": id}.
{"type": "stop"} silences the listener at once (the operator pressed stop); {"type": "bye"} closes.

Microphone (`milo-listen --mic`): the hello also carries "mic": {"device": name, "rate": r} (null without
--mic). A connection that wants the laptop's microphone sends {"type": "record", "take": id}; the
listener records and sends {"type": "level", "take": id, "t": s, "rms_dbfs": x, "peak_dbfs": y} about 20
times a second. {"type": "record_stop", "take": id} ends the take: the listener answers {"type": "take",
"take": id, "rate": r, "samples": n, "format": "s16le", "sha256": hex of the PCM bytes}, P frames of the
16-bit capture (at most 1 MiB each; the capture itself is 16-bit, so it arrives exactly), then {"type":
"take_end", "take": id}. {"type": "record_cancel", "take": id} drops the take: only "take_end" comes back.
A failure is {"type": "mic_error", "take": id, "message": one line}, and ends the take. Every connection
is served on its own thread, so the audition's playback link and the recorder can both be connected; the
listener sends nothing unasked after its hello (the playback link reads a readable socket as "gone").
"""
from __future__ import annotations

import argparse
import hashlib
import json
import queue
import socket
import signal
import struct
import sys
import threading
import time
from typing import Callable

import numpy as np

PROTOCOL = 1
DEFAULT_PORT = 8768       # 8767 is the operator's planned voice server
SAMPLE_RATE = 24000
KIND_JSON, KIND_PCM = b"J", b"P"
_HEADER = struct.Struct(">IB")
MAX_FRAME = 16 * 1024 * 1024
MAX_TAKE_FRAME = 1024 * 1024  # P frames of a take


# ---- wire format ------------------------------------------------------------------------------------
def send_frame(sock: socket.socket, kind: bytes, payload: bytes) -> None:
    sock.sendall(_HEADER.pack(len(payload), kind[0]) + payload)


def send_json(sock: socket.socket, obj: dict) -> None:
    send_frame(sock, KIND_JSON, json.dumps(obj, separators=(",", ":")).encode())


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        part = sock.recv(n - len(buf))
        if not part:
            return None
        buf += part
    return bytes(buf)


def recv_frame(sock: socket.socket) -> tuple[bytes, bytes] | None:
    """(kind, payload), or None when the peer closed the connection."""
    head = _recv_exact(sock, _HEADER.size)
    if head is None:
        return None
    length, kind = _HEADER.unpack(head)
    if length > MAX_FRAME:
        raise ValueError(f"frame of {length} bytes exceeds {MAX_FRAME}: not a milo-listen peer?")
    payload = _recv_exact(sock, length) if length else b""
    if payload is None:
        return None
    return bytes([kind]), payload


def pcm_bytes(chunk: np.ndarray, fmt: str = "s16le") -> bytes:
    chunk = np.asarray(chunk, dtype=np.float32)
    if fmt == "f32le":
        return chunk.astype("<f4").tobytes()
    return (np.clip(chunk, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()


def pcm_samples(payload: bytes, fmt: str = "s16le") -> np.ndarray:
    if fmt == "f32le":
        return np.frombuffer(payload, dtype="<f4").astype(np.float32)
    return np.frombuffer(payload, dtype="<i2").astype(np.float32) / 32767.0


# ---- when to start playing ---------------------------------------------------------------------------
class StartPolicy:
    """When to start (or, after running dry, resume) playing a clip that is still being generated, so that
    it then plays to the end without gaps. Pure: the caller passes the clock's readings.

    Playback started with B seconds of audio buffered, while R more seconds arrive at r seconds of audio
    per wall second in chunks of at most c seconds, never runs dry iff
        B >= c / r                         (the next chunk arrives before the buffer is played), and
        B >= R (1 - r) / r + c             (when r < 1: the shortfall over the rest of the clip, plus
                                            the last chunk, which arrives in one piece).
    So when generation is faster than real time it starts with the first chunk (first audio stays
    fast); when it is slower it waits just long enough. r is measured from the chunks' arrival times
    (from the clip's start for the first chunk, which includes the prompt's prefill: pessimistic; then
    between chunks), or taken from `rate_hint` (the rate the producer measured last time) until two
    chunks have arrived; it is discounted by `safety`. R comes from `expected_s`, the producer's estimate
    of the clip's length (None: unknown, start at once). c is twice the largest chunk seen so far (the
    engine's chunks double), at most `max_chunk_s`. Once everything has arrived, play."""

    def __init__(self, expected_s: float | None = None, rate_hint: float | None = None, *, start: float = 0.0,
                 safety: float = 0.85, margin_s: float = 0.05, max_chunk_s: float = 2.0) -> None:
        self.expected_s = expected_s
        self.rate_hint = rate_hint
        self.safety, self.margin_s, self.max_chunk_s = safety, margin_s, max_chunk_s
        self.t_start = start
        self.arrivals: list[tuple[float, float]] = []   # (time, seconds of audio)
        self.ended = False

    @property
    def received_s(self) -> float:
        return sum(s for _, s in self.arrivals)

    def arrived(self, now: float, seconds: float) -> None:
        self.arrivals.append((now, seconds))

    def end(self) -> None:
        self.ended = True

    def rate(self) -> float | None:
        """Audio seconds produced per wall second (None before the first chunk)."""
        if len(self.arrivals) >= 2:
            (t0, _), (t1, _) = self.arrivals[0], self.arrivals[-1]
            later = sum(s for _, s in self.arrivals[1:])
            return later / (t1 - t0) if t1 > t0 else float("inf")
        if self.rate_hint:
            return self.rate_hint
        if self.arrivals:
            t, s = self.arrivals[0]
            return s / (t - self.t_start) if t > self.t_start else float("inf")
        return None

    def needed_s(self) -> float:
        """Audio that must be buffered (received, not yet played) before playing on is safe."""
        if self.ended or self.expected_s is None:
            return 0.0
        rate = self.rate()
        if rate is None:
            return float("inf")
        largest = max((s for _, s in self.arrivals), default=0.0)
        chunk = min(self.max_chunk_s, 2.0 * largest) if largest else self.max_chunk_s
        remaining = self.expected_s - self.received_s
        if remaining <= 0.0:  # past the estimate, and the end not announced: at least one more chunk
            remaining = chunk
        chunk = min(chunk, remaining)
        rate = rate * self.safety
        if rate <= 0.0:
            return float("inf")
        need = chunk / rate
        if rate < 1.0:
            need = max(need, remaining * (1.0 - rate) / rate + chunk)
        return need + self.margin_s

    def ready(self, played_s: float = 0.0) -> bool:
        """Start (or resume) now? `played_s`: audio of this clip already played."""
        buffered = self.received_s - played_s
        return buffered > 0.0 and (self.ended or buffered >= self.needed_s())


# ---- playback ---------------------------------------------------------------------------------------
class AudioDeviceError(RuntimeError):
    """No usable output device, or it went away; the message is one line."""


NO_DEVICE_HINT = "plug in an output or start the sound server (pulseaudio --start); the next clip looks again"


def describe_output(device=None, rescan: bool = False) -> str:
    """Name of the output device `device` (None: the default) or raise AudioDeviceError.

    PortAudio lists the devices once, when it starts. With `rescan` (only where no stream of this
    process is open: it restarts PortAudio), a device that is not found is looked for again in a fresh
    list, so a sound server started or a headset plugged in after this process began is found."""
    try:
        import sounddevice as sd
    except OSError as exc:  # PortAudio library missing
        raise AudioDeviceError(f"no audio output: {exc} (install libportaudio2)") from None

    def lookup():
        return sd.query_devices(device, kind="output") if device is None else sd.query_devices(device)

    try:
        try:
            info = lookup()
        except (ValueError, sd.PortAudioError):
            if not (rescan and hasattr(sd, "_terminate") and hasattr(sd, "_initialize")):
                raise
            sd._terminate()
            sd._initialize()
            info = lookup()
    except (ValueError, sd.PortAudioError) as exc:
        what = "no default audio output device" if device is None else f"no audio output device {device!r}"
        raise AudioDeviceError(f"{what} ({exc}): {NO_DEVICE_HINT}") from None
    if info.get("max_output_channels", 0) < 1:
        raise AudioDeviceError(f"audio device {info.get('name')!r} has no output channels")
    return str(info.get("name"))


def parse_device(value):
    """A device given on a command line or in a message: an index ("3"), a name, or None (the default)."""
    if value is None or value == "":
        return None
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        return int(value)
    return value


def _resample(chunk: np.ndarray, src: int, dst: int) -> np.ndarray:
    if src == dst or len(chunk) == 0:
        return chunk
    n = int(round(len(chunk) * dst / src))
    return np.interp(np.linspace(0, len(chunk) - 1, n), np.arange(len(chunk)), chunk).astype(np.float32)


class Player:
    """Plays clips of float32 mono audio, chunk by chunk as they arrive, one sounddevice stream per clip.

    The stream runs in callback mode: PortAudio pulls audio at its own pace and gets silence when nothing
    is buffered, so a slow generator never wedges the device (blocking writes through ALSA's PulseAudio
    plugin were seen to hang after an underrun). The stream opens at `start()`, while the first chunk is
    being made, and starts playing when `StartPolicy` says the buffered audio will last to the end of the
    clip: at once when generation is faster than real time, later when it is slower, so a slow generator
    delays the sound instead of chopping it. Should the buffer still run dry mid-clip (the estimate was
    short, the machine got busy), playback holds (silence, nothing skipped) until the policy says go again:
    one pause, not a stutter. A control thread takes ("start"|"audio"|"end"|"stop") items from a queue and
    watches the stream: a stream that dies mid-clip is a lost device. `stop()` drops everything queued at
    once. Events go to `on_event` (from the control thread):
    {"event": "playback", "clip": id, "state": "started" | "playing" | "finished" | "stopped" | "device_lost"
    | "no_device", "message": "...", "played_s": x, ...}. "playing" (sound starts) carries `start_delay_s`
    (first chunk to sound: the wait the policy chose), `buffered_s`, `rate` and `expected_s`; "finished"
    carries `start_delay_s`, `rebuffers` and `rebuffer_s` (pauses after running dry, and their length)."""

    LATENCY_S = 0.1

    def __init__(self, device=None, samplerate: int = SAMPLE_RATE, on_event: Callable[[dict], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.device = device
        self.samplerate = samplerate
        self.on_event = on_event or (lambda e: None)
        self.clock = clock
        self._queue: queue.Queue = queue.Queue()
        self._generation = 0            # bumped by stop(): items queued before it are dropped
        self._lock = threading.Lock()
        self._buffer: list[np.ndarray] = []   # audio waiting for the callback (guarded by _buf_lock)
        self._offset = 0
        self._played = 0
        self._hold = False              # the callback plays silence without consuming (waiting to resume)
        self._ending = False            # no more audio will come for this clip
        self._ran_dry_at: float | None = None
        self._buf_lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        self._thread = threading.Thread(target=self._run, name="milo-player", daemon=True)
        self._thread.start()

    # producer side
    def start(self, clip, expected_s: float | None = None, rate_hint: float | None = None) -> None:
        """A new clip. `expected_s`: the producer's estimate of its length (None: start with the first
        chunk); `rate_hint`: its last measured production rate (audio seconds per wall second)."""
        self._idle.clear()
        self._put(("start", (clip, expected_s, rate_hint)))

    def feed(self, chunk: np.ndarray) -> None:
        self._put(("audio", np.asarray(chunk, dtype=np.float32)))

    def end(self) -> None:
        self._put(("end", None))

    def play(self, clip, audio: np.ndarray) -> None:
        self.start(clip, expected_s=len(audio) / self.samplerate)
        self.feed(audio)
        self.end()

    def stop(self) -> None:
        with self._lock:
            self._generation += 1
        self._put(("stop", None))

    def wait_idle(self, timeout: float | None = None) -> bool:
        return self._idle.wait(timeout)

    def close(self) -> None:
        self.stop()
        self._put(("quit", None))
        self._thread.join(timeout=5)

    def _put(self, item) -> None:
        with self._lock:
            self._queue.put((self._generation, item))

    # PortAudio's thread
    def _callback(self, outdata, frames, time_info, status) -> None:
        out = outdata[:, 0]
        n = 0
        with self._buf_lock:
            if not self._hold:
                while n < frames and self._buffer:
                    head = self._buffer[0]
                    take = min(frames - n, len(head) - self._offset)
                    out[n:n + take] = head[self._offset:self._offset + take]
                    n += take
                    self._offset += take
                    if self._offset >= len(head):
                        self._buffer.pop(0)
                        self._offset = 0
                self._played += n
                if n < frames and not self._ending:
                    self._hold = True  # ran dry mid-clip: hold until the policy says go again
                    self._ran_dry_at = self.clock()
        out[n:] = 0.0

    def _pending(self) -> int:
        with self._buf_lock:
            return sum(len(b) for b in self._buffer) - self._offset

    # control thread
    def _emit(self, clip, state: str, **extra) -> None:
        try:
            self.on_event({"event": "playback", "clip": clip, "state": state, **extra})
        except Exception:  # a broken listener must not kill the player
            pass

    def _open(self):
        import sounddevice as sd

        describe_output(self.device, rescan=True)  # no stream of this player is open here
        kwargs = dict(channels=1, dtype="float32", device=self.device, callback=self._callback, latency=self.LATENCY_S)
        try:
            stream, rate = sd.OutputStream(samplerate=self.samplerate, **kwargs), self.samplerate
        except sd.PortAudioError:
            # Some devices (WASAPI shared mode, some USB DACs) refuse 24 kHz: play at the device's rate.
            rate = int(sd.query_devices(self.device, kind="output")["default_samplerate"])
            stream = sd.OutputStream(samplerate=rate, **kwargs)
        return stream, rate  # started by the policy: silence queued ahead of the sound would delay it

    def _run(self) -> None:
        stream, rate, clip, ending, started = None, self.samplerate, None, False, False
        policy: StartPolicy | None = None
        first_at = start_delay = None
        rebuffers, rebuffer_s = 0, 0.0

        def close(abort: bool) -> None:
            nonlocal stream
            if stream is not None:
                try:
                    (stream.abort if abort else stream.stop)()
                    stream.close()
                except Exception:
                    pass
                stream = None
            with self._buf_lock:
                self._buffer.clear()
                self._offset = 0
                self._hold = False

        def played() -> float:
            return round(self._played / rate, 3)

        def finished_fields() -> dict:
            return {"played_s": played(), "start_delay_s": None if start_delay is None else round(start_delay, 3),
                    "rebuffers": rebuffers, "rebuffer_s": round(rebuffer_s, 3)}

        def go(now: float) -> None:
            """Start the stream, or resume it after it ran dry, if the policy says so."""
            nonlocal started, start_delay, rebuffers, rebuffer_s, clip, ending
            if stream is None or policy is None or not policy.ready(self._played / rate):
                return
            if not started:
                try:
                    stream.start()
                    started = True
                except Exception as exc:
                    close(abort=True)
                    self._emit(clip, "device_lost", message=_one_line(exc), played_s=0.0)
                    clip, ending = None, False
                    return
                start_delay = now - first_at if first_at is not None else 0.0
                rate_now = policy.rate()
                self._emit(clip, "playing", start_delay_s=round(start_delay, 3),
                           buffered_s=round(policy.received_s, 3), expected_s=policy.expected_s,
                           rate=None if rate_now is None or rate_now == float("inf") else round(rate_now, 3))
                return
            with self._buf_lock:
                if self._hold:
                    self._hold = False
                    if self._pending_locked() > 0:  # a real pause (not just the clip's last sample played)
                        rebuffers += 1
                        rebuffer_s += max(0.0, now - (self._ran_dry_at if self._ran_dry_at is not None else now))
                    self._ran_dry_at = None

        while True:
            try:
                generation, (kind, value) = self._queue.get(timeout=0.05)
            except queue.Empty:
                kind = None
            if stream is not None and started and not stream.active:  # PortAudio gave up: the device went away
                close(abort=True)
                self._emit(clip, "device_lost", message="the audio device stopped working mid-play (unplugged, "
                           "or its sound server went away)", played_s=played())
                clip, ending = None, False
            if kind is None:
                if ending and stream is not None and (self._pending() <= 0 or not started):
                    close(abort=False)  # stop() lets the device's own buffer play out
                    self._emit(clip, "finished", **finished_fields())
                    clip, ending = None, False
                if clip is None and self._queue.empty():
                    self._idle.set()
                continue
            with self._lock:
                current = self._generation
            if kind == "quit":
                close(abort=True)
                self._idle.set()
                return
            if kind == "stop" or generation != current:
                if clip is not None:
                    was_open = stream is not None
                    close(abort=True)
                    if was_open:
                        self._emit(clip, "stopped", played_s=played())
                    clip, ending = None, False
                continue
            now = self.clock()
            if kind == "start":
                if stream is not None:  # a new clip before the last one ended: finish that one first
                    while self._pending() > 0 and stream.active:
                        time.sleep(0.02)
                    close(abort=False)
                    self._emit(clip, "finished", **finished_fields())
                (clip, expected_s, rate_hint), ending, started = value, False, False
                policy = StartPolicy(expected_s, rate_hint, start=now)
                first_at = start_delay = None
                rebuffers, rebuffer_s = 0, 0.0
                with self._buf_lock:
                    self._played = 0
                    self._hold = False
                    self._ending = False
                    self._ran_dry_at = None
                try:
                    stream, rate = self._open()
                    self._emit(clip, "started")
                except Exception as exc:  # AudioDeviceError or PortAudioError: one line, keep going
                    close(abort=True)
                    self._emit(clip, "no_device", message=_one_line(exc))
                    clip = None
            elif kind == "audio" and stream is not None:
                with self._buf_lock:
                    self._buffer.append(_resample(value, self.samplerate, rate))
                if first_at is None:
                    first_at = now
                policy.arrived(now, len(value) / self.samplerate)
                go(now)
            elif kind == "end":
                ending = stream is not None
                with self._buf_lock:
                    self._ending = True
                if policy is not None:
                    policy.end()
                    go(now)

    def _pending_locked(self) -> int:
        return sum(len(b) for b in self._buffer) - self._offset


# ---- recording --------------------------------------------------------------------------------------
MIC_HINT = "plug in a microphone or start the sound server; `milo-listen --list-devices` lists the inputs"
SILENCE_DBFS = -120.0


def describe_input(device=None) -> tuple[str, int]:
    """(name, default sample rate) of the input device `device` (None: the default), or AudioDeviceError."""
    try:
        import sounddevice as sd
    except OSError as exc:  # PortAudio library missing
        raise AudioDeviceError(f"no audio input: {exc} (install libportaudio2)") from None
    try:
        info = sd.query_devices(device, kind="input") if device is None else sd.query_devices(device)
    except (ValueError, sd.PortAudioError) as exc:
        what = "no default microphone" if device is None else f"no microphone {device!r}"
        raise AudioDeviceError(f"{what} ({_one_line(exc)}): {MIC_HINT}") from None
    if info.get("max_input_channels", 0) < 1:
        raise AudioDeviceError(f"audio device {info.get('name')!r} has no input channels: pick a microphone")
    return str(info.get("name")), int(info.get("default_samplerate") or 48000)


def dbfs(value: float) -> float:
    return round(max(SILENCE_DBFS, 20.0 * float(np.log10(value))) if value > 0 else SILENCE_DBFS, 2)


def take_pcm(audio: np.ndarray) -> bytes:
    """A take's float32 samples (16-bit values / 32768, as Capture returns them) as s16le, exactly."""
    return np.clip(np.round(np.asarray(audio, np.float32) * 32768.0), -32768, 32767).astype("<i2").tobytes()


def take_samples(payload: bytes) -> np.ndarray:
    return np.frombuffer(payload, dtype="<i2").astype(np.float32) / 32768.0


class Capture:
    """Records one take at a time, mono, from an input device through a sounddevice InputStream.

    The stream captures 16-bit integers (what the converters deliver anyway), so a take is exactly
    representable on the wire; `stop()` returns them as float32 / 32768. A stream opens per take, so a
    device that failed once is tried afresh on the next. `start()` returns once the first block has arrived:
    a process's first stream through ALSA's PulseAudio plugin was seen to deliver nothing for 1.9 s (that
    audio is lost), and a take must not begin before the microphone does. Every block (about 50 ms) `on_level` gets
    {"t": seconds recorded, "rms_dbfs", "peak_dbfs"} from PortAudio's thread. A stream that stopped
    delivering blocks mid-take (device unplugged, sound server gone) makes `stop()` raise."""

    BLOCK_S = 0.05
    STALL_S = 1.0   # no block for this long: the device is gone
    START_S = 5.0   # the first block must arrive within this

    def __init__(self, device=None, rate: int | None = None) -> None:
        self.device = device
        self.device_name, default_rate = describe_input(device)
        self.rate = int(rate or default_rate)
        self._stream = None
        self._blocks: list[np.ndarray] = []
        self._frames = 0
        self._last_block = 0.0
        self._on_level: Callable[[dict], None] | None = None
        self._flowing = threading.Event()

    def start(self, on_level: Callable[[dict], None] | None = None) -> None:
        import sounddevice as sd

        self.cancel()
        self._blocks, self._frames, self._on_level = [], 0, on_level
        self._flowing.clear()
        try:
            stream = sd.InputStream(device=self.device, samplerate=self.rate, channels=1, dtype="int16",
                                    blocksize=int(self.rate * self.BLOCK_S), callback=self._callback)
            stream.start()
        except sd.PortAudioError as exc:
            raise AudioDeviceError(self._open_error(exc)) from None
        self._stream = stream
        if not self._flowing.wait(self.START_S):
            self.cancel()
            raise AudioDeviceError(f"microphone {self.device_name!r} delivered no audio within {self.START_S:.0f} s: "
                                   f"check it (muted, unplugged?) and try again")

    def _open_error(self, exc: Exception) -> str:
        text = _one_line(exc)
        if any(w in text.lower() for w in ("unavailable", "busy")):
            return (f"microphone {self.device_name!r} is busy ({text}): close the program recording from it, "
                    "or pick another device")
        return f"cannot open microphone {self.device_name!r} at {self.rate} Hz ({text}): {MIC_HINT}"

    def _callback(self, indata, frames, time_info, status) -> None:
        block = indata[:, 0].copy()
        self._blocks.append(block)
        self._frames += frames
        self._last_block = time.monotonic()
        self._flowing.set()
        if self._on_level is not None and frames:
            x = np.abs(block.astype(np.float32)) / 32768.0
            try:
                self._on_level({"t": round(self._frames / self.rate, 3), "rms_dbfs": dbfs(np.sqrt(np.mean(x * x))),
                                "peak_dbfs": dbfs(x.max())})
            except Exception:  # a broken listener must not kill the stream
                pass

    def _end(self) -> bool:
        """Close the take's stream; whether it was still delivering audio."""
        stream, self._stream = self._stream, None
        if stream is None:
            return True
        alive = stream.active and time.monotonic() - self._last_block < self.STALL_S
        try:
            (stream.stop if alive else stream.abort)()
            stream.close()
        except Exception:
            alive = False
        return alive

    def stop(self) -> np.ndarray:
        """End the take: its samples (float32, mono, at `rate`)."""
        if not self._end():
            raise AudioDeviceError(f"microphone {self.device_name!r} stopped delivering audio mid-take (unplugged, or "
                                   "its sound server went away): check it and record the take again")
        audio = np.concatenate(self._blocks) if self._blocks else np.zeros(0, np.int16)
        self._blocks = []
        return audio.astype(np.float32) / 32768.0

    def cancel(self) -> None:
        self._end()
        self._blocks = []

    def close(self) -> None:
        self.cancel()


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or exc.__class__.__name__
    return text if isinstance(exc, AudioDeviceError) else f"{exc.__class__.__name__}: {text}"


# ---- the listener -----------------------------------------------------------------------------------
class _Takes:
    """One connection's takes. Frames go out through a queue and a writer thread, so the levels that
    PortAudio's thread produces never wait on the network, and stay ahead of the take they belong to."""

    def __init__(self, conn: socket.socket, mic: tuple[str, int] | None, device, log: Callable[[str], None]) -> None:
        self.conn, self.mic, self.device, self.log = conn, mic, device, log
        self.outbox: queue.Queue = queue.Queue()
        self.capture: Capture | None = None
        self.take = None
        threading.Thread(target=self._write, name="milo-listen-takes", daemon=True).start()

    def _write(self) -> None:
        while (item := self.outbox.get()) is not None:
            try:
                send_frame(self.conn, *item)
            except OSError:
                return  # the connection's reader sees the drop

    def _json(self, obj: dict) -> None:
        self.outbox.put((KIND_JSON, json.dumps(obj, separators=(",", ":")).encode()))

    def _error(self, take, message: str) -> None:
        self.log(f"milo-listen: take {take}: {message}")
        self._json({"type": "mic_error", "take": take, "message": message})

    def handle(self, msg: dict) -> None:
        typ, take = msg.get("type"), msg.get("take")
        if self.mic is None:
            return self._error(take, "milo-listen on the laptop was started without --mic: restart it with `milo-listen --mic`")
        if typ == "record":
            if self.capture is not None:
                return self._error(take, f"take {self.take} is still recording: stop it first")
            try:
                capture = Capture(self.device, self.mic[1])
                capture.start(lambda level: self._json({"type": "level", "take": take, **level}))
            except AudioDeviceError as exc:
                return self._error(take, str(exc))
            self.capture, self.take = capture, take
            self.log(f"milo-listen: recording take {take}")
            return
        capture, self.capture = self.capture, None
        if capture is None or take != self.take:
            if capture is not None:
                capture.cancel()
            return self._error(take, f"no take {take} is recording")
        if typ == "record_cancel":
            capture.cancel()
            self._json({"type": "take_end", "take": take})
            return
        try:
            pcm = take_pcm(capture.stop())
        except AudioDeviceError as exc:
            return self._error(take, str(exc))
        self._json({"type": "take", "take": take, "rate": capture.rate, "samples": len(pcm) // 2, "format": "s16le",
                    "sha256": hashlib.sha256(pcm).hexdigest()})
        for i in range(0, len(pcm), MAX_TAKE_FRAME):
            self.outbox.put((KIND_PCM, pcm[i:i + MAX_TAKE_FRAME]))
        self._json({"type": "take_end", "take": take})
        self.log(f"milo-listen: take {take}: {len(pcm) / 2 / capture.rate:.1f} s sent")

    def close(self) -> None:
        if self.capture is not None:
            self.capture.cancel()
            self.capture = None
        self.outbox.put(None)


class Listener:
    """Accepts the Spark's connections on 127.0.0.1:port (the tunnel's end), plays their clips and, with
    `mic`, records takes for them. Each connection has its own thread: the audition's playback link and
    the recorder may both be connected. A dropped connection is simply accepted again (reconnects)."""

    def __init__(self, port: int = DEFAULT_PORT, device=None, host: str = "127.0.0.1",
                 log: Callable[[str], None] = print, mic: bool = False, mic_device=None) -> None:
        self.log = log
        self.mic = describe_input(mic_device) if mic else None   # (name, rate); AudioDeviceError when none
        self.mic_device = mic_device
        self.player = Player(device=device, on_event=self._on_playback)
        self.server = socket.create_server((host, port), reuse_port=False)
        self.port = self.server.getsockname()[1]
        self.device = device
        self._closing = threading.Event()

    def _on_playback(self, event: dict) -> None:
        state = event["state"]
        if state in ("no_device", "device_lost"):
            self.log(f"milo-listen: {event.get('message')} (clip {event.get('clip')})")
        elif state == "finished":
            self.log(f"  played {event.get('played_s', 0):.1f} s")

    def serve_forever(self) -> None:
        self.log(f"milo-listen: waiting for the Spark on 127.0.0.1:{self.port} "
                 f"(ssh -R {self.port}:127.0.0.1:{self.port} <you>@<spark>)")
        while not self._closing.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                break
            threading.Thread(target=self._serve_and_close, args=(conn,), name="milo-listen-conn", daemon=True).start()

    def _serve_and_close(self, conn: socket.socket) -> None:
        with conn:
            self._serve(conn)

    def _serve(self, conn: socket.socket) -> None:
        try:
            name = describe_output(self.device)
        except AudioDeviceError as exc:
            name = f"none ({exc})"
        mic = {"device": self.mic[0], "rate": self.mic[1]} if self.mic else None
        try:
            send_json(conn, {"type": "hello", "role": "listener", "protocol": PROTOCOL, "device": name, "mic": mic})
        except OSError:
            return
        self.log(f"milo-listen: connected; playing on {name}")
        fmt, open_clip, takes = "s16le", None, None
        try:
            while True:
                frame = recv_frame(conn)
                if frame is None:
                    break
                kind, payload = frame
                if kind == KIND_PCM:
                    if open_clip is not None:
                        self.player.feed(pcm_samples(payload, fmt))
                    continue
                msg = json.loads(payload)
                typ = msg.get("type")
                if typ == "start":
                    fmt, open_clip = msg.get("format", "s16le"), msg.get("clip")
                    self.player.start(open_clip, expected_s=_number(msg.get("expected_s")),
                                      rate_hint=_number(msg.get("rate_hint")))
                    label = msg.get("checkpoint") or ""
                    self.log(f"> {label}: {msg.get('text', '')!r}")
                elif typ == "end":
                    self.player.end()
                    open_clip = None
                elif typ == "stop":
                    self.player.stop()
                    open_clip = None
                elif typ in ("record", "record_stop", "record_cancel"):
                    takes = takes or _Takes(conn, self.mic, self.mic_device, self.log)
                    takes.handle(msg)
                elif typ == "bye":
                    break
        except (OSError, ValueError) as exc:
            self.log(f"milo-listen: connection lost ({exc})")
        if open_clip is not None:
            self.player.end()  # play what arrived of a clip cut short
        if takes is not None:
            takes.close()
        self.log("milo-listen: disconnected; waiting for the Spark to reconnect")

    def close(self) -> None:
        self._closing.set()
        try:
            self.server.close()
        except OSError:
            pass
        self.player.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="milo-listen",
        description="Play milo-tui auditions from a DGX Spark on this machine, through an SSH tunnel: "
                    "run this, then `ssh -R PORT:127.0.0.1:PORT you@spark` and choose the laptop output "
                    "in milo-tui's audition screen (key o). With --mic it also records takes for the recording screen.")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"local port to listen on (default {DEFAULT_PORT})")
    p.add_argument("--device", default=None, help="output device name or index (default: the system default)")
    p.add_argument("--mic", action="store_true", help="also record takes for milo-tui's recording screen")
    p.add_argument("--mic-device", default=None, help="input device name or index for --mic (default: the system default)")
    p.add_argument("--list-devices", action="store_true", help="list audio devices and exit")
    args = p.parse_args(argv)
    # Ctrl+C ends it: taken even when started with SIGINT ignored (a background job, nohup)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if args.list_devices:
        import sounddevice as sd

        print(sd.query_devices())
        return 0
    device = parse_device(args.device)
    try:
        print(f"milo-listen: output device: {describe_output(device)}", flush=True)
        listener = Listener(port=args.port, device=device, log=lambda s: print(s, flush=True), mic=args.mic,
                            mic_device=parse_device(args.mic_device))
    except AudioDeviceError as exc:
        print(f"milo-listen: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"milo-listen: cannot listen on 127.0.0.1:{args.port}: {exc}", file=sys.stderr)
        return 1
    if listener.mic:
        print(f"milo-listen: microphone: {listener.mic[0]} @ {listener.mic[1]} Hz", flush=True)
    try:
        listener.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        listener.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
