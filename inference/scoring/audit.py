"""The corpus audit: per-clip measures, corpus-level judgments and flags (contract/audit.py names the
checks, thresholds and report), and cutting long recordings into clips at VAD pauses.

The same models as the checkpoint scores (inference/scoring/models.py): resemblyzer for the voice,
pocketsphinx or a local Whisper for the words, silero-vad for where the speech is; loudness through
pyloudnorm. `milo-train prepare` drives it (training/prepare.py).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from contract import audit as ca
from contract.audio import SAMPLE_RATE
from contract.scores import is_score, not_scored
from inference.scoring import measures as m
from inference.scoring.models import RATE, Recognizer, SpeakerEncoder, Unavailable, Vad

MIN_SPEAKER_CLIPS = 3        # fewer embeddable clips than this: no corpus voice to compare against
LONG_PAUSE_S = 2.0           # a pause this long always ends a clip of a long recording
CLIP_PAD_S = 0.2             # silence kept around a cut clip's speech (less where the pause is shorter)
ENGLISH = {None, "", "en", "english", "auto"}


@dataclass
class Take:
    """One clip as the audit sees it."""
    name: str                       # what the report and the operator call it
    audio: np.ndarray               # 24 kHz mono float32
    text: str | None = None
    text_source: str = ""           # "txt", "lab", "metadata.csv", or the recognizer's name
    source: np.ndarray | None = None  # the file's own samples (clipping is counted on these)
    measures: dict = field(default_factory=dict)
    flags: list = field(default_factory=list)
    skipped: str | None = None
    embedding: np.ndarray | None = field(default=None, repr=False)


class Auditor:
    """Measures clips one by one (`measure`), then judges the corpus as a whole (`judge`)."""

    def __init__(self, thresholds: dict[str, float] | None = None, *, whisper: str | None = None,
                 device: str = "cpu", language: str | None = None) -> None:
        self.thresholds = {**ca.audit_thresholds(), **(thresholds or {})}
        self.asr = Recognizer(whisper, device, language)
        self.speaker = SpeakerEncoder(None, device)
        self.vad = Vad()
        # pocketsphinx knows US English only: for another language it neither transcribes nor checks.
        self.asr_refusal = (None if whisper or (language or "").lower() in ENGLISH else
                            f"{self.asr.name} knows English only; give --whisper MODEL for {language}")

    def models(self) -> dict:
        return {"asr": self.asr.name, "speaker": self.speaker.name, "vad": self.vad.name, "loudness": "pyloudnorm BS.1770-4"}

    # ---- one clip ------------------------------------------------------------------------------------
    def transcribe(self, audio24: np.ndarray) -> str:
        if self.asr_refusal:
            raise Unavailable(self.asr_refusal)
        return self.asr.transcribe(m.resample(audio24, SAMPLE_RATE, RATE))

    def measure(self, take: Take) -> None:
        """Fill take.measures; transcribe a clip without text (or skip it, saying why, when that fails)."""
        audio16 = m.resample(take.audio, SAMPLE_RATE, RATE)
        got = take.measures
        got["loudness_lufs"] = _round(m.loudness_lufs(take.audio, SAMPLE_RATE), 2)
        got["clipping"] = round(m.clipping(take.source if take.source is not None else take.audio), 6)
        try:
            speech = self.vad.speech(audio16)
        except Unavailable as exc:
            speech = None
            got["speech_ratio"] = not_scored(str(exc))
        if speech is not None:
            seconds = len(audio16) / RATE
            got["speech_ratio"] = round(sum(e - s for s, e in speech) / seconds, 3) if seconds else 0.0
            unheard = not_scored("no speech heard")
            got["leading_silence_s"] = round(speech[0][0], 2) if speech else unheard
            got["trailing_silence_s"] = round(seconds - speech[-1][1], 2) if speech else unheard
            snr = m.snr_db(audio16, RATE, speech)
            got["snr_db"] = round(snr, 1) if snr is not None else not_scored("no speech heard")
        try:
            take.embedding = self.speaker.embed(audio16)
        except Unavailable as exc:
            got["speaker_similarity"] = not_scored(str(exc))
        if take.text is None:
            try:
                take.text, take.text_source = self.transcribe(take.audio), self.asr.name
            except Unavailable as exc:
                take.skipped = f"no transcript: {exc}"
                return
            if not take.text:
                take.skipped = f"no transcript: {self.asr.name} heard no words"
            return
        try:
            heard = self.transcribe(take.audio)
        except Unavailable as exc:
            got["wer"] = got["cer"] = not_scored(str(exc))
            return
        got["heard"] = heard
        try:
            got["wer"], got["cer"] = (round(v, 3) for v in m.error_rates(take.text, heard))
        except ValueError as exc:  # a transcript of punctuation only
            got["wer"] = got["cer"] = not_scored(str(exc))

    # ---- the corpus ----------------------------------------------------------------------------------
    def judge(self, takes: list[Take]) -> dict:
        """Flag what crosses a threshold, then what departs from the corpus voice and what repeats.
        Returns what the report says about the corpus voice."""
        usable = [t for t in takes if not t.skipped]
        for take in usable:
            take.flags = self._threshold_flags(take.measures)
        voice = self._judge_speaker(usable)
        self._judge_duplicates(usable)
        return voice

    def _threshold_flags(self, got: dict) -> list[dict]:
        flags = []
        for key, threshold in ca.THRESHOLDS.items():
            measure = MEASURE_OF[key]
            value, limit = got.get(measure), self.thresholds[key]
            if not is_score(value):
                continue
            if (threshold.bound == "min" and value < limit) or (threshold.bound == "max" and value > limit):
                word = "below" if threshold.bound == "min" else "above"
                flags.append(ca.flag(threshold.check, value, limit, f"{DESCRIBE[measure](value)} is {word} {limit:g}"))
        return flags

    def _judge_speaker(self, takes: list[Take]) -> dict:
        embedded = [t for t in takes if t.embedding is not None]
        if len(embedded) < MIN_SPEAKER_CLIPS:
            why = f"{len(embedded)} clip(s) could be embedded; the corpus voice needs at least {MIN_SPEAKER_CLIPS}"
            for t in takes:
                t.measures.setdefault("speaker_similarity", not_scored(why))
            return {"clips": len(embedded), "judged": False, "why": why}
        centre, core = m.robust_centre([t.embedding for t in embedded])
        limit = self.thresholds["speaker_similarity_min"]
        for t in embedded:
            sim = round(m.cosine(t.embedding, centre), 3)
            t.measures["speaker_similarity"] = sim
            if sim < limit:
                t.flags.append(ca.flag("speaker", sim, limit, f"voice similarity {sim:.2f} to the corpus voice is "
                                                                f"below {limit:g} (another speaker, music or noise?)"))
        return {"clips": len(embedded), "judged": True, "centre_from": len(core)}

    def _judge_duplicates(self, takes: list[Take]) -> None:
        seen_text: dict[str, str] = {}
        for t in takes:
            key = m.normalize(t.text or "")
            if key and key in seen_text:
                t.flags.append(ca.flag(ca.DUPLICATE_TEXT, seen_text[key], None, f"same transcript as {seen_text[key]}"))
            elif key:
                seen_text[key] = t.name
        order = {id(t): i for i, t in enumerate(takes)}
        prints = [(t, _fingerprint(t.audio)) for t in takes]
        prints.sort(key=lambda p: len(p[0].audio))
        for i, (t, (digest, env)) in enumerate(prints):
            for other, (o_digest, o_env) in prints[:i][::-1]:
                if len(other.audio) < len(t.audio) * (1 - DUP_LENGTH_TOLERANCE):
                    break
                if digest == o_digest or _same_envelope(env, o_env):
                    first, later = sorted((t, other), key=lambda x: order[id(x)])
                    if not any(f["check"] == ca.DUPLICATE_AUDIO for f in later.flags):
                        later.flags.append(ca.flag(ca.DUPLICATE_AUDIO, first.name, None, f"same audio as {first.name}"))
                    break


# Which measure each threshold reads, and how a value is said.
MEASURE_OF = {
    "loudness_min_lufs": "loudness_lufs", "loudness_max_lufs": "loudness_lufs", "clipping_max": "clipping",
    "snr_min_db": "snr_db", "speech_ratio_min": "speech_ratio", "leading_silence_max_s": "leading_silence_s",
    "trailing_silence_max_s": "trailing_silence_s", "speaker_similarity_min": "speaker_similarity", "cer_max": "cer",
}
DESCRIBE = {
    "loudness_lufs": lambda v: f"loudness {v:.1f} LUFS",
    "clipping": lambda v: f"{v * 100:.2f}% of the samples at full scale",
    "snr_db": lambda v: f"SNR {v:.1f} dB",
    "speech_ratio": lambda v: f"speech in {v:.2f} of the clip",
    "leading_silence_s": lambda v: f"{v:.2f} s of silence before the speech",
    "trailing_silence_s": lambda v: f"{v:.2f} s of silence after the speech",
    "speaker_similarity": lambda v: f"voice similarity {v:.2f}",
    "cer": lambda v: f"CER {v:.2f} of what the recognizer heard against the transcript",
}

DUP_LENGTH_TOLERANCE = 0.02   # clips whose lengths differ more than this are not the same audio
DUP_CORRELATION = 0.99        # loudness envelopes this alike (in 20 ms windows) are the same audio


def _fingerprint(audio24: np.ndarray) -> tuple[str, np.ndarray]:
    pcm = (np.clip(audio24, -1, 1) * 32767).astype("<i2")
    env = 20 * np.log10(m.window_rms(audio24, SAMPLE_RATE).astype(np.float64) + 1e-5)
    return hashlib.sha1(pcm.tobytes()).hexdigest(), env


def _same_envelope(a: np.ndarray, b: np.ndarray) -> bool:
    """The same recording, perhaps at another gain or re-encoded: the loudness envelopes correlate."""
    n = min(len(a), len(b))
    if n < 10:
        return False
    a, b = a[:n] - a[:n].mean(), b[:n] - b[:n].mean()
    denominator = np.linalg.norm(a) * np.linalg.norm(b)
    return bool(denominator > 0 and float(a @ b) / denominator >= DUP_CORRELATION)


def _round(value, digits: int):
    return round(value, digits) if value is not None else not_scored("too short or silent for BS.1770 gating")


# ---- long recordings ------------------------------------------------------------------------------
def plan_cuts(speech: list[tuple[float, float]], total_s: float, *, min_s: float = ca.SEGMENT_MIN_S,
              max_s: float = ca.SEGMENT_MAX_S, pause_s: float = ca.SEGMENT_PAUSE_S,
              long_pause_s: float = LONG_PAUSE_S, pad_s: float = CLIP_PAD_S) -> tuple[list[tuple[float, float]], float]:
    """Where to cut a long recording: (clips as (start, end) seconds, seconds of speech left out).

    Speech spans closer than `pause_s` are one phrase (a clip never ends inside one unless a phrase alone
    is longer than `max_s`). A pause of `long_pause_s` or more always ends a clip. A stretch longer than
    `max_s` is split at its longest pause that leaves both sides at least `min_s` (at its longest pause if
    none does), again and again, so clips end where the speaker paused most: between sentences. Each clip
    keeps up to `pad_s` of the pause on either side. A stretch shorter than `min_s` is left out."""
    phrases = _merge(speech, pause_s)
    stretches, current = [], []
    for phrase in phrases:
        if current and phrase[0] - current[-1][1] >= long_pause_s:
            stretches.append(current)
            current = []
        current.append(phrase)
    if current:
        stretches.append(current)
    inner_max = max_s - 2 * pad_s
    clips, left_out = [], 0.0
    for stretch in stretches:
        for part in _split(stretch, min_s, inner_max):
            start, end = part[0][0], part[-1][1]
            if end - start < min_s - 2 * pad_s:
                left_out += sum(e - s for s, e in part)
                continue
            for s, e in _hard_cut(start, end, inner_max):
                clips.append((s, e))
    padded = []
    for i, (s, e) in enumerate(clips):
        before = s - (clips[i - 1][1] if i else 0.0)
        after = (clips[i + 1][0] if i + 1 < len(clips) else total_s) - e
        padded.append((round(max(0.0, s - min(pad_s, before / 2)), 3), round(min(total_s, e + min(pad_s, after / 2)), 3)))
    return padded, round(left_out, 2)


def _merge(spans: list[tuple[float, float]], gap: float) -> list[tuple[float, float]]:
    out: list[list[float]] = []
    for s, e in spans:
        if out and s - out[-1][1] < gap:
            out[-1][1] = e
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def _split(phrases: list[tuple[float, float]], min_s: float, max_s: float) -> list[list[tuple[float, float]]]:
    if phrases[-1][1] - phrases[0][0] <= max_s or len(phrases) == 1:
        return [phrases]
    start, end = phrases[0][0], phrases[-1][1]
    gaps = [(phrases[i + 1][0] - phrases[i][1], i) for i in range(len(phrases) - 1)]
    fair = [g for g in gaps if phrases[g[1]][1] - start >= min_s and end - phrases[g[1] + 1][0] >= min_s]
    _, i = max(fair or gaps)
    return _split(phrases[: i + 1], min_s, max_s) + _split(phrases[i + 1:], min_s, max_s)


def _hard_cut(start: float, end: float, max_s: float) -> list[tuple[float, float]]:
    """A phrase with no pause in `max_s`: equal pieces (the last resort; the report counts them)."""
    pieces = int(np.ceil((end - start) / max_s)) if end - start > max_s else 1
    step = (end - start) / pieces
    return [(start + k * step, start + (k + 1) * step) for k in range(pieces)]
