"""A long recording cut at silero-vad pauses into clips written to DATA/clips/STEM-001.wav ..., and the stem
each recording's clips are named by: unique among the corpus's recordings, never another recording's
(docs/corpus-audit.md)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from contract import audit as ca
from contract.runfolder import read_json, write_json_atomic
from contract.samples import write_wav
from training.audio import SAMPLE_RATE
from training.corpus_report import Entry

CLIP_SOURCES = "sources.json"      # in DATA/clips/: the recording each clip name stem was cut from


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]


def clip_stems(names: list[str]) -> dict[str, str]:
    """The stem of the clips cut from each recording (its path under the corpus): the path without its suffix,
    `/` read as `__` (`talks/ep.wav` -> `talks__ep-001.wav`), as before, so a corpus's clip names stay what
    they were. Where recordings share that stem (`ep.wav` and `ep.flac`), each keeps its suffix
    (`ep.wav-001.wav`, `ep.flac-001.wav`) whichever is cut first; a stem shared even so (`a__b.wav` beside
    `a/b.wav`) gets a digest of the path."""
    from collections import Counter

    stems = {n: n.rsplit(".", 1)[0].replace("/", "__") for n in names}
    for rename in (lambda n: n.replace("/", "__"), lambda n: f"{stems[n]}-{_digest(n)}"):
        counts = Counter(stems.values())
        stems = {n: rename(n) if counts[stem] > 1 else stem for n, stem in stems.items()}
    return stems


def claim_stem(clips_dir: Path, stem: str, recording: Path) -> str:
    """The stem to write `recording`'s clips under: `stem`, unless clips of another recording were written
    under it (clips/sources.json says whose each stem is; another JSONL prepared into the same folder, or a
    recording since renamed), then `stem-DIGEST` of this recording's path: a clip of another recording is never
    written over. Clips cut before sources.json existed are taken to be this recording's (their names stay)."""
    sources = read_json(clips_dir / CLIP_SOURCES) or {}
    source = str(Path(recording).absolute())
    if sources.get(stem) not in (None, source):
        stem = f"{stem}-{_digest(source)}"
    if sources.get(stem) != source:
        write_json_atomic(clips_dir / CLIP_SOURCES, {**sources, stem: source})  # before its clips are written
    return stem


def cut_recording(entry: Entry, mono: np.ndarray, auditor, clips_dir: Path,
                  corpus_name: str, stem: str | None = None) -> list[tuple[Entry, np.ndarray]]:
    """A long recording's clips (entry, 24 kHz audio), cut at VAD pauses and written to clips_dir as
    STEM-001.wav ... (`stem`: from clip_stems, unique among the corpus's recordings)."""
    from inference.scoring.audit import CLIP_PAD_S, plan_cuts
    from inference.scoring.measures import resample
    from inference.scoring.models import RATE

    audio16 = resample(mono, SAMPLE_RATE, RATE)
    speech = auditor.vad.speech(audio16)
    cuts, left_out = plan_cuts(speech, len(mono) / SAMPLE_RATE)
    entry.info.update(clips_cut=len(cuts), speech_s=round(sum(e - s for s, e in speech), 2), speech_left_out_s=left_out)
    if not cuts:
        entry.skipped = f"long recording with no stretch of speech of {ca.SEGMENT_MIN_S - 2 * CLIP_PAD_S:g} s or more"
        return []
    clips_dir.mkdir(parents=True, exist_ok=True)
    stem = claim_stem(clips_dir, stem or clip_stems([corpus_name])[corpus_name], entry.path)
    out = []
    for k, (start, end) in enumerate(cuts, 1):
        path = clips_dir / f"{stem}-{k:03d}.wav"
        piece = mono[int(start * SAMPLE_RATE): int(end * SAMPLE_RATE)]
        write_wav(path, piece, SAMPLE_RATE)  # 16-bit PCM, written atomically
        out.append((Entry(f"{ca.CLIPS_DIR}/{path.name}", path,
                          dict(duration_s=round(len(piece) / SAMPLE_RATE, 3), source_sample_rate=SAMPLE_RATE,
                               source_channels=1),
                          cut_from=dict(recording=corpus_name, start_s=start, end_s=end)), piece))
    return out
