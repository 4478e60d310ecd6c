"""The clips of a corpus, as the scorer reads them for its reference: from a training JSONL (one object a
line with `audio` and `text`, as `milo-train prepare` and the official script write it; a relative path
is looked up beside the JSONL, then in the current folder) or from a folder of audio files (with an
optional CLIP.txt transcript beside each). Torch-free; no audio is decoded here (`first_unreadable` only
opens each file's header).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# The audio types a corpus folder may hold: prepare reads them, the new-run form checks them, the scorer
# takes its reference from them. .m4a (and what else soundfile cannot open) goes through librosa's fallback.
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aif", ".aiff", ".au")
NOT_FOR_SOUNDFILE = (".m4a",)  # read by prepare's fallback only: soundfile cannot tell whether they open


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


def audio_files(folder: Path) -> list[Path]:
    """The audio files under `folder` (recursively, hidden files and folders left out), in name order."""
    folder = Path(folder)
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def not_audio(path: Path, exc: Exception) -> str:
    """One line for a file soundfile cannot open. libsndfile says "File does not exist" about an existing
    file whose MP3 stream it cannot parse: that is not said about a file that is there."""
    detail = str(exc).rsplit(":", 1)[-1].strip().rstrip(".")  # its words after "Error opening 'PATH':"
    if not detail or ("does not exist" in detail and Path(path).is_file()):
        detail = "not a format it recognises"
    return f"not audio that soundfile can read ({detail[:1].lower() + detail[1:]})"


def first_unreadable(folder: Path) -> tuple[Path, str] | None:
    """The first audio file under `folder` that soundfile cannot open, or that holds no samples, and why;
    None when they all open. Reads headers only (`soundfile.info`): milliseconds a file."""
    import soundfile as sf

    for path in audio_files(folder):
        if path.suffix.lower() in NOT_FOR_SOUNDFILE:
            continue
        try:
            info = sf.info(str(path))
        except (RuntimeError, OSError) as exc:  # LibsndfileError is a RuntimeError
            return path, not_audio(path, exc)
        if info.frames == 0:
            return path, "holds no samples"
    return None


def first_unreadable_apart(folder: Path, timeout: float = 60.0) -> tuple[Path, str] | None:
    """`first_unreadable` in a child process: libmpg123 prints notes about a broken MP3 on the process's
    stderr, which in the dashboard is the terminal it draws on. None also when the check could not run."""
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    code = ("import json, sys; from contract.corpus import first_unreadable; r = first_unreadable(sys.argv[1]); "
            "print(json.dumps(r and [str(r[0]), r[1]]))")
    try:
        proc = subprocess.run([sys.executable, "-c", code, str(folder)], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, timeout=timeout, text=True)
        found = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError):
        return None
    return (Path(found[0]), found[1]) if isinstance(found, list) and len(found) == 2 else None


def read_clips(source: Path) -> list[Clip]:
    """The clips of a JSONL or a folder, in order; CorpusError when there is none to read."""
    source = Path(source).expanduser()
    if source.is_dir():
        clips = []
        for path in audio_files(source):
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
