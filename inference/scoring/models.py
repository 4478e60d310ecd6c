"""The trained models the scores come from, each loaded on first use and kept.

Each class has `name` (what a score row says produced it) and raises `Unavailable` with one line when it
cannot load or cannot take a clip; the scorer turns that into "not scored: <why>" for the fields it feeds.
All of them take float32 mono audio at 16 kHz (`RATE`).

  SpeakerEncoder    resemblyzer's GE2E (the weights in its wheel), or WavLM x-vector from a local folder
  Recognizer        pocketsphinx en-us (the model in its wheel), or Whisper from a local folder
  Dnsmos            DNSMOS P.835 from speechmos (the ONNX models in its wheel) on onnxruntime
  Vad               silero-vad (the model in its wheel): where the speech is
"""
from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import numpy as np

from contract.errors import one_line

RATE = 16000
MIN_EMBED_S = 0.5   # shorter clips carry too little voice to embed
MIN_DNSMOS_S = 1.0  # DNSMOS scores 9 s windows; under a second its numbers mean little
# pocketsphinx's beam keeps at most this many HMMs a frame (its own default: 30000). On babble, what an
# early checkpoint says, the search otherwise fills that whole width: about 1.5 s of decoding per second of
# audio here, nearly all of a checkpoint's scoring. At 5000 babble decodes about 3x faster and 32 festival
# SLT and kal sentences gave word for word the transcripts of the default (3000 changed one, 2000 more):
# bench/recognizer.py, docs/benchmarks.md "Recognizer".
SPHINX_MAX_HMM_PER_FRAME = 5000


class Unavailable(Exception):
    """A model cannot load, or cannot take this clip: the message is the one-line why."""


@contextlib.contextmanager
def _quiet():
    """Libraries that print notices (resemblyzer's 'Loaded the voice encoder model'): not on our stdout."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


class _Lazy:
    """Loaded on first use and kept; a failure to load is remembered and repeated as `Unavailable`."""

    name = ""

    def __init__(self) -> None:
        self._model = None
        self._error: str | None = None

    def _open(self):
        raise NotImplementedError

    def _load(self):
        if self._error:
            raise Unavailable(self._error)
        if self._model is None:
            try:
                self._model = self._open()
            except Exception as exc:  # noqa: BLE001 - any loading failure is one line
                self._error = f"{self.name} cannot load ({one_line(exc)})"
                raise Unavailable(self._error) from None
        return self._model


class SpeakerEncoder(_Lazy):
    """A speaker embedding per clip. Default: resemblyzer's GE2E encoder (256-d, trained for speaker
    verification, independent of the model being judged). With `wavlm` (a local folder holding a
    `WavLMForXVector`, as the Seed-TTS-eval protocol uses): its x-vector."""

    def __init__(self, wavlm: str | None = None, device: str = "cpu") -> None:
        super().__init__()
        self.wavlm, self.device = wavlm, device
        self.name = f"WavLM x-vector ({Path(wavlm).name})" if wavlm else "resemblyzer GE2E"

    def _open(self):
        if self.wavlm:
            return _load_wavlm(self.wavlm, self.device)
        with _quiet():
            from resemblyzer import VoiceEncoder

            return VoiceEncoder(self.device, verbose=False)

    def embed(self, audio16: np.ndarray) -> np.ndarray:
        seconds = len(audio16) / RATE
        if seconds < MIN_EMBED_S:
            raise Unavailable(f"clip too short to embed ({seconds:.2f} s, at least {MIN_EMBED_S} s)")
        model = self._load()
        if self.wavlm:
            return _wavlm_embed(model, audio16)
        from resemblyzer import preprocess_wav

        with _quiet():
            wav = preprocess_wav(np.asarray(audio16, dtype=np.float32), source_sr=RATE)
        if len(wav) < MIN_EMBED_S * RATE:
            raise Unavailable(f"too little voice to embed ({len(wav) / RATE:.2f} s after trimming silence)")
        return np.asarray(model.embed_utterance(wav), dtype=np.float32)


def _load_wavlm(folder: str, device: str):
    from inference.qwen import guard_torchaudio

    if not Path(folder).is_dir():
        raise FileNotFoundError(f"{folder} is not a local folder")
    guard_torchaudio()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoFeatureExtractor, WavLMForXVector

    extractor = AutoFeatureExtractor.from_pretrained(folder)
    model = WavLMForXVector.from_pretrained(folder).to(device).eval()
    return extractor, model


def _wavlm_embed(loaded, audio16: np.ndarray) -> np.ndarray:
    import torch

    extractor, model = loaded
    inputs = extractor(audio16, sampling_rate=RATE, return_tensors="pt")
    with torch.inference_mode():
        out = model(**{k: v.to(model.device) for k, v in inputs.items()})
    return out.embeddings[0].float().cpu().numpy()


class Recognizer(_Lazy):
    """A transcript per clip. Default: pocketsphinx with its bundled US English model. With `whisper` (a
    local folder): Whisper through transformers' speech-recognition pipeline."""

    def __init__(self, whisper: str | None = None, device: str = "cpu", language: str | None = None) -> None:
        super().__init__()
        self.whisper, self.device, self.language = whisper, device, language
        self.name = f"whisper ({Path(whisper).name})" if whisper else "pocketsphinx en-us"

    def _open(self):
        if not self.whisper:
            from pocketsphinx import Decoder

            return Decoder(samprate=RATE, loglevel="FATAL", maxhmmpf=SPHINX_MAX_HMM_PER_FRAME)
        if not Path(self.whisper).is_dir():
            raise FileNotFoundError(f"{self.whisper} is not a local folder")
        from inference.qwen import guard_torchaudio

        guard_torchaudio()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import pipeline

        return pipeline("automatic-speech-recognition", model=self.whisper, device=self.device)

    def transcribe(self, audio16: np.ndarray) -> str:
        model = self._load()
        if self.whisper:
            kwargs = {"generate_kwargs": {"language": self.language, "task": "transcribe"}} if self.language else {}
            out = model({"raw": np.asarray(audio16, dtype=np.float32), "sampling_rate": RATE}, **kwargs)
            return str(out.get("text", "")).strip()
        pcm = (np.clip(audio16, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        model.start_utt()
        model.process_raw(pcm, full_utt=True)
        model.end_utt()
        hyp = model.hyp()
        return hyp.hypstr.strip() if hyp is not None else ""


class Dnsmos(_Lazy):
    """DNSMOS P.835: SIG (speech), BAK (background), OVRL (overall), each about 1 (bad) to 5 (excellent)."""

    name = "DNSMOS P.835 (speechmos)"

    def _open(self):
        from speechmos import dnsmos

        return dnsmos.run

    def score(self, audio16: np.ndarray) -> dict[str, float]:
        seconds = len(audio16) / RATE
        if seconds < MIN_DNSMOS_S:
            raise Unavailable(f"clip too short for DNSMOS ({seconds:.2f} s, at least {MIN_DNSMOS_S} s)")
        out = self._load()(np.clip(np.asarray(audio16, dtype=np.float32), -1.0, 1.0), sr=RATE)
        return {"sig": float(out["sig_mos"]), "bak": float(out["bak_mos"]), "ovrl": float(out["ovrl_mos"])}


class Vad(_Lazy):
    """silero-vad: the spans of speech in a clip, in seconds. `min_silence_s` is the shortest pause that
    ends a span (short ones keep words together; sentence pauses are longer)."""

    name = "silero-vad"

    def _open(self):
        from silero_vad import get_speech_timestamps, load_silero_vad

        return load_silero_vad(), get_speech_timestamps

    def speech(self, audio16: np.ndarray, min_silence_s: float = 0.1, pad_s: float = 0.03) -> list[tuple[float, float]]:
        import torch

        model, timestamps = self._load()
        wav = torch.from_numpy(np.ascontiguousarray(audio16, dtype=np.float32))  # float64 is refused
        spans = timestamps(wav, model, sampling_rate=RATE, min_silence_duration_ms=int(min_silence_s * 1000),
                           speech_pad_ms=int(pad_s * 1000))
        return [(s["start"] / RATE, s["end"] / RATE) for s in spans]
