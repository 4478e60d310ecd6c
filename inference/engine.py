"""The audition engine: load one custom-voice checkpoint, stream its speech in chunks, time it.

Stock qwen-tts (`generate_custom_voice`) runs `talker.generate` to the end, calling HF `generate` of the
code predictor once per 80 ms frame, and decodes the whole clip at the end: no audio until everything is
done, and most of the 175 ms per frame on an H100 is generate() overhead (docs/upstream.md).

This engine runs the same qwen-tts modules frame by frame instead:
  * the prefill (text, speaker, language tags) is built by qwen-tts itself: we call the stock
    `generate` with `talker.generate` swapped for a function that captures its arguments, so our
    prompt is the stock prompt by construction;
  * a lean loop calls the talker and the code predictor forwards directly with their KV caches and
    picks tokens with transformers' own logits processors in the order `generate` applies them
    (repetition penalty, min-length, suppressed control codes; then temperature, top-k, top-p), and the
    same softmax + multinomial / argmax, consuming the random stream in the same order;
  * codec frames are decoded in growing chunks with left context (as `chunked_decode` does), so the
    first audio is ready after a few frames.
With greedy decoding the codes equal stock's exactly; with sampling and the same seed they do too
(tests/audition/test_engine.py checks both against `generate_custom_voice`).
"""
from __future__ import annotations

import gc
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from contract.audio import SAMPLE_RATE, SAMPLES_PER_FRAME as FRAME_SAMPLES
from contract.checkpoint import CheckpointInfo, validate_checkpoint
from contract.protocol import ENGINE_PATHS, PATH_AUTO, PATH_FAST, PATH_LEAN
from contract.text import split_sentences
from inference.budget import SENTENCE_GAP_S, sentence_limit
from inference.qwen import import_qwen_tts
from inference.sampling import SubSampling, log, pick, sample_token, warpers

LEFT_CONTEXT = 25             # frames of left context per decoded chunk (as qwen-tts's chunked_decode)
CHUNK_SCHEDULE = (3, 6, 12, 25)  # frames per decoded chunk: a small first one for latency, then larger
# On a CPU, a talker this narrow is all per-op overhead: extra intra-op threads only contend (measured
# here: 4x real time on one thread, 0.3x-1.7x on two when the machine is busy).
SMALL_MODEL_HIDDEN = 256


def _rng_state(device) -> tuple:
    """The random state a synthesis draws from: the CPU generator's and, on CUDA, the device's."""
    import torch

    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda, device


def _set_rng_state(state: tuple) -> None:
    import torch

    cpu, cuda, device = state
    torch.set_rng_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state(cuda, device)


class Cancelled(Exception):
    """The caller asked to stop this synthesis."""


class EngineError(RuntimeError):
    """One line for the operator: what went wrong and what to do."""


@dataclass(frozen=True)
class Sampling:
    """The sampling controls of `generate_custom_voice`, same names and meaning."""
    do_sample: bool = True
    top_k: int = 50
    top_p: float = 1.0
    temperature: float = 0.9
    repetition_penalty: float = 1.05
    subtalker_dosample: bool = True
    subtalker_top_k: int = 50
    subtalker_top_p: float = 1.0
    subtalker_temperature: float = 0.9
    max_new_tokens: int = 2048

    @classmethod
    def from_config(cls, generation: dict | None = None, **overrides) -> "Sampling":
        """Defaults, then the checkpoint's generation_config.json, then explicit non-None overrides."""
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in (generation or {}).items() if k in names}
        values.update({k: v for k, v in overrides.items() if k in names and v is not None})
        unknown = sorted(k for k, v in overrides.items() if k not in names and v is not None)
        if unknown:
            raise EngineError(f"unknown sampling option(s): {', '.join(unknown)}")
        return cls(**values)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Timings:
    load_s: float = 0.0          # loading the checkpoint this audition used (0 when already loaded)
    first_audio_s: float | None = None  # request to the first chunk of audio ready to play
    audio_s: float = 0.0         # seconds of audio produced
    wall_s: float = 0.0          # request to the last chunk
    frames: int = 0
    sentences: int = 0
    runaway: int = 0             # sentences that reached their frame limit without saying end-of-speech

    @property
    def rtf(self) -> float:
        """Audio seconds per wall second (above 1: faster than real time)."""
        return self.audio_s / self.wall_s if self.wall_s > 0 else 0.0

    def as_dict(self) -> dict:
        d = asdict(self)
        d["rtf"] = round(self.rtf, 4)
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items()}


@dataclass
class Loaded:
    info: CheckpointInfo
    tts: object                  # qwen_tts.Qwen3TTSModel
    load_s: float
    device: str
    dtype: str
    predictor: "_CodePredictor | None" = field(default=None, repr=False)
    path: str = PATH_LEAN         # the frame loop this model runs: PATH_LEAN or PATH_FAST (see Engine.path)
    path_reason: str = ""         # why that one
    fast: "object | None" = field(default=None, repr=False)  # inference.fastpath.FastPath
    prepare_s: float = 0.0        # building the fast path and capturing its CUDA graph (once per model)

    def describe(self) -> dict:
        """The path in use, for events and logs."""
        d = {"path": self.path, "path_reason": self.path_reason, "prepare_s": round(self.prepare_s, 3)}
        if self.fast is not None:
            d["graph"] = self.fast.status()
        return d


def resolve_device(device: str = "auto") -> str:
    import torch

    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EngineError(f"device {device!r} asked for, but torch sees no CUDA GPU (use --device cpu)")
    return device


class _Captured(Exception):
    pass


# The frame loops (contract.protocol.ENGINE_PATHS). Lean: qwen-tts's layers called through HF with a
# DynamicCache (the reference). Fast: inference/fastpath.py (static caches, layers written out, sync-free
# sampling, the code predictor captured as a CUDA graph on CUDA). Both give the same codes. Auto: fast on
# CUDA; on a CPU CPU_DEFAULT_PATH, whichever was faster on the tiny model here (docs/audition.md).
CPU_DEFAULT_PATH = PATH_FAST


class Engine:
    """One checkpoint at a time. Not thread-safe: one caller thread uses it (the worker's job thread)."""

    def __init__(self, device: str = "auto", dtype: str | None = None, attn_implementation: str = "sdpa",
                 tune_threads: bool = False, path: str | None = None, graphs: bool | None = None) -> None:
        """`tune_threads`: set torch's CPU thread count for the loaded model (a process-wide setting, so
        only for processes the engine owns: the worker, milo-say, the benchmark).
        `path`: the frame loop, "auto" (default; $MILO_AUDITION_PATH overrides), "fast" or "lean" (see
        ENGINE_PATHS). `graphs`: capture the fast path's code predictor as a CUDA graph (default: on CUDA,
        unless $MILO_AUDITION_GRAPHS=0)."""
        self.device = resolve_device(device)
        self.tune_threads = tune_threads
        self.dtype_name = dtype or ("bfloat16" if self.device.startswith("cuda") else "float32")
        self.attn_implementation = attn_implementation
        self.path = (path or os.environ.get("MILO_AUDITION_PATH") or PATH_AUTO).lower()
        if self.path not in ENGINE_PATHS:
            raise EngineError(f"unknown engine path {self.path!r}: one of {', '.join(ENGINE_PATHS)}")
        if graphs is None:
            graphs = os.environ.get("MILO_AUDITION_GRAPHS", "1").strip().lower() not in ("0", "no", "false", "off")
        self.graphs = bool(graphs) and self.device.startswith("cuda")
        self.loaded: Loaded | None = None

    # ---- loading -------------------------------------------------------------------------------
    def warm_up(self) -> None:
        """Import qwen_tts now (seconds), so the first load's time is the load's own."""
        import_qwen_tts()

    def load(self, path: str | Path) -> Loaded:
        """Validate, unload the current checkpoint, load this one (no network). Raises CheckpointError."""
        info = validate_checkpoint(path)
        if self.loaded is not None and self.loaded.info.path == info.path:
            return self.loaded
        self.unload()
        import torch

        qwen_tts = import_qwen_tts()
        t0 = time.perf_counter()
        kwargs = dict(dtype=getattr(torch, self.dtype_name), attn_implementation=self.attn_implementation)
        if self.device != "cpu":
            kwargs["device_map"] = self.device
        try:
            tts = qwen_tts.Qwen3TTSModel.from_pretrained(str(info.path), **kwargs)
        except torch.cuda.OutOfMemoryError as exc:
            raise EngineError(f"out of GPU memory loading {info.name} (is a trainer using the GPU?): {exc}") from None
        tts.model.eval()
        self._sync()
        self.loaded = Loaded(info=info, tts=tts, load_s=time.perf_counter() - t0, device=self.device, dtype=self.dtype_name)
        self._tune_threads(tts)
        self._choose_path(self.loaded)
        return self.loaded

    def _tune_threads(self, tts) -> None:
        import torch

        if self.tune_threads and self.device == "cpu" and tts.model.talker.config.hidden_size <= SMALL_MODEL_HIDDEN:
            torch.set_num_threads(1)

    def adopt(self, tts, info: CheckpointInfo) -> Loaded:
        """Use a model built in memory (benchmarks: random weights at the real shape)."""
        self.unload()
        self.loaded = Loaded(info=info, tts=tts, load_s=0.0, device=str(tts.device), dtype=str(tts.model.dtype).replace("torch.", ""))
        self._tune_threads(tts)
        self._choose_path(self.loaded)
        return self.loaded

    def _choose_path(self, loaded: Loaded) -> None:
        """Pick the frame loop for this model, and on CUDA capture the fast path's graph for the
        checkpoint's own sampling settings now (once per model), not during the first audition."""
        from inference import fastpath

        talker = loaded.tts.model.talker
        reason = fastpath.unsupported_reason(talker)
        if self.path == PATH_LEAN:
            loaded.path, loaded.path_reason = PATH_LEAN, "asked for"
        elif reason is not None:
            loaded.path, loaded.path_reason = PATH_LEAN, f"the fast path cannot run this model: {reason}"
            log(loaded.path_reason)
        elif self.path == PATH_FAST:
            loaded.path, loaded.path_reason = PATH_FAST, "asked for"
        elif self.device.startswith("cuda"):
            loaded.path, loaded.path_reason = PATH_FAST, "default on CUDA"
        else:
            loaded.path, loaded.path_reason = CPU_DEFAULT_PATH, "default on CPU (measured on the tiny model)"
        if loaded.path != PATH_FAST:
            return
        t0 = time.perf_counter()
        try:
            loaded.fast = fastpath.FastPath(talker, graphs=self.graphs)
            loaded.fast.prepare(SubSampling.from_sampling(Sampling.from_config(loaded.info.generation)))
            self._sync()
        except Exception as exc:  # noqa: BLE001 - any failure of the fast path leaves the reference loop
            self._fall_back(loaded, "preparing", exc)
        loaded.prepare_s = time.perf_counter() - t0

    def _fall_back(self, loaded: Loaded, when: str, exc: BaseException) -> None:
        """The fast loop failed: this model runs the lean loop from now on, and the log says why."""
        from inference import fastpath

        if loaded.fast is not None:
            loaded.fast.release()
        loaded.fast = None
        loaded.path = PATH_LEAN
        loaded.path_reason = f"the fast path failed while {when} ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); lean loop from now on"
        log(loaded.path_reason)

    def unload(self) -> None:
        if self.loaded is None:
            return
        if self.loaded.fast is not None:
            self.loaded.fast.release()
        self.loaded = None
        gc.collect()
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    def _require(self) -> Loaded:
        if self.loaded is None:
            raise EngineError("no checkpoint loaded")
        return self.loaded

    def _sync(self) -> None:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()

    def speaker_for(self, speaker: str | None) -> str:
        info = self._require().info
        if not speaker:
            return info.speaker
        if speaker.lower() not in {s.lower() for s in info.speakers}:
            raise EngineError(f"unknown speaker {speaker!r}: {info.name} has {', '.join(info.speakers)}")
        return speaker

    def sampling(self, **overrides) -> Sampling:
        return Sampling.from_config(self._require().info.generation, **overrides)

    # ---- generation ----------------------------------------------------------------------------
    def _prefill(self, text: str, speaker: str, language: str, sampling: Sampling) -> dict:
        """The stock prompt: run qwen-tts's own `generate_custom_voice` up to `talker.generate` and keep
        what it would have passed (inputs_embeds, attention_mask, trailing_text_hidden, tts_pad_embed,
        eos/suppress settings). Non-streaming text mode, as generate_custom_voice's default."""
        tts = self._require().tts
        captured: dict = {}

        def capture(**kwargs):
            captured.update(kwargs)
            raise _Captured

        tts.model.talker.generate = capture  # instance attribute: shadows the method for this call only
        try:
            tts.generate_custom_voice(text, speaker=speaker, language=language, **sampling.as_dict())
        except _Captured:
            pass
        finally:
            del tts.model.talker.generate
        if not captured:
            raise EngineError("qwen-tts did not reach talker.generate (unexpected qwen-tts version?)")
        return captured

    def frames(self, text: str, *, speaker: str | None = None, language: str = "auto",
               sampling: Sampling | None = None, max_tokens: int | None = None,
               cancel: threading.Event | None = None) -> Iterator["object"]:
        """Codec frames (LongTensor [16] each, on the model's device) of one sentence, as generated.
        Seeding is the caller's (torch.manual_seed), as with stock generation."""
        sampling = sampling or self.sampling()
        speaker = self.speaker_for(speaker)
        p = self._prefill(text, speaker, language, sampling)
        max_new = int(p["max_new_tokens"] if max_tokens is None else min(p["max_new_tokens"], max_tokens))
        loaded = self._require()
        if loaded.path == PATH_FAST:
            # A failure of the fast loop (a kernel or device problem it alone meets) moves this model to the
            # lean loop for good. Before the first frame, the sentence is made again by the lean loop from
            # the same random state, so the operator hears what the seed gives; after it, the error goes up.
            rng = _rng_state(p["inputs_embeds"].device)
            made = 0
            try:
                for codes in self._frames_fast(loaded, p, max_new, cancel):
                    made += 1
                    yield codes
                return
            except Cancelled:
                raise
            except Exception as exc:  # noqa: BLE001
                self._fall_back(loaded, "generating", exc)
                if made:
                    raise
            _set_rng_state(rng)
        yield from self._frames_lean(p, max_new, cancel)

    def _frames_fast(self, loaded: Loaded, p: dict, max_new: int, cancel) -> Iterator["object"]:
        """The fast path (inference/fastpath.py): same tokens, same order of random draws as the lean loop."""
        fast = loaded.fast
        if not bool(p["attention_mask"].all()):  # padding in the prompt: the static step assumes none
            yield from self._frames_lean(p, max_new, cancel)
            return
        sub = SubSampling.from_prompt(p)
        length = p["inputs_embeds"].shape[1]
        yield from self._frame_loop(
            p, max_new, cancel, pick=sample_token,
            prefill=lambda: fast.talker.prefill(p, max_new),
            frame=lambda past_hidden, last_id_hidden: fast.predictor.codes(past_hidden, last_id_hidden, sub),
            step=lambda inputs_embeds, step: fast.talker.step(inputs_embeds, length + step))

    def _frames_lean(self, p: dict, max_new: int, cancel) -> Iterator["object"]:
        """The lean loop: qwen-tts's modules through HF with a DynamicCache (the reference path)."""
        import torch
        from transformers import DynamicCache

        talker = self._require().tts.model.talker
        predictor = self._predictor()
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

        yield from self._frame_loop(p, max_new, cancel, pick=pick, prefill=prefill, frame=frame, step=step)

    def _frame_loop(self, p: dict, max_new: int, cancel, *, pick, prefill, frame, step) -> Iterator["object"]:
        """The per-frame loop both paths share, in stock's order: pick the talker's token (transformers'
        processors, then `pick`); stop on end-of-speech or the last allowed token (stock never feeds it);
        codebooks 1-15 and the summed frame embedding (`frame`); yield the frame; add the text still to be
        read; run the talker one position (`step`, returning the normed hidden state)."""
        import torch

        talker = self._require().tts.model.talker
        device = p["inputs_embeds"].device
        eos = int(p["eos_token_id"])
        talker_procs, talker_sample = _talker_processors(p, device)
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

    def _predictor(self) -> "_CodePredictor":
        loaded = self._require()
        if loaded.predictor is None:
            loaded.predictor = _CodePredictor(loaded.tts.model.talker)
        return loaded.predictor

    def decode(self, codes) -> np.ndarray:
        """Whole-clip decode of [T, 16] codes, exactly as stock does it (speech_tokenizer.decode)."""
        wavs, _ = self._require().tts.model.speech_tokenizer.decode([{"audio_codes": codes}])
        return np.asarray(wavs[0], dtype=np.float32)

    def _decode_window(self, window) -> np.ndarray:
        import torch

        decoder = self._require().tts.model.speech_tokenizer.model.decoder
        with torch.inference_mode():
            codes = torch.clamp(torch.stack(window, dim=0).T[None], min=0)  # [1, 16, n]
            wav = decoder(codes).squeeze(0).squeeze(0)
            return wav.to(torch.float32).cpu().numpy()

    def stream_sentence(self, text: str, *, sampling: Sampling | None = None, speaker: str | None = None,
                        language: str = "auto", max_tokens: int | None = None,
                        cancel: threading.Event | None = None, schedule=CHUNK_SCHEDULE,
                        left_context: int = LEFT_CONTEXT, on_frame: Callable[[object], None] | None = None) -> Iterator[np.ndarray]:
        """float32 24 kHz audio of one sentence in chunks, decoded while later frames are generated."""
        all_frames: list = []
        emitted = 0          # frames already turned into audio
        chunk_index = 0
        for codes in self.frames(text, speaker=speaker, language=language, sampling=sampling,
                                 max_tokens=max_tokens, cancel=cancel):
            all_frames.append(codes)
            if on_frame is not None:
                on_frame(codes)
            want = schedule[min(chunk_index, len(schedule) - 1)]
            if len(all_frames) - emitted >= want:
                yield self._chunk(all_frames, emitted, left_context)
                emitted, chunk_index = len(all_frames), chunk_index + 1
        if len(all_frames) > emitted:
            yield self._chunk(all_frames, emitted, left_context)

    def _chunk(self, frames: list, start: int, left_context: int) -> np.ndarray:
        ctx = min(left_context, start)
        wav = self._decode_window(frames[start - ctx:])
        return wav[ctx * FRAME_SAMPLES:]

    def stream(self, text: str, *, seed: int, sampling: Sampling | None = None, speaker: str | None = None,
               language: str = "auto", budget: bool = True, cancel: threading.Event | None = None,
               timings: Timings | None = None, on_sentence: Callable[[int, int, str], None] | None = None,
               on_frame: Callable[[object], None] | None = None) -> Iterator[np.ndarray]:
        """The whole audition: text checked and split into sentences (TextError), seeded once, each
        sentence streamed in turn with a short pause between. `timings` (if given) is filled in as it goes."""
        import torch

        sentences = split_sentences(text)
        sampling = sampling or self.sampling()
        self.speaker_for(speaker)
        timings = timings if timings is not None else Timings()
        timings.sentences = len(sentences)
        t0 = time.perf_counter()
        torch.manual_seed(int(seed))
        if self.device.startswith("cuda"):
            torch.cuda.manual_seed_all(int(seed))

        def count(codes) -> None:
            timings.frames += 1
            if on_frame is not None:
                on_frame(codes)

        for i, sentence in enumerate(sentences):
            if on_sentence is not None:
                on_sentence(i, len(sentences), sentence)
            limit = sentence_limit(sentence, sampling.max_new_tokens, budget)
            frames_before = timings.frames
            if i > 0:
                gap = np.zeros(int(SENTENCE_GAP_S * SAMPLE_RATE), dtype=np.float32)
                timings.audio_s += len(gap) / SAMPLE_RATE
                yield gap
            for chunk in self.stream_sentence(sentence, sampling=sampling, speaker=speaker, language=language,
                                              max_tokens=limit if budget else None, cancel=cancel, on_frame=count):
                now = time.perf_counter() - t0
                if timings.first_audio_s is None:
                    timings.first_audio_s = now
                timings.audio_s += len(chunk) / SAMPLE_RATE
                timings.wall_s = now
                yield chunk
            # The frame loop stops at end-of-speech, or at its last allowed token, which it never feeds:
            # a sentence that made limit - 1 frames ran into the limit.
            if timings.frames - frames_before >= limit - 1:
                timings.runaway += 1
        timings.wall_s = time.perf_counter() - t0

    def synthesize(self, text: str, *, seed: int, **kwargs) -> tuple[np.ndarray, Timings]:
        timings = Timings(load_s=0.0)
        chunks = list(self.stream(text, seed=seed, timings=timings, **kwargs))
        audio = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
        return audio, timings


# ---- the lean per-frame pieces ---------------------------------------------------------------------
def _talker_processors(p: dict, device) -> tuple[list, bool]:
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


class _CodePredictor:
    """Codebooks 1..15 of a frame, as `code_predictor.generate(max_new_tokens=15)` computes them, calling
    its layers directly. Its positions are 0..15 in every frame, so the rotary tables are made once; the
    causal mask that generate() would build is None for these shapes (sdpa's is_causal does the rest)."""

    def __init__(self, talker) -> None:
        import torch

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
        import torch

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
        import torch
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
        import torch

        hiddens = torch.cat([last_id_hidden] + [self.sub_embeds[i](sub_codes[..., i:i + 1])
                                                for i in range(self.groups - 1)], dim=1)
        return hiddens.sum(1, keepdim=True)


# ---- the stock path (baseline for tests and the benchmark) ------------------------------------------
def stock_generate(tts, text: str, speaker: str, seed: int, sampling: Sampling) -> tuple[np.ndarray, object]:
    """`generate_custom_voice` as anyone would call it, plus the codes it decoded (caught on their way
    into speech_tokenizer.decode). Returns (wav float32, codes LongTensor [T, 16])."""
    import torch

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
