"""A tiny random-weight Whisper folder that transformers' speech-recognition pipeline loads offline.

Its decoder is fixed to emit the letter "a" at every step (the final layer norm outputs one direction
that only the "a" embedding points along), so a transcript made through it is known in advance:
"a" repeated until max_length. That proves prepare's Whisper path ran the model it was given."""
from __future__ import annotations

import json
from pathlib import Path

SPECIALS = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|translate|>",
            "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>"]
MAX_LENGTH = 12
TRANSCRIPT = "a" * (MAX_LENGTH - 1)  # max_length counts the start token


def build_tiny_whisper(out: Path) -> Path:
    import torch
    from transformers import (WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration,
                              WhisperProcessor, WhisperTokenizer)
    from transformers.models.gpt2.tokenization_gpt2 import bytes_to_unicode

    out.mkdir(parents=True, exist_ok=True)
    byte_chars = bytes_to_unicode()
    vocab = {ch: i for i, ch in enumerate(byte_chars.values())}
    (out / "vocab.json").write_text(json.dumps(vocab))
    (out / "merges.txt").write_text("#version: 0.2\n")
    tok = WhisperTokenizer(str(out / "vocab.json"), str(out / "merges.txt"), unk_token=SPECIALS[0],
                           bos_token=SPECIALS[0], eos_token=SPECIALS[0], pad_token=SPECIALS[0])
    tok.add_special_tokens({"additional_special_tokens": SPECIALS[1:]})
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIALS}
    cfg = WhisperConfig(
        vocab_size=len(tok), num_mel_bins=80, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, d_model=16, max_source_positions=1500,
        max_target_positions=32, decoder_start_token_id=ids["<|startoftranscript|>"], eos_token_id=ids[SPECIALS[0]],
        pad_token_id=ids[SPECIALS[0]], bos_token_id=ids[SPECIALS[0]])
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(cfg)
    letter = vocab[byte_chars[ord("a")]]
    with torch.no_grad():
        direction = torch.zeros(cfg.d_model)
        direction[0] = 1.0
        emb = model.model.decoder.embed_tokens.weight  # tied to the output projection
        emb.mul_(0.01)
        emb[letter] = 5 * direction
        model.model.decoder.layer_norm.weight.zero_()
        model.model.decoder.layer_norm.bias.copy_(10 * direction)
    gc = model.generation_config
    gc.max_length, gc.no_timestamps_token_id, gc.is_multilingual, gc.forced_decoder_ids = \
        MAX_LENGTH, ids["<|notimestamps|>"], False, None
    gc.suppress_tokens, gc.begin_suppress_tokens = [], []
    model.save_pretrained(out)
    WhisperProcessor(WhisperFeatureExtractor(feature_size=80), tok).save_pretrained(out)
    return out
