"""The frame loops' insides and the streaming decode: what the engine runs once a prompt is built.

Stock qwen-tts (`generate_custom_voice`) runs `talker.generate` to the end, calling HF `generate` of the
code predictor once per 80 ms frame, and decodes the whole clip at the end: no audio until everything is
done, and most of the 175 ms per frame on an H100 is generate() overhead (docs/upstream.md).

Here the same qwen-tts modules run frame by frame instead:
  * `frame_loop` calls the talker and the code predictor forwards directly with their KV caches and
    picks tokens with transformers' own logits processors in the order `generate` applies them
    (repetition penalty, min-length, suppressed control codes; then temperature, top-k, top-p), and the
    same softmax + multinomial / argmax, consuming the random stream in the same order; `lean_frames`
    feeds it qwen-tts's layers through HF (the reference), `fast_frames` inference/fastpath.py's;
  * `decode_stream` decodes codec frames in growing chunks with left context (as `chunked_decode`
    does), so the first audio is ready after a few frames.
With greedy decoding the codes equal stock's exactly; with sampling and the same seed they do too
(tests/audition/test_engine.py checks both against `generate_custom_voice`).
"""
from __future__ import annotations

from typing import Callable, Iterable, Iterator

import numpy as np
import torch

from contract.audio import SAMPLES_PER_FRAME as FRAME_SAMPLES
from inference.sampling import SubSampling, pick, sample_token, warpers

LEFT_CONTEXT = 25             # frames of left context per decoded chunk (as qwen-tts's chunked_decode)
CHUNK_SCHEDULE = (3, 6, 12, 25)  # frames per decoded chunk: a small first one for latency, then larger


class Cancelled(Exception):
    """The caller asked to stop this synthesis."""


def rng_state(device) -> tuple:
    """The random state a synthesis draws from: the CPU generator's and, on CUDA, the device's."""
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda, device


def set_rng_state(state: tuple) -> None:
    cpu, cuda, device = state
    torch.set_rng_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state(cuda, device)


def padded(p: dict) -> bool:
    """Whether the prompt has padding (the fast path's static step assumes none)."""
    return not bool(p["attention_mask"].all())


def frame_loop(talker, p: dict, max_new: int, cancel, *, pick, prefill, frame, step) -> Iterator[torch.Tensor]:
    """The per-frame loop both paths share, in stock's order: pick the talker's token (transformers'
    processors, then `pick`); stop on end-of-speech or the last allowed token (stock never feeds it);
    codebooks 1-15 and the summed frame embedding (`frame`); yield the frame; add the text still to be
    read; run the talker one position (`step`, returning the normed hidden state)."""
    device = p["inputs_embeds"].device
    eos = int(p["eos_token_id"])
    talker_procs, talker_sample = talker_processors(p, device)
    codec_embed = talker.get_input_embeddings()
    trailing, pad = p["trailing_text_hidden"], p["tts_pad_embed"]
    with torch.inference_mode():
        past_hidden, logits = prefill()
        generated = torch.zeros((1, 0), dtype=torch.long, device=device)
        for i in range(max_new):
            if cancel is not None and cancel.is_set():
                raise Cancelled
            token = pick(_apply(talker_procs, generated, logits), talker_sample)
            generated = torch.cat([generated, token[:, None]], dim=-1)
            if i == max_new - 1 or int(token) == eos:  # int(): the loop's one host sync per frame
                return
            token = token[:, None]
            last_id_hidden = codec_embed(token)
            sub_codes, inputs_embeds = frame(past_hidden, last_id_hidden)
            yield torch.cat((token, sub_codes), dim=-1)[0]
            if i < trailing.shape[1]:
                inputs_embeds = inputs_embeds + trailing[:, i].unsqueeze(1)
            else:
                inputs_embeds = inputs_embeds + pad
            hidden = step(inputs_embeds, i)
            past_hidden = hidden[:, -1:, :]
            logits = talker.codec_head(hidden)[:, -1, :].to(copy=True, dtype=torch.float32)


def fast_frames(fast, talker, p: dict, max_new: int, cancel) -> Iterator[torch.Tensor]:
    """The fast path (inference/fastpath.FastPath): same tokens, same order of random draws as the lean
    loop. The prompt must have no padding (`padded`)."""
    sub = SubSampling.from_prompt(p)
    length = p["inputs_embeds"].shape[1]
    yield from frame_loop(
        talker, p, max_new, cancel, pick=sample_token,
        prefill=lambda: fast.talker.prefill(p, max_new),
        frame=lambda past_hidden, last_id_hidden: fast.predictor.codes(past_hidden, last_id_hidden, sub),
        step=lambda inputs_embeds, step: fast.talker.step(inputs_embeds, length + step))


def lean_frames(talker, predictor: "CodePredictor", p: dict, max_new: int, cancel) -> Iterator[torch.Tensor]:
    """The lean loop: qwen-tts's modules through HF with a DynamicCache (the reference path)."""
    from transformers import DynamicCache

    device = p["inputs_embeds"].device
    sub_procs, sub_sample = warpers(p["subtalker_dosample"], p["subtalker_temperature"],
                                     p["subtalker_top_k"], p["subtalker_top_p"]), bool(p["subtalker_dosample"])
    length = p["inputs_embeds"].shape[1]
    # Positions as device tensors made once: a torch.tensor(...) per step would be a blocking copy on CUDA.
    positions = torch.arange(length + max_new + 1, device=device)
    state = {"mask": p["attention_mask"], "cache": DynamicCache()}
    ones = torch.ones((1, 1), dtype=state["mask"].dtype, device=device)

    def prefill():
        out = talker(inputs_embeds=p["inputs_embeds"], attention_mask=state["mask"], past_key_values=state["cache"],
                     use_cache=True, cache_position=positions[:length],
                     trailing_text_hidden=p["trailing_text_hidden"], tts_pad_embed=p["tts_pad_embed"])
        return out.past_hidden, out.logits[:, -1, :].to(copy=True, dtype=torch.float32)

    def frame(past_hidden, last_id_hidden):
        sub_codes = predictor.codes(past_hidden, last_id_hidden, sub_procs, sub_sample)
        return sub_codes, predictor.frame_embedding(last_id_hidden, sub_codes)

    def step(inputs_embeds, step):
        # The talker step, as Qwen3TTSTalkerForConditionalGeneration.forward's generate branch.
        state["mask"] = torch.cat([state["mask"], ones], dim=-1)
        cache_position = positions[length + step:length + step + 1]
        delta = cache_position[0] + talker.rope_deltas
        position_ids = torch.arange(1, device=device).view(1, -1).expand(1, -1).add(delta)
        position_ids = position_ids.unsqueeze(0).expand(3, -1, -1)
        return talker.model(inputs_embeds=inputs_embeds, attention_mask=state["mask"], position_ids=position_ids,
                            past_key_values=state["cache"], use_cache=True,
                            cache_position=cache_position).last_hidden_state

    yield from frame_loop(talker, p, max_new, cancel, pick=pick, prefill=prefill, frame=frame, step=step)


def talker_processors(p: dict, device) -> tuple[list, bool]:
    """The talker's logits processors in the order transformers' generate() builds them for stock's
    talker.generate call (seen there: repetition penalty, min length, min new tokens, suppress tokens)."""
    from transformers.generation.logits_process import (
        MinLengthLogitsProcessor, MinNewTokensLengthLogitsProcessor, RepetitionPenaltyLogitsProcessor,
        SuppressTokensLogitsProcessor)

    eos, min_new = int(p["eos_token_id"]), int(p.get("min_new_tokens", 2))
    procs = []
    if p["repetition_penalty"] is not None and p["repetition_penalty"] != 1.0:
        procs.append(RepetitionPenaltyLogitsProcessor(penalty=p["repetition_penalty"]))
    procs += [MinLengthLogitsProcessor(min_new, eos, device=device),
              MinNewTokensLengthLogitsProcessor(0, min_new, eos, device=device),
              SuppressTokensLogitsProcessor(p["suppress_tokens"], device=device)]
    return procs + warpers(p["do_sample"], p["temperature"], p["top_k"], p["top_p"]), bool(p["do_sample"])


def _apply(procs: list, ids, scores):
    # LogitsProcessorList.__call__ inspects each processor's signature on every call; same result without.
    for proc in procs:
        scores = proc(ids, scores)
    return scores


class CodePredictor:
    """Codebooks 1..15 of a frame, as `code_predictor.generate(max_new_tokens=15)` computes them, calling
    its layers directly. Its positions are 0..15 in every frame, so the rotary tables are made once; the
    causal mask that generate() would build is None for these shapes (sdpa's is_causal does the rest)."""

    def __init__(self, talker) -> None:
        self.cp = talker.code_predictor
        self.model = self.cp.model
        self.groups = talker.config.num_code_groups
        self.sub_embeds = self.cp.get_input_embeddings()
        self.layers = self.model.layers[: self.model.config.num_hidden_layers]
        param = next(self.cp.parameters())
        self.device = param.device
        self.positions = torch.arange(self.groups + 1, device=self.device)
        with torch.inference_mode():
            dummy = torch.zeros((1, 1, self.model.config.hidden_size), dtype=param.dtype, device=self.device)
            self.rope = [self.model.rotary_emb(dummy, self.positions[:2][None])] + [
                self.model.rotary_emb(dummy, self.positions[i:i + 1][None]) for i in range(2, self.groups + 1)]

    def _forward(self, embeds, step: int, cache):
        h = self.cp.small_to_mtp_projection(embeds)
        if step == 0:
            pos, cache_position = self.positions[:2][None], self.positions[:2]
        else:
            pos, cache_position = self.positions[step + 1:step + 2][None], self.positions[step + 1:step + 2]
        for layer in self.layers:
            h = layer(h, attention_mask=None, position_ids=pos, past_key_values=cache, use_cache=True,
                      cache_position=cache_position, position_embeddings=self.rope[step])[0]
        h = self.model.norm(h)
        return self.cp.lm_head[step](h)[:, -1, :].to(copy=True, dtype=torch.float32)

    def codes(self, past_hidden, last_id_hidden, procs: list, sample: bool):
        from transformers import DynamicCache

        cache = DynamicCache()
        embeds = torch.cat((past_hidden, last_id_hidden), dim=1)
        out = torch.zeros((1, 0), dtype=torch.long, device=self.device)
        for step in range(self.groups - 1):
            if step > 0:
                embeds = self.sub_embeds[step - 1](out[:, -1:])
            token = pick(_apply(procs, out, self._forward(embeds, step, cache)), sample)
            out = torch.cat([out, token[:, None]], dim=-1)
        return out

    def frame_embedding(self, last_id_hidden, sub_codes):
        """The talker's next input: the sum of the frame's 16 code embeddings (same order as stock)."""
        hiddens = torch.cat([last_id_hidden] + [self.sub_embeds[i](sub_codes[..., i:i + 1])
                                                for i in range(self.groups - 1)], dim=1)
        return hiddens.sum(1, keepdim=True)


# ---- streaming decode ------------------------------------------------------------------------------
def decode_stream(frames: Iterable[torch.Tensor], decoder, *, schedule=CHUNK_SCHEDULE, left_context: int = LEFT_CONTEXT,
                  on_frame: Callable[[torch.Tensor], None] | None = None, ticks: bool = False) -> Iterator[np.ndarray | None]:
    """float32 24 kHz audio of `frames` in chunks (`schedule` frames each, the last one repeating), each
    decoded with up to `left_context` frames before it, while later frames are still being generated.
    `ticks`: also yield None after each frame that completes no chunk (a caller interleaving several
    streams can then switch between frames, not only between chunks)."""
    all_frames: list = []
    emitted = 0          # frames already turned into audio
    chunk_index = 0
    for codes in frames:
        all_frames.append(codes)
        if on_frame is not None:
            on_frame(codes)
        want = schedule[min(chunk_index, len(schedule) - 1)]
        if len(all_frames) - emitted >= want:
            yield _chunk(decoder, all_frames, emitted, left_context)
            emitted, chunk_index = len(all_frames), chunk_index + 1
        elif ticks:
            yield None
    if len(all_frames) > emitted:
        yield _chunk(decoder, all_frames, emitted, left_context)


def _chunk(decoder, frames: list, start: int, left_context: int) -> np.ndarray:
    ctx = min(left_context, start)
    with torch.inference_mode():
        codes = torch.clamp(torch.stack(frames[start - ctx:], dim=0).T[None], min=0)  # [1, 16, n]
        wav = decoder(codes).squeeze(0).squeeze(0).to(torch.float32).cpu().numpy()
    return wav[ctx * FRAME_SAMPLES:]
