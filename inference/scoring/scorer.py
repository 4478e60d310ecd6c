"""Scores for a clip, a checkpoint, a run's baseline and ceiling, and the run's scoring queue.

A clip's row: similarity (cosine of its speaker embedding with the reference centroid), the transcript
and its WER/CER against the text, DNSMOS SIG/BAK/OVRL, speaking rate (letters and digits per second of
speech) and its ratio to the reference's median, runaway (the frame limit was reached without end of
speech), silence ratio and clipping. A generated prompt is cut at its bound (contract.scores.score_bound:
a multiple of the time its text takes at the corpus's pace), so a runaway costs what its text does. A measure that cannot be taken is "not scored: <why>"
(contract/scores.py); nothing here raises for a model or a clip that fails.
"""
from __future__ import annotations

import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from contract import scores as sc
from contract.corpus import Clip, CorpusError, read_clips
from contract.errors import one_line
from inference.scoring import measures as m
from inference.scoring.models import RATE, Dnsmos, Recognizer, SpeakerEncoder, Unavailable

MAX_REFERENCE_CLIPS = 24   # the centroid settles well before this; more only costs time
CEILING_CLIPS = 5          # held-out real clips scored as the ceiling row


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """float32 mono and its rate; OSError/RuntimeError (soundfile's) when it cannot be read."""
    import soundfile as sf

    audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return audio.mean(axis=1), int(rate)


@dataclass
class Reference:
    """The voice a checkpoint is judged against: the centroid of the reference clips' embeddings and the
    median speaking rate of those with a transcript."""
    source: str
    clips: int = 0
    centroid: np.ndarray | None = None
    rate_cps: float | None = None
    problems: list[str] = field(default_factory=list)
    held_out: list[Clip] = field(default_factory=list)   # for the ceiling row: not in the centroid

    def describe(self) -> dict:
        return {"source": self.source, "clips": self.clips, "rate_cps_median": _round(self.rate_cps),
                "problems": self.problems[:5]}


def _round(value, digits: int = 4):
    return round(float(value), digits) if sc.is_score(value) else value


class Scorer:
    def __init__(self, *, whisper: str | None = None, wavlm: str | None = None, device: str = "cpu",
                 language: str | None = None) -> None:
        self.speaker = SpeakerEncoder(wavlm, device)
        self.asr = Recognizer(whisper, device, language)
        self.dnsmos = Dnsmos()

    def models(self) -> dict:
        return {"speaker": self.speaker.name, "asr": self.asr.name, "quality": self.dnsmos.name}

    # ---- the reference -----------------------------------------------------------------------------
    def reference(self, source: Path | str | None, hold_out: int = 0, seed: int = 0) -> Reference:
        """Embed up to MAX_REFERENCE_CLIPS clips of `source` (a JSONL or a folder). With `hold_out`, that
        many clips (a fixed shuffle) are kept out of the centroid for the ceiling row."""
        if source is None:
            return Reference(source="none", problems=["no corpus reference given"])
        ref = Reference(source=str(source))
        try:
            clips = read_clips(Path(source))
        except CorpusError as exc:
            ref.problems.append(str(exc))
            return ref
        order = list(range(len(clips)))
        random.Random(seed).shuffle(order)
        if hold_out and len(clips) > hold_out + 1:
            ref.held_out = [clips[i] for i in order[-hold_out:]]
            order = order[:-hold_out]
        vectors, rates = [], []
        for i in order[:MAX_REFERENCE_CLIPS]:
            clip = clips[i]
            try:
                audio, rate = read_audio(clip.audio)
            except (OSError, RuntimeError) as exc:
                ref.problems.append(f"{clip.audio.name}: cannot read ({one_line(exc)[:80]})")
                continue
            if clip.text:
                cps = m.chars_per_second(clip.text, audio, rate)
                if cps:
                    rates.append(cps)
            try:
                vectors.append(self.speaker.embed(m.resample(audio, rate, RATE)))
            except Unavailable as exc:
                ref.problems.append(f"{clip.audio.name}: {exc}")
        ref.clips = len(vectors)
        if vectors:  # robust: a mislabelled clip in the corpus does not move the voice scored against
            ref.centroid, _ = m.robust_centre(vectors)
        if rates:
            ref.rate_cps = float(np.median(rates))
        return ref

    # ---- one clip ------------------------------------------------------------------------------------
    def score_clip(self, audio: np.ndarray, rate: int, text: str | None, reference: Reference | None,
                   runaway: bool | None = None) -> dict:
        audio = np.asarray(audio, dtype=np.float32)
        audio16 = m.resample(audio, rate, RATE)
        row: dict = {"audio_s": round(len(audio) / rate, 3) if rate else 0.0}
        # similarity
        if reference is None or reference.centroid is None:
            why = "no corpus reference" if reference is None else (
                reference.problems[0] if reference.problems else "the reference has no usable clip")
            row["similarity"] = sc.not_scored(why)
        else:
            try:
                row["similarity"] = round(m.cosine(self.speaker.embed(audio16), reference.centroid), 4)
            except Unavailable as exc:
                row["similarity"] = sc.not_scored(str(exc))
        # intelligibility
        row["asr"] = self.asr.name
        if not text or not m.normalize(text):
            row["transcript"] = None
            row["wer"] = row["cer"] = sc.not_scored("no text to compare the transcript with")
        else:
            try:
                transcript = self.asr.transcribe(audio16)
                row["transcript"] = transcript
                row["wer"], row["cer"] = (round(v, 4) for v in m.error_rates(text, transcript))
            except Unavailable as exc:
                row["transcript"] = None
                row["wer"] = row["cer"] = sc.not_scored(str(exc))
        # quality
        try:
            q = self.dnsmos.score(audio16)
            row.update(dnsmos_sig=round(q["sig"], 3), dnsmos_bak=round(q["bak"], 3), dnsmos_ovrl=round(q["ovrl"], 3))
        except Unavailable as exc:
            row.update(dnsmos_sig=sc.not_scored(str(exc)), dnsmos_bak=sc.not_scored(str(exc)),
                       dnsmos_ovrl=sc.not_scored(str(exc)))
        # delivery
        cps = m.chars_per_second(text, audio, rate) if text else None
        row["rate_cps"] = round(cps, 3) if cps else sc.not_scored("no text" if not text else "no speech above -40 dBFS")
        if cps and reference is not None and reference.rate_cps:
            row["rate_ratio"] = round(cps / reference.rate_cps, 3)
        else:
            row["rate_ratio"] = sc.not_scored("no speaking rate" if not cps else "the reference has no transcripts")
        row["runaway"] = runaway if runaway is not None else sc.not_scored("not generated here")
        row["silence_ratio"] = round(m.silence_ratio(audio, rate), 4)
        row["clipping"] = round(m.clipping(audio), 6)
        return row

    def score_file(self, path: Path, text: str | None, reference: Reference | None) -> dict:
        try:
            audio, rate = read_audio(path)
        except (OSError, RuntimeError) as exc:
            return {"file": str(path), "error": f"cannot read {path.name}: {one_line(exc)[:120]}"}
        return {"file": str(path), "text": text, **self.score_clip(audio, rate, text, reference)}


# ---- checkpoints ---------------------------------------------------------------------------------------
def score_checkpoint(checkpoint: Path, scorer: Scorer, reference: Reference, *, engine=None, device: str = "cpu",
                     prompts=sc.DEFAULT_PROMPTS, say=lambda line: None) -> dict:
    """Synthesize each prompt with its seed and score it; the "scores" object for eval.json."""
    from contract.audio import SAMPLE_RATE
    from inference.engine import Engine, Timings

    started = time.monotonic()
    engine = engine or Engine(device=device, tune_threads=True)
    engine.load(Path(checkpoint))
    rows = []
    for text, seed in prompts:
        timings = Timings()
        bound = sc.score_bound(text, reference.rate_cps)
        sampling = engine.sampling(max_new_tokens=bound["frames"])
        t0 = time.monotonic()
        chunks, cut = [], False
        for chunk in engine.stream(text, seed=int(seed), sampling=sampling, timings=timings, budget=False):
            chunks.append(chunk)
            if timings.frames >= bound["frames"] - 1:  # a prompt of several sentences: the bound is the whole
                cut = True                               # prompt's, not each sentence's
                break
        generate_s = time.monotonic() - t0
        audio = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
        row = {"text": text, "seed": int(seed), "frames": timings.frames,
               **scorer.score_clip(audio, SAMPLE_RATE, text, reference, runaway=cut or timings.runaway > 0)}
        row.update(_timing(bound, generate_s, time.monotonic() - t0 - generate_s))
        rows.append(row)
        say(f"{Path(checkpoint).name}: {text[:40]!r} similarity {row['similarity']}, WER {row['wer']}, "
            f"OVRL {row['dnsmos_ovrl']}")
    return _scores(rows, scorer, reference, started, checkpoint=Path(checkpoint).name)


def _timing(bound: dict, generate_s: float, measure_s: float) -> dict:
    """A generated row's bound (frames and seconds, and what it came from) and the scorer's own time."""
    return {"bound_frames": bound["frames"], "bound_s": bound["seconds"], "bound_by": bound["by"],
            "generate_s": round(generate_s, 3), "measure_s": round(measure_s, 3)}


def _scores(rows: list[dict], scorer: Scorer, reference: Reference, started: float, **extra) -> dict:
    timed = [r for r in rows if "generate_s" in r]
    timing = {"timing": {"generate_s": round(sum(r["generate_s"] for r in timed), 2),
                         "measure_s": round(sum(r["measure_s"] for r in timed), 2),
                         "bound_multiple": sc.SCORE_BOUND_MULTIPLE, "bound_margin_s": sc.SCORE_BOUND_MARGIN_S}} \
        if timed else {}
    return {"v": sc.SCORES_VERSION, "scored_at": round(time.time(), 3),
            "seconds": round(time.monotonic() - started, 2), "models": scorer.models(),
            "reference": reference.describe(), **extra, **timing, "means": sc.means(rows), "clips": rows}


def write_scores(checkpoint: Path, scores: dict) -> Path:
    """Merge `scores` into the checkpoint's eval.json (the trainer's fields kept), replaced atomically."""
    from contract.runfolder import EVAL_JSON, read_json, write_json_atomic

    path = Path(checkpoint) / EVAL_JSON
    if not Path(checkpoint).is_dir():
        raise FileNotFoundError(f"{checkpoint} is gone")
    ev = read_json(path) or {}
    ev[sc.SCORES] = scores
    write_json_atomic(path, ev)
    return path


def score_ceiling(scorer: Scorer, reference: Reference) -> dict:
    """The held-out real clips of the corpus, scored against the centroid of the others: the ceiling."""
    started = time.monotonic()
    rows = []
    for clip in reference.held_out:
        rows.append({"clip": clip.audio.name, "text": clip.text, **scorer.score_file(clip.audio, clip.text, reference)})
    rows = [r for r in rows if "error" not in r] or rows
    return _scores(rows, scorer, reference, started, row="ceiling")


def score_baseline(base: Path, ref_audio: Path, scorer: Scorer, reference: Reference, *, device: str = "cpu",
                   prompts=sc.DEFAULT_PROMPTS, say=lambda line: None) -> dict:
    """The Base model cloning the voice zero-shot from `ref_audio` (its speaker embedding only): the bar
    a fine-tune must beat."""
    import torch

    from contract.audio import FRAME_RATE, SAMPLE_RATE
    from inference.qwen import import_qwen_tts

    started = time.monotonic()
    tts = import_qwen_tts().Qwen3TTSModel.from_pretrained(str(base), device_map=device, dtype=torch.float32)
    audio, rate = read_audio(ref_audio)
    rows = []
    for text, seed in prompts:
        torch.manual_seed(int(seed))
        bound = sc.score_bound(text, reference.rate_cps)
        t0 = time.monotonic()
        wavs, out_rate = tts.generate_voice_clone(text, language="auto", ref_audio=(audio, rate),
                                                  x_vector_only_mode=True, max_new_tokens=bound["frames"])
        generate_s = time.monotonic() - t0
        wav = np.asarray(wavs[0], dtype=np.float32)
        frames = round(len(wav) / (int(out_rate or SAMPLE_RATE) / FRAME_RATE))
        row = {"text": text, "seed": int(seed), "frames": frames,
               **scorer.score_clip(wav, int(out_rate or SAMPLE_RATE), text, reference,
                                   runaway=frames >= bound["frames"] - 1)}
        row.update(_timing(bound, generate_s, time.monotonic() - t0 - generate_s))
        rows.append(row)
        say(f"baseline: {text[:40]!r} similarity {row['similarity']}, WER {row['wer']}")
    return _scores(rows, scorer, reference, started, row="baseline", base_model=str(base), ref_audio=str(ref_audio))


def log(line: str) -> None:
    print(f"[scoring] {line}", file=sys.stderr, flush=True)
