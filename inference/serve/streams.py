"""Several speech streams on one model: the scheduler of the speech server (docs/serving.md, "Sharing").

One engine thread owns the model. Each request is a `Stream` (an Audition's chunk generator with its
own `Lane`: random state and talker cache). At most `max_active` streams are open at once; behind
them a bounded queue waits; past that a request is refused (`Busy`, a 503 with Retry-After).

The engine thread advances one stream by one codec frame at a time (decoding a chunk when the frame
completes one), always the one whose listener will run out of audio first (earliest deadline first): a
new stream is owed audio shortly after its arrival (FIRST_AUDIO_GRACE_S), a playing one from the moment
the audio it has already received ends (its first audio + the audio seconds sent), less the time the
frames its next chunk still needs and its decode will take (averaged). So a newcomer waits at most the
frame (or chunk decode) in progress unless a playing stream is about to run dry, and streams that are
ahead of real time wait while one that is behind catches up. Each stream's codes are those of the same request run alone (the lane), whatever ran between its
frames.

A stream whose client has gone is cancelled: the engine stops it at the next frame (`Cancelled`), and
the model is free for the others. Nothing here knows HTTP: `deliver` gets each item in the engine
thread (the server hands it to its event loop).
"""
from __future__ import annotations

import collections
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from contract.audio import SAMPLE_RATE
from contract.errors import one_line
from contract.text import TextError
from inference.engine import Engine, EngineError, Lane
from inference.loop import CHUNK_SCHEDULE, Cancelled
from inference.pipeline import Audition
from inference.sampling import log


# How long a new request may wait for its first chunk before it counts as late: a stream already playing
# whose audio is about to run out goes first (a gap in speech is worse than 0.3 s more before it starts;
# at 8 simultaneous clients here 0.1 s left 22-26 late reads, 0.3 s 4-14: docs/benchmarks.md).
FIRST_AUDIO_GRACE_S = 0.3


class Busy(Exception):
    """Every stream slot and queue place is taken."""


@dataclass
class Item:
    """What a stream delivers: a chunk of audio, or its end (`done`), with an error when it failed."""
    audio: np.ndarray | None = None
    done: bool = False
    error: str | None = None
    cancelled: bool = False


@dataclass(eq=False)
class Stream:
    audition: Audition | None
    deliver: Callable[[Item], None]
    voice: Path | None = None            # the checkpoint (a bundle on the loaded base) it speaks with; None: any
    make: Callable[[], Audition] | None = None   # makes `audition` on the engine thread once `voice` is loaded
    arrived: float = field(default_factory=time.perf_counter)
    cancel: threading.Event = field(default_factory=threading.Event)
    lane: Lane = field(default_factory=Lane)
    first_audio: float | None = None     # perf_counter when its first chunk was made
    audio_s: float = 0.0
    chunks: int = 0
    frames_pending: int = 0              # frames made since its last chunk
    started: float | None = None         # when the engine first worked on it (queue wait = started - arrived)
    ended: float | None = None
    _gen: object = None

    def deadline(self, frame_s: float = 0.0, chunk_s: float = 0.0) -> float:
        """When the engine must start on its next chunk for the listener to have it in time: when the
        audio it has runs out (a newcomer: FIRST_AUDIO_GRACE_S after it came), less the frames that chunk
        still needs (`frame_s` each) and its decode (`chunk_s`)."""
        due = self.arrived + FIRST_AUDIO_GRACE_S if self.first_audio is None else self.first_audio + self.audio_s
        needed = max(0, CHUNK_SCHEDULE[min(self.chunks, len(CHUNK_SCHEDULE) - 1)] - self.frames_pending)
        return due - needed * frame_s - chunk_s


class Scheduler:
    """The engine thread and its streams. `submit` from any thread; `close` stops the thread."""

    def __init__(self, engine: Engine, *, max_active: int = 4, queue: int = 8,
                 on_change: Callable[[], None] | None = None) -> None:
        self.engine = engine
        self.max_active, self.max_queued = int(max_active), int(queue)
        self.on_change = on_change
        self.active: list[Stream] = []
        self.waiting: collections.deque[Stream] = collections.deque()
        self.frame_s = 0.0                  # a frame's engine time, averaged over the last steps
        self.chunk_s = 0.0                  # a step that completes a chunk (its frame and the decode), averaged
        self.cancelled = 0                  # streams stopped because their client went away
        self.voice_switches = 0             # bundles switched on the loaded base between streams
        self._cv = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="engine", daemon=True)
        self._thread.start()

    # ---- from any thread -----------------------------------------------------------------------
    def submit(self, stream: Stream) -> None:
        """Queue `stream`; raises Busy when the active streams and the queue are full."""
        with self._cv:
            if self._closing:
                raise Busy("the server is stopping")
            if len(self.active) + len(self.waiting) >= self.max_active + self.max_queued:
                raise Busy(f"busy: {self.max_active} stream(s) speaking and {self.max_queued} waiting, the server's limits")
            self.waiting.append(stream)
            self._cv.notify()
        self._changed()

    def cancel(self, stream: Stream) -> None:
        """The client is gone: stop it at the next frame (or take it out of the queue)."""
        stream.cancel.set()
        with self._cv:
            self._cv.notify()

    def depth(self) -> tuple[int, int]:
        """(active streams, waiting requests)."""
        with self._cv:
            return len(self.active), len(self.waiting)

    def close(self, timeout: float = 10.0) -> None:
        with self._cv:
            self._closing = True
            for stream in list(self.active) + list(self.waiting):
                stream.cancel.set()
            self._cv.notify()
        self._thread.join(timeout)

    def run_alone(self, audition: Audition) -> None:
        """Make one audition on the engine thread before any stream (the warm-up). EngineError if it fails."""
        done = threading.Event()
        ends: list[Item] = []

        def deliver(item: Item) -> None:
            if item.done:
                ends.append(item)
                done.set()

        self.submit(Stream(audition, deliver))
        done.wait()
        if ends[0].error:
            raise EngineError(f"the warm-up audition failed: {ends[0].error}")

    # ---- the engine thread ---------------------------------------------------------------------
    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def _next(self) -> Stream | None:
        """Admit what fits, drop what was cancelled, pick the stream with the earliest deadline; None when
        closing. Waits while there is nothing to do."""
        with self._cv:
            while True:
                for stream in [s for s in self.waiting if s.cancel.is_set()]:
                    self.waiting.remove(stream)
                    self._end(stream, Item(done=True, cancelled=True))
                while self.waiting and len(self.active) < self.max_active:
                    self.active.append(self.waiting.popleft())
                if self._closing and not self.active:
                    return None
                if self.active:
                    return self._pick()
                self._cv.wait()

    def _pick(self) -> Stream:
        """The earliest deadline; but while a stream of the voice loaded now is not yet due, it goes before
        another voice's (a voice switch rewrites the adapted layers: not something to do every frame)."""
        def deadline(stream: Stream) -> float:
            return stream.deadline(self.frame_s, self.chunk_s)

        first = min(self.active, key=deadline)
        loaded = self.engine.loaded.info.path if self.engine.loaded is not None else None
        if first.voice is None or first.voice == loaded or deadline(first) <= time.perf_counter():
            return first
        same = [s for s in self.active if s.voice is None or s.voice == loaded]
        return min(same, key=deadline) if same else first

    def _run(self) -> None:
        while (stream := self._next()) is not None:
            self._step(stream)

    def _step(self, stream: Stream) -> None:
        began = time.perf_counter()
        if stream.started is None:
            stream.started = began
        try:
            if stream.cancel.is_set():
                raise Cancelled
            if stream.voice is not None and self.engine.loaded.info.path != stream.voice:
                self.engine.load(stream.voice)   # a bundle on the same base: switched in place
                self.voice_switches += 1
            if stream.audition is None:
                stream.audition = stream.make()
            with self.engine.on_lane(stream.lane):
                if stream._gen is None:
                    stream._gen = stream.audition.stream(cancel=stream.cancel, keep=False, ticks=True)
                chunk = next(stream._gen)
        except StopIteration:
            self._finish(stream, Item(done=True))
        except Cancelled:
            self.cancelled += 1
            self._finish(stream, Item(done=True, cancelled=True))
        except (EngineError, TextError, ValueError) as exc:   # ValueError: CheckpointError, a bundle gone
            self._finish(stream, Item(done=True, error=str(exc).splitlines()[0] if str(exc) else one_line(exc)))
        except Exception as exc:  # noqa: BLE001 - one request's failure never stops the server
            log(f"a stream failed: {traceback.format_exc()}")
            self._finish(stream, Item(done=True, error=f"synthesis failed: {one_line(exc)}"))
        else:
            now = time.perf_counter()
            if chunk is None:   # a frame made, no chunk yet: the next step may be another stream's
                stream.frames_pending += 1
                self.frame_s = _average(self.frame_s, now - began)
                return
            stream.frames_pending = 0
            self.chunk_s = _average(self.chunk_s, now - began)
            if stream.first_audio is None:
                stream.first_audio = now
            stream.audio_s += len(chunk) / SAMPLE_RATE
            stream.chunks += 1
            stream.deliver(Item(audio=chunk))

    def _finish(self, stream: Stream, item: Item) -> None:
        with self._cv:
            if stream in self.active:
                self.active.remove(stream)
            self._end(stream, item)
        self._changed()

    def _end(self, stream: Stream, item: Item) -> None:
        stream.ended = time.perf_counter()
        stream.lane.release()
        if stream._gen is not None:
            stream._gen.close()
        stream.deliver(item)


def _average(mean: float, value: float, weight: float = 0.1) -> float:
    """An exponential moving average (the first value starts it)."""
    return (1 - weight) * mean + weight * value if mean else value
