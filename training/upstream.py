"""The official fine-tuning procedure (Qwen's finetuning/sft_12hz.py + dataset.py), re-implemented here
in one place as a baseline: for the throughput benchmark (bench/train_throughput.py) and for the parity
test that must fail on it (tests/training/test_parity.py). Never used to train.

Kept as upstream has it, bugs included (docs/upstream.md):
  1. talker given inputs[:, :-1] with labels[:, 1:], and transformers' causal-LM loss shifts again:
     position p is scored against codebook 0 of the frame at p+2;
  2. the sub-talker is fed the hidden state at the frame's own position (which already consumed the
     frame's codes) instead of the previous position's;
  3. forward_sub_talker_finetune passes labels=codes[:, 1:] into the same shifting loss: head i is
     scored against codebook i+2, the last head never;
  4. text embeddings skip talker.text_projection;
  5. bf16 weights updated in bf16 by AdamW(weight_decay=0.01);
  6. the speaker encoder runs every step on each sample's reference mel (the reference audio is reloaded
     and its mel recomputed per sample); the first batch's embedding is the one saved.
Loss: talker + 0.3 * sub-talker; batch 2; gradient accumulation 4; gradient clipping 1.0.
"""
from __future__ import annotations

import numpy as np
import torch

from inference.qwen import import_qwen_tts

SUB_TALKER_WEIGHT = 0.3
GRAD_ACCUM = 4
WEIGHT_DECAY = 0.01
CLIP = 1.0


def upstream_text_ids(processor, text: str) -> list[int]:
    """dataset.py: the assistant string tokenized, last 5 tokens dropped (role + text remain)."""
    from training.forward import assistant_text

    ids = processor(text=assistant_text(text))["input_ids"]
    ids = ids[0] if ids and isinstance(ids[0], list) else ids
    return [int(i) for i in ids[:-5]]


def upstream_collate(items: list[tuple[list[int], torch.Tensor]], config) -> dict:
    """dataset.py's collate_fn: a [B, L, 2] (text channel, codec channel) layout with masks and labels."""
    tc = config.talker_config
    lengths = [len(t) + c.shape[0] for t, c in items]
    B, L = len(items), max(lengths) + 8
    input_ids = torch.zeros(B, L, 2, dtype=torch.long)
    codec_ids = torch.zeros(B, L, 16, dtype=torch.long)
    text_mask = torch.zeros(B, L, dtype=torch.bool)
    codec_emb_mask = torch.zeros(B, L, dtype=torch.bool)
    codec_mask = torch.zeros(B, L, dtype=torch.bool)
    attention = torch.zeros(B, L, dtype=torch.long)
    labels = torch.full((B, L), -100, dtype=torch.long)
    for i, (text, codes) in enumerate(items):
        n, T = len(text), codes.shape[0]
        text = torch.tensor(text)
        input_ids[i, :3, 0] = text[:3]
        input_ids[i, 3:7, 0] = config.tts_pad_token_id
        input_ids[i, 7, 0] = config.tts_bos_token_id
        input_ids[i, 8:8 + n - 3, 0] = text[3:]
        input_ids[i, 8 + n - 3, 0] = config.tts_eos_token_id
        input_ids[i, 8 + n - 2:8 + n + T, 0] = config.tts_pad_token_id
        text_mask[i, :8 + n + T] = True
        input_ids[i, 3:8, 1] = torch.tensor([tc.codec_nothink_id, tc.codec_think_bos_id, tc.codec_think_eos_id,
                                             0, tc.codec_pad_id])
        input_ids[i, 8:8 + n - 2, 1] = tc.codec_pad_id
        input_ids[i, 8 + n - 2, 1] = tc.codec_bos_id
        input_ids[i, 8 + n - 1:8 + n - 1 + T, 1] = codes[:, 0]
        input_ids[i, 8 + n - 1 + T, 1] = tc.codec_eos_token_id
        labels[i, 8 + n - 1:8 + n - 1 + T] = codes[:, 0]
        labels[i, 8 + n - 1 + T] = tc.codec_eos_token_id
        codec_ids[i, 8 + n - 1:8 + n - 1 + T] = codes
        codec_emb_mask[i, 3:8 + n + T] = True
        codec_emb_mask[i, 6] = False
        codec_mask[i, 8 + n - 1:8 + n - 1 + T] = True
        attention[i, :8 + n + T] = 1
    return dict(input_ids=input_ids, codec_ids=codec_ids, text_embedding_mask=text_mask.unsqueeze(-1),
                codec_embedding_mask=codec_emb_mask.unsqueeze(-1), codec_mask=codec_mask,
                attention_mask=attention, codec_0_labels=labels)


def reference_mel(path) -> torch.Tensor:
    """dataset.py's per-sample work: reload the reference audio and compute its 128-band mel."""
    import librosa

    import_qwen_tts()
    from qwen_tts.core.models.modeling_qwen3_tts import mel_spectrogram

    audio, sr = librosa.load(str(path), sr=None, mono=True)
    assert sr == 24000, f"upstream accepts only 24 kHz reference audio, got {sr}"
    return mel_spectrogram(torch.from_numpy(audio.astype(np.float32)).unsqueeze(0), n_fft=1024, num_mels=128,
                           sampling_rate=24000, hop_size=256, win_size=1024, fmin=0, fmax=12000).transpose(1, 2)


def upstream_forward(model, batch: dict, speaker_embedding: torch.Tensor, keep_scored: bool = False):
    """sft_12hz.py's loss for one batch. `speaker_embedding` [B, H]. Returns (loss, scored) where scored
    (with keep_scored) maps what each loss term compared: talker logits [B, L-1, V] with the target
    positions they were scored against, and sub-talker logits [F, 15, V] with their targets."""
    talker = model.talker
    device = next(model.parameters()).device
    b = {k: v.to(device) for k, v in batch.items()}
    text = talker.model.text_embedding(b["input_ids"][:, :, 0]) * b["text_embedding_mask"]  # bug 4
    codec = talker.model.codec_embedding(b["input_ids"][:, :, 1]) * b["codec_embedding_mask"]
    codec[:, 6, :] = speaker_embedding.to(codec.dtype)
    x = text + codec
    for i in range(1, 16):
        x = x + talker.code_predictor.get_input_embeddings()[i - 1](b["codec_ids"][:, :, i]) * \
            b["codec_mask"].unsqueeze(-1)
    out = talker(inputs_embeds=x[:, :-1], attention_mask=b["attention_mask"][:, :-1],
                 labels=b["codec_0_labels"][:, 1:], output_hidden_states=True)  # bug 1: shifted twice
    hidden = out.hidden_states[0][-1]
    sub_hidden = hidden[b["codec_mask"][:, :-1]]  # bug 2: the frame's own position
    sub_codes = b["codec_ids"][b["codec_mask"]]
    sub_logits, sub_loss = talker.forward_sub_talker_finetune(sub_codes, sub_hidden)  # bug 3
    loss = out.loss + SUB_TALKER_WEIGHT * sub_loss
    scored = None
    if keep_scored:
        scored = dict(talker_logits=out.logits.detach().float(), talker_labels=b["codec_0_labels"][:, 1:],
                      sub_logits=sub_logits.detach().float(), sub_codes=sub_codes)
    return loss, scored


def scored_per_target(model, processor, text: str, codes: torch.Tensor, speaker_embedding: torch.Tensor):
    """For one sample: the logits upstream scores against each target, in generation's indexing:
    (talker [T+1, V]: row t = logits scored against codebook 0 of frame t, row T against the end;
     sub [T, 15, V]: [t, k-1] = logits scored against codebook k of frame t), NaN where upstream scores
    nothing against that target."""
    T = codes.shape[0]
    batch = upstream_collate([(upstream_text_ids(processor, text), codes)], model.config)
    with torch.no_grad():
        _, s = upstream_forward(model, batch, speaker_embedding.reshape(1, -1), keep_scored=True)
    logits, labels = s["talker_logits"][0], s["talker_labels"][0]
    talker = torch.full((T + 1, logits.shape[-1]), float("nan"))
    first = int((labels != -100).nonzero()[0])  # the position of frame 0 in `labels`
    # transformers' loss compares logits[p] with labels[p + 1]
    for p in range(logits.shape[0] - 1):
        if labels[p + 1] != -100:
            talker[p + 1 - first] = logits[p].cpu()
    sub = torch.full((T, 15, s["sub_logits"].shape[-1]), float("nan"))
    # ... and for the sub-talker, logits[:, j] with codes[:, 1:][:, j + 1] = codebook j + 2
    sub[:, 1:] = s["sub_logits"][:, :-1].cpu()
    return talker, sub


class UpstreamData:
    """Per-sample work as dataset.py does it: text tokenized, reference audio reloaded, mel computed."""

    def __init__(self, examples, processor):
        self.examples, self.processor = examples, processor

    def batch(self, indices: list[int]) -> tuple[dict, torch.Tensor]:
        items, mels = [], []
        for i in indices:
            ex = self.examples[i]
            items.append((upstream_text_ids(self.processor, ex.text), torch.as_tensor(ex.codes, dtype=torch.long)))
            mels.append(reference_mel(ex.ref_audio))
        return items, torch.cat(mels)


def upstream_micro_step(model, config, items, mels, accum: int = GRAD_ACCUM) -> tuple[float, int]:
    """One micro-batch of sft_12hz.py: speaker encoder on this batch's mels, forward, backward (loss/accum).
    Returns (loss, frames)."""
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        speaker = model.speaker_encoder(mels.to(device, dtype)).detach()
        loss, _ = upstream_forward(model, upstream_collate(items, config), speaker)
    (loss / accum).backward()
    return float(loss.detach()), sum(int(c.shape[0]) for _, c in items)


def upstream_optimizer(model, lr: float):
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=WEIGHT_DECAY)


def upstream_optimizer_step(model, optimizer) -> None:
    torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
    optimizer.step()
    optimizer.zero_grad()
