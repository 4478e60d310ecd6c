"""The clips of a corpus, as the scorer reads them for its reference: from a training JSONL (one object a
line with `audio` and `text`, as `milo-train prepare` and the official script write it; a relative path
is looked up beside the JSONL, then in the current folder) or from a folder of audio files (with an
optional CLIP.txt transcript beside each). Torch-free; no audio is decoded here.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".opus", ".aiff", ".aif")


@dataclass(frozen=True)
class Clip:
    audio: Path
    text: str | None


class CorpusError(ValueError):
    """The reference cannot be read; the message is one line."""


def _resolve(value: str, folder: Path) -> Path:
    path = Path(value).expanduser()
    if path.is_absolute():
        return path
    beside = folder / path
    return beside if beside.exists() else path.absolute()


def read_clips(source: Path) -> list[Clip]:
    """The clips of a JSONL or a folder, in order; CorpusError when there is none to read."""
    source = Path(source).expanduser()
    if source.is_dir():
        clips = []
        for path in sorted(p for p in source.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()):
            text_file = path.with_suffix(".txt")
            try:
                text = text_file.read_text(encoding="utf-8-sig").strip() or None if text_file.is_file() else None
            except (OSError, UnicodeDecodeError):
                text = None
            clips.append(Clip(path, text))
        if not clips:
            raise CorpusError(f"{source} holds no audio files ({', '.join(AUDIO_SUFFIXES)})")
        return clips
    if not source.is_file():
        raise CorpusError(f"{source} does not exist (give a training JSONL or a folder of clips)")
    clips = []
    try:
        lines = source.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CorpusError(f"{source} is not readable UTF-8 text ({exc.__class__.__name__})") from None
    for line in lines:
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and isinstance(obj.get("audio"), str):
            text = obj.get("text") if isinstance(obj.get("text"), str) else None
            clips.append(Clip(_resolve(obj["audio"], source.parent), text))
    if not clips:
        raise CorpusError(f"{source} has no line with an `audio` path")
    return clips
