"""The training forward pass whose scored logits are the logits generation computes.

Everything here follows `Qwen3TTSForConditionalGeneration.generate` (custom voice, non-streaming text,
the mode `generate_custom_voice` uses) position by position; docs/training.md explains each point.

Talker input for one sample with N text tokens and T codec frames (language "auto": P = 3 prefill ids
nothink, think_bos, think_eos; with a language P = 4: think, think_bos, language, think_eos):

    0 .. 2           text_projection(text("<|im_start|>assistant\\n"))              (no codec channel)
    3 .. 2+P         tts_pad + codec(prefill id)
    3+P              tts_pad + speaker embedding                        (fixed vector, slot 3000 at save)
    4+P              tts_bos + codec(pad)
    5+P .. 4+P+N     text_projection(text token) + codec(pad)
    5+P+N            tts_eos + codec(pad)
    6+P+N = bos      tts_pad + codec(bos)
    bos+1+t          tts_pad + sum_k codec_k(frame t, codebook k)          t = 0 .. T-1

(tts_pad/bos/eos are text_projection(text_embedding(id)).) The talker's logits at position bos+t predict
codebook 0 of frame t, and at bos+T the end of speech (codec_eos): targets are shifted exactly once, and
no loss function shifts them again. The sub-talker for frame t gets the talker's final hidden state at
bos+t (the position whose logits chose the frame's codebook 0, as in generation), then the codebook-0
embedding, then codebooks 1..14; its head k-1, at sub-position k, is scored against codebook k.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from contract.audio import NUM_CODEBOOKS
ROLE_TOKENS = 3   # "<|im_start|>assistant\n"
SUFFIX_TOKENS = 5  # "<|im_end|>\n<|im_start|>assistant\n"


def assistant_text(text: str) -> str:
    """The string generation tokenizes (Qwen3TTSModel._build_assistant_text)."""
    return f"<|im_start|>assistant\n{text}<|im_end|>\n<|im_start|>assistant\n"


def text_token_ids(processor, text: str) -> list[int]:
    """The text tokens generation feeds: the full assistant string tokenized, role and suffix sliced
    off (generate uses input_id[:, 3:-5]), so tokens at the edges merge exactly as in generation."""
    ids = processor(text=assistant_text(text))["input_ids"]
    ids = ids[0] if ids and isinstance(ids[0], list) else ids
    ids = [int(i) for i in ids]
    return ids[ROLE_TOKENS:-SUFFIX_TOKENS]


@dataclass(frozen=True)
class Layout:
    """The token ids the prompt is built from, read from the model's config."""
    role_ids: tuple[int, ...]
    tts_pad: int
    tts_bos: int
    tts_eos: int
    codec_prefill: tuple[int, ...]
    codec_pad: int
    codec_bos: int
    codec_eos: int

    @classmethod
    def from_model(cls, model, processor, language: str = "auto") -> "Layout":
        cfg, tc = model.config, model.config.talker_config
        role = processor(text="<|im_start|>assistant\n")["input_ids"]
        role = role[0] if role and isinstance(role[0], list) else role
        if len(role) != ROLE_TOKENS:
            raise ValueError(f"the text tokenizer splits the role prefix into {len(role)} tokens, expected 3")
        if language.lower() == "auto":
            prefill = (tc.codec_nothink_id, tc.codec_think_bos_id, tc.codec_think_eos_id)
        else:
            if language.lower() not in tc.codec_language_id:
                raise ValueError(f"language {language!r} is not one of the model's: "
                                 f"{', '.join(sorted(tc.codec_language_id))} (or auto)")
            prefill = (tc.codec_think_id, tc.codec_think_bos_id, tc.codec_language_id[language.lower()],
                       tc.codec_think_eos_id)
        return cls(tuple(int(i) for i in role), cfg.tts_pad_token_id, cfg.tts_bos_token_id, cfg.tts_eos_token_id,
                   tuple(int(i) for i in prefill), tc.codec_pad_id, tc.codec_bos_id, tc.codec_eos_token_id)

    def prompt_length(self, n_text: int) -> int:
        """Positions before the first frame (the last one is codec bos)."""
        return ROLE_TOKENS + len(self.codec_prefill) + 4 + n_text


@dataclass
class Batch:
    """A padded batch (right padding: with causal attention, padding never reaches a real position)."""
    text_ids: torch.Tensor     # [B, L] text channel ids
    text_mask: torch.Tensor    # [B, L] bool
    codec_ids: torch.Tensor    # [B, L] codec channel ids (codebook 0 at frame positions)
    codec_mask: torch.Tensor   # [B, L] bool
    speaker_pos: torch.Tensor  # [B]
    bos_pos: torch.Tensor      # [B]
    frames: torch.Tensor       # [F, 16] all frames of the batch, sample by sample
    frame_sample: torch.Tensor  # [F] sample index of each frame
    frame_index: torch.Tensor  # [F] frame number within its sample
    n_frames: torch.Tensor     # [B]
    talker_rows: torch.Tensor  # [sum(T+1)] sample of each codebook-0 target
    talker_pos: torch.Tensor   # [sum(T+1)] position whose logits are scored against it: bos + t
    talker_targets: torch.Tensor  # [sum(T+1)] codebook 0 of frames 0..T-1, then codec_eos, per sample

    @property
    def samples(self) -> int:
        return int(self.text_ids.shape[0])

    @property
    def tokens(self) -> int:
        return int(self.frames.shape[0])

    def to(self, device) -> "Batch":
        return Batch(**{k: v.to(device, non_blocking=True) for k, v in self.__dict__.items()})


def collate(items: list[tuple[list[int], torch.Tensor]], layout: Layout) -> Batch:
    """`items`: (text token ids, codes [T, 16]) per sample."""
    P = len(layout.codec_prefill)
    lengths = [layout.prompt_length(len(t)) + c.shape[0] for t, c in items]
    B, L = len(items), max(lengths)
    text_ids = torch.zeros(B, L, dtype=torch.long)
    text_mask = torch.zeros(B, L, dtype=torch.bool)
    codec_ids = torch.zeros(B, L, dtype=torch.long)
    codec_mask = torch.zeros(B, L, dtype=torch.bool)
    bos_pos = torch.zeros(B, dtype=torch.long)
    for b, (text, codes) in enumerate(items):
        N, T = len(text), codes.shape[0]
        bos = layout.prompt_length(N) - 1
        row = list(layout.role_ids) + [layout.tts_pad] * (P + 1) + [layout.tts_bos] + list(text) + \
            [layout.tts_eos] + [layout.tts_pad] * (1 + T)
        text_ids[b, :len(row)] = torch.tensor(row)
        text_mask[b, :len(row)] = True
        codec_ids[b, 3:3 + P] = torch.tensor(layout.codec_prefill)
        codec_ids[b, 4 + P:bos] = layout.codec_pad
        codec_ids[b, bos] = layout.codec_bos
        codec_ids[b, bos + 1:bos + 1 + T] = codes[:, 0]
        codec_mask[b, 3:bos + 1 + T] = True
        codec_mask[b, 3 + P] = False  # the speaker embedding goes here
        bos_pos[b] = bos
    frames = torch.cat([c for _, c in items]).long()
    n_frames = torch.tensor([c.shape[0] for _, c in items])
    frame_sample = torch.repeat_interleave(torch.arange(B), n_frames)
    frame_index = torch.cat([torch.arange(int(n)) for n in n_frames])
    # Codebook 0: logits at bos+t predict frame t, and at bos+T the end of speech (exactly one shift).
    talker_rows = torch.repeat_interleave(torch.arange(B), n_frames + 1)
    talker_pos = torch.cat([bos_pos[b] + torch.arange(int(n) + 1) for b, n in enumerate(n_frames)])
    eos = torch.tensor([layout.codec_eos])
    talker_targets = torch.cat([t for _, c in items for t in (c[:, 0].long(), eos)])
    return Batch(text_ids, text_mask, codec_ids, codec_mask, torch.full((B,), 3 + P), bos_pos,
                 frames, frame_sample, frame_index, n_frames, talker_rows, talker_pos, talker_targets)


@dataclass
class ForwardOutput:
    layer_sums: torch.Tensor    # [16] summed cross-entropy per codebook (fp32)
    layer_counts: torch.Tensor  # [16] how many targets each sum covers
    talker_logits: torch.Tensor | None = None   # [sum(T+1), V] logits scored for codebook 0 (+ end)
    talker_targets: torch.Tensor | None = None
    sub_logits: torch.Tensor | None = None      # [F, 15, V'] logits scored for codebooks 1..15
    sub_targets: torch.Tensor | None = None

    def layer_means(self) -> torch.Tensor:
        return self.layer_sums / self.layer_counts.clamp(min=1)


def objective(layer_means: torch.Tensor, sub_talker_weight: float) -> torch.Tensor:
    """What is optimized: codebook-0 loss + w * mean of codebooks 1..15 (upstream's w is 0.3)."""
    return layer_means[0] + sub_talker_weight * layer_means[1:].mean()


class AlignedForward(torch.nn.Module):
    """Wraps a Qwen3TTSForConditionalGeneration: forward(batch) -> ForwardOutput.

    A module of its own so that DistributedDataParallel can wrap it. The speaker embedding is a fixed
    buffer: computed once from the reference audio, never trained, written into row 3000 at save."""

    def __init__(self, model, speaker_embedding: torch.Tensor):
        super().__init__()
        self.model = model
        self.register_buffer("speaker_embedding", speaker_embedding.detach().clone().float().reshape(-1),
                             persistent=False)

    def embed(self, batch: Batch) -> torch.Tensor:
        talker = self.model.talker
        text = talker.text_projection(talker.model.text_embedding(batch.text_ids))
        codec = talker.model.codec_embedding(batch.codec_ids)
        x = text * batch.text_mask.unsqueeze(-1) + codec * batch.codec_mask.unsqueeze(-1)
        B = batch.text_ids.shape[0]
        rows = torch.arange(B, device=x.device)
        speaker = self.speaker_embedding.to(x.dtype).expand(B, -1)
        x = x.index_put((rows, batch.speaker_pos), speaker, accumulate=True)
        # Codebooks 1..15 of each frame, added where the frame's codebook 0 is (codec_ids holds it).
        tables = talker.code_predictor.model.codec_embedding
        sub = sum(tables[k - 1](batch.frames[:, k]) for k in range(1, NUM_CODEBOOKS))
        pos = batch.bos_pos[batch.frame_sample] + 1 + batch.frame_index
        return x.index_put((batch.frame_sample, pos), sub.to(x.dtype), accumulate=True)

    def forward(self, batch: Batch, keep_logits: bool = False) -> ForwardOutput:
        talker = self.model.talker
        hidden = talker.model(inputs_embeds=self.embed(batch), use_cache=False).last_hidden_state

        # Codebook 0: logits at bos+t predict frame t; at bos+T the end of speech.
        talker_logits = talker.codec_head(hidden[batch.talker_rows, batch.talker_pos]).float()
        targets0 = batch.talker_targets
        ce0 = F.cross_entropy(talker_logits, targets0, reduction="sum")

        # Codebooks 1..15: the sub-talker sees [hidden at bos+t, codebook 0, codebooks 1..14].
        past_hidden = hidden[batch.frame_sample, batch.bos_pos[batch.frame_sample] + batch.frame_index]
        tables = talker.code_predictor.model.codec_embedding
        sub_inputs = [past_hidden, talker.model.codec_embedding(batch.frames[:, 0])]
        sub_inputs += [tables[k - 1](batch.frames[:, k]) for k in range(1, NUM_CODEBOOKS - 1)]
        sub_inputs = torch.stack([s.to(past_hidden.dtype) for s in sub_inputs], dim=1)
        sub_logits = talker.code_predictor.forward_finetune(inputs_embeds=sub_inputs, use_cache=False).logits.float()
        sub_targets = batch.frames[:, 1:]
        ce = F.cross_entropy(sub_logits.reshape(-1, sub_logits.shape[-1]), sub_targets.reshape(-1), reduction="none")
        ce_sub = ce.view(sub_targets.shape).sum(0)

        sums = torch.cat([ce0.reshape(1), ce_sub])
        n = torch.tensor([float(targets0.numel())] + [float(sub_targets.shape[0])] * (NUM_CODEBOOKS - 1)).to(sums.device)
        out = ForwardOutput(sums, n)
        if keep_logits:
            out.talker_logits, out.talker_targets = talker_logits.detach(), targets0
            out.sub_logits, out.sub_targets = sub_logits.detach(), sub_targets
        return out
