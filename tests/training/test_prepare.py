"""milo-train prepare: any sample rate, channel count and bit depth becomes 24 kHz mono codes; unusable
clips are skipped with a reason each; the report describes the corpus; Whisper transcribes clips that
have no transcript, from a local folder."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from contract.synth import synth_clip
from tests.conftest import run_module


def _clip(seconds: float, sr: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    audio = np.concatenate([synth_clip("a sentence of some length here", rng) for _ in range(6)])
    import soxr

    audio = soxr.resample(audio, 24000, sr) if sr != 24000 else audio
    return audio[: int(seconds * sr)].astype(np.float32)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    loud = _clip(2.0, 44100, 1)
    loud[1000:1100] = 1.0  # clipped
    sf.write(d / "a_stereo44k.wav", np.stack([loud, 0.5 * loud], axis=1), 44100, subtype="PCM_24")
    (d / "a_stereo44k.txt").write_text("Forty four kilohertz in stereo.\n")
    sf.write(d / "b_16k.flac", _clip(1.5, 16000, 2), 16000, subtype="PCM_16")
    (d / "b_16k.lab").write_text("Sixteen kilohertz flac.")
    sf.write(d / "c_8bit.wav", _clip(2.5, 22050, 3), 22050, subtype="PCM_U8")
    (d / "metadata.csv").write_text("c_8bit|Eight bit audio.|Eight bit audio, normalized.\n")
    (d / "d_garbage.wav").write_bytes(b"RIFF not really a wave file")
    (d / "d_garbage.txt").write_text("garbage")
    (d / "d_notes.mp3").write_text("these are my notes, not audio\n")  # libsndfile: "File does not exist"
    sf.write(d / "e_empty.wav", np.zeros(0, np.float32), 24000)
    (d / "e_empty.txt").write_text("empty")
    sf.write(d / "f_short.wav", _clip(0.2, 24000, 4), 24000)
    (d / "f_short.txt").write_text("short")
    sf.write(d / "g_long.wav", _clip(5.0, 24000, 5), 24000)
    (d / "g_long.txt").write_text("long")
    sf.write(d / "h_untranscribed.wav", _clip(1.2, 24000, 6), 24000)
    sf.write(d / "i_silent.wav", np.zeros(24000, np.float32), 24000)
    (d / "i_silent.txt").write_text("silence")
    (d / ".hidden.wav").write_bytes(b"ignored")
    return d


@pytest.fixture(scope="module")
def prepared(corpus, tiny_base, tmp_path_factory):
    from training.prepare import prepare

    out = tmp_path_factory.mktemp("prepared") / "train.jsonl"
    said = []
    report = prepare(corpus, tiny_base, out, max_seconds=4.0, say=said.append)
    return out, report, "\n".join(said)


def test_kept_clips_become_24k_mono_codes(prepared, corpus):
    out, report, _ = prepared
    rows = [json.loads(l) for l in out.read_text().splitlines()]
    assert [r["audio"].split("/")[-1] for r in rows] == ["a_stereo44k.wav", "b_16k.flac", "c_8bit.wav",
                                                         "h_untranscribed.wav"]
    assert [r["text"] for r in rows][:3] == ["Forty four kilohertz in stereo.", "Sixteen kilohertz flac.",
                                             "Eight bit audio, normalized."]
    for r, seconds in zip(rows, (2.0, 1.5, 2.5, 1.2)):
        codes = np.array(r["audio_codes"])
        assert codes.shape[1] == 16 and codes.min() >= 0 and codes.max() < 2048
        assert r["duration"] == pytest.approx(seconds, abs=0.01)
        assert codes.shape[0] == pytest.approx(seconds * 12.5, abs=1)
    # the synthetic buzz is no English, so the given transcripts disagree with the recognizer: flagged,
    # kept, and the reference is the longest clip without a flag
    assert [r.get("flags") for r in rows] == [["transcript"]] * 3 + [None]
    assert {r["ref_audio"] for r in rows} == {str(corpus / "h_untranscribed.wav")}
    assert [r["text_source"] for r in rows] == ["txt", "lab", "metadata.csv", "pocketsphinx en-us"]
    from training.data import read_jsonl

    assert [e.frames for e in read_jsonl(out)] == [len(r["audio_codes"]) for r in rows]


def test_each_skipped_clip_has_its_reason(prepared):
    _, report, _ = prepared
    reasons = {r["clip"]: r["reason"] for r in report["clips"] if r["status"] == "skipped"}
    assert reasons.keys() == {"d_garbage.wav", "d_notes.mp3", "e_empty.wav", "f_short.wav", "g_long.wav", "i_silent.wav"}
    assert reasons["d_garbage.wav"] == "unreadable: not audio that soundfile can read (format not recognised)"
    # a file that is there is never said not to exist, and "unreadable" is said once
    assert reasons["d_notes.mp3"] == "unreadable: not audio that soundfile can read (not a format it recognises)"
    assert reasons["e_empty.wav"] == "empty: no samples"
    assert reasons["i_silent.wav"] == "empty: silent"
    assert reasons["f_short.wav"].startswith("too short: 0.20 s")
    assert reasons["g_long.wav"].startswith("a 5 s recording with a transcript (txt)")


def test_report_describes_the_corpus(prepared):
    out, report, printed = prepared
    assert report["counts"] == {"files": 10, "clips": 10, "kept": 4, "flagged": 3, "dropped": 0, "skipped": 6}
    assert report["total_duration_s"] == pytest.approx(7.2, abs=0.05)
    assert report["duration_s"]["min"] == pytest.approx(1.2, abs=0.01) and report["duration_s"]["max"] == pytest.approx(2.5, abs=0.01)
    rows = {r["clip"]: r for r in report["clips"]}
    assert rows["a_stereo44k.wav"]["measures"]["clipping"] == pytest.approx(100 / (2 * 88200), abs=1e-5)
    assert rows["a_stereo44k.wav"]["source_sample_rate"] == 44100 and rows["a_stereo44k.wav"]["source_channels"] == 2
    # BS.1770 loudness of the kept clips, measured: -22.72 (a_stereo44k: the 44.1 kHz stereo one, its second
    # channel at half), -18.84, -19.45, -19.31; median -19.38. The clips are synthesised from fixed seeds, so
    # 1 LU of room is for resampling; channels summed instead of averaged (a_stereo44k at -16.7) fall outside
    loud = {r["clip"]: r["measures"]["loudness_lufs"] for r in report["clips"] if r["status"] != "skipped"}
    assert loud == pytest.approx({"a_stereo44k.wav": -22.72, "b_16k.flac": -18.84, "c_8bit.wav": -19.45,
                                  "h_untranscribed.wav": -19.31}, abs=1.0), loud
    assert report["loudness_lufs"]["median"] == pytest.approx(-19.38, abs=1.0)
    assert 0.9 < report["speech_ratio"]["mean"] <= 1  # measured 0.957 (0.945-0.974): speech nearly throughout
    assert report["sample_rates"] == [16000, 22050, 24000, 44100] and report["channels"] == [1, 2]
    assert report["flags"] == {"transcript": 3}
    saved = json.loads((out.parent / "corpus-report.json").read_text())
    assert saved["counts"]["kept"] == 4
    text = (out.parent / "corpus-report.txt").read_text()
    assert "4 kept (3 of them flagged), 0 flagged and dropped, 6 skipped; 10 file(s) found" in text
    assert "skipped i_silent.wav: empty: silent" in text and text.strip() in printed


def test_whisper_transcribes_clips_without_transcript(corpus, tiny_base, tmp_path):
    from tests.training.tiny_whisper import TRANSCRIPT, build_tiny_whisper
    from training.prepare import prepare

    whisper = build_tiny_whisper(tmp_path / "tiny-whisper")
    out = tmp_path / "whispered.jsonl"
    report = prepare(corpus, tiny_base, out, max_seconds=4.0, whisper=str(whisper), say=lambda s: None)
    rows = {json.loads(l)["audio"].split("/")[-1]: json.loads(l) for l in out.read_text().splitlines()}
    assert rows["h_untranscribed.wav"]["text"] == TRANSCRIPT
    assert rows["h_untranscribed.wav"]["text_source"] == "whisper (tiny-whisper)"
    assert rows["a_stereo44k.wav"]["text_source"] == "txt", "a transcript beside the clip wins over Whisper"
    assert report["counts"]["kept"] == 4 and report["transcripts"]["whisper (tiny-whisper)"] == 1
    assert report["models"]["asr"] == "whisper (tiny-whisper)"
    # Whisper also checked the given transcripts: what it heard is in the report
    assert {r["measures"]["heard"] for r in report["clips"] if r["clip"] == "a_stereo44k.wav"} == {TRANSCRIPT}


def test_cli_reports_bad_input_in_one_line(tmp_path, tiny_base):
    proc = run_module("training", "prepare", str(tmp_path / "nothing"), "--base", str(tiny_base),
                      "--out", str(tmp_path / "x.jsonl"))
    assert proc.returncode == 3
    assert proc.stderr.strip() == f"milo-train: error: corpus folder not found: {tmp_path / 'nothing'}"
    assert not (tmp_path / "x.jsonl").exists()
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "readme.txt").write_text("no audio here\n")
    proc = run_module("training", "prepare", str(notes), "--base", str(tiny_base), "--out", str(tmp_path / "x.jsonl"))
    assert proc.returncode == 3 and proc.stderr.strip().count("\n") == 0
    assert f"{notes}: no audio files (" in proc.stderr and not (tmp_path / "x.jsonl").exists()


def test_an_opus_corpus_passes_the_new_run_form_and_prepare_alike(tiny_base, tmp_path):
    """One list of audio types (contract.corpus.AUDIO_SUFFIXES): a folder the form accepts, prepare reads."""
    from milo_tui.screens.new_run import validate_form
    from training.prepare import prepare

    corpus = tmp_path / "opus"
    corpus.mkdir()
    for i, text in enumerate(("The first opus clip.", "The second opus clip.")):
        sf.write(corpus / f"clip{i}.opus", _clip(1.5, 48000, 10 + i), 48000, format="OGG", subtype="OPUS")
        (corpus / f"clip{i}.txt").write_text(text)
    assert sf.info(corpus / "clip0.opus").subtype == "OPUS"
    values = dict(base_model=str(tiny_base), data=str(corpus), run_name="opus-voice", lr="2e-5", epochs="1",
                  batch_size="1", grad_accum="1", speaker="milo", attention="sdpa", restart_limit="0")
    request, errors = validate_form(values, tmp_path / "ck")
    assert errors == {} and request.prepare_first
    report = prepare(corpus, tiny_base, tmp_path / "prepared" / "train.jsonl", say=lambda _line: None)
    assert [c["status"] for c in report["clips"]] != [] and report["counts"]["skipped"] == 0
    assert report["counts"]["kept"] == 2


def _base_variant(tiny_base, tmp_path, name, change):
    import shutil

    variant = tmp_path / name
    shutil.copytree(tiny_base, variant)
    change(variant)
    return variant


def test_the_form_and_prepare_refuse_a_base_model_with_the_same_line(tiny_base, tmp_path):
    """One check of a base model (contract.checkpoint.check_base_model): the form used to accept a folder without
    weights or with half-copied ones, and prepare anything with a config.json, failing minutes later."""
    import shutil

    from contract.checkpoint import BaseModelError, check_base_model
    from milo_tui.screens.new_run import validate_form

    def truncate(v):
        with open(v / "model.safetensors", "r+b") as f:
            f.truncate(f.seek(0, 2) // 2)

    def custom(v):
        cfg = json.loads((v / "config.json").read_text())
        (v / "config.json").write_text(json.dumps({**cfg, "tts_model_type": "custom_voice"}))

    cases = {
        "no_weights": (lambda v: (v / "model.safetensors").unlink(), "model weights are missing"),
        "half_copied": (truncate, "model.safetensors is truncated"),
        "no_codec": (lambda v: shutil.rmtree(v / "speech_tokenizer"), "speech_tokenizer/ is missing"),
        "no_vocab": (lambda v: (v / "vocab.json").unlink(), "text tokenizer files missing: vocab.json"),
        "custom": (custom, "fine-tuning starts from a Base model"),
    }
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    sf.write(corpus / "a.wav", _clip(1.5, 24000, 1), 24000)
    check_base_model(tiny_base)  # the control: the tiny Base model passes
    for name, (change, words) in cases.items():
        base = _base_variant(tiny_base, tmp_path, name, change)
        with pytest.raises(BaseModelError) as err:
            check_base_model(base)
        line = str(err.value)
        assert words in line and "\n" not in line, (name, line)
        values = dict(base_model=str(base), data=str(corpus), run_name=name, lr="2e-5", epochs="1", batch_size="1",
                      grad_accum="1", speaker="milo", attention="sdpa", restart_limit="0")
        assert validate_form(values, tmp_path / "ck", only="base_model")[1] == {"base_model": line}
        proc = run_module("training", "prepare", str(corpus), "--base", str(base), "--out", str(tmp_path / "x.jsonl"))
        assert proc.returncode == 3 and proc.stderr.strip() == f"milo-train: error: {line}", (name, proc.stderr)
