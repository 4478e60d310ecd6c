"""inference/serve/streams.py: several streams on one model, on the tiny model's real engine (fast and lean
frame loops): each stream's audio is what the same request gives alone, a newcomer is served at once, a
cancelled stream frees the model within a chunk, and the limits hold."""
from __future__ import annotations

import contextlib
import threading
import time

import numpy as np
import pytest

from inference.engine import Engine
from inference.pipeline import Audition
from inference.serve.streams import Busy, Item, Scheduler, Stream

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TEXTS = ["Hello there, this is the first one.", "A second voice.", "And a third request, a little longer."]


class Collect:
    """A stream's deliveries, with the order they came in across streams (`log`)."""

    def __init__(self, name: str, log: list) -> None:
        self.name, self.log, self.chunks, self.end = name, log, [], None
        self.done = threading.Event()

    def __call__(self, item: Item) -> None:
        if item.audio is not None:
            self.chunks.append(item.audio)
            self.log.append((self.name, time.perf_counter()))
        if item.done:
            self.end = item
            self.done.set()

    def audio(self) -> np.ndarray:
        return np.concatenate(self.chunks)


def audition(engine: Engine, text: str, seed: int, tokens: int = 40) -> Audition:
    return Audition(engine, text, seed=seed, sampling={"max_new_tokens": tokens})


@pytest.fixture
def loaded(tiny_custom_voice) -> Engine:
    """The engine with the tiny voice loaded (its default frame loop)."""
    engine = Engine(device="cpu")
    engine.load(tiny_custom_voice)
    return engine


@contextlib.contextmanager
def scheduling(engine: Engine, **limits):
    scheduler = Scheduler(engine, **limits)
    try:
        yield scheduler
    finally:
        scheduler.close()


@pytest.fixture(params=["fast", "lean"])
def engine(request, tiny_custom_voice):
    engine = Engine(device="cpu", path=request.param)
    engine.load(tiny_custom_voice)
    assert engine.loaded.path == request.param
    return engine


def test_interleaved_streams_each_give_the_audio_of_the_same_request_alone(engine):
    alone = [audition(engine, text, seed=10 + i).run() for i, text in enumerate(TEXTS)]
    log: list = []
    with scheduling(engine, max_active=3, queue=0) as scheduler:
        got = [Collect(f"s{i}", log) for i in range(3)]
        for i, text in enumerate(TEXTS):
            scheduler.submit(Stream(audition(engine, text, seed=10 + i), got[i]))
        for c in got:
            assert c.done.wait(120) and c.end.error is None and not c.end.cancelled
    for want, c in zip(alone, got):
        assert np.array_equal(c.audio(), want)
    order = [name for name, _ in log]
    # Really interleaved: each stream's first chunk came before any stream's last one.
    assert max(order.index(f"s{i}") for i in range(3)) < min(len(order) - 1 - order[::-1].index(f"s{i}") for i in range(3))


def test_a_newcomer_gets_its_first_chunk_after_at_most_the_chunk_in_progress(loaded):
    engine, log = loaded, []
    with scheduling(engine, max_active=4, queue=0) as scheduler:
        long = Collect("long", log)
        scheduler.submit(Stream(audition(engine, "One long request. " * 6, seed=1, tokens=60), long))
        deadline = time.monotonic() + 60
        while len(long.chunks) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        new = Collect("new", log)
        submitted = time.perf_counter()
        scheduler.submit(Stream(audition(engine, "Me too.", seed=2), new))
        assert new.done.wait(120) and long.done.wait(120)
    first_new = next(t for name, t in log if name == "new")
    in_between = [t for name, t in log if name == "long" and submitted < t < first_new]
    assert len(in_between) <= 1, in_between  # at most the one the frame in progress completed
    assert len(long.chunks) > len(in_between) + 3  # the long one went on after it


def test_a_cancelled_stream_frees_the_model_within_a_chunk(loaded):
    engine, log = loaded, []
    with scheduling(engine, max_active=1, queue=1) as scheduler:
        first = Collect("first", log)
        s1 = Stream(audition(engine, "A long one that nobody will hear to the end. " * 4, seed=1, tokens=200), first)
        scheduler.submit(s1)
        second = Collect("second", log)
        s2 = Stream(audition(engine, "Next please.", seed=2), second)
        scheduler.submit(s2)  # waits behind the first: one active
        while len(first.chunks) < 2:
            time.sleep(0.005)
        t0 = time.perf_counter()
        scheduler.cancel(s1)
        assert first.done.wait(30) and first.end.cancelled
        assert second.done.wait(120) and second.end.error is None
    assert scheduler.cancelled == 1 and s2.started is not None
    freed = s2.started - t0
    made = [t for name, t in log if name == "first"]
    chunk_s = max(b - a for a, b in zip(made, made[1:]))
    assert freed < chunk_s + 0.2, (freed, chunk_s)
    assert len(first.chunks) <= 3  # it stopped: the 200-frame budget would have made many more


def test_past_the_active_streams_and_the_queue_a_request_is_refused(loaded):
    streams = [Stream(audition(loaded, "Wait for it.", seed=i, tokens=80), Collect(str(i), [])) for i in range(3)]
    with scheduling(loaded, max_active=1, queue=1) as scheduler:
        scheduler.submit(streams[0])
        scheduler.submit(streams[1])
        with pytest.raises(Busy, match=r"busy: 1 stream\(s\) speaking and 1 waiting"):
            scheduler.submit(streams[2])
        scheduler.cancel(streams[1])  # a queued request whose client left is dropped without running
        assert streams[1].deliver.done.wait(30) and streams[1].deliver.end.cancelled and streams[1].started is None
        assert streams[0].deliver.done.wait(120)
