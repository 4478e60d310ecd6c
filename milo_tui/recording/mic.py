"""One microphone interface for the recording screen, whichever end of the SSH link the microphone is on.

Torch-free: the dashboard process never imports torch. `LocalMic` records from an input device of the
Spark itself (contract.listen.Capture); `LaptopMic` asks `milo-listen --mic` on the operator's laptop to
record, through the `ssh -R` tunnel (wire format in contract/listen.py). Both have `.label` (which
microphone, at what rate: the screen shows it), `.rate`, `start(on_level)` (returns once the microphone
delivers audio; then about 20 times a second `on_level({"t", "rms_dbfs", "peak_dbfs"})` from a background
thread), `stop()` -> float32 mono samples at `.rate`, `cancel()` and `close()`. Every failure is a
MicError of one line that says what to do.
"""
from __future__ import annotations

import hashlib
import json
import socket
import threading
from typing import Callable

import numpy as np

from contract.listen import (DEFAULT_PORT, KIND_JSON, KIND_PCM, PROTOCOL, AudioDeviceError, Capture, recv_frame,
                             send_json, take_samples)
from contract.playback import close_quietly, peer_closed

OnLevel = Callable[[dict], None] | None


class MicError(Exception):
    """A microphone problem, in one line with what to do."""


class LocalMic:
    """The Spark's own input device (None: the default)."""

    def __init__(self, device=None) -> None:
        try:
            self.capture = Capture(device)
        except AudioDeviceError as exc:
            raise MicError(f"Spark: {exc}") from None
        self.rate = self.capture.rate
        self.label = f"Spark: {self.capture.device_name} @ {self.rate} Hz"

    def start(self, on_level: OnLevel = None) -> None:
        try:
            self.capture.start(on_level)
        except AudioDeviceError as exc:
            raise MicError(f"Spark: {exc}") from None

    def stop(self) -> np.ndarray:
        try:
            return self.capture.stop()
        except AudioDeviceError as exc:
            raise MicError(f"Spark: {exc}") from None

    def cancel(self) -> None:
        self.capture.cancel()

    def close(self) -> None:
        self.capture.close()


class _Take:
    """What the reader thread gathered of one take."""

    def __init__(self, take: int, on_level: OnLevel) -> None:
        self.id, self.on_level = take, on_level
        self.header: dict | None = None
        self.pcm: list[bytes] = []
        self.error: str | None = None
        self.lost = False                   # the link dropped: reconnect at the next start
        self.flowing = threading.Event()    # the first level (or the end) arrived
        self.done = threading.Event()


class LaptopMic:
    """The laptop's microphone, through `milo-listen --mic` at the tunnel's end. Connects when made (so
    `label` can name the laptop's microphone), and again at the next `start` after the link dropped. A
    take's PCM is checked against the listener's sample count and sha256: a damaged take is an error, not
    a silently different recording. `timeout`: the longest silence of the link that is not a lost link
    (levels arrive every 50 ms; the laptop's first block may take seconds)."""

    def __init__(self, port: int = DEFAULT_PORT, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
        self.port, self.host, self.timeout = int(port), host, timeout
        self._sock: socket.socket | None = None
        self._take: _Take | None = None
        self._count = 0
        self._connect()

    def _connect(self) -> None:
        where = f"{self.host}:{self.port}"
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError:
            raise MicError(f"nothing listens on {where}: start `milo-listen --mic` on the laptop and "
                           f"`ssh -R {self.port}:127.0.0.1:{self.port} ...`") from None
        try:  # with `ssh -R`, sshd accepts even when milo-listen is not running; its hello proves it is
            frame = recv_frame(sock)
            hello = json.loads(frame[1]) if frame and frame[0] == KIND_JSON else None
        except (OSError, ValueError):
            hello = None
        mic = hello.get("mic") if isinstance(hello, dict) else None
        problem = None
        if not isinstance(hello, dict) or hello.get("role") != "listener":
            problem = (f"no milo-listen answered through {where} (the tunnel is up): start `milo-listen --mic` "
                       f"on the laptop with --port {self.port}")
        elif hello.get("protocol") != PROTOCOL:
            problem = f"milo-listen speaks protocol {hello.get('protocol')}, we speak {PROTOCOL}: update it on the laptop"
        elif not mic:
            problem = "milo-listen on the laptop was started without --mic: restart it with `milo-listen --mic`"
        if problem:
            sock.close()
            raise MicError(problem)
        self._sock = sock
        self.rate = int(mic["rate"])
        self.label = f"laptop (milo-listen): {mic['device']} @ {self.rate} Hz"

    def _drop(self) -> None:
        close_quietly(self._sock)
        self._sock = None

    def start(self, on_level: OnLevel = None) -> None:
        self.cancel()
        if self._sock is not None and peer_closed(self._sock):
            self._drop()  # milo-listen restarted or the tunnel dropped since the last take
        if self._sock is None:
            self._connect()
        self._count += 1
        take = self._take = _Take(self._count, on_level)
        threading.Thread(target=self._read, args=(self._sock, take), name="milo-laptop-mic", daemon=True).start()
        self._send({"type": "record", "take": take.id})
        take.flowing.wait()  # bounded by the reader's timeout
        if take.error:
            self._finish(take)

    def _send(self, msg: dict) -> None:
        try:
            send_json(self._sock, msg)
        except OSError as exc:
            self._lost(self._take, exc)

    def _lost(self, take: _Take | None, exc: Exception) -> None:
        if take is not None and not take.done.is_set():
            take.error = (f"link to the laptop lost mid-take ({exc.__class__.__name__}: {exc}): check the ssh "
                          "tunnel and milo-listen, then record the take again")
            take.lost = True
            take.flowing.set()
            take.done.set()

    def _read(self, sock: socket.socket, take: _Take) -> None:
        try:
            while True:
                frame = recv_frame(sock)
                if frame is None:
                    raise ConnectionError("milo-listen closed the connection")
                kind, payload = frame
                if kind == KIND_PCM:
                    take.pcm.append(payload)
                    continue
                msg = json.loads(payload)
                typ = msg.pop("type", None)
                if msg.pop("take", None) != take.id:
                    continue
                if typ == "level":
                    take.flowing.set()
                    if take.on_level is not None:
                        try:
                            take.on_level(msg)
                        except Exception:  # a broken meter must not lose the take
                            pass
                elif typ == "take":
                    take.header = msg
                elif typ in ("take_end", "mic_error"):
                    take.error = f"laptop: {msg.get('message')}" if typ == "mic_error" else None
                    take.flowing.set()
                    take.done.set()
                    return
        except (OSError, ValueError) as exc:
            self._lost(take, exc)

    def _finish(self, take: _Take) -> None:
        """The take is over: raise its error, dropping a lost link."""
        self._take = None
        if take.lost:
            self._drop()
        if take.error:
            raise MicError(take.error)

    def stop(self) -> np.ndarray:
        take = self._take
        if take is None:
            raise MicError("no take is recording")
        self._send({"type": "record_stop", "take": take.id})
        take.done.wait()  # bounded by the reader's timeout
        self._finish(take)
        pcm, head = b"".join(take.pcm), take.header or {}
        if len(pcm) != 2 * head.get("samples", -1) or hashlib.sha256(pcm).hexdigest() != head.get("sha256"):
            raise MicError("take arrived damaged (checksum mismatch): record it again")
        self.rate = int(head.get("rate", self.rate))
        return take_samples(pcm)

    def cancel(self) -> None:
        take = self._take
        if take is None:
            return
        if not take.done.is_set():
            self._send({"type": "record_cancel", "take": take.id})
            take.done.wait(self.timeout)
        if not take.done.is_set():
            take.lost = True
        self._take = None
        if take.lost:
            self._drop()

    def close(self) -> None:
        self.cancel()
        if self._sock is not None:
            try:
                send_json(self._sock, {"type": "bye"})
            except OSError:
                pass
        self._drop()
