"""`milo-train prepare`: a folder of clips becomes the training JSONL and a corpus report.

For each audio file under CORPUS (recursively; hidden files ignored), in name order:
  transcript   CLIP.txt or CLIP.lab beside it, else metadata.csv (LJSpeech `id|text[|normalized]` or a CSV
               with a header naming a file column and a text column), else Whisper (--whisper), else skipped;
  audio        read at any sample rate, channel count and bit depth, converted to 24 kHz mono;
  checks       unreadable, empty or silent, shorter than --min-seconds, longer than --max-seconds: skipped,
               each with its reason;
  codes        the base model's 12 Hz speech tokenizer: 16 codebooks per 80 ms frame.
Lines are the official fine-tuning format (audio, text, audio_codes, ref_audio) plus duration and the
source's properties. The report (DATA.report.json / .txt beside the JSONL) covers kept and skipped clips,
durations, clipping, loudness and silence.
"""
from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from training.audio import SAMPLE_RATE, AudioError, read_audio, to_24k_mono

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aif", ".aiff", ".au"}
TRANSCRIPT_SUFFIXES = (".txt", ".lab")
SILENCE_DBFS = -50.0   # a 20 ms window quieter than this counts as silence
CLIPPING_LEVEL = 0.999


class PrepareError(Exception):
    """Bad input to prepare (exit 3)."""


@dataclass
class Clip:
    path: Path
    text: str | None = None
    text_source: str = ""
    skipped: str | None = None
    info: dict = field(default_factory=dict)
    audio: np.ndarray | None = None


def find_audio(corpus: Path) -> list[Path]:
    return sorted(p for p in corpus.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(corpus).parts))


def read_metadata(corpus: Path) -> dict[str, str]:
    """Transcripts from metadata.csv, keyed by file name, stem and path relative to the corpus."""
    path = corpus / "metadata.csv"
    if not path.is_file():
        return {}
    text = path.read_text(encoding="utf-8-sig")
    rows = [r for r in text.splitlines() if r.strip()]
    table: dict[str, str] = {}
    if rows and "|" in rows[0]:  # LJSpeech: id|text|normalized text, no header
        for row in rows:
            cols = row.split("|")
            if len(cols) >= 2:
                said = cols[2] if len(cols) >= 3 and cols[2].strip() else cols[1]
                table[cols[0].strip()] = said.strip()
        return table
    reader = csv.DictReader(rows)
    names = {n.lower().strip(): n for n in reader.fieldnames or []}
    file_col = next((names[c] for c in ("file", "audio", "path", "filename", "file_name", "wav", "id") if c in names), None)
    text_col = next((names[c] for c in ("text", "transcript", "transcription", "sentence", "normalized_text") if c in names), None)
    if file_col is None or text_col is None:
        raise PrepareError(f"{path}: expected `id|text` lines or a CSV header with a file column and a text column")
    for row in reader:
        if row.get(file_col) and row.get(text_col):
            table[row[file_col].strip()] = row[text_col].strip()
    return table


def transcript(clip: Path, corpus: Path, metadata: dict[str, str]) -> tuple[str | None, str]:
    for suffix in TRANSCRIPT_SUFFIXES:
        beside = clip.with_suffix(suffix)
        if beside.is_file():
            return beside.read_text(encoding="utf-8-sig").strip(), suffix[1:]
    rel = str(clip.relative_to(corpus))
    for key in (rel, clip.name, clip.stem, str(clip.relative_to(corpus).with_suffix(""))):
        if key in metadata:
            return metadata[key].strip(), "metadata.csv"
    return None, ""


def analyse(data: np.ndarray, sr: int, mono24: np.ndarray) -> dict:
    """Clipping, loudness and silence of one clip (source samples for clipping, 24 kHz mono for the rest)."""
    peak = float(np.abs(data).max()) if data.size else 0.0
    clipped = float(np.mean(np.abs(data) >= CLIPPING_LEVEL)) if data.size else 0.0
    win = SAMPLE_RATE // 50
    n = len(mono24) // win
    frames = mono24[: n * win].reshape(n, win) if n else np.zeros((1, max(1, len(mono24))))
    rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-20)
    db = 20 * np.log10(rms)
    loud = db > SILENCE_DBFS
    active = rms[loud]
    lead = int(np.argmax(loud)) if loud.any() else n
    trail = int(np.argmax(loud[::-1])) if loud.any() else n
    return dict(
        peak=round(peak, 4),
        clipped_fraction=round(clipped, 6),
        rms_dbfs=round(float(20 * np.log10(np.sqrt(np.mean(active ** 2)))) if active.size else -120.0, 2),
        silence_fraction=round(float(1 - loud.mean()) if n else 1.0, 4),
        leading_silence_s=round(lead * win / SAMPLE_RATE, 3),
        trailing_silence_s=round(trail * win / SAMPLE_RATE, 3),
    )


class Whisper:
    """Whisper through transformers' speech-recognition pipeline, loaded on first use."""

    def __init__(self, name: str, device: str, language: str | None):
        self.name, self.device, self.language, self.pipe = name, device, language, None

    def load(self):
        if self.pipe is None:
            from inference.qwen import guard_torchaudio

            guard_torchaudio()
            from transformers import pipeline

            local = Path(self.name).expanduser()
            if not local.is_dir():
                print(f"--whisper {self.name}: not a local folder; loading it from the Hugging Face hub because you "
                      "named it", file=sys.stderr)
            try:
                self.pipe = pipeline("automatic-speech-recognition", model=str(local) if local.is_dir() else self.name,
                                     device=self.device)
            except Exception as exc:  # noqa: BLE001 - any loading failure is one line
                raise PrepareError(f"cannot load Whisper model {self.name}: {str(exc).splitlines()[0]}") from None
        return self.pipe

    def __call__(self, mono24: np.ndarray) -> str:
        import soxr

        audio16 = soxr.resample(mono24, SAMPLE_RATE, 16000).astype(np.float32)
        kwargs = {"generate_kwargs": {"language": self.language, "task": "transcribe"}} if self.language else {}
        out = self.load()({"raw": audio16, "sampling_rate": 16000}, **kwargs)
        return str(out.get("text", "")).strip()


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


def summary(clips: list[Clip], kept: list[Clip], out: Path, ref: Path, seconds: float) -> dict:
    durations = [c.info["duration_s"] for c in kept]
    reasons: dict[str, int] = {}
    for c in clips:
        if c.skipped:
            key = c.skipped.split(":")[0].split(" (")[0]
            reasons[key] = reasons.get(key, 0) + 1

    def stats(values):
        if not values:
            return None
        return dict(min=round(min(values), 3), mean=round(float(np.mean(values)), 3),
                    median=round(float(np.median(values)), 3), max=round(max(values), 3))

    return dict(
        data=str(out), reference=str(ref), clips_found=len(clips), clips_kept=len(kept),
        clips_skipped=len(clips) - len(kept), skip_reasons=reasons,
        total_duration_s=round(sum(durations), 2), duration_s=stats(durations),
        clipping=dict(clips_with_clipping=sum(1 for c in kept if c.info["clipped_fraction"] > 0),
                      worst=max(kept, key=lambda c: c.info["clipped_fraction"]).path.name if kept else None),
        loudness_rms_dbfs=stats([c.info["rms_dbfs"] for c in kept]),
        silence_fraction=stats([c.info["silence_fraction"] for c in kept]),
        leading_silence_s=stats([c.info["leading_silence_s"] for c in kept]),
        trailing_silence_s=stats([c.info["trailing_silence_s"] for c in kept]),
        transcripts={src: sum(1 for c in kept if c.text_source == src) for src in sorted({c.text_source for c in kept})},
        sample_rates=sorted({c.info["source_sample_rate"] for c in kept}),
        channels=sorted({c.info["source_channels"] for c in kept}),
        skipped=[dict(clip=str(c.path), reason=c.skipped) for c in clips if c.skipped],
        seconds=round(seconds, 2),
    )


def report_text(rep: dict) -> str:
    d = rep["duration_s"] or {}
    lines = [
        f"corpus report for {rep['data']}",
        f"  clips: {rep['clips_kept']} kept, {rep['clips_skipped']} skipped of {rep['clips_found']}",
        f"  audio: {rep['total_duration_s'] / 60:.1f} min in all; per clip {d.get('min', 0):.1f}-{d.get('max', 0):.1f} s "
        f"(median {d.get('median', 0):.1f} s)",
        f"  sources: {', '.join(str(s) for s in rep['sample_rates'])} Hz, {', '.join(str(c) for c in rep['channels'])} "
        f"channel(s) -> 24 kHz mono",
    ]
    if rep["loudness_rms_dbfs"]:
        l, s = rep["loudness_rms_dbfs"], rep["silence_fraction"]
        lines.append(f"  loudness: {l['min']:.1f} to {l['max']:.1f} dBFS RMS (median {l['median']:.1f}); "
                     f"silence {s['mean'] * 100:.0f}% of the time on average")
        lines.append(f"  clipping: {rep['clipping']['clips_with_clipping']} clip(s)"
                     + (f", worst {rep['clipping']['worst']}" if rep['clipping']['clips_with_clipping'] else ""))
    lines.append("  transcripts: " + ", ".join(f"{n} from {src}" for src, n in rep["transcripts"].items()))
    lines.append(f"  reference audio: {rep['reference']}")
    for s in rep["skipped"]:
        lines.append(f"  skipped {s['clip']}: {s['reason']}")
    return "\n".join(lines) + "\n"


def write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def prepare(corpus: Path, base: Path, out: Path, ref: Path | None = None, whisper: str | None = None,
            language: str | None = None, min_seconds: float = 0.5, max_seconds: float = 20.0,
            device: str | None = None, say=print, relative_paths: bool = False) -> dict:
    started = time.monotonic()
    corpus, base, out = corpus.absolute(), base.absolute(), out.absolute()
    if not corpus.is_dir():
        raise PrepareError(f"corpus folder not found: {corpus}")
    if not (base / "config.json").is_file():
        raise PrepareError(f"base model folder not found or incomplete: {base}")
    if ref is not None and not ref.is_file():
        raise PrepareError(f"reference audio not found: {ref}")
    files = find_audio(corpus)
    if not files:
        raise PrepareError(f"{corpus}: no audio files ({', '.join(sorted(AUDIO_SUFFIXES))})")
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    metadata = read_metadata(corpus)
    asr = Whisper(whisper, device, language) if whisper else None
    clips = []
    for path in files:
        clip = Clip(path)
        clips.append(clip)
        try:
            data, sr, channels = read_audio(path)
        except AudioError as exc:
            clip.skipped = f"unreadable: {exc}"
            continue
        mono = to_24k_mono(data, sr)
        duration = len(mono) / SAMPLE_RATE
        if len(mono) == 0:
            clip.skipped = "empty: no samples"
            continue
        clip.info = dict(duration_s=round(duration, 3), source_sample_rate=sr, source_channels=channels,
                         **analyse(data, sr, mono))
        if clip.info["peak"] < 10 ** (SILENCE_DBFS / 20):
            clip.skipped = "empty: silent"
        elif duration < min_seconds:
            clip.skipped = f"too short: {duration:.2f} s < {min_seconds} s"
        elif duration > max_seconds:
            clip.skipped = f"too long: {duration:.1f} s > {max_seconds} s (--max-seconds)"
        if clip.skipped:
            continue
        clip.text, clip.text_source = transcript(path, corpus, metadata)
        if clip.text is None and asr is not None:
            clip.text, clip.text_source = asr(mono), "whisper"
        if clip.text is None:
            clip.skipped = "no transcript: add CLIP.txt, a metadata.csv line, or --whisper MODEL"
        elif not clip.text:
            clip.skipped = f"empty transcript ({clip.text_source})"
        else:
            clip.audio = mono
    kept = [c for c in clips if not c.skipped]
    if not kept:
        raise PrepareError(f"{corpus}: none of {len(clips)} clips can be used: "
                           + "; ".join(f"{c.path.name}: {c.skipped}" for c in clips[:3]))
    reference = ref.absolute() if ref else max(kept, key=lambda c: c.info["duration_s"]).path
    say(f"encoding {len(kept)} clips with {base / 'speech_tokenizer'} on {device}")
    tokenizer = load_speech_tokenizer(base, device)
    lines = []

    def where(path: Path) -> str:
        return os.path.relpath(path, out.parent) if relative_paths else str(path)

    for c in kept:
        codes = encode(tokenizer, c.audio)
        c.audio = None
        lines.append(json.dumps(dict(audio=where(c.path), text=c.text, audio_codes=codes.tolist(), ref_audio=where(reference),
                                     duration=c.info["duration_s"], frames=int(codes.shape[0]),
                                     text_source=c.text_source), ensure_ascii=False))
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, "\n".join(lines) + "\n")
    rep = summary(clips, kept, out, reference, time.monotonic() - started)
    stem = out.with_suffix("")
    write_atomic(Path(f"{stem}.report.json"), json.dumps(rep, indent=2, ensure_ascii=False) + "\n")
    text = report_text(rep)
    write_atomic(Path(f"{stem}.report.txt"), text)
    say(text.rstrip("\n"))
    return rep


def main(args) -> int:
    try:
        prepare(Path(args.corpus), Path(args.base), Path(args.out), Path(args.ref) if args.ref else None,
                args.whisper, args.language, args.min_seconds, args.max_seconds, args.device,
                relative_paths=args.relative_paths)
    except PrepareError as exc:
        print(f"milo-train: error: {exc}", file=sys.stderr)
        return 3
    return 0
