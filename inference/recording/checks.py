"""One take's checks, measured with the corpus audit's models (inference/scoring/models.py) and judged by
contract/recording.py's thresholds: level, clipping, SNR against the room tone, silence at each end, length,
pace against the session's running median, a misread (what the recognizer heard against the prompt) and the
voice against the session's centre. The take is trimmed to `pad` seconds of silence around its speech."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from contract import recording as cr
from contract.audio import SAMPLE_RATE
from contract.listen import dbfs
from contract.scores import not_scored
from inference.scoring import measures as m
from inference.scoring.audit import Auditor
from inference.scoring.models import RATE, Unavailable

SNR_CEILING_DB = 80.0


class Checker:
    """The models, loaded once (`warm`) and kept: a take's checks then take well under its length."""

    def __init__(self, whisper: str | None = None, device: str = "cpu") -> None:
        self.auditor = Auditor(whisper=whisper, device=device)

    def models(self) -> dict:
        return self.auditor.models()

    def warm(self) -> float:
        """Load every model and run each once on a second of noise, so the first take waits for nothing."""
        t0 = time.perf_counter()
        noise = (np.random.default_rng(0).standard_normal(RATE) * 0.01).astype(np.float32)
        for use in (self.auditor.vad.speech, self.auditor.speaker.embed,
                    lambda x: self.auditor.asr.transcribe(x)):
            try:
                use(noise)
            except Unavailable:
                pass
        return time.perf_counter() - t0

    def check(self, audio: np.ndarray, rate: int, text: str, *, room: dict | None, peers: dict, limits: dict,
              pad: float, out: Path | None = None) -> dict:
        """The take's measures, flags, voice embedding and pace; the trimmed 24 kHz take written to `out`."""
        t0 = time.perf_counter()
        x = np.asarray(audio, dtype=np.float32).reshape(-1)
        got: dict = {}
        peak = float(np.max(np.abs(x))) if len(x) else 0.0
        got["peak_dbfs"] = round(dbfs(peak), 1)
        got["clipping"] = round(m.clipping(x), 6)
        a16 = m.resample(x, rate, RATE)
        total = len(x) / rate
        try:
            speech = self.auditor.vad.speech(a16)
        except Unavailable as exc:
            speech, got["speech"] = None, not_scored(str(exc))
        start, end, pace = 0.0, total, None
        if speech == []:
            got["speech"] = False
        elif speech:
            first, last = speech[0][0], min(speech[-1][1], total)
            got["leading_silence_s"], got["trailing_silence_s"] = round(first, 2), round(total - last, 2)
            got["edge_s"] = round(min(first, total - last), 2)
            start, end = max(0.0, first - pad), min(total, last + pad)
            got["snr_db"] = round(self._snr(a16, speech, room), 1)
            chars = m.spoken_chars(text)
            if last > first and chars:
                pace = chars / (last - first)
                got["pace_cps"] = round(pace, 2)
                if len(peers.get("paces") or []) >= cr.PACE_MIN_TAKES:
                    got["pace_ratio"] = round(pace / float(np.median(peers["paces"])), 2)
        got["length_s"] = round(end - start, 2)
        a24 = m.resample(x[int(start * rate): int(round(end * rate))], rate, SAMPLE_RATE)
        if out is not None:
            cr.write_wav(out, a24, SAMPLE_RATE)
        lufs = m.loudness_lufs(a24, SAMPLE_RATE)
        got["loudness_lufs"] = round(lufs, 1) if lufs is not None else not_scored("too short for BS.1770 gating")
        embedding = None
        if speech:
            embedding = self._voice(a16, peers, got)
            self._words(a24, text, got)
        flags = cr.judge(got, limits)
        return dict(measures=got, flags=flags, embedding=embedding, pace=round(pace, 3) if pace else None,
                    trim=dict(start_s=round(start, 3), end_s=round(end, 3)), models=self.models(),
                    check_s=round(time.perf_counter() - t0, 3))

    def _snr(self, a16: np.ndarray, speech: list, room: dict | None) -> float:
        """The lower of: speech over the take's own floor, speech over the room tone."""
        own = m.snr_db(a16, RATE, speech)
        own = SNR_CEILING_DB if own is None else own
        power = m.window_rms(a16, RATE).astype(np.float64) ** 2
        n = len(power)
        inside = np.zeros(n, dtype=bool)
        for s, e in speech:
            inside[int(s / m.WINDOW_S): int(np.ceil(e / m.WINDOW_S))] = True
        if not room or not inside.any():
            return min(own, SNR_CEILING_DB)
        speech_db = dbfs(float(np.sqrt(power[inside[:n]].mean())))
        return float(min(own, speech_db - max(room["rms_dbfs"], -120.0), SNR_CEILING_DB))

    def _voice(self, a16: np.ndarray, peers: dict, got: dict) -> list | None:
        try:
            embedding = self.auditor.speaker.embed(a16)
        except Unavailable as exc:
            got["speaker_similarity"] = not_scored(str(exc))
            return None
        others = [np.asarray(e, dtype=np.float64) for e in peers.get("embeddings") or []]
        if len(others) >= cr.VOICE_MIN_TAKES:
            centre, _ = m.robust_centre(others)
            got["speaker_similarity"] = round(m.cosine(embedding, centre), 3)
        return [round(float(v), 5) for v in embedding]

    def _words(self, a24: np.ndarray, text: str, got: dict) -> None:
        try:
            heard = self.auditor.transcribe(a24)
        except Unavailable as exc:
            got["cer"] = not_scored(str(exc))
            return
        got["heard"] = heard
        try:
            wer, cer = m.error_rates(text, heard)
            got["wer"], got["cer"] = round(wer, 3), round(cer, 3)
        except ValueError as exc:
            got["cer"] = not_scored(str(exc))
