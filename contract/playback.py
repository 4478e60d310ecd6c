"""Where an audition's audio goes on the Spark side: its speakers, the operator's laptop, or nowhere.

Torch-free: the audition worker, milo-say and the record screen use it. Each output takes a clip as it is
generated (`start`, `feed` chunks, `end`), can be silenced (`stop`), and reports what happened through `on_event` with the same events as `listen.Player` (contract.protocol's
Event.PLAYBACK and Playback states):
{"event": "playback", "clip": id, "state": "started" | "finished" | "stopped" | "device_lost" |
"no_device", "message": "..."}. The WAV is saved by the caller whatever happens here.

  local   sounddevice on this machine (device selectable), via `listen.Player`;
  laptop  a TCP stream to 127.0.0.1:PORT, the end of `ssh -R PORT:127.0.0.1:PORT` from the laptop,
          where `milo-listen` plays it (wire format in listen.py);
  none    save only.
"""
from __future__ import annotations

import json
import select
import socket
import threading
from typing import Callable

import numpy as np

from contract.protocol import OUTPUT_TARGETS, Event, Playback
from contract.listen import (DEFAULT_PORT, KIND_JSON, PROTOCOL, SAMPLE_RATE, Player, describe_output,
                                      pcm_bytes, recv_frame, send_frame, send_json)

HELLO_TIMEOUT_S = 3.0


def peer_closed(sock: socket.socket) -> bool:
    """milo-listen sends nothing unasked after its hello, so a readable socket means it went away (the
    laptop output's link and the laptop microphone's)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def close_quietly(sock: socket.socket | None) -> None:
    if sock is not None:
        try:
            sock.close()
        except OSError:
            pass


class LocalOutput:
    target = "local"

    def __init__(self, device=None, on_event: Callable[[dict], None] | None = None) -> None:
        self.device = device
        self.player = Player(device=device, on_event=on_event)

    def describe(self) -> str:
        # Asked when the output is set, before this output's player opens any stream: the device list is
        # read afresh if the device is not found (a sound server started after the worker).
        return f"spark speakers ({describe_output(self.device, rescan=True)})"

    def start(self, clip, meta: dict) -> None:
        self.player.start(clip, expected_s=meta.get("expected_s"), rate_hint=meta.get("rate_hint"))

    def feed(self, chunk: np.ndarray) -> None:
        self.player.feed(chunk)

    def end(self) -> None:
        self.player.end()

    def stop(self) -> None:
        self.player.stop()

    def wait_idle(self, timeout: float | None = None) -> bool:
        return self.player.wait_idle(timeout)

    def close(self) -> None:
        self.player.close()


class LaptopOutput:
    """Streams clips to milo-listen through the SSH tunnel. Connects at the first clip, and again after
    the link drops (the tunnel or milo-listen restarted): every clip tries once."""

    target = "laptop"

    def __init__(self, port: int = DEFAULT_PORT, host: str = "127.0.0.1", fmt: str = "s16le",
                 on_event: Callable[[dict], None] | None = None) -> None:
        self.port, self.host, self.fmt = int(port), host, fmt
        self.on_event = on_event or (lambda e: None)
        self._sock: socket.socket | None = None
        self._device = None
        self._clip = None
        self._lock = threading.Lock()

    def describe(self) -> str:
        device = f", playing on {self._device}" if self._device else ""
        return f"laptop via 127.0.0.1:{self.port}{device}"

    def _connect(self) -> socket.socket:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=HELLO_TIMEOUT_S)
        except OSError as exc:
            raise ConnectionError(f"nothing listens on {self.host}:{self.port} ({exc.strerror or exc}); "
                                  f"start milo-listen on the laptop and ssh -R {self.port}:127.0.0.1:{self.port}") from None
        try:
            # With `ssh -R`, sshd accepts even when milo-listen is not running; its hello proves it is.
            frame = recv_frame(sock)
            hello = json.loads(frame[1]) if frame and frame[0] == KIND_JSON else None
        except (OSError, ValueError):
            hello = None
        if not hello or hello.get("role") != "listener":
            sock.close()
            raise ConnectionError(f"no milo-listen answered through 127.0.0.1:{self.port} (the tunnel is up, "
                                  f"but is milo-listen running on the laptop with --port {self.port}?)")
        if hello.get("protocol") != PROTOCOL:
            sock.close()
            raise ConnectionError(f"milo-listen speaks protocol {hello.get('protocol')}, we speak {PROTOCOL}: update it")
        sock.settimeout(10.0)
        self._device = hello.get("device")
        return sock

    def _send(self, fn) -> bool:
        with self._lock:
            if self._sock is None:
                return False
            try:
                fn(self._sock)
                return True
            except OSError as exc:
                self._drop()
                self.on_event({"event": Event.PLAYBACK, "clip": self._clip, "state": Playback.DEVICE_LOST,
                               "message": f"link to the laptop lost ({exc.strerror or exc})"})
                self._clip = None
                return False

    def _drop(self) -> None:
        close_quietly(self._sock)
        self._sock = None

    def start(self, clip, meta: dict) -> None:
        with self._lock:
            self._clip = clip
            if self._sock is not None and peer_closed(self._sock):
                self._drop()  # milo-listen restarted or the tunnel dropped since the last clip: reconnect
            if self._sock is None:
                try:
                    self._sock = self._connect()
                except ConnectionError as exc:
                    self.on_event({"event": Event.PLAYBACK, "clip": clip, "state": Playback.NO_DEVICE, "message": str(exc)})
                    self._clip = None
                    return
        header = {"type": "start", "clip": clip, "rate": SAMPLE_RATE, "format": self.fmt, "channels": 1,
                  "checkpoint": meta.get("checkpoint"), "text": meta.get("text")}
        for key in ("expected_s", "rate_hint"):  # for the laptop's start policy (older listeners ignore them)
            if meta.get(key) is not None:
                header[key] = meta[key]
        if self._send(lambda s: send_json(s, header)):
            self.on_event({"event": Event.PLAYBACK, "clip": clip, "state": Playback.STARTED, "message": self.describe()})

    def feed(self, chunk: np.ndarray) -> None:
        if self._clip is not None:
            payload = pcm_bytes(chunk, self.fmt)
            self._send(lambda s: send_frame(s, b"P", payload))

    def end(self) -> None:
        clip = self._clip
        if clip is not None and self._send(lambda s: send_json(s, {"type": "end", "clip": clip})):
            # The laptop plays it from here; finished means "all of it sent".
            self.on_event({"event": Event.PLAYBACK, "clip": clip, "state": Playback.FINISHED, "message": "sent to the laptop"})
        self._clip = None

    def stop(self) -> None:
        clip = self._clip
        if self._send(lambda s: send_json(s, {"type": "stop"})) and clip is not None:
            self.on_event({"event": Event.PLAYBACK, "clip": clip, "state": Playback.STOPPED})
        self._clip = None

    def wait_idle(self, timeout: float | None = None) -> bool:
        return True

    def close(self) -> None:
        self._send(lambda s: send_json(s, {"type": "bye"}))
        with self._lock:
            self._drop()


class NoOutput:
    target = "none"

    def __init__(self, on_event: Callable[[dict], None] | None = None) -> None:
        self.on_event = on_event or (lambda e: None)

    def describe(self) -> str:
        return "no playback (saved only)"

    def start(self, clip, meta: dict) -> None:
        pass

    def feed(self, chunk) -> None:
        pass

    def end(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def wait_idle(self, timeout: float | None = None) -> bool:
        return True

    def close(self) -> None:
        pass


def make_output(target: str, *, device=None, port: int = DEFAULT_PORT, on_event=None):
    if target == "local":
        return LocalOutput(device=device, on_event=on_event)
    if target == "laptop":
        return LaptopOutput(port=port, on_event=on_event)
    if target == "none":
        return NoOutput(on_event=on_event)
    raise ValueError(f"unknown output {target!r}: one of {', '.join(OUTPUT_TARGETS)}")
