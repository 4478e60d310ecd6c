"""Bad input refused with one clear line: text rules and checkpoint validation (no model loaded)."""
from __future__ import annotations

import json
import shutil

import pytest

from contract.checkpoint import CheckpointError, validate_checkpoint
from contract.text import MAX_CHARS, MAX_SENTENCE_CHARS, TextError, split_sentences


@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
def test_empty_text_is_refused(text):
    with pytest.raises(TextError, match="empty"):
        split_sentences(text)


def test_too_long_text_is_refused_with_the_limit():
    with pytest.raises(TextError) as err:
        split_sentences("word " * 400)
    assert f"the limit is {MAX_CHARS}" in str(err.value) and "\n" not in str(err.value)


def test_text_is_split_into_sentences_in_order():
    assert split_sentences("Hello there.  How are you?Fine! 你好。世界！ ok") == [
        "Hello there.", "How are you?Fine!", "你好。", "世界！", "ok"]


def test_a_very_long_sentence_is_cut_at_commas_then_spaces():
    clause = "and then the voice went on " * 6
    parts = split_sentences(", ".join([clause.strip()] * 4) + ".")
    assert len(parts) > 1 and all(len(p) <= MAX_SENTENCE_CHARS for p in parts)
    assert " ".join(parts).replace(" ,", ",") == " ".join((", ".join([clause.strip()] * 4) + ".").split())
    words = split_sentences("x" * 10 + " " + "y" * 400)
    assert all(len(p) <= MAX_SENTENCE_CHARS for p in words) and "".join(words).replace(" ", "") == "x" * 10 + "y" * 400


def test_a_long_first_sentence_is_cut_so_the_first_audio_comes_soon():
    text = "Good morning everyone, and welcome to the second day of the meeting on the harbour plans. Next."
    assert split_sentences(text, first_chars=40) == [
        "Good morning everyone,", "and welcome to the second day of the meeting on the harbour plans.", "Next."]
    assert split_sentences(text) == split_sentences(text, first_chars=200)  # short enough: untouched
    assert split_sentences("x" * 3000, max_chars=4096)[0] == "x" * MAX_SENTENCE_CHARS  # the server's limit


def test_a_custom_voice_checkpoint_validates(tiny_custom_voice):
    info = validate_checkpoint(tiny_custom_voice)
    assert info.speakers == ("milo_demo",) and info.path.is_absolute()
    assert info.generation.get("top_k") == 50


def _problems(path) -> list[str]:
    with pytest.raises(CheckpointError) as err:
        validate_checkpoint(path)
    return err.value.problems


def test_a_base_model_is_refused_as_not_custom_voice(tiny_base):
    problems = _problems(tiny_base)
    assert any("not a custom-voice checkpoint" in p and "'base'" in p for p in problems)
    assert any("no speaker" in p for p in problems)


def test_a_half_written_checkpoint_says_what_is_missing(tiny_custom_voice, tmp_path):
    half = tmp_path / ".epoch-0003.tmp-abc123"
    shutil.copytree(tiny_custom_voice, half)
    shutil.rmtree(half / "speech_tokenizer")
    weights = half / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    (half / "generation_config.json").unlink()
    problems = _problems(half)
    assert any("half-written" in p for p in problems)
    assert any("model.safetensors is truncated" in p for p in problems)
    assert any("speech_tokenizer/ is missing" in p for p in problems)
    assert any("generation_config.json is missing" in p for p in problems)
    assert all("\n" not in p for p in problems)


def test_a_foreign_folder_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (tmp_path / "model.safetensors").write_bytes(b"\x00" * 16)
    problems = _problems(tmp_path)
    assert any("not a Qwen3-TTS checkpoint" in p and "llama" in p for p in problems)
    assert any("model.safetensors" in p for p in problems)
    assert _problems(tmp_path / "nope") == ["no such folder"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _problems(empty) == ["not a checkpoint folder: config.json is missing"]


def test_a_run_folder_points_at_its_checkpoints(audition_run):
    problems = _problems(audition_run)
    assert problems == ["a folder of checkpoints, not a checkpoint: choose one of epoch-0001, epoch-0002"]


def test_a_checkpoint_without_speaker_or_corrupt_config_is_refused(tiny_custom_voice, tmp_path):
    ckpt = tmp_path / "epoch-0009"
    shutil.copytree(tiny_custom_voice, ckpt)
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg["talker_config"]["spk_id"] = {}
    (ckpt / "config.json").write_text(json.dumps(cfg))
    assert any("no speaker" in p for p in _problems(ckpt))
    (ckpt / "config.json").write_text('{"model_type": "qwen3_tts", ')
    assert any("config.json is not valid JSON" in p for p in _problems(ckpt))
