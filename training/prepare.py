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
from contract.recording import HELDOUT
from contract.runfolder import write_atomic, write_json_atomic
from training.audio import SAMPLE_RATE, AudioError, read_audio, to_24k_mono
from training.corpus_report import Entry, build_report, clip_row, report_text
from training.cutting import clip_stems, cut_recording
from training.transcripts import TextError, given_transcript, read_metadata

SILENT_PEAK = 10 ** (-50.0 / 20)   # a file whose loudest sample is under -50 dBFS is silent
PROGRESS_S = 15.0                  # a progress line at most this often while auditing


class PrepareError(Exception):
    """Bad input to prepare (exit 3)."""


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
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


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


def read_heldout(corpus: Path) -> set[str]:
    """The clips a recording session held out from training (heldout.txt: one clip per line, by its name
    without the suffix or its path under CORPUS): their lines say "split": "val" and the trainer validates
    on exactly them."""
    path = corpus / HELDOUT
    if not path.is_file():
        return set()
    return {line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()}


def write_jsonl(train: list[Entry], tokenizer, out: Path, reference: Path, relative_paths: bool,
                corpus: Path | None = None, heldout: set[str] = frozenset()) -> None:
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
        if heldout and corpus is not None and not e.cut_from and (
                e.path.stem in heldout or str(e.path.relative_to(corpus).with_suffix("")) in heldout):
            line["split"] = "val"
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
    write_jsonl(train, load_speech_tokenizer(base, device), out, reference, relative_paths, corpus,
                read_heldout(corpus))
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
