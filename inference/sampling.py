"""What the lean and the fast frame loops share: the sub-talker's sampling settings, transformers'
sampling warpers as generate() builds them, the two ways to pick a token (torch.multinomial as stock
does it, and its sync-free equal), and the engine's log line. Both `loop` and `fastpath` import this
module; neither imports the other's internals.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass


def log(line: str) -> None:
    print(f"[engine] {line}", file=sys.stderr, flush=True)


def warpers(do_sample, temperature, top_k, top_p) -> list:
    """transformers' sampling warpers, as generate() adds them (only when sampling)."""
    from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    out = []
    if do_sample:
        if temperature is not None and temperature != 1.0:
            out.append(TemperatureLogitsWarper(temperature))
        if top_k is not None and top_k != 0:
            out.append(TopKLogitsWarper(top_k=top_k, min_tokens_to_keep=1))
        if top_p is not None and top_p < 1.0:
            out.append(TopPLogitsWarper(top_p=top_p, min_tokens_to_keep=1))
    return out


def pick(scores, sample: bool):
    import torch

    if sample:
        return torch.multinomial(torch.nn.functional.softmax(scores, dim=-1), num_samples=1).squeeze(1)
    return torch.argmax(scores, dim=-1)


def sample_token(scores, sample: bool):
    """The token `torch.multinomial(softmax(scores), 1)` (or argmax) picks, without its host syncs.

    For one sample PyTorch's multinomial draws q ~ Exp(1) with `empty_like(p).exponential_(1)` and returns
    argmax(p / q) (aten/src/ATen/native/Distributions.cpp, `multinomial_out`), after checking p with two
    `.item()` calls. This is the same draw from the same generator, minus the checks, so it consumes the
    random stream identically and may be captured in a CUDA graph."""
    import torch

    if not sample:
        return torch.argmax(scores, dim=-1)
    probs = torch.nn.functional.softmax(scores, dim=-1)
    q = torch.empty_like(probs).exponential_(1)
    return torch.argmax(probs / q, dim=-1)


@dataclass(frozen=True)
class SubSampling:
    """The sub-talker's sampling settings: a captured graph bakes them in."""
    do_sample: bool
    temperature: float | None
    top_k: int | None
    top_p: float | None

    @classmethod
    def from_prompt(cls, p: dict) -> "SubSampling":
        """From what stock passes to talker.generate (the prompt `Engine._prefill` captures)."""
        return cls(bool(p["subtalker_dosample"]), p["subtalker_temperature"], p["subtalker_top_k"], p["subtalker_top_p"])

    @classmethod
    def from_sampling(cls, s) -> "SubSampling":
        """From an engine `Sampling` (the same values generate_custom_voice passes on)."""
        return cls(bool(s.subtalker_dosample), s.subtalker_temperature, s.subtalker_top_k, s.subtalker_top_p)
