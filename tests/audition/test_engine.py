"""The streaming engine against stock qwen-tts on the tiny model: same codes, same seed same audio,
audio before the end, clear errors."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from contract.audio import SAMPLES_PER_FRAME as FRAME_SAMPLES
from inference.budget import SENTENCE_GAP_S
from inference.engine import Cancelled, Engine, EngineError, Timings
from inference.loop import CHUNK_SCHEDULE
from inference.stock import stock_generate
from contract.text import TextError

TEXT = "hello world, this is milo."


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def engine(tiny_custom_voice):
    e = Engine(device="cpu")
    e.load(tiny_custom_voice)
    return e


def _ours(engine, sampling, seed):
    torch.manual_seed(seed)
    return torch.stack(list(engine.frames(TEXT, sampling=sampling)))


def test_greedy_codes_equal_stock_generate_custom_voice(engine):
    sampling = engine.sampling(do_sample=False, subtalker_dosample=False, max_new_tokens=60)
    wav, stock = stock_generate(engine.loaded.tts, TEXT, "milo_demo", seed=0, sampling=sampling)
    ours = _ours(engine, sampling, seed=123)  # greedy: the seed must not matter
    assert stock.shape[0] >= 10 and stock.shape[1] == 16
    assert torch.equal(ours.cpu(), stock.cpu())
    assert np.array_equal(engine.decode(ours), wav)


def test_sampled_codes_equal_stock_for_the_same_seed(engine):
    sampling = engine.sampling(max_new_tokens=40)
    _, stock = stock_generate(engine.loaded.tts, TEXT, "milo_demo", seed=11, sampling=sampling)
    assert torch.equal(_ours(engine, sampling, seed=11).cpu(), stock.cpu())
    assert not torch.equal(_ours(engine, sampling, seed=12).cpu(), stock.cpu())


def test_same_seed_same_audio_other_seed_other_audio(engine):
    sampling = engine.sampling(max_new_tokens=30)
    a, _ = engine.synthesize(TEXT, seed=5, sampling=sampling)
    b, _ = engine.synthesize(TEXT, seed=5, sampling=sampling)
    c, _ = engine.synthesize(TEXT, seed=6, sampling=sampling)
    assert len(a) > 0 and np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_audio_streams_before_generation_ends_and_matches_the_whole_clip(engine):
    sampling = engine.sampling(max_new_tokens=60)
    frames_at_chunk: list[int] = []
    generated: list = []
    chunks = []
    torch.manual_seed(3)
    for chunk in engine.stream_sentence(TEXT, sampling=sampling, on_frame=generated.append):
        frames_at_chunk.append(len(generated))
        chunks.append(chunk)
    total = len(generated)
    assert total == 59  # no end-of-speech before max_new_tokens in this seed: the stream must not hide that
    assert frames_at_chunk[0] == CHUNK_SCHEDULE[0] < total  # first audio after 3 of 59 frames
    assert len(chunks) >= 4 and [len(c) for c in chunks[:3]] == [n * FRAME_SAMPLES for n in CHUNK_SCHEDULE[:3]]
    streamed = np.concatenate(chunks)
    whole = engine.decode(torch.stack(generated))
    assert len(streamed) == len(whole) == total * FRAME_SAMPLES
    # Chunked decoding with 25 frames of left context is the whole-clip decode to -60 dB or better.
    err = np.sqrt(np.mean((streamed - whole) ** 2)) / np.sqrt(np.mean(whole ** 2))
    assert err < 1e-3, err


def test_long_text_is_spoken_sentence_by_sentence_with_timings(engine):
    timings = Timings()
    seen = []
    audio = np.concatenate(list(engine.stream("First one. Second one!", seed=1, sampling=engine.sampling(max_new_tokens=12),
                                              timings=timings, on_sentence=lambda i, n, s: seen.append((i, n, s)))))
    assert seen == [(0, 2, "First one."), (1, 2, "Second one!")]
    assert timings.sentences == 2 and timings.frames == 22
    assert len(audio) == 22 * FRAME_SAMPLES + int(SENTENCE_GAP_S * 24000)
    assert timings.audio_s == pytest.approx(len(audio) / 24000)
    assert 0 < timings.first_audio_s < timings.wall_s and timings.rtf > 0


def test_without_end_of_speech_the_sentence_budget_stops_generation(engine):
    timings = Timings()
    list(engine.stream("Hi.", seed=2, timings=timings))  # checkpoint default: up to 2048 tokens
    assert 0 < timings.frames <= int((3.0 + 0.25 * 3) * 12.5)


def test_unknown_speaker_and_bad_text_say_one_line(engine):
    with pytest.raises(EngineError, match="unknown speaker 'nobody': epoch-0001 has milo_demo"):
        list(engine.stream(TEXT, seed=1, speaker="nobody"))
    with pytest.raises(TextError, match="empty"):
        list(engine.stream("  ", seed=1))
    with pytest.raises(EngineError, match="unknown sampling option"):
        engine.sampling(top_q=3)


def test_cancel_stops_the_current_sentence(engine):
    cancel = threading.Event()
    got = []
    with pytest.raises(Cancelled):
        for chunk in engine.stream(TEXT, seed=1, sampling=engine.sampling(max_new_tokens=200), budget=False, cancel=cancel):
            got.append(chunk)
            cancel.set()
    assert len(got) == 1


def test_switching_checkpoints_frees_the_previous_model(audition_run):
    import gc
    import weakref

    e = Engine(device="cpu")
    first = e.load(audition_run / "epoch-0001")
    list(e.frames("Hi.", sampling=e.sampling(max_new_tokens=3)))  # builds the per-model predictor state too
    gone = weakref.ref(first.tts.model)
    del first
    second = e.load(audition_run / "epoch-0002")
    gc.collect()
    assert gone() is None, "the previous checkpoint is still in memory"
    assert e.loaded is second and second.info.name == "epoch-0002"
    assert e.load(audition_run / "epoch-0002") is second  # the same path again: no reload
