"""A run's auditions on disk: samples/NNNN-<checkpoint>-<seed>.wav and the append-only samples/index.jsonl.

Torch-free: the worker and milo-say write samples, the audition screen reads them and appends ratings.
Nothing is ever rewritten: a rating or an A/B preference is a new line naming the sample (or the A/B
group), and `read_samples` folds the lines into one record per sample (the latest rating wins).
docs/run-folder.md ("samples/") is the human-readable version of this module.

Lines (every line has `v` 1, `kind`, `time`, as in metrics.jsonl):
  kind "sample"      id, wav, checkpoint, checkpoint_path, speaker, text, seed, sampling, language,
                     load_s, first_audio_s, audio_s, wall_s, rtf, frames, sentences, device, dtype,
                     path ("fast" | "lean": the engine's frame loop),
                     source ("audition" | "milo-say"), rating (null), ab_group, ab_label ("A"|"B"), blind
  kind "rating"      sample (id), rating (1..5, or null to clear)
  kind "preference"  ab_group, preferred (sample id, or null for "no difference")
"""
from __future__ import annotations

import contextlib
import io
import os
import tempfile
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from contract.runfolder import SAMPLES_DIR, append_records, locked, parse_lines, record

if TYPE_CHECKING:   # numpy is imported where audio is written: the dashboard reads the index without it
    import numpy as np

INDEX = "index.jsonl"
WAV_RE = re.compile(r"^(?P<id>\d{4,})-")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def samples_dir(run_dir: Path) -> Path:
    return Path(run_dir) / SAMPLES_DIR


def _next_id(folder: Path) -> int:
    ids = [int(m.group("id")) for p in folder.iterdir() if (m := WAV_RE.match(p.name))]
    return max(ids, default=0) + 1


def wav_bytes(audio: "np.ndarray", samplerate: int) -> bytes:
    """24 kHz mono 16-bit PCM WAV, like the operator's other pipelines use."""
    import soundfile as sf

    buf = io.BytesIO()
    import numpy as np  # here: the dashboard reads the index (ratings) without loading numpy

    sf.write(buf, np.asarray(audio, dtype=np.float32), samplerate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def write_wav(path: Path, audio: "np.ndarray", samplerate: int) -> Path:
    """Write a WAV atomically (temporary name, then rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(wav_bytes(audio, samplerate))
    os.replace(tmp, path)
    return path


def save_sample(run_dir: Path, checkpoint: str, seed: int, audio: "np.ndarray", samplerate: int) -> tuple[int, Path]:
    """Write the WAV under the next free number; returns (id, path).

    The WAV is written whole to a temporary name first; then, holding an flock on samples/, the next number
    is taken and the file hard-linked to its final name (which fails rather than replace an existing one).
    Every writer, whatever its checkpoint and seed (the worker, any number of milo-say), takes the lock,
    so no two ever get the same number, and no reader sees a half-written WAV under a numbered name."""
    folder = samples_dir(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    name = _UNSAFE.sub("_", checkpoint) or "checkpoint"
    fd, tmp = tempfile.mkstemp(prefix=".sample-", suffix=".wav.tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o644)
            f.write(wav_bytes(audio, samplerate))
        with locked(folder):
            sample_id = _next_id(folder)
            while True:
                path = folder / f"{sample_id:04d}-{name}-{int(seed)}.wav"
                try:
                    os.link(tmp, path)
                except FileExistsError:  # a writer that does not lock (an older milo): take the next
                    sample_id += 1
                    continue
                return sample_id, path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _append(run_dir: Path, rec: dict) -> dict:
    folder = samples_dir(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    append_records(folder / INDEX, [rec])
    return rec


def append_sample(run_dir: Path, **fields) -> dict:
    return _append(run_dir, record("sample", **{"rating": None, "ab_group": None, "ab_label": None, "blind": False,
                                                **fields}))


def append_rating(run_dir: Path, sample_id: int, rating: int | None) -> dict:
    if rating is not None and not (1 <= int(rating) <= 5):
        raise ValueError("a rating is 1 to 5")
    return _append(run_dir, record("rating", sample=int(sample_id), rating=None if rating is None else int(rating)))


def append_preference(run_dir: Path, ab_group: str, preferred: int | None) -> dict:
    return _append(run_dir, record("preference", ab_group=str(ab_group),
                                   preferred=None if preferred is None else int(preferred)))


@dataclass
class Sample:
    """One audition, folded: its sample line plus the latest rating and A/B preference."""
    id: int
    wav: Path
    checkpoint: str
    text: str
    seed: int
    time: float = 0.0
    rating: int | None = None
    ab_group: str | None = None
    ab_label: str | None = None
    blind: bool = False
    preferred: bool | None = None     # A/B only: True for the preferred one, False for the other, None: unset
    decided: bool = False             # A/B only: a preference (or "no difference") was recorded
    fields: dict = field(default_factory=dict, repr=False)

    @property
    def revealed(self) -> bool:
        """A blind A/B sample shows its checkpoint only once the pair has been judged."""
        return not self.blind or self.decided

    def get(self, key: str, default=None):
        return self.fields.get(key, default)


def fold(records: list[dict], run_dir: Path) -> list[Sample]:
    samples: dict[int, Sample] = {}
    preferences: dict[str, int | None] = {}
    for rec in records:
        kind = rec.get("kind")
        try:
            if kind == "sample":
                sid = int(rec["id"])
                samples[sid] = Sample(
                    id=sid, wav=samples_dir(run_dir) / str(rec["wav"]), checkpoint=str(rec.get("checkpoint", "?")),
                    text=str(rec.get("text", "")), seed=int(rec.get("seed", 0)), time=float(rec.get("time", 0.0)),
                    rating=rec.get("rating"), ab_group=rec.get("ab_group"), ab_label=rec.get("ab_label"),
                    blind=bool(rec.get("blind", False)), fields=rec)
            elif kind == "rating" and int(rec["sample"]) in samples:
                samples[int(rec["sample"])].rating = rec.get("rating")
            elif kind == "preference":
                preferences[str(rec["ab_group"])] = rec.get("preferred")
        except (KeyError, TypeError, ValueError):
            continue  # a malformed line is skipped, as everywhere in the run folder
    for s in samples.values():
        if s.ab_group is not None and s.ab_group in preferences:
            s.decided = True
            chosen = preferences[s.ab_group]
            s.preferred = None if chosen is None else (chosen == s.id)
    return sorted(samples.values(), key=lambda s: s.id)


def read_samples(run_dir: Path) -> list[Sample]:
    """Every audition of the run, oldest first (a torn last line is ignored until it is complete)."""
    try:
        data = (samples_dir(run_dir) / INDEX).read_bytes()
    except OSError:
        return []
    records, _tail, _bad = parse_lines(data)
    return fold(records, run_dir)


@dataclass(frozen=True)
class Ratings:
    """What the operator's ears said about one checkpoint in the audition screen."""
    stars: float | None    # mean rating (1-5) of its rated auditions
    rated: int             # how many were rated
    won: int               # A/B pairs in which it was preferred
    lost: int              # ... in which the other was preferred
    even: int              # ... judged "no difference"


def ratings_by_checkpoint(samples: list[Sample]) -> dict[str, Ratings]:
    """Ratings and A/B verdicts per checkpoint name. A blind sample counts once its pair is judged (before,
    its checkpoint is not to be told)."""
    acc: dict[str, list] = {}
    for s in samples:
        if not s.revealed:
            continue
        entry = acc.setdefault(s.checkpoint, [[], 0, 0, 0])  # stars, won, lost, even
        if s.rating:
            entry[0].append(int(s.rating))
        if s.ab_group and s.decided:
            index = 1 if s.preferred is True else 2 if s.preferred is False else 3
            entry[index] += 1
    return {name: Ratings(round(sum(st) / len(st), 2) if st else None, len(st), w, l, e)
            for name, (st, w, l, e) in acc.items()}
