"""Parity with generation: for the same text and codes, the logits the training forward scores against
each target are the logits that qwen-tts's own generation code computes for that target, step by step.

Generation runs for real (Qwen3TTSModel.generate_custom_voice on a checkpoint our trainer code saved),
greedy and teacher-forced: a logits processor forces the known codes, and the raw logits of the talker
and of every sub-talker call are captured. The same comparison against the upstream procedure
(training/upstream.py) must fail, so this test can fail."""
from __future__ import annotations

import pytest
import soundfile as sf
import torch
from transformers import LogitsProcessor

from tests.conftest import SPEAKER

TOLERANCE = 1e-4


class ForceTokens(LogitsProcessor):
    """Greedy decoding that picks `sequence[i]` at step i (raw logits are captured before this)."""

    def __init__(self, sequence):
        self.sequence, self.step = list(sequence), 0

    def __call__(self, input_ids, scores):
        forced = torch.full_like(scores, -float("inf"))
        forced[:, self.sequence[self.step]] = 0
        self.step += 1
        return forced


def generation_logits(checkpoint, text: str, codes: torch.Tensor, language: str = "auto"):
    """Teacher-forced greedy generation through the real qwen-tts modules. Returns (talker [T+1, V]:
    the raw logits of each talker step; sub [T, 15, V']: the raw logits of each sub-talker step)."""
    from inference.qwen import import_qwen_tts

    tts = import_qwen_tts().Qwen3TTSModel.from_pretrained(str(checkpoint))
    talker = tts.model.talker
    eos = tts.model.config.talker_config.codec_eos_token_id
    talker_generate, predictor_generate = talker.generate, talker.code_predictor.generate
    captured = {"talker": None, "sub": []}

    def forced_talker(*args, **kwargs):
        kwargs.update(logits_processor=[ForceTokens(codes[:, 0].tolist() + [eos])], output_logits=True)
        captured["talker"] = result = talker_generate(*args, **kwargs)
        return result

    def forced_predictor(*args, **kwargs):
        frame = len(captured["sub"])
        kwargs.update(logits_processor=[ForceTokens(codes[frame, 1:].tolist())], output_logits=True)
        result = predictor_generate(*args, **kwargs)
        captured["sub"].append(result)
        return result

    talker.generate, talker.code_predictor.generate = forced_talker, forced_predictor
    wavs, _ = tts.generate_custom_voice(text, speaker=SPEAKER, language=language, do_sample=False,
                                        subtalker_dosample=False, max_new_tokens=codes.shape[0] + 5)
    assert len(wavs[0]) == codes.shape[0] * 1920, "teacher forcing must reproduce the given frames"
    talker_logits = torch.cat(captured["talker"].logits).float()
    sub_logits = torch.stack([torch.cat(r.logits) for r in captured["sub"]]).float()
    return talker_logits, sub_logits


@pytest.mark.parametrize("language", ["auto", "english"])
def test_training_logits_equal_generation_logits_and_upstream_does_not(language, tiny_base, demo_clips, tmp_path):
    from inference.qwen import import_qwen_tts
    from training.checkpoint import save_custom_voice
    from training.forward import AlignedForward, Layout, collate, text_token_ids
    from training.upstream import scored_per_target

    tts = import_qwen_tts().Qwen3TTSModel.from_pretrained(str(tiny_base))
    model, processor = tts.model, tts.processor
    wav, sr = sf.read(demo_clips[1], dtype="float32")
    text = demo_clips[1].with_suffix(".txt").read_text().strip()
    speaker = model.extract_speaker_embedding(wav, sr)
    codes = model.speech_tokenizer.encode(wav, sr=sr).audio_codes[0].long().cpu()
    T = codes.shape[0]
    assert T > 10

    # Nudge the weights with a few real training steps first, so parity holds for trained weights too.
    forward = AlignedForward(model, speaker)
    batch = collate([(text_token_ids(processor, text), codes)], Layout.from_model(model, processor, language))
    optimizer = torch.optim.AdamW([p for n, p in model.named_parameters() if not n.startswith("speaker_encoder")], lr=1e-3)
    for _ in range(2):
        forward(batch).layer_means().sum().backward()
        optimizer.step()
        optimizer.zero_grad()
    with torch.no_grad():
        ours = forward(batch, keep_logits=True)
    checkpoint = save_custom_voice(model.state_dict(), tiny_base, tmp_path / "epoch-0001", SPEAKER, speaker)

    gen_talker, gen_sub = generation_logits(checkpoint, text, codes, language)
    assert gen_talker.shape == ours.talker_logits.shape == (T + 1, 3072)
    assert gen_sub.shape == ours.sub_logits.shape == (T, 15, 2048)
    # The targets are the codes generation was forced to (and the end of speech).
    assert ours.talker_targets.tolist() == codes[:, 0].tolist() + [2150]
    assert torch.equal(ours.sub_targets, codes[:, 1:])

    talker_diff = (gen_talker - ours.talker_logits).abs().max().item()
    sub_diff = (gen_sub - ours.sub_logits).abs().amax(dim=(0, 2))  # per head
    scale = gen_talker.abs().max().item()
    print(f"ours vs generation: codebook 0 max |diff| {talker_diff:.2e}, heads 1-15 max |diff| "
          f"{sub_diff.max().item():.2e} (logits up to {scale:.2f})")
    assert talker_diff < TOLERANCE
    assert (sub_diff < TOLERANCE).all(), sub_diff

    if language != "auto":
        return  # upstream knows only the "auto" prompt
    # The upstream procedure on the same weights, speaker and codes: what it scores against each
    # target is not what generation computes for it.
    up_talker, up_sub = scored_per_target(model, processor, text, codes, speaker)
    rows = ~torch.isnan(up_talker[:, 0])
    assert rows.all(), "upstream scores every frame (each from two positions earlier than generation)"
    up_talker_diff = (gen_talker[rows] - up_talker[rows]).abs().amax(dim=1)
    heads = ~torch.isnan(up_sub[0, :, 0])
    assert heads.tolist() == [False] + [True] * 14, "upstream scores nothing against codebook 1"
    up_sub_diff = (gen_sub[:, heads] - up_sub[:, heads]).abs().amax(dim=(0, 2))
    print(f"upstream vs generation: codebook 0 min over steps of max |diff| {up_talker_diff.min().item():.2e}, "
          f"heads min {up_sub_diff.min().item():.2e}")
    assert (up_talker_diff > 100 * TOLERANCE).all()
    assert (up_sub_diff > 100 * TOLERANCE).all()
