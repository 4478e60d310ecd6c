"""One audition from text to saved sample, the same for every caller (the worker, milo-say, and the
speech server to come): check the text and the settings, draw the seed, stream the audio to a sink,
concatenate it, save it (into the run's samples/ with its index line, or to a WAV), summarise it.

`Audition` is made before any audio, so everything a caller can get wrong is refused first, in one line;
it keeps the audio as it comes, so a caller stopped half-way (Ctrl+C, a cancel) can still save what was
made. `speak` is the whole of it in one call.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from contract.audio import SAMPLE_RATE
from contract.protocol import new_seed
from contract.samples import append_sample, save_sample, write_wav
from contract.text import MAX_CHARS, split_sentences
from inference.budget import expected_audio_s
from inference.engine import Engine, EngineError, Timings

Sink = Callable[[np.ndarray], None]


class Audition:
    """One audition on the engine's loaded checkpoint. Making it checks the text (TextError), that a
    checkpoint is loaded, the sampling overrides and the speaker (EngineError); `seed` None draws one.
    `max_chars`, `first_chars`: the text's limit and the first sentence's (contract.text.split_sentences).
    `sampling`: overrides of the checkpoint's own settings (None values are ignored)."""

    def __init__(self, engine: Engine, text: str, *, seed: int | None = None, sampling: dict | None = None,
                 speaker: str | None = None, language: str = "auto", budget: bool = True,
                 source: str = "audition", load_s: float = 0.0, max_chars: int = MAX_CHARS,
                 first_chars: int | None = None) -> None:
        self.sentences = split_sentences(text, max_chars, first_chars=first_chars)
        if engine.loaded is None:
            raise EngineError("no checkpoint loaded: choose one first")
        self.engine, self.loaded = engine, engine.loaded
        self.sampling = engine.sampling(**(sampling or {}))
        self.speaker = engine.speaker_for(speaker)
        self.seed = int(seed) if seed is not None else new_seed()
        self.text, self.language, self.budget, self.source = text, language, bool(budget), source
        self.timings = Timings(load_s=load_s)
        self.chunks: list[np.ndarray] = []

    @property
    def expected_s(self) -> float:
        """The guess at its length the player's start policy wants (inference.budget)."""
        return expected_audio_s(self.sentences, self.sampling.max_new_tokens, self.budget)

    def run(self, sink: Sink | None = None, *, cancel: threading.Event | None = None,
            on_sentence: Callable[[int, int, str], None] | None = None) -> np.ndarray:
        """Make the audio, handing each chunk to `sink` as it comes (after keeping it); returns all of it.
        Raises Cancelled when `cancel` is set, EngineError, TextError; `chunks` holds what was made."""
        for chunk in self.stream(cancel=cancel, on_sentence=on_sentence):
            if sink is not None:
                sink(chunk)
        return self.audio()

    def stream(self, *, cancel: threading.Event | None = None, keep: bool = True, ticks: bool = False,
               on_sentence: Callable[[int, int, str], None] | None = None) -> Iterator[np.ndarray | None]:
        """The audio chunks as they are made (kept in `chunks` unless `keep` is false); as `run`. `ticks`:
        None between frames too (Engine.stream), for a caller that interleaves several auditions."""
        for chunk in self.engine.stream(self.text, seed=self.seed, sampling=self.sampling, speaker=self.speaker,
                                        language=self.language, budget=self.budget, cancel=cancel,
                                        timings=self.timings, on_sentence=on_sentence, sentences=self.sentences,
                                        ticks=ticks):
            if keep and chunk is not None:
                self.chunks.append(chunk)
            yield chunk

    def audio(self) -> np.ndarray:
        """The audio made so far, in one array."""
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, dtype=np.float32)

    def steady_rate(self) -> float | None:
        """Audio seconds made per wall second after the first chunk (the next audition's start-policy
        hint for this checkpoint), or None when there is nothing to measure."""
        t = self.timings
        if not self.chunks or t.first_audio_s is None or t.wall_s <= t.first_audio_s:
            return None
        steady = (t.audio_s - len(self.chunks[0]) / SAMPLE_RATE) / (t.wall_s - t.first_audio_s)
        return round(steady, 3) if steady > 0 else None

    def record(self) -> dict:
        """Its samples index fields (docs/run-folder.md), less the id, the WAV, the rating and the A/B fields."""
        info, loaded = self.loaded.info, self.loaded
        return dict(checkpoint=info.name, checkpoint_path=str(info.path), speaker=self.speaker, text=self.text,
                    seed=self.seed, sampling=self.sampling.as_dict(), language=self.language, device=loaded.device,
                    dtype=loaded.dtype, path=loaded.path, source=self.source, **self.timings.as_dict())

    def save_sample(self, run_dir: str | Path, **tags) -> tuple[dict, Path]:
        """Save the audio so far into the run's samples/ with its index line (`tags`: the A/B fields,
        `interrupted`); returns (the index line, the WAV). Raises OSError."""
        sample_id, wav = save_sample(Path(run_dir), self.loaded.info.name, self.seed, self.audio(), SAMPLE_RATE)
        return append_sample(Path(run_dir), id=sample_id, wav=wav.name, **tags, **self.record()), wav

    def save_wav(self, path: str | Path) -> Path:
        """Write the audio so far to `path` (atomically). Raises OSError."""
        return write_wav(Path(path), self.audio(), SAMPLE_RATE)

    def summary(self) -> str:
        """One line: what was said, how fast, on what."""
        t, loaded = self.timings, self.loaded
        return (f"{loaded.info.name} ({self.speaker}, seed {self.seed}): {t.audio_s:.2f} s of audio in {t.wall_s:.2f} s "
                f"({t.rtf:.2f}x real time), first audio after {t.first_audio_s or 0:.2f} s, "
                f"load {t.load_s:.2f} s on {loaded.device}, {loaded.path} path")


def speak(engine: Engine, checkpoint: str | Path, text: str, *, sink: Sink | None = None,
          cancel: threading.Event | None = None, run_dir: str | Path | None = None, **settings) -> tuple[dict, str]:
    """The whole audition in one call: load `checkpoint` (nothing to do when it is loaded), make the
    audio with `settings` (Audition's keywords), each chunk to `sink` as it comes, save it into
    `run_dir`'s samples/ when given. Returns its index line (with `wav_path` when saved) and its summary.
    Raises CheckpointError, EngineError, TextError, Cancelled, OSError."""
    split_sentences(text)  # bad text is refused before a model loads
    before = engine.loaded
    loaded = engine.load(checkpoint)
    audition = Audition(engine, text, load_s=0.0 if loaded is before else loaded.load_s, **settings)
    audition.run(sink, cancel=cancel)
    if run_dir is None:
        return audition.record(), audition.summary()
    record, wav = audition.save_sample(run_dir)
    return {**record, "wav_path": str(wav)}, audition.summary()
