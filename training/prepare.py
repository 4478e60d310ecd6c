"""`milo-train prepare`: a folder of clips (or whole recordings) becomes the training JSONL, audited.

For each audio file under CORPUS (recursively; hidden files ignored), in name order:
  audio        read at any sample rate, channel count and bit depth, converted to 24 kHz mono; unreadable,
               empty, silent or shorter than --min-seconds: skipped, with the reason;
  long files   longer than --max-seconds: a raw recording, cut at silero-vad pauses into clips of 2.6-15 s
               written to DATA/clips/STEM-001.wav ... (docs/corpus-audit.md; a transcript given for it is
               refused: it cannot be split);
  transcript   CLIP.txt or CLIP.lab beside it (UTF-8, or the encoding its byte-order mark names), else
               metadata.csv (LJSpeech `id|text[|normalized]` or a CSV with a file and a text column), else
               the recognizer: pocketsphinx (English), or a local Whisper with --whisper;
  audit        loudness, clipping, SNR, speech ratio, leading and trailing silence, the voice against the
               corpus voice, the transcript against what the recognizer hears, duplicates (contract/audit.py
               names the checks and thresholds; inference/scoring/audit.py measures them). A flagged clip
               stays in the JSONL, marked, unless --drop-flagged;
  codes        the base model's 12 Hz speech tokenizer: 16 codebooks per 80 ms frame.
Lines are the official fine-tuning format (audio, text, audio_codes, ref_audio) plus duration, frames,
text_source and flags. corpus-report.json and corpus-report.txt go beside the JSONL; the summary is printed.
"""
from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from contract import audit as ca
from contract.checkpoint import BaseModelError, check_base_model
from contract.configfile import ConfigError, read_config
from contract.corpus import AUDIO_SUFFIXES, audio_files
from contract.runfolder import read_json, write_json_atomic
from contract.samples import write_wav
from training.audio import SAMPLE_RATE, AudioError, read_audio, to_24k_mono

TRANSCRIPT_SUFFIXES = (".txt", ".lab")
SILENT_PEAK = 10 ** (-50.0 / 20)   # a file whose loudest sample is under -50 dBFS is silent
PROGRESS_S = 15.0                  # a progress line at most this often while auditing
CLIP_SOURCES = "sources.json"      # in DATA/clips/: the recording each clip name stem was cut from
BOMS = ((codecs.BOM_UTF32_LE, "utf-32", "UTF-32"), (codecs.BOM_UTF32_BE, "utf-32", "UTF-32"),
        (codecs.BOM_UTF8, "utf-8-sig", "UTF-8"), (codecs.BOM_UTF16_LE, "utf-16", "UTF-16"),
        (codecs.BOM_UTF16_BE, "utf-16", "UTF-16"))


class PrepareError(Exception):
    """Bad input to prepare (exit 3)."""


class TextError(Exception):
    """A transcript file that is not text; the message is the one-line reason."""


@dataclass
class Entry:
    """One file found, or one clip cut from a long recording: what the report says about it."""
    name: str
    path: Path
    info: dict
    take: object = None          # inference.scoring.audit.Take once it is audited
    skipped: str | None = None
    cut_from: dict | None = None


def read_text(path: Path) -> str:
    """A text file as UTF-8, or in the encoding its byte-order mark names; TextError otherwise."""
    raw = path.read_bytes()
    for bom, encoding, label in BOMS:
        if raw.startswith(bom):
            try:
                return raw.decode(encoding)
            except UnicodeDecodeError:
                raise TextError(f"transcript is not UTF-8 text (it starts with a {label} byte-order mark but does "
                                f"not decode as {label})") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise TextError("transcript is not UTF-8 text (save it as UTF-8)") from None


def read_metadata(corpus: Path, problems: list[str]) -> dict[str, str]:
    """Transcripts from metadata.csv, keyed by file name, stem and path relative to the corpus. A file that
    cannot be read is a problem line, not an error: its clips fall back to the recognizer."""
    path = corpus / "metadata.csv"
    if not path.is_file():
        return {}
    try:
        text = read_text(path)
    except (OSError, TextError) as exc:
        problems.append(f"metadata.csv: {str(exc).replace('transcript', 'file')}; its transcripts are not used")
        return {}
    rows = [r for r in text.splitlines() if r.strip()]
    table: dict[str, str] = {}
    if rows and "|" in rows[0]:  # LJSpeech: id|text|normalized text, no header
        for row in rows:
            cols = row.split("|")
            if len(cols) >= 2:
                said = cols[2] if len(cols) >= 3 and cols[2].strip() else cols[1]
                table[cols[0].strip()] = said.strip()
        return table
    reader = csv.DictReader(io.StringIO("\n".join(rows)))
    names = {n.lower().strip(): n for n in reader.fieldnames or []}
    file_col = next((names[c] for c in ("file", "audio", "path", "filename", "file_name", "wav", "id") if c in names), None)
    text_col = next((names[c] for c in ("text", "transcript", "transcription", "sentence", "normalized_text") if c in names), None)
    if file_col is None or text_col is None:
        problems.append("metadata.csv: expected `id|text` lines or a CSV header with a file column and a text "
                        "column; its transcripts are not used")
        return {}
    for row in reader:
        if row.get(file_col) and row.get(text_col):
            table[row[file_col].strip()] = row[text_col].strip()
    return table


def given_transcript(clip: Path, corpus: Path, metadata: dict[str, str]) -> tuple[str | None, str]:
    """(text, where it came from), (None, "") when none is given; TextError for a file that is not text."""
    for suffix in TRANSCRIPT_SUFFIXES:
        beside = clip.with_suffix(suffix)
        if beside.is_file():
            try:
                return read_text(beside).strip(), suffix[1:]
            except OSError as exc:
                raise TextError(f"transcript {beside.name} cannot be read ({exc.strerror or exc})") from None
    rel = clip.relative_to(corpus)
    for key in (str(rel), clip.name, clip.stem, str(rel.with_suffix(""))):
        if key in metadata:
            return metadata[key].strip(), "metadata.csv"
    return None, ""


def load_speech_tokenizer(base: Path, device: str):
    import torch

    from inference.qwen import import_qwen_tts

    if not (base / "speech_tokenizer" / "config.json").is_file():
        raise PrepareError(f"{base} has no speech_tokenizer/ folder: give the Base model folder with --base")
    tok = import_qwen_tts().Qwen3TTSTokenizer.from_pretrained(str(base / "speech_tokenizer"),
                                                              dtype=torch.float32)
    tok.model.to(device)
    tok.device = torch.device(device)
    return tok


def encode(tokenizer, mono24: np.ndarray) -> np.ndarray:
    codes = tokenizer.encode(mono24, sr=SAMPLE_RATE).audio_codes[0]
    return codes.cpu().numpy().astype(np.int32)


def write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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


def stats(values: list[float]) -> dict | None:
    if not values:
        return None
    return dict(min=round(min(values), 3), mean=round(float(np.mean(values)), 3),
                median=round(float(np.median(values)), 3), max=round(max(values), 3))


def clip_row(e: Entry, drop_flagged: bool, folder: Path) -> dict:
    """The report's line for one clip; its path is relative to the report's folder (the report moves with it)."""
    take = e.take
    skipped = e.skipped or (take.skipped if take is not None else None)
    flags = take.flags if take is not None and not skipped else []
    status = (ca.SKIPPED if skipped else ca.DROPPED if flags and drop_flagged else ca.FLAGGED if flags else ca.KEPT)
    row = dict(clip=e.name, path=os.path.relpath(e.path, folder), status=status, reason=skipped, flags=flags,
               text=take.text if take is not None else None, text_source=take.text_source if take is not None else None,
               **e.info, measures=take.measures if take is not None else {})
    if e.cut_from:
        row["cut_from"] = e.cut_from
    return row


def build_report(entries: list[Entry], rows: list[dict], *, out: Path, corpus: Path, reference: Path, auditor,
                 voice: dict, thresholds: dict, problems: list[str], drop_flagged: bool, seconds: float) -> dict:
    kept = [r for r in rows if r["status"] in (ca.KEPT, ca.FLAGGED)]
    flag_counts: dict[str, int] = {}
    for r in rows:
        for f in r["flags"]:
            flag_counts[f["check"]] = flag_counts.get(f["check"], 0) + 1
    audio_s = sum(e.info.get("duration_s", 0.0) for e in entries if not e.cut_from)
    measured = [r["measures"] for r in kept]

    def values(key):
        return [v[key] for v in measured if isinstance(v.get(key), (int, float))]

    return dict(
        version=ca.REPORT_VERSION, data=out.name, corpus=os.path.relpath(corpus, out.parent),
        reference=os.path.relpath(reference, out.parent),
        models=auditor.models(), thresholds=thresholds, drop_flagged=drop_flagged,
        counts=dict(files=sum(1 for e in entries if not e.cut_from), clips=len(rows), kept=len(kept),
                    flagged=sum(1 for r in rows if r["status"] in (ca.FLAGGED, ca.DROPPED)),
                    dropped=sum(1 for r in rows if r["status"] == ca.DROPPED),
                    skipped=sum(1 for r in rows if r["status"] == ca.SKIPPED)),
        flags=flag_counts, voice=voice, problems=problems,
        recordings=[dict(recording=e.name, **{k: e.info[k] for k in ("duration_s", "clips_cut", "speech_s",
                                                                       "speech_left_out_s") if k in e.info})
                    for e in entries if "clips_cut" in e.info],
        transcripts={src: sum(1 for r in kept if r["text_source"] == src) for src in sorted({r["text_source"] for r in kept})},
        duration_s=stats([r["duration_s"] for r in kept]), total_duration_s=round(sum(r["duration_s"] for r in kept), 2),
        loudness_lufs=stats(values("loudness_lufs")), snr_db=stats(values("snr_db")),
        speech_ratio=stats(values("speech_ratio")), speaker_similarity=stats(values("speaker_similarity")),
        sample_rates=sorted({r["source_sample_rate"] for r in kept}), channels=sorted({r["source_channels"] for r in kept}),
        audio_s=round(audio_s, 2), seconds=round(seconds, 2), clips=rows,
    )


def report_text(rep: dict, data: Path) -> str:
    c, d = rep["counts"], rep["duration_s"] or {}
    lines = [
        f"corpus report for {data}",
        f"  clips: {c['kept']} kept ({c['flagged'] - c['dropped']} of them flagged), {c['dropped']} flagged and dropped, "
        f"{c['skipped']} skipped; {c['files']} file(s) found",
        f"  audio: {rep['total_duration_s'] / 60:.1f} min kept; per clip {d.get('min', 0):.1f}-{d.get('max', 0):.1f} s "
        f"(median {d.get('median', 0):.1f} s)",
    ]
    if rep["sample_rates"]:
        lines.append(f"  sources: {', '.join(str(s) for s in rep['sample_rates'])} Hz, "
                     f"{', '.join(str(n) for n in rep['channels'])} channel(s) -> 24 kHz mono")
    for key, label, unit in (("loudness_lufs", "loudness", " LUFS"), ("snr_db", "SNR", " dB"),
                             ("speech_ratio", "speech ratio", ""), ("speaker_similarity", "voice similarity", "")):
        s = rep[key]
        if s:
            lines.append(f"  {label}: {s['min']:g} to {s['max']:g}{unit} (median {s['median']:g})")
    for r in rep["recordings"]:
        lines.append(f"  recording {r['recording']}: {r['duration_s'] / 60:.1f} min cut into {r['clips_cut']} clips"
                     + (f" ({r['speech_left_out_s']:g} s of speech in pieces under 3 s left out)"
                        if r.get("speech_left_out_s") else ""))
    lines.append("  transcripts: " + (", ".join(f"{n} from {src}" for src, n in rep["transcripts"].items()) or "none"))
    lines.append(f"  models: {rep['models']['asr']}, {rep['models']['speaker']}, {rep['models']['vad']}")
    if not rep["voice"].get("judged"):
        lines.append(f"  voice not judged: {rep['voice'].get('why')}")
    lines.append(f"  reference audio: {os.path.normpath(data.parent / rep['reference'])}")
    for p in rep["problems"]:
        lines.append(f"  problem: {p}")
    for r in rep["clips"]:
        if r["status"] == ca.SKIPPED:
            lines.append(f"  skipped {r['clip']}: {r['reason']}")
    for r in rep["clips"]:
        if r["flags"]:
            word = "dropped" if r["status"] == ca.DROPPED else "flagged"
            lines.append(f"  {word} {r['clip']}: " + "; ".join(f["reason"] for f in r["flags"]))
    if c["flagged"] and not rep["drop_flagged"]:
        lines.append("  flagged clips are in the JSONL, marked; listen to them in the dashboard (corpus view) or "
                     "rerun with --drop-flagged to leave them out")
    return "\n".join(lines) + "\n"


def check_inputs(corpus: Path, base: Path, ref: Path | None, whisper: str | None, thresholds: dict | None) -> dict:
    """PrepareError for input that cannot be prepared, before anything is read; the audit thresholds."""
    if not corpus.is_dir():
        raise PrepareError(f"corpus folder not found: {corpus}")
    try:
        check_base_model(base)
    except BaseModelError as exc:
        raise PrepareError(str(exc)) from None
    if ref is not None and not ref.is_file():
        raise PrepareError(f"reference audio not found: {ref}")
    if whisper is not None and not Path(whisper).expanduser().is_dir():
        raise PrepareError(f"--whisper {whisper} is not a local folder (download it first, e.g. "
                           f"`huggingface-cli download openai/whisper-small --local-dir DIR`)")
    if thresholds is not None:
        return thresholds
    try:
        return ca.audit_thresholds(read_config())
    except ConfigError as exc:
        raise PrepareError(str(exc)) from None


def corpus_files(corpus: Path, clips_dir: Path) -> list[Path]:
    """The corpus's audio files in name order, leaving out clips cut by an earlier run (when the JSONL is
    written inside CORPUS); PrepareError when there are none."""
    files = [f for f in audio_files(corpus) if clips_dir not in f.parents]
    if not files:
        raise PrepareError(f"{corpus}: no audio files ({', '.join(sorted(AUDIO_SUFFIXES))})")
    return files


def load_clip(entry: Entry, min_seconds: float) -> tuple[np.ndarray, np.ndarray] | None:
    """(the samples as read, 24 kHz mono) of a file found, or None with entry.skipped saying why it is not used."""
    try:
        data, sr, channels = read_audio(entry.path)
    except AudioError as exc:
        entry.skipped = f"unreadable: {exc}"
        return None
    mono = to_24k_mono(data, sr)
    duration = len(mono) / SAMPLE_RATE
    entry.info = dict(duration_s=round(duration, 3), source_sample_rate=sr, source_channels=channels)
    if len(mono) == 0:
        entry.skipped = "empty: no samples"
    elif float(np.abs(data).max()) < SILENT_PEAK:
        entry.skipped = "empty: silent"
    elif duration < min_seconds:
        entry.skipped = f"too short: {duration:.2f} s < {min_seconds} s (--min-seconds)"
    return None if entry.skipped else (data, mono)


@dataclass
class CorpusPass:
    """One pass over the corpus: each file read, a long recording cut into clips, every clip measured."""
    corpus: Path
    clips_dir: Path
    auditor: object              # inference.scoring.audit.Auditor
    metadata: dict[str, str]
    stems: dict[str, str]        # from clip_stems: each recording's clip name stem
    min_seconds: float
    max_seconds: float
    say: Callable[[str], object]
    started: float
    entries: list[Entry] = field(default_factory=list)
    audited: int = 0
    last_said: float = field(default_factory=time.monotonic)

    def run(self, files: list[Path]) -> list[Entry]:
        models = self.auditor.models()
        self.say(f"auditing {len(files)} file(s) under {self.corpus} ({models['asr']}, {models['speaker']})")
        for path in files:
            entry = Entry(str(path.relative_to(self.corpus)), path, {})
            self.entries.append(entry)
            loaded = load_clip(entry, self.min_seconds)
            if loaded is None:
                continue
            work = self.takes(entry, *loaded)
            self.entries.extend(e for e, _ in work if e is not entry)
            for e, take in work:
                self.measure(e, take)
        return self.entries

    def takes(self, entry: Entry, data: np.ndarray, mono: np.ndarray) -> list[tuple[Entry, object]]:
        """What to measure for one usable file: itself with its transcript, or the clips cut from a long
        recording (a recording given a transcript is refused: one transcript cannot be split)."""
        from inference.scoring.audit import Take

        try:
            text, source = given_transcript(entry.path, self.corpus, self.metadata)
        except TextError as exc:
            entry.skipped = str(exc)
            return []
        duration = len(mono) / SAMPLE_RATE
        if duration <= self.max_seconds:
            return [(entry, Take(entry.name, mono, text, source, data))]
        if text is not None:
            entry.skipped = (f"a {duration:.0f} s recording with a transcript ({source}): one transcript cannot be "
                             f"split across clips; remove it to have the recording cut at pauses and transcribed, "
                             f"or cut the clips yourself")
            return []
        self.say(f"cutting {entry.name} ({duration / 60:.1f} min) at pauses")
        pieces = cut_recording(entry, mono, self.auditor, self.clips_dir, entry.name, self.stems[entry.name])
        return [(p, Take(p.name, piece)) for p, piece in pieces]

    def measure(self, entry: Entry, take) -> None:
        if take.text is not None and not take.text:
            entry.skipped = f"empty transcript ({take.text_source})"
            return
        self.auditor.measure(take)
        entry.take = take
        self.audited += 1
        if time.monotonic() - self.last_said > PROGRESS_S:
            self.say(f"  audited {self.audited} clip(s), {time.monotonic() - self.started:.0f} s")
            self.last_said = time.monotonic()


def training_clips(entries: list[Entry], rows_of: dict[int, dict], corpus: Path) -> list[Entry]:
    """The clips that go into the JSONL (kept or flagged); PrepareError when there are none."""
    train = [e for e in entries if id(e) in rows_of and rows_of[id(e)]["status"] in (ca.KEPT, ca.FLAGGED)]
    if not train:
        rows = list(rows_of.values())
        raise PrepareError(f"{corpus}: none of {len(rows)} clips can be used: "
                           + "; ".join(f"{r['clip']}: {r['reason'] or 'flagged'}" for r in rows[:3]))
    return train


def write_jsonl(train: list[Entry], tokenizer, out: Path, reference: Path, relative_paths: bool) -> None:
    """The training JSONL, one line per clip with its codes, written atomically; each clip's audio is let go
    once encoded."""
    def where(path: Path) -> str:
        return os.path.relpath(path, out.parent) if relative_paths else str(path)

    lines = []
    for e in train:
        codes = encode(tokenizer, e.take.audio)
        e.take.audio = e.take.source = None
        line = dict(audio=where(e.path), text=e.take.text, audio_codes=codes.tolist(), ref_audio=where(reference),
                    duration=e.info["duration_s"], frames=int(codes.shape[0]), text_source=e.take.text_source)
        if e.take.flags:
            line["flags"] = [f["check"] for f in e.take.flags]
        lines.append(json.dumps(line, ensure_ascii=False))
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, "\n".join(lines) + "\n")


def write_report(rep: dict, out: Path, say) -> None:
    """corpus-report.json and corpus-report.txt beside the JSONL; the summary said."""
    write_json_atomic(out.parent / ca.CORPUS_REPORT, rep)
    text = report_text(rep, out)
    write_text_atomic(out.parent / ca.CORPUS_SUMMARY, text)
    say(text.rstrip("\n"))


def prepare(corpus: Path, base: Path, out: Path, ref: Path | None = None, whisper: str | None = None,
            language: str | None = None, min_seconds: float = 0.5, max_seconds: float = 20.0,
            device: str | None = None, say=print, relative_paths: bool = False, drop_flagged: bool = False,
            thresholds: dict | None = None) -> dict:
    started = time.monotonic()
    corpus, base, out = corpus.absolute(), base.absolute(), out.absolute()
    thresholds = check_inputs(corpus, base, ref, whisper, thresholds)
    clips_dir = out.parent / ca.CLIPS_DIR
    files = corpus_files(corpus, clips_dir)
    stems = clip_stems([str(f.relative_to(corpus)) for f in files])
    import torch

    from inference.scoring.audit import Auditor

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    auditor = Auditor(thresholds, whisper=str(Path(whisper).expanduser()) if whisper else None, device=device,
                      language=language)
    problems: list[str] = []
    metadata = read_metadata(corpus, problems)
    entries = CorpusPass(corpus, clips_dir, auditor, metadata, stems, min_seconds, max_seconds, say,
                         started).run(files)
    voice = auditor.judge([e.take for e in entries if e.take is not None and not e.skipped])
    # a cut recording is its clips (and a line under "recordings")
    rows_of = {id(e): clip_row(e, drop_flagged, out.parent) for e in entries if not e.info.get("clips_cut")}
    train = training_clips(entries, rows_of, corpus)
    clean = [e for e in train if not e.take.flags] or train
    reference = ref.absolute() if ref else max(clean, key=lambda e: e.info["duration_s"]).path
    say(f"encoding {len(train)} clips with {base / 'speech_tokenizer'} on {device}")
    write_jsonl(train, load_speech_tokenizer(base, device), out, reference, relative_paths)
    rep = build_report(entries, list(rows_of.values()), out=out, corpus=corpus, reference=reference, auditor=auditor,
                       voice=voice, thresholds=thresholds, problems=problems, drop_flagged=drop_flagged,
                       seconds=time.monotonic() - started)
    write_report(rep, out, say)
    return rep


def main(args) -> int:
    try:
        prepare(Path(args.corpus), Path(args.base), Path(args.out), Path(args.ref) if args.ref else None,
                args.whisper, args.language, args.min_seconds, args.max_seconds, args.device,
                relative_paths=args.relative_paths, drop_flagged=args.drop_flagged)
    except PrepareError as exc:
        print(f"milo-train: error: {exc}", file=sys.stderr)
        return 3
    return 0
