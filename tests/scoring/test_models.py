"""The scoring models on real speech: the same voice scores clearly above other voices and noise,
pocketsphinx transcribes festival's HTS voice, DNSMOS tells speech from noise, and what cannot be
measured says why. Margins are the measured values with room (docs/scoring.md)."""
from __future__ import annotations

import pytest

from contract.scores import is_score, means
from inference.scoring.scorer import Scorer
from tests.scoring.conftest import HELD_OUT


@pytest.fixture(scope="module")
def scored(voices):
    scorer = Scorer()
    reference = scorer.reference(voices.reference)
    rows = {name: scorer.score_file(path, HELD_OUT, reference)
            for name, path in [("slt", voices.slt), ("m3", voices.espeak[0]), ("f4", voices.espeak[1]),
                               ("noise", voices.noise)]}
    return reference, rows


def test_the_reference_is_the_six_clips_and_their_median_rate(scored):
    reference, _ = scored
    assert reference.clips == 6 and reference.problems == []
    # letters and digits per second of speech, median of the six SLT clips: measured 14.73. Festival and the
    # -40 dBFS speech edges are deterministic; 10% covers a resampler's or a voice build's drift, and a rate
    # that counts spaces and punctuation as spoken characters falls outside it
    assert reference.rate_cps == pytest.approx(14.73, rel=0.1)


def test_the_same_voice_scores_clearly_above_other_voices_and_noise(scored):
    _, rows = scored
    # Measured: 0.93 for a held-out SLT sentence; 0.43 and 0.58 for the espeak voices; 0.46 for noise.
    assert rows["slt"]["similarity"] > 0.85
    for other in ("m3", "f4", "noise"):
        assert rows["slt"]["similarity"] - rows[other]["similarity"] > 0.25, (other, rows[other]["similarity"])


def test_pocketsphinx_transcribes_the_hts_voice_and_not_noise(scored):
    _, rows = scored
    assert rows["slt"]["asr"] == "pocketsphinx en-us"
    assert rows["slt"]["wer"] <= 0.2, rows["slt"]["transcript"]   # measured: 0 (word for word)
    assert rows["noise"]["wer"] == 1.0 and rows["noise"]["cer"] == 1.0
    assert rows["m3"]["wer"] >= 0.5   # espeak is hard for it (measured 0.75-1.0)


def test_the_bounded_search_hears_speech_word_for_word_as_the_default_width_does(voices):
    """The scorer bounds pocketsphinx's search (SPHINX_MAX_HMM_PER_FRAME) so that babble decodes fast
    (bench/recognizer.py); on real speech that must not change a word."""
    from pocketsphinx import Decoder

    from inference.scoring import measures as m
    from inference.scoring.models import RATE, SPHINX_MAX_HMM_PER_FRAME, Recognizer
    from inference.scoring.scorer import read_audio

    bounded, default = Recognizer(), Recognizer()
    default._model = Decoder(samprate=RATE, loglevel="FATAL")
    assert bounded._load().config["maxhmmpf"] == SPHINX_MAX_HMM_PER_FRAME < default._model.config["maxhmmpf"]
    for path in (voices.slt, *sorted(voices.reference.glob("*.wav"))):
        audio16 = m.resample(*read_audio(path), RATE)
        heard = bounded.transcribe(audio16)
        assert heard and heard == default.transcribe(audio16), path


def test_dnsmos_rates_speech_far_above_noise(scored):
    _, rows = scored
    assert rows["slt"]["dnsmos_ovrl"] > 2.5 and rows["noise"]["dnsmos_ovrl"] < 1.6   # measured 3.2 and 1.1
    assert all(is_score(rows["slt"][k]) for k in ("dnsmos_sig", "dnsmos_bak"))


def test_delivery_measures(scored, voices):
    reference, rows = scored
    slt = rows["slt"]
    # measured: rate ratio 1.069 (15.74 chars/s against the reference's 14.73), silence ratio 0.369; the
    # margins are the same 10% (rate) and 0.1 (festival's pauses) as above
    assert slt["rate_ratio"] == pytest.approx(1.07, abs=0.1) and slt["clipping"] == 0.0
    assert slt["silence_ratio"] == pytest.approx(0.37, abs=0.1)
    assert rows["noise"]["silence_ratio"] == 0.0
    assert means(list(rows.values()))["similarity"] == pytest.approx(
        sum(r["similarity"] for r in rows.values()) / 4, abs=1e-3)


def test_what_cannot_be_measured_says_why(voices, tmp_path):
    import numpy as np

    scorer = Scorer(whisper=str(tmp_path / "no-whisper"))
    row = scorer.score_clip(np.zeros(2400, np.float32), 24000, "Hello.", None)
    assert row["similarity"] == "not scored: no corpus reference"
    assert row["wer"].startswith("not scored: whisper (no-whisper) cannot load (FileNotFoundError")
    assert row["dnsmos_ovrl"] == "not scored: clip too short for DNSMOS (0.10 s, at least 1.0 s)"
    assert row["rate_cps"] == "not scored: no speech above -40 dBFS"
    empty = Scorer().reference(tmp_path)
    assert empty.centroid is None and "holds no audio files" in empty.problems[0]
    short = Scorer().score_clip(np.ones(2400, np.float32) * 0.5, 24000, None, Scorer().reference(voices.reference))
    assert short["similarity"] == "not scored: clip too short to embed (0.10 s, at least 0.5 s)"
    assert short["wer"] == "not scored: no text to compare the transcript with" and short["clipping"] == 0.0
