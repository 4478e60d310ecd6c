"""The stock path: qwen-tts's own `generate_custom_voice`, the baseline the engine is measured and
tested against (tests/audition, bench/audition_latency.py). Nothing of the engine runs here."""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch


def stock_generate(tts, text: str, speaker: str, seed: int, sampling) -> tuple[np.ndarray, torch.Tensor]:
    """`generate_custom_voice` as anyone would call it, plus the codes it decoded (caught on their way
    into speech_tokenizer.decode). `sampling`: an engine `Sampling`. Returns (wav float32, codes
    LongTensor [T, 16])."""
    seen: list = []
    decode = tts.model.speech_tokenizer.decode

    def spy(encoded):
        seen.append(encoded[0]["audio_codes"])
        return decode(encoded)

    torch.manual_seed(int(seed))
    if str(tts.device).startswith("cuda"):
        torch.cuda.manual_seed_all(int(seed))
    tts.model.speech_tokenizer.decode = spy
    try:
        wavs, _ = tts.generate_custom_voice(text, speaker=speaker, **sampling.as_dict())
    finally:
        del tts.model.speech_tokenizer.decode
    return np.asarray(wavs[0], dtype=np.float32), seen[0]


@contextmanager
def no_end_of_speech(tts):
    """Make generation run to max_new_tokens (stock and ours alike): random weights rarely say
    end-of-speech, but may; benchmarks need a fixed number of frames. The end-of-speech id is moved
    past the vocabulary, so the real one is suppressed with the other control codes and never matches."""
    cfg = tts.model.config.talker_config
    eos = cfg.codec_eos_token_id
    cfg.codec_eos_token_id = cfg.vocab_size
    try:
        yield
    finally:
        cfg.codec_eos_token_id = eos
