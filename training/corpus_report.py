"""What the corpus report says: a line per clip found or cut, the counts, the spread of each measure, and the
summary printed and written beside the JSONL as corpus-report.txt (names and statuses: contract/audit.py)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contract import audit as ca


@dataclass
class Entry:
    """One file found, or one clip cut from a long recording: what the report says about it."""
    name: str
    path: Path
    info: dict
    take: object = None          # inference.scoring.audit.Take once it is audited
    skipped: str | None = None
    cut_from: dict | None = None


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
