"""The tiny model goes through the real qwen-tts code paths."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import SPEAKER, run_module


def _digest(folder):
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def _model(path):
    from inference.qwen import import_qwen_tts

    return import_qwen_tts().Qwen3TTSModel.from_pretrained(str(path))


def test_folder_has_what_from_pretrained_needs(tiny_base):
    cfg = json.loads((tiny_base / "config.json").read_text())
    assert cfg["model_type"] == "qwen3_tts" and cfg["tts_model_type"] == "base"
    assert "model_type" not in cfg["speaker_encoder_config"]
    assert cfg["talker_config"]["num_code_groups"] == 16 and cfg["talker_config"]["vocab_size"] == 3072
    for name in ("model.safetensors", "generation_config.json", "tokenizer_config.json",
                 "speech_tokenizer/config.json", "speech_tokenizer/model.safetensors",
                 "speech_tokenizer/preprocessor_config.json"):
        assert (tiny_base / name).is_file(), name
    size = sum(p.stat().st_size for p in tiny_base.rglob("*") if p.is_file())
    assert size < 30e6


def test_loads_offline_through_from_pretrained(tiny_base):
    tts = _model(tiny_base)
    assert type(tts).__name__ == "Qwen3TTSModel"
    assert tts.model.tts_model_type == "base"
    codec = tts.model.speech_tokenizer  # the real 12 Hz codec class, at the real rates
    assert type(codec).__name__ == "Qwen3TTSTokenizer"
    assert (codec.get_output_sample_rate(), codec.get_decode_upsample_rate()) == (24000, 1920)
    # The special tokens are sliced by position in generate(): role prefix 3 tokens, suffix 5.
    ids = tts.processor(text="<|im_start|>assistant\nhi there<|im_end|>\n<|im_start|>assistant\n")["input_ids"][0]
    start = tts.processor(text="<|im_start|>assistant\n")["input_ids"][0]
    end = tts.processor(text="<|im_end|>\n<|im_start|>assistant\n")["input_ids"][0]
    assert len(start) == 3 and len(end) == 5 and list(ids[-5:]) == list(end)


def test_same_seed_same_weights_other_seed_other_weights(tmp_path, tiny_base):
    import torch

    from training.tiny_model import build_tiny_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1 if threads > 1 else 2)  # the bytes must not depend on the thread count
    try:
        again = build_tiny_model(tmp_path / "again", seed=0)
    finally:
        torch.set_num_threads(threads)
    other = build_tiny_model(tmp_path / "other", seed=1)
    assert _digest(again) == _digest(tiny_base)
    assert _digest(other) != _digest(tiny_base)


def test_speech_tokenizer_round_trip(tiny_base, demo_clips):
    tts = _model(tiny_base)
    wav, sr = sf.read(demo_clips[1], dtype="float32")
    assert sr == 24000
    codes = tts.model.speech_tokenizer.encode(wav, sr=sr).audio_codes[0]
    seconds = len(wav) / sr
    assert codes.shape[1] == 16
    assert codes.shape[0] == pytest.approx(seconds * 12.5, abs=1)
    assert len({int(c) for c in codes[:, 0]}) > 1, "random codebooks must not collapse to one code"
    audio, out_sr = tts.model.speech_tokenizer.decode([{"audio_codes": codes}])
    assert out_sr == 24000
    assert audio[0].shape == (codes.shape[0] * 1920,)
    assert float(np.sqrt(np.mean(audio[0] ** 2))) > 0.01, "decoded audio must be audible"


def test_custom_voice_folder_generates_audio(tiny_custom_voice, tiny_base):
    from safetensors.torch import load_file

    cfg = json.loads((tiny_custom_voice / "config.json").read_text())
    assert cfg["tts_model_type"] == "custom_voice"
    assert cfg["talker_config"]["spk_id"] == {SPEAKER: 3000}
    weights = load_file(str(tiny_custom_voice / "model.safetensors"))
    assert not any(k.startswith("speaker_encoder.") for k in weights)
    base_weights = load_file(str(tiny_base / "model.safetensors"))
    row = weights["talker.model.codec_embedding.weight"][3000]
    assert not row.equal(base_weights["talker.model.codec_embedding.weight"][3000])
    # Unchanged files are hard links to the base, not copies.
    assert (tiny_custom_voice / "speech_tokenizer" / "model.safetensors").stat().st_ino == \
        (tiny_base / "speech_tokenizer" / "model.safetensors").stat().st_ino

    # Readable by others, as the base model is (safetensors and mkdtemp create owner-only files).
    assert (tiny_custom_voice / "model.safetensors").stat().st_mode & 0o777 == 0o644
    assert tiny_custom_voice.stat().st_mode & 0o777 == 0o755

    tts = _model(tiny_custom_voice)
    wavs, sr = tts.generate_custom_voice("Hello there.", speaker=SPEAKER, max_new_tokens=12)
    assert sr == 24000 and 0 < len(wavs[0]) <= 12 * 1920


def test_cli_writes_a_loadable_model(tmp_path):
    proc = run_module("training", "tiny-model", str(tmp_path / "m"), "--seed", "3")
    assert proc.returncode == 0, proc.stderr
    assert "tiny Qwen3-TTS Base model written to" in proc.stdout
    assert (tmp_path / "m" / "config.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temporary folder left behind"
