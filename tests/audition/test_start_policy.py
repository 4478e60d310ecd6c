"""The player's start policy (listen.StartPolicy), driven by a scripted clock: chunks arrive as the engine
makes them (a prefill, then 3, 6, 12, 25, 25... frames of 80 ms at a given production rate), playback runs
at real time from the moment the policy says go, and holds when it runs dry until the policy says go
again. Then the same with real sound: a slow producer through the Player into the null sink."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from contract.listen import StartPolicy
from tests.audition.conftest import RATE, Events

FRAME_S = 0.08
SCHEDULE = (3, 6, 12, 25)


def arrivals(frames: int, rate: float, prefill_s: float = 0.15, schedule=SCHEDULE) -> list[tuple[float, float]]:
    """(time, seconds of audio) of each chunk of a `frames`-frame clip made at `rate` x real time."""
    out, done, t, i = [], 0, prefill_s, 0
    while done < frames:
        n = min(schedule[min(i, len(schedule) - 1)], frames - done)
        t += n * FRAME_S / rate
        out.append((round(t, 6), n * FRAME_S))
        done, i = done + n, i + 1
    return out


def play(chunks, expected_s, rate_hint=None, naive=False):
    """Run the policy over the schedule and play at real time, holding when dry. Returns (start time, pauses,
    seconds paused). `naive`: start with the first chunk and never wait (what the player did before)."""
    policy = StartPolicy(expected_s, rate_hint, start=0.0)
    received, start, clock_pos, played, pauses, paused = 0.0, None, None, 0.0, 0, 0.0
    for k, (t, seconds) in enumerate(chunks):
        if start is not None and not holding:
            # Play from the last event up to this arrival; running dry means a hold from then on.
            can = received - played
            if t - clock_pos > can + 1e-9:
                dry_at = clock_pos + can
                played, holding, hold_since = received, True, dry_at
            else:
                played += t - clock_pos
        clock_pos = t
        received += seconds
        policy.arrived(t, seconds)
        if k == len(chunks) - 1:
            policy.end()
        if start is None:
            if naive or policy.ready(played):
                start, holding = t, False
        elif holding and (naive or policy.ready(played)):
            pauses += 1
            paused += t - hold_since
            holding = False
    return start, pauses, paused


def test_faster_than_real_time_starts_with_the_first_chunk():
    chunks = arrivals(100, rate=4.0)
    start, pauses, _ = play(chunks, expected_s=8.0, rate_hint=4.0)
    assert start == chunks[0][0] and pauses == 0


def test_without_a_hint_a_fast_generator_waits_for_one_more_chunk_at_most():
    """The first chunk's rate includes the prefill (pessimistic); the second gives the steady rate."""
    chunks = arrivals(100, rate=3.0, prefill_s=0.3)
    start, pauses, _ = play(chunks, expected_s=8.0)
    assert start in (chunks[0][0], chunks[1][0]) and pauses == 0


@pytest.mark.parametrize("rate", [0.3, 0.5, 0.7, 0.9, 1.1, 1.5])
def test_slower_than_real_time_waits_just_long_enough_then_never_runs_dry(rate):
    frames = 150  # 12 s of audio
    chunks = arrivals(frames, rate)
    start, pauses, _ = play(chunks, expected_s=frames * FRAME_S)
    assert pauses == 0, (rate, start)
    # The earliest gap-free start: every chunk must arrive before the audio before it has been played.
    received, earliest = 0.0, 0.0
    for t, seconds in chunks:
        earliest = max(earliest, t - received)
        received += seconds
    earliest = max(earliest, chunks[0][0])
    later_arrivals = [t for t, _ in chunks if t >= earliest]
    # It starts at an arrival (that is when it decides); not much later than it must.
    slack = 0.35 * (frames * FRAME_S) / rate
    assert earliest <= start <= later_arrivals[0] + slack, (rate, earliest, start)
    naive_start, naive_pauses, _ = play(chunks, expected_s=frames * FRAME_S, naive=True)
    if rate < 1.0:
        assert naive_pauses >= 3  # what it replaces: a gap at nearly every chunk


def test_a_short_estimate_costs_one_pause_not_a_stutter():
    chunks = arrivals(150, rate=0.6)
    start, pauses, paused = play(chunks, expected_s=0.6 * 150 * FRAME_S)  # the clip turns out 40% longer
    _, naive_pauses, _ = play(chunks, expected_s=0.6 * 150 * FRAME_S, naive=True)
    assert pauses <= 1 < naive_pauses
    assert start > chunks[0][0]


def test_unknown_length_or_a_finished_clip_plays_at_once():
    policy = StartPolicy(None, start=0.0)
    assert not policy.ready() and policy.rate() is None
    policy.arrived(0.5, 0.24)
    assert policy.ready()
    slow = StartPolicy(30.0, start=0.0)
    slow.arrived(2.0, 0.24)
    assert slow.rate() == pytest.approx(0.12) and not slow.ready()
    slow.end()
    assert slow.ready()
    assert not slow.ready(played_s=0.24)  # nothing left to play


def test_rate_is_measured_between_chunks_once_there_are_two():
    policy = StartPolicy(10.0, rate_hint=9.0, start=0.0)
    policy.arrived(1.0, 0.24)
    assert policy.rate() == 9.0  # the hint, until there is a measurement between chunks
    policy.arrived(1.5, 0.48)
    assert policy.rate() == pytest.approx(0.96)
    policy.arrived(2.0, 0.96)
    assert policy.rate() == pytest.approx((0.48 + 0.96) / 1.0)


# ---- with real sound ----------------------------------------------------------------------------------
def _tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)


def _silent_windows_inside(audio: np.ndarray, window: int = 480, threshold: float = 0.02) -> tuple[int, float]:
    n = len(audio) // window
    rms = np.sqrt((audio[: n * window].reshape(n, window) ** 2).mean(axis=1))
    loud = np.flatnonzero(rms > threshold)
    if len(loud) == 0:
        return 0, 0.0
    inside = rms[loud[0]:loud[-1] + 1]
    return int((inside <= threshold).sum()), (loud[-1] - loud[0] + 1) * window / RATE


@pytest.mark.audio
@pytest.mark.xdist_group("audio")
def test_a_slow_producer_plays_without_gaps_into_the_sink(pulse, tmp_path, monkeypatch):
    """3 s of tone made at 0.6x real time in 0.24 s chunks: the player waits part of the way (not for the
    whole clip), then the sink hears one unbroken tone."""
    from contract.listen import Player

    for key, value in pulse.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("PULSE_SINK", raising=False)
    events = Events()
    player = Player(on_event=events)
    audio = _tone(3.0)
    rec = pulse.record(tmp_path / "slow.raw")
    try:
        player.start("slow", expected_s=3.0)
        time.sleep(0.1)  # the prefill
        for pos in range(0, len(audio), 3 * 1920):
            time.sleep(3 * 1920 / RATE / 0.6)
            player.feed(audio[pos:pos + 3 * 1920])
        player.end()
        playing = events.wait_for("playback", state="playing", timeout=20)
        finished = events.wait_for("playback", state="finished", timeout=20)
        time.sleep(0.8)
        heard = rec.stop()
    finally:
        player.close()
    silent, span = _silent_windows_inside(heard)
    print(f"\nslow producer: playing {playing}, finished {finished}, {silent} silent 20 ms windows in {span:.2f} s")
    assert playing["start_delay_s"] > 0.5 and playing["expected_s"] == 3.0 and 0.5 < playing["buffered_s"] < 2.9
    assert finished["rebuffers"] == 0 and finished["played_s"] == pytest.approx(3.0, abs=0.05)
    assert span == pytest.approx(3.0, abs=0.15) and silent == 0
