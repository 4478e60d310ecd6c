"""A tiny random-weight Qwen3-TTS Base model built from the real qwen_tts classes.

It goes through every real code path (speech-tokenizer encode/decode, `Qwen3TTSModel.from_pretrained`,
training steps, custom-voice generation) in seconds on a CPU, so tests and the demo workspace never need
the 3.8 GB checkpoint. Special token ids, the 16 code groups, codec vocabulary 3072 (slot 3000 for the
fine-tuned speaker) and the 1920-samples-per-frame codec match the real 12 Hz models; widths do not.
Same seed, same bytes.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from contract.audio import SAMPLE_RATE
from inference.qwen import import_qwen_tts

# Codec control ids of Qwen3-TTS-12Hz (talker vocabulary 3072; 2048 audio codes, control ids above).
CODEC_IDS = dict(
    codec_pad_id=2148, codec_bos_id=2149, codec_eos_token_id=2150,
    codec_think_id=2154, codec_nothink_id=2155, codec_think_bos_id=2156, codec_think_eos_id=2157,
)
LANGUAGE_IDS = {"english": 2050, "chinese": 2055}
TEXT_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|tts_pad|>", "<|tts_bos|>", "<|tts_eos|>"]
# Text the byte-level BPE learns its merges from; any text still tokenizes (bytes are the fallback).
_BPE_CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "a voice that sounds like the speaker, read at an even pace",
    "hello world, this is milo speaking from the spark",
]
HIDDEN = 32


def _text_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Qwen2TokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    bpe.train_from_iterator(_BPE_CORPUS * 4, trainer)
    tok = Qwen2TokenizerFast(
        tokenizer_object=bpe, unk_token=None, bos_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    tok.add_special_tokens({"additional_special_tokens": TEXT_SPECIALS})
    # The model slices "<|im_start|>assistant\n" as exactly three tokens.
    tok.add_tokens(["assistant"])
    return tok


def _randomize_codebooks(module, generator) -> None:
    """The codecs' Euclidean codebooks start as zeros (every frame would map to code 0 and decode
    to silence); give them random centroids so codes vary and audio is audible."""
    import torch

    with torch.no_grad():
        for name, tensor in list(module.named_buffers()) + list(module.named_parameters()):
            if name.endswith("embed_sum") or name.endswith("embedding_sum"):
                tensor.copy_(torch.randn(tensor.shape, generator=generator))


SHAPES = {
    # Widths small enough to train on a CPU in milliseconds; everything else as in the real model.
    "tiny": dict(
        talker=dict(hidden_size=HIDDEN, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                    num_key_value_heads=1, head_dim=16, mrope_section=[2, 3, 3]),
        predictor=dict(hidden_size=HIDDEN, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                       num_key_value_heads=1, head_dim=16),
        speaker=dict(enc_channels=[32, 32, 32, 32, 96], enc_attention_channels=16, enc_res2net_scale=4,
                     enc_se_channels=16),
        text_vocab=None,  # the tiny tokenizer's size
        codec="tiny",
    ),
    # Qwen3-TTS-12Hz-1.7B, from the tensor shapes of a real checkpoint (docs/upstream.md), for
    # benchmarks with random weights. 1.92 B parameters.
    "1.7b": dict(
        talker=dict(hidden_size=2048, intermediate_size=6144, num_hidden_layers=28, num_attention_heads=16,
                    num_key_value_heads=8, head_dim=128, mrope_section=[24, 20, 20]),
        predictor=dict(hidden_size=1024, intermediate_size=3072, num_hidden_layers=5, num_attention_heads=16,
                       num_key_value_heads=8, head_dim=128),
        speaker=dict(enc_channels=[512, 512, 512, 512, 1536], enc_attention_channels=128, enc_res2net_scale=8,
                     enc_se_channels=128),
        text_vocab=151936,
        codec="default",  # qwen_tts's own codec defaults
    ),
}


def model_configs(shape: str, text_vocab_size: int, ids: dict[str, int]):
    """(Qwen3TTSConfig, Qwen3TTSTokenizerV2Config, speaker-encoder dict) for a named shape."""
    import_qwen_tts()
    from qwen_tts.core import Qwen3TTSTokenizerV2Config
    from qwen_tts.core.models import Qwen3TTSConfig

    spec = SHAPES[shape]
    t, p = dict(spec["talker"]), spec["predictor"]
    hidden, mrope = t["hidden_size"], t.pop("mrope_section")
    talker = dict(
        code_predictor_config=dict(vocab_size=2048, num_code_groups=16, max_position_embeddings=512, **p),
        vocab_size=3072, num_code_groups=16, text_hidden_size=hidden,
        text_vocab_size=spec["text_vocab"] or text_vocab_size, rope_theta=1000000.0,
        rope_scaling={"interleaved": True, "mrope_section": mrope, "rope_type": "default", "type": "default"},
        position_id_per_seconds=13, max_position_embeddings=32768,
        spk_id={}, spk_is_dialect={}, codec_language_id=LANGUAGE_IDS, **CODEC_IDS, **t,
    )
    speaker_encoder = dict(mel_dim=128, enc_dim=hidden, enc_kernel_sizes=[5, 3, 3, 3, 1],
                           enc_dilations=[1, 2, 3, 4, 1], sample_rate=SAMPLE_RATE, **spec["speaker"])
    config = Qwen3TTSConfig(
        talker_config=talker, speaker_encoder_config=speaker_encoder,
        tokenizer_type="qwen3_tts_tokenizer_12hz", tts_model_size=shape, tts_model_type="base",
        im_start_token_id=ids["<|im_start|>"], im_end_token_id=ids["<|im_end|>"],
        tts_pad_token_id=ids["<|tts_pad|>"], tts_bos_token_id=ids["<|tts_bos|>"],
        tts_eos_token_id=ids["<|tts_eos|>"],
    )
    if spec["codec"] == "default":
        # The published 12 Hz codec: Mimi's defaults for the encoder (32 quantizers, 16 used) and
        # this decoder geometry.
        codec_config = Qwen3TTSTokenizerV2Config(
            encoder_config=dict(num_quantizers=32),
            decoder_config=dict(
                codebook_size=2048, codebook_dim=512, hidden_size=512, latent_dim=1024, decoder_dim=1536,
                intermediate_size=1024, head_dim=64, num_attention_heads=16, num_key_value_heads=16,
                num_hidden_layers=8, num_quantizers=16, sliding_window=72, upsample_rates=[8, 5, 4, 3],
                upsampling_ratios=[2, 2],
            ),
        )
    else:
        # Mimi-style encoder and Qwen decoder, both at 1920 samples per 12.5 Hz frame.
        codec_config = Qwen3TTSTokenizerV2Config(
            encoder_config=dict(
                hidden_size=32, num_filters=8, num_residual_layers=1, upsampling_ratios=[8, 6, 5, 4],
                codebook_size=2048, codebook_dim=16, num_quantizers=16, vector_quantization_hidden_dimension=16,
                upsample_groups=32, num_hidden_layers=1, intermediate_size=64, num_attention_heads=2,
                num_key_value_heads=2, head_dim=16, num_semantic_quantizers=1, use_cache=False,
            ),
            decoder_config=dict(
                codebook_size=2048, codebook_dim=16, hidden_size=32, latent_dim=32, num_attention_heads=2,
                num_key_value_heads=2, head_dim=16, intermediate_size=64, num_hidden_layers=1, num_quantizers=16,
                upsample_rates=[8, 5, 4, 3], upsampling_ratios=[2, 2], decoder_dim=32,
            ),
        )
    return config, codec_config, speaker_encoder


def build_random_model(shape: str = "1.7b", device: str = "cpu", dtype=None, seed: int = 0,
                       attn_implementation: str = "sdpa"):
    """A random-weight `Qwen3TTSModel` of the given shape, built in memory on `device` (no files):
    for benchmarks at the real 1.7B shape on a GPU. Uses the tiny text tokenizer (ids < 400)."""
    import torch

    qwen_tts = import_qwen_tts()
    from qwen_tts.core import Qwen3TTSTokenizerV2Model
    from qwen_tts.core.models import Qwen3TTSForConditionalGeneration, Qwen3TTSProcessor

    tok = _text_tokenizer()
    ids = {t: tok.convert_tokens_to_ids(t) for t in TEXT_SPECIALS}
    config, codec_config, _ = model_configs(shape, len(tok), ids)
    config._attn_implementation = attn_implementation
    codec_config._attn_implementation = attn_implementation
    dtype = dtype or torch.float32
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    with torch.device(device):
        model = Qwen3TTSForConditionalGeneration(config).to(dtype)
        codec = Qwen3TTSTokenizerV2Model(codec_config)
    _randomize_codebooks(codec, gen.manual_seed(seed))  # a CPU generator; values are copied to `device`
    codec = codec.to(dtype)
    speech = qwen_tts.Qwen3TTSTokenizer()
    from transformers import EncodecFeatureExtractor

    speech.model, speech.config, speech.device = codec.eval(), codec.config, torch.device(device)
    speech.feature_extractor = EncodecFeatureExtractor(feature_size=1, sampling_rate=SAMPLE_RATE)
    model.load_speech_tokenizer(speech)
    model.load_generate_config(dict(do_sample=True, top_k=50, top_p=1.0, temperature=0.9, repetition_penalty=1.05,
                                    subtalker_dosample=True, subtalker_top_k=50, subtalker_top_p=1.0,
                                    subtalker_temperature=0.9, max_new_tokens=2048))
    return qwen_tts.Qwen3TTSModel(model=model.eval(), processor=Qwen3TTSProcessor(tokenizer=tok))


def _make_decoder_audible(codec, generator) -> None:
    """transformers' 0.02-std initialisation leaves a random decoder's output near 1e-9 (silence).
    Use PyTorch's default initialisation for its convolutions and scale the last one so that random
    codes decode to speech-level audio (RMS about 0.1), which playback tests can hear."""
    import torch

    decoder = codec.decoder
    with torch.no_grad():
        for mod in decoder.modules():
            if isinstance(mod, (torch.nn.Conv1d, torch.nn.ConvTranspose1d, torch.nn.Linear)):
                fan_in = mod.weight[0].numel()
                mod.weight.copy_(torch.empty_like(mod.weight).uniform_(-1, 1, generator=generator) / fan_in**0.5)
                if mod.bias is not None:
                    mod.bias.zero_()
        codes = torch.randint(0, 2048, (1, decoder.config.num_quantizers, 25), generator=generator)
        last = decoder.decoder[-1].conv
        hidden = codes
        hidden = decoder.quantizer.decode(hidden)
        hidden = decoder.pre_conv(hidden).transpose(1, 2)
        hidden = decoder.pre_transformer(inputs_embeds=hidden).last_hidden_state.permute(0, 2, 1)
        for blocks in decoder.upsample:
            for block in blocks:
                hidden = block(hidden)
        for block in decoder.decoder:
            hidden = block(hidden)
        # Rounded so that the last bits of a thread-count-dependent reduction cannot change the
        # weights: same seed, same bytes on any machine.
        last.weight.mul_(float(f"{0.1 / float(hidden.pow(2).mean().sqrt()):.3g}"))


def build_tiny_model(out_dir: str | os.PathLike, seed: int = 0) -> Path:
    """Write a tiny Base model folder to `out_dir` (replaced atomically if it exists)."""
    import torch

    import_qwen_tts()
    from qwen_tts.core import Qwen3TTSTokenizerV2Model
    from qwen_tts.core.models import Qwen3TTSForConditionalGeneration, Qwen3TTSProcessor
    from transformers import EncodecFeatureExtractor

    out = Path(out_dir).absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    tok = _text_tokenizer()
    ids = {t: tok.convert_tokens_to_ids(t) for t in TEXT_SPECIALS}

    config, codec_config, speaker_encoder = model_configs("tiny", len(tok), ids)

    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        model = Qwen3TTSForConditionalGeneration(config)
        model.save_pretrained(tmp)
        Qwen3TTSProcessor(tokenizer=tok).save_pretrained(tmp)
        codec = Qwen3TTSTokenizerV2Model(codec_config)
        _randomize_codebooks(codec, gen)
        _make_decoder_audible(codec, gen)
        codec.save_pretrained(tmp / "speech_tokenizer")
        EncodecFeatureExtractor(feature_size=1, sampling_rate=SAMPLE_RATE).save_pretrained(tmp / "speech_tokenizer")

        cfg_path = tmp / "config.json"
        cfg = json.loads(cfg_path.read_text())
        # to_dict() adds model_type to the speaker encoder's config, which its constructor rejects.
        cfg["speaker_encoder_config"] = speaker_encoder
        cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
        # The wrapper reads sampling defaults from generation_config.json (as in the real folders).
        (tmp / "generation_config.json").write_text(json.dumps(dict(
            do_sample=True, top_k=50, top_p=1.0, temperature=0.9, repetition_penalty=1.05,
            subtalker_dosample=True, subtalker_top_k=50, subtalker_top_p=1.0, subtalker_temperature=0.9,
            max_new_tokens=2048,
        ), indent=2) + "\n")
        for p in tmp.rglob("*"):
            p.chmod(0o755 if p.is_dir() else 0o644)
        tmp.chmod(0o755)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
