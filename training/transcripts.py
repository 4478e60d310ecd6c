"""A clip's transcript as given: CLIP.txt or CLIP.lab beside it (UTF-8, or the encoding its byte-order mark
names), else metadata.csv (LJSpeech `id|text[|normalized]` or a CSV with a file and a text column). A clip
given none is transcribed by the recognizer (training/prepare.py)."""
from __future__ import annotations

import codecs
import csv
import io
from pathlib import Path

TRANSCRIPT_SUFFIXES = (".txt", ".lab")
BOMS = ((codecs.BOM_UTF32_LE, "utf-32", "UTF-32"), (codecs.BOM_UTF32_BE, "utf-32", "UTF-32"),
        (codecs.BOM_UTF8, "utf-8-sig", "UTF-8"), (codecs.BOM_UTF16_LE, "utf-16", "UTF-16"),
        (codecs.BOM_UTF16_BE, "utf-16", "UTF-16"))


class TextError(Exception):
    """A transcript file that is not text; the message is the one-line reason."""


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
