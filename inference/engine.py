"""The audition engine: load one custom-voice checkpoint, choose its frame loop, stream its speech in
chunks, time it.

The prompt (text, speaker, language tags) is built by qwen-tts itself: we call the stock `generate`
with `talker.generate` swapped for a function that captures its arguments, so our prompt is the stock
prompt by construction. The frames then come from one of two loops (inference/loop.py: the lean
reference, or the fast one of inference/fastpath.py), decoded in chunks as they come; the stock path
itself, the baseline, is inference/stock.py.
"""
from __future__ import annotations

import contextlib
import gc
import os
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from contract.audio import SAMPLE_RATE
from contract.checkpoint import CheckpointInfo, validate_checkpoint
from contract.errors import one_line
from contract.protocol import ENGINE_PATHS, PATH_AUTO, PATH_FAST, PATH_LEAN
from contract.text import split_sentences
from inference import fastpath, loop
from inference.budget import SENTENCE_GAP_S, sentence_limit
from inference.loop import CHUNK_SCHEDULE, LEFT_CONTEXT, Cancelled, CodePredictor
from inference.qwen import import_qwen_tts
from inference.sampling import SubSampling, log

# On a CPU, a talker this narrow is all per-op overhead: extra intra-op threads only contend (measured
# here: 4x real time on one thread, 0.3x-1.7x on two when the machine is busy).
SMALL_MODEL_HIDDEN = 256

class EngineError(RuntimeError):
    """One line for the operator: what went wrong and what to do."""


class Lane:
    """What one of several interleaved syntheses on one engine keeps between its chunks (the speech
    server's streams): its random state and, on the fast path, its own talker K/V cache. Run each step
    of its generator inside `Engine.on_lane(lane)`; then the codes are those of the same synthesis run
    alone, whatever ran between its steps."""

    def __init__(self) -> None:
        self.rng: tuple | None = None
        self.talker = None   # inference.fastpath.StaticTalker, made on first use

    def release(self) -> None:
        if self.talker is not None:
            self.talker.release()
        self.talker = None


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
    predictor: "CodePredictor | None" = field(default=None, repr=False)
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
        self.base_loads = 0           # models read from disk (a bundle's base counts once for all its voices)
        self.voice_switches = 0       # bundles switched in place on a loaded base
        self.originals: dict = {}     # the plain base's values of the weights voices changed (inference/voice.py)

    # ---- loading -------------------------------------------------------------------------------
    def warm_up(self) -> None:
        """Import qwen_tts now (seconds), so the first load's time is the load's own."""
        import_qwen_tts()

    def load(self, path: str | Path) -> Loaded:
        """Validate, unload the current checkpoint, load this one (no network). Raises CheckpointError.
        A voice bundle on the base already loaded for another bundle is switched in place instead."""
        info = validate_checkpoint(path)
        if self.loaded is not None and self.loaded.info.path == info.path:
            return self.loaded
        if info.bundle is not None and self.loaded is not None and self.loaded.info.base == info.base:
            return self._switch_voice(info)
        self.unload()
        qwen_tts = import_qwen_tts()
        t0 = time.perf_counter()
        kwargs = dict(dtype=getattr(torch, self.dtype_name), attn_implementation=self.attn_implementation)
        if self.device != "cpu":
            kwargs["device_map"] = self.device
        try:
            # A voice bundle is its base with the adapter merged and the speaker in its slot (inference/voice.py).
            tts = qwen_tts.Qwen3TTSModel.from_pretrained(str(info.base or info.path), **kwargs)
            self.base_loads += 1
            if info.bundle is not None:
                from inference.voice import make_voice

                make_voice(tts, info.path, self.originals)
        except torch.cuda.OutOfMemoryError as exc:
            raise EngineError(f"out of GPU memory loading {info.name} (is a trainer using the GPU?): {exc}") from None
        tts.model.eval()
        self._sync()
        self.loaded = Loaded(info=info, tts=tts, load_s=time.perf_counter() - t0, device=self.device, dtype=self.dtype_name)
        self._tune_threads(tts)
        self._choose_path(self.loaded)
        return self.loaded

    def _switch_voice(self, info: CheckpointInfo) -> Loaded:
        """Another bundle on the loaded base: its adapter and speaker in place of the current ones."""
        from inference.voice import make_voice

        loaded = self.loaded
        t0 = time.perf_counter()
        make_voice(loaded.tts, info.path, self.originals)
        self._sync()
        self.voice_switches += 1
        loaded.info, loaded.load_s = info, time.perf_counter() - t0
        return loaded

    def _tune_threads(self, tts) -> None:
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
        if loaded.fast is not None:
            loaded.fast.release()
        loaded.fast = None
        loaded.path = PATH_LEAN
        loaded.path_reason = f"the fast path failed while {when} ({one_line(exc)}); lean loop from now on"
        log(loaded.path_reason)

    def unload(self) -> None:
        if self.loaded is None:
            return
        if self.loaded.fast is not None:
            self.loaded.fast.release()
        self.loaded = None
        self.originals = {}
        gc.collect()
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()

    @contextlib.contextmanager
    def on_lane(self, lane: Lane) -> Iterator[None]:
        """Run the body as `lane`: its random state and talker cache in, and out again afterwards. In
        inference mode throughout: the frame loops enter it inside their generators, and generators
        suspended in turn would otherwise leave it on or off for one another."""
        loaded = self._require()
        device = torch.device(self.device)
        outside = loop.rng_state(device)
        shared = loaded.fast.talker if loaded.fast is not None else None
        if lane.rng is not None:
            loop.set_rng_state(lane.rng)
        if loaded.fast is not None:
            if lane.talker is None:
                lane.talker = fastpath.StaticTalker(loaded.tts.model.talker)
            loaded.fast.talker = lane.talker
        try:
            with torch.inference_mode():
                yield
        finally:
            lane.rng = loop.rng_state(device)
            loop.set_rng_state(outside)
            if loaded.fast is not None:
                loaded.fast.talker = shared

    def _require(self) -> Loaded:
        if self.loaded is None:
            raise EngineError("no checkpoint loaded")
        return self.loaded

    def _sync(self) -> None:
        if self.device.startswith("cuda"):
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
               cancel: threading.Event | None = None) -> Iterator[torch.Tensor]:
        """Codec frames (LongTensor [16] each, on the model's device) of one sentence, as generated.
        Seeding is the caller's (torch.manual_seed), as with stock generation."""
        sampling = sampling or self.sampling()
        speaker = self.speaker_for(speaker)
        p = self._prefill(text, speaker, language, sampling)
        max_new = int(p["max_new_tokens"] if max_tokens is None else min(p["max_new_tokens"], max_tokens))
        loaded = self._require()
        talker = loaded.tts.model.talker
        if loaded.path == PATH_FAST and not loop.padded(p):
            # A failure of the fast loop (a kernel or device problem it alone meets) moves this model to the
            # lean loop for good. Before the first frame, the sentence is made again by the lean loop from
            # the same random state, so the operator hears what the seed gives; after it, the error goes up.
            rng = loop.rng_state(p["inputs_embeds"].device)
            made = 0
            try:
                for codes in loop.fast_frames(loaded.fast, talker, p, max_new, cancel):
                    made += 1
                    yield codes
                return
            except Cancelled:
                raise
            except Exception as exc:  # noqa: BLE001
                self._fall_back(loaded, "generating", exc)
                if made:
                    raise
            loop.set_rng_state(rng)
        yield from loop.lean_frames(talker, self._predictor(), p, max_new, cancel)

    def _predictor(self) -> CodePredictor:
        loaded = self._require()
        if loaded.predictor is None:
            loaded.predictor = CodePredictor(loaded.tts.model.talker)
        return loaded.predictor

    def decode(self, codes) -> np.ndarray:
        """Whole-clip decode of [T, 16] codes, exactly as stock does it (speech_tokenizer.decode)."""
        wavs, _ = self._require().tts.model.speech_tokenizer.decode([{"audio_codes": codes}])
        return np.asarray(wavs[0], dtype=np.float32)

    def stream_sentence(self, text: str, *, sampling: Sampling | None = None, speaker: str | None = None,
                        language: str = "auto", max_tokens: int | None = None,
                        cancel: threading.Event | None = None, schedule=CHUNK_SCHEDULE,
                        left_context: int = LEFT_CONTEXT, on_frame: Callable[[object], None] | None = None,
                        ticks: bool = False) -> Iterator[np.ndarray | None]:
        """float32 24 kHz audio of one sentence in chunks, decoded while later frames are generated (with
        `ticks`, None between frames that complete no chunk: loop.decode_stream)."""
        frames = self.frames(text, speaker=speaker, language=language, sampling=sampling, max_tokens=max_tokens,
                             cancel=cancel)
        decoder = self._require().tts.model.speech_tokenizer.model.decoder
        yield from loop.decode_stream(frames, decoder, schedule=schedule, left_context=left_context, on_frame=on_frame,
                                      ticks=ticks)

    def stream(self, text: str, *, seed: int, sampling: Sampling | None = None, speaker: str | None = None,
               language: str = "auto", budget: bool = True, cancel: threading.Event | None = None,
               timings: Timings | None = None, on_sentence: Callable[[int, int, str], None] | None = None,
               on_frame: Callable[[object], None] | None = None, sentences: list[str] | None = None,
               ticks: bool = False) -> Iterator[np.ndarray | None]:
        """The whole audition: text checked and split into sentences (TextError; `sentences`: already
        split), seeded once, each sentence streamed in turn with a short pause between. `timings` (if
        given) is filled in as it goes. `ticks`: None between frames too (stream_sentence)."""
        sentences = sentences or split_sentences(text)
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
                                              max_tokens=limit if budget else None, cancel=cancel, on_frame=count,
                                              ticks=ticks):
                if chunk is None:
                    yield None
                    continue
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
