"""The corpus audit: its checks, thresholds and report (docs/corpus-audit.md).

`milo-train prepare` (training/prepare.py, with the measures in inference/scoring/audit.py) writes the
report; the dashboard's corpus view reads it. Torch-free.

    DATA/corpus-report.json   beside the training JSONL: every clip found, kept, flagged or skipped
    DATA/corpus-report.txt    the readable summary prepare also prints
    DATA/clips/               the clips cut from long recordings (NAME-001.wav ...), 24 kHz mono

A clip is *skipped* when it cannot be used at all (unreadable, empty, silent, too short, no transcript)
and *flagged* when it can be used but a check failed; flagged clips stay in the JSONL, marked with
their flags, unless prepare ran with --drop-flagged. Each flag names its check, the measured value and
the threshold it crossed.

Thresholds come from the `[audit]` table of the configuration file (contract/configfile.py), each
defaulting to THRESHOLDS below.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from contract.configfile import number, read_table
from contract.runfolder import read_json

REPORT_VERSION = 1
CORPUS_REPORT = "corpus-report.json"
CORPUS_SUMMARY = "corpus-report.txt"
CLIPS_DIR = "clips"
AUDIT_TABLE = "audit"

# Cutting a long recording: clips of SEGMENT_MIN_S to SEGMENT_MAX_S, cut in pauses of at least
# SEGMENT_PAUSE_S where the speech allows.
SEGMENT_MIN_S, SEGMENT_MAX_S, SEGMENT_PAUSE_S = 3.0, 15.0, 0.3


@dataclass(frozen=True)
class Threshold:
    default: float
    bound: str        # "min": a value below it is flagged; "max": a value above it is flagged
    check: str        # the check it belongs to (a flag's "check")
    meaning: str


THRESHOLDS: dict[str, Threshold] = {
    "loudness_min_lufs": Threshold(-40.0, "min", "loudness", "integrated loudness (BS.1770) of a usable take"),
    "loudness_max_lufs": Threshold(-10.0, "max", "loudness", "louder than this is near full scale all the time"),
    "clipping_max": Threshold(0.001, "max", "clipping", "fraction of samples at full scale"),
    "snr_min_db": Threshold(15.0, "min", "snr", "speech power over the noise floor"),
    "speech_ratio_min": Threshold(0.5, "min", "speech_ratio", "fraction of the clip that silero-vad hears as speech"),
    "leading_silence_max_s": Threshold(1.0, "max", "leading_silence", "seconds before the first speech"),
    "trailing_silence_max_s": Threshold(1.0, "max", "trailing_silence", "seconds after the last speech"),
    "speaker_similarity_min": Threshold(0.75, "min", "speaker",
                                        "cosine of the clip's voice to the corpus voice (resemblyzer): the same "
                                        "speaker measured 0.9-1.0 here, other speakers and noise 0.4-0.6"),
    "cer_max": Threshold(0.6, "max", "transcript",
                         "character error rate of what the recognizer hears against the given transcript: pocketsphinx "
                         "heard good clips at 0-0.31 here and mislabelled ones at 0.77-0.88"),
}
# Checks without a threshold: a clip that repeats an earlier clip's audio or transcript.
DUPLICATE_AUDIO, DUPLICATE_TEXT = "duplicate_audio", "duplicate_text"

# A clip's "status" in the report.
KEPT, FLAGGED, DROPPED, SKIPPED = "kept", "flagged", "dropped", "skipped"


def audit_thresholds(config: dict | None = None, origin: str | Path = "the configuration file") -> dict[str, float]:
    """THRESHOLDS' defaults overlaid with the config's [audit] table; ConfigError names a wrong key or value."""
    return read_table(config, AUDIT_TABLE, {k: number(t.default) for k, t in THRESHOLDS.items()}, origin)


def flag(check: str, value, threshold, reason: str) -> dict:
    return {"check": check, "value": value, "threshold": threshold, "reason": reason}


def report_path(data: Path) -> Path:
    """The corpus report of a training JSONL (or of a folder holding one)."""
    data = Path(data)
    return (data if data.is_dir() else data.parent) / CORPUS_REPORT


def read_report(path: Path) -> dict | None:
    """A corpus report, or None when there is none (or it is not one)."""
    rep = read_json(Path(path))
    return rep if isinstance(rep, dict) and isinstance(rep.get("clips"), list) else None


def flagged_clips(report: dict) -> list[dict]:
    """The clips with at least one flag (kept with flags, or dropped), in report order."""
    return [c for c in report.get("clips", []) if c.get("flags")]


def clip_path(report_file: Path, row: dict) -> Path:
    """Where a report row's audio is: its path is relative to the report's folder."""
    return (Path(report_file).parent / row["path"]).resolve()
