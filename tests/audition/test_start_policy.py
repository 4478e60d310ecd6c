"""The player's start policy (listen.StartPolicy), driven by a scripted clock: chunks arrive as the engine
makes them (a prefill, then 3, 6, 12, 25, 25... frames of 80 ms at a given production rate), playback runs
at real time from the moment the policy says go, and holds when it runs dry until the policy says go
again. Pure: no clock, no sound. The same policy with real sound and a real clock is measured in
bench/start_policy.py (a timing measurement belongs there, not in a test a busy machine can fail)."""
from __future__ import annotations

import pytest

from contract.listen import StartPolicy

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
    holding, hold_since = False, 0.0
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
    last = chunks[-1][0]
    # It starts at an arrival (that is when it decides), no earlier than it must, and well before the clip
    # has all arrived: its safety margin (it plans for 85% of the measured rate) costs at most 60% of the
    # window between the earliest gap-free start and the last arrival (a policy that waits for the whole
    # clip sits at 100%).
    assert start in [t for t, _ in chunks] and earliest <= start, (rate, earliest, start)
    assert start <= earliest + 0.6 * (last - earliest), (rate, earliest, start, last)
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
