"""inference/pipeline.py, the one audition pipeline (the worker and milo-say call it too), called the way
the speech server will: an engine, a checkpoint, text, a seed and a sink -> the saved sample and its
summary."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from contract.text import TextError
from inference.engine import Engine
from inference.pipeline import speak

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SETTINGS = dict(seed=3, sampling={"max_new_tokens": 30}, source="server")


def test_speak_streams_to_the_sink_saves_the_sample_and_sums_it_up(tiny_custom_voice, tmp_path):
    engine = Engine(device="cpu")
    chunks: list = []
    sample, summary = speak(engine, tiny_custom_voice, "hello world.", sink=chunks.append, run_dir=tmp_path, **SETTINGS)
    audio, rate = sf.read(sample["wav_path"], dtype="float32")
    assert rate == 24000 and len(audio) == sum(len(c) for c in chunks) > 0
    assert Path(sample["wav_path"]).parent == tmp_path / "samples" and sample["id"] == 1
    assert (sample["seed"], sample["source"], sample["checkpoint"]) == (3, "server", tiny_custom_voice.name)
    assert sample["load_s"] > 0 and sample["sampling"]["max_new_tokens"] == 30
    assert summary.startswith(f"{tiny_custom_voice.name} (milo_demo, seed 3): ") and "real time" in summary

    again, _ = speak(engine, tiny_custom_voice, "hello world.", run_dir=tmp_path, **SETTINGS)
    assert again["id"] == 2 and again["load_s"] == 0.0  # loaded already
    assert np.array_equal(sf.read(again["wav_path"], dtype="float32")[0], audio)  # same seed, same audio


def test_speak_without_a_run_folder_saves_nothing(tiny_custom_voice, tmp_path):
    sample, _ = speak(Engine(device="cpu"), tiny_custom_voice, "hello world.", **SETTINGS)
    assert "wav_path" not in sample and "id" not in sample and sample["frames"] > 0


def test_bad_text_is_refused_before_a_model_loads(tmp_path):
    engine = Engine(device="cpu")
    with pytest.raises(TextError):
        speak(engine, tmp_path / "not-a-checkpoint", "   ", run_dir=tmp_path)
    assert engine.loaded is None and not (tmp_path / "samples").exists()
