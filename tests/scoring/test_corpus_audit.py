"""`milo-train prepare` audits the corpus: on festival's SLT voice (the good clips, which pocketsphinx can
check against their transcripts) among one clip of another voice (festival's kal diphone), one with a wrong
transcript, one of white noise, one clipped and one repeated, each bad clip is flagged with its reason, no
good clip is, and --drop-flagged keeps exactly the good ones. A long recording is cut at its pauses into
clips of whole sentences; bad input is one line each and the good clips are kept."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from contract import audit as ca
from tests.conftest import festival, run_module
from tests.scoring.conftest import HELD_OUT, REFERENCE, slt

pytestmark = pytest.mark.slow

WRONG_TEXT = "A large size in stockings is hard to sell."
CLIPPED_SAID = "Open the crate but do not break the glass."
BAD = {  # clip -> the check that must flag it
    "other_voice.wav": "speaker",
    "wrong_text.wav": "transcript",
    "noise.wav": "speech_ratio",
    "clipped.wav": "clipping",
    "good_01_again.wav": ca.DUPLICATE_AUDIO,
}


def kal(text: str, out) -> None:
    """Festival's kal diphone voice: another speaker, whose words pocketsphinx mostly gets."""
    festival(text, out, voice="kal_diphone")


@pytest.fixture(scope="module")
def corpus(voices, tmp_path_factory):
    d = tmp_path_factory.mktemp("audit") / "corpus"
    d.mkdir()
    for i, src in enumerate(sorted(voices.reference.glob("*.wav"))):
        shutil.copy(src, d / f"good_{i:02d}.wav")
        shutil.copy(src.with_suffix(".txt"), d / f"good_{i:02d}.txt")
    kal(HELD_OUT, d / "other_voice.wav")
    shutil.copy(voices.slt, d / "wrong_text.wav")
    (d / "wrong_text.txt").write_text(WRONG_TEXT + "\n")
    shutil.copy(voices.noise, d / "noise.wav")
    (d / "noise.txt").write_text("Nothing but noise here at all.\n")
    slt(CLIPPED_SAID, d / "clipped.wav")
    audio, rate = sf.read(d / "clipped.wav", dtype="float32")
    sf.write(d / "clipped.wav", np.clip(audio * 5, -1, 1), rate)
    shutil.copy(d / "good_01.wav", d / "good_01_again.wav")
    (d / "good_01_again.txt").write_text("A different label on the same recording.\n")
    return d


@pytest.fixture(scope="module")
def audited(corpus, tiny_base, tmp_path_factory):
    from training.prepare import prepare

    out = tmp_path_factory.mktemp("audited") / "train.jsonl"
    said: list[str] = []
    report = prepare(corpus, tiny_base, out, device="cpu", say=said.append)
    return out, report, "\n".join(said)


def _rows(report: dict) -> dict[str, dict]:
    return {r["clip"]: r for r in report["clips"]}


def test_each_bad_clip_is_flagged_with_its_reason(audited):
    _, report, _ = audited
    rows = _rows(report)
    for clip, check in BAD.items():
        flags = rows[clip]["flags"]
        assert check in {f["check"] for f in flags}, (clip, flags)
        assert rows[clip]["status"] == ca.FLAGGED
        for f in flags:  # each flag carries the measured value against the threshold, and says so
            assert f["reason"] and "value" in f and "threshold" in f
    speaker = next(f for f in rows["other_voice.wav"]["flags"] if f["check"] == "speaker")
    assert speaker["value"] < speaker["threshold"] == ca.THRESHOLDS["speaker_similarity_min"].default
    cer = next(f for f in rows["wrong_text.wav"]["flags"] if f["check"] == "transcript")
    assert cer["value"] > 0.7 and cer["threshold"] == 0.6
    clip = next(f for f in rows["clipped.wav"]["flags"] if f["check"] == "clipping")
    assert clip["value"] > 0.005
    assert next(f for f in rows["good_01_again.wav"]["flags"] if f["check"] == ca.DUPLICATE_AUDIO)["value"] == "good_01.wav"


def test_no_good_clip_is_flagged(audited):
    _, report, _ = audited
    rows = _rows(report)
    good = [c for c in rows if c.startswith("good_") and c not in BAD]
    assert len(good) == len(REFERENCE)
    for clip in good:
        m = rows[clip]["measures"]
        assert rows[clip]["flags"] == [], (clip, rows[clip]["flags"], m)
        assert m["speaker_similarity"] > 0.85 and m["cer"] < 0.4 and m["speech_ratio"] > 0.7
    assert report["voice"]["judged"] and report["voice"]["centre_from"] >= len(REFERENCE)
    # the odd clips do not pull the voice the others are compared with: the good clips are all near it
    assert min(rows[c]["measures"]["speaker_similarity"] for c in good) > rows["other_voice.wav"]["measures"]["speaker_similarity"] + 0.25


def test_flagged_clips_stay_marked_and_the_report_is_written(audited):
    out, report, said = audited
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    by_name = {line["audio"].rsplit("/", 1)[-1]: line for line in lines}
    assert set(by_name) == {c for c, r in _rows(report).items() if r["status"] != ca.SKIPPED}
    assert "speaker" in by_name["other_voice.wav"]["flags"] and "flags" not in by_name["good_00.wav"]
    assert not any(name in by_name[line]["ref_audio"] for line in by_name for name in BAD)  # a clean reference
    saved = json.loads((out.parent / ca.CORPUS_REPORT).read_text())
    assert saved["counts"] == report["counts"] and saved["counts"]["flagged"] == len(BAD)
    assert saved["models"]["asr"] == "pocketsphinx en-us" and saved["thresholds"]["cer_max"] == 0.6
    summary = (out.parent / ca.CORPUS_SUMMARY).read_text()
    assert summary.rstrip("\n") in said
    assert "flagged other_voice.wav: voice similarity 0." in summary
    assert "flagged noise.wav:" in summary and "--drop-flagged" in summary


def test_drop_flagged_keeps_exactly_the_clips_that_pass_the_configured_thresholds(corpus, tiny_base, tmp_path):
    """The thresholds come from the config file and decide the verdicts, not only the report's record of them:
    a lowered speaker_similarity_min lets the other voice through (flagged under the default, as
    test_each_bad_clip_is_flagged_with_its_reason shows), and --drop-flagged keeps it with the good clips."""
    out = tmp_path / "clean.jsonl"
    cfg = tmp_path / "config.toml"
    # kal's voice measured 0.4-0.6 against the corpus voice (the default, 0.75, flags it); 0.3 lets it pass
    cfg.write_text("[audit]\ntrailing_silence_max_s = 2\nspeaker_similarity_min = 0.3\n")
    import os

    proc = run_module("training", "prepare", str(corpus), "--base", str(tiny_base), "--out", str(out), "--device", "cpu",
                      "--drop-flagged", env={**os.environ, "MILO_CONFIG": str(cfg)})
    assert proc.returncode == 0, proc.stderr
    kept = {json.loads(x)["audio"].rsplit("/", 1)[-1] for x in out.read_text().splitlines()}
    assert kept == {f"good_{i:02d}.wav" for i in range(len(REFERENCE))} | {"other_voice.wav"}
    report = json.loads((tmp_path / ca.CORPUS_REPORT).read_text())
    assert report["thresholds"]["trailing_silence_max_s"] == 2.0 and report["thresholds"]["cer_max"] == 0.6
    assert report["thresholds"]["speaker_similarity_min"] == 0.3
    other = _rows(report)["other_voice.wav"]
    assert other["status"] == ca.KEPT and other["flags"] == [], other
    assert 0.3 < other["measures"]["speaker_similarity"] < ca.THRESHOLDS["speaker_similarity_min"].default, other
    assert {r["clip"] for r in report["clips"] if r["status"] == ca.DROPPED} == set(BAD) - {"other_voice.wav"}
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "dropped noise.wav:" in proc.stdout and "dropped other_voice.wav" not in proc.stdout


def test_a_wrong_audit_threshold_is_one_line(corpus, tiny_base, tmp_path):
    import os

    cfg = tmp_path / "config.toml"
    cfg.write_text("[audit]\ncer_maximum = 0.3\n")
    proc = run_module("training", "prepare", str(corpus), "--base", str(tiny_base), "--out", str(tmp_path / "x.jsonl"),
                      env={**os.environ, "MILO_CONFIG": str(cfg)})
    assert proc.returncode == 3
    assert proc.stderr.strip().count("\n") == 0 and "cer_maximum" in proc.stderr and "cer_max" in proc.stderr
    assert not (tmp_path / "x.jsonl").exists()


def test_robust_centre_is_not_moved_by_odd_clips():
    from inference.scoring.measures import cosine, robust_centre

    rng = np.random.default_rng(0)
    voice = rng.normal(size=256)
    same = [voice + rng.normal(scale=0.3, size=256) for _ in range(7)]
    odd = [rng.normal(size=256) * 3 for _ in range(3)]  # a second speaker, music, a jingle
    centre, core = robust_centre(same + odd)
    assert sorted(core) == list(range(7))
    assert cosine(centre, voice) > 0.98
    assert cosine(np.mean(same + odd, axis=0), voice) < 0.9  # what a plain mean would have done


# ---- long recordings --------------------------------------------------------------------------------------
SENTENCES = list(REFERENCE) + [HELD_OUT, WRONG_TEXT]
PAUSE_S = 0.8


@pytest.fixture(scope="module")
def episode(voices, tmp_path_factory):
    """One file: eight SLT sentences, 0.8 s apart, with where each sentence's speech lies."""
    from training.audio import load_24k_mono

    d = tmp_path_factory.mktemp("episode")
    parts, spans, t = [], [], 0.0
    gap = np.zeros(int(PAUSE_S * 24000), np.float32)
    for i, text in enumerate(SENTENCES):
        audio = load_24k_mono(slt(text, d / f"s{i}.wav"))
        loud = np.flatnonzero(np.abs(audio) > 0.01)
        spans.append((t + loud[0] / 24000, t + loud[-1] / 24000))
        parts += [audio, gap]
        t += (len(audio) + len(gap)) / 24000
    corpus = d / "corpus"
    corpus.mkdir()
    sf.write(corpus / "episode.flac", np.concatenate(parts), 24000)
    return corpus, spans, t


def test_a_long_recording_becomes_clips_of_whole_sentences(episode, tiny_base, tmp_path):
    from training.prepare import prepare

    corpus, spans, total = episode
    assert total > 20  # longer than --max-seconds: a raw recording
    out = tmp_path / "data" / "train.jsonl"
    report = prepare(corpus, tiny_base, out, device="cpu", say=lambda s: None)
    clips = [r for r in report["clips"] if r.get("cut_from")]
    assert len(clips) >= 2 and report["recordings"][0]["clips_cut"] == len(clips)
    for r in clips:
        assert ca.SEGMENT_MIN_S <= r["duration_s"] <= ca.SEGMENT_MAX_S, r
        assert (out.parent / r["clip"]).is_file() and sf.info(out.parent / r["clip"]).samplerate == 24000
        assert r["text_source"] == "pocketsphinx en-us" and r["text"]
    cuts = [(r["cut_from"]["start_s"], r["cut_from"]["end_s"]) for r in clips]
    for s, e in spans:  # every sentence lies whole inside exactly one clip: the speech is covered, none is split
        holders = [c for c in cuts if c[0] <= s and e <= c[1]]
        assert len(holders) == 1, ((s, e), cuts)
    # the recognizer's words, clip after clip, are the recording's sentences
    from inference.scoring.measures import error_rates

    heard = " ".join(r["text"] for r in sorted(clips, key=lambda r: r["cut_from"]["start_s"]))
    assert error_rates(" ".join(SENTENCES), heard)[0] < 0.35
    assert len(out.read_text().splitlines()) == len(clips)


def test_a_transcript_for_a_long_recording_is_refused(episode, tiny_base, tmp_path):
    corpus, _, _ = episode
    mixed = tmp_path / "corpus"
    shutil.copytree(corpus, mixed)
    shutil.copy(corpus / "episode.flac", mixed / "labelled.flac")
    (mixed / "labelled.txt").write_text(" ".join(SENTENCES))
    out = mixed / "data" / "t.jsonl"  # inside the corpus: the cut clips must not become corpus files next time
    reports = []
    for _ in range(2):
        proc = run_module("training", "prepare", str(mixed), "--base", str(tiny_base), "--out", str(out), "--device", "cpu")
        assert proc.returncode == 0, proc.stderr
        line = [x for x in proc.stdout.splitlines() if x.strip().startswith("skipped labelled.flac:")]
        assert len(line) == 1 and "s recording with a transcript (txt): one transcript cannot be split" in line[0]
        reports.append(json.loads((out.parent / ca.CORPUS_REPORT).read_text()))
    assert any(r["clip"].startswith("clips/episode-") for r in reports[0]["clips"])
    assert [r["clip"] for r in reports[1]["clips"]] == [r["clip"] for r in reports[0]["clips"]]
    assert reports[1]["counts"]["files"] == 2


def test_recordings_that_share_a_stem_each_keep_their_own_clips(episode, tiny_base, tmp_path):
    """ep.flac and ep.wav (other sentences, in another order) in one corpus, then another corpus's ep.wav
    prepared into the same folder: each JSONL line's audio is the stretch of its own recording, and no clip
    is written over by another recording's."""
    import hashlib

    from training.audio import SAMPLE_RATE, load_24k_mono
    from training.prepare import prepare

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(episode[0] / "episode.flac", corpus / "ep.flac")
    gap = np.zeros(int(PAUSE_S * 24000), np.float32)
    other = [load_24k_mono(slt(text, tmp_path / f"o{i}.wav")) for i, text in enumerate(reversed(SENTENCES[3:]))]
    sf.write(corpus / "ep.wav", np.concatenate([x for a in other for x in (a, gap)]), 24000)
    out = tmp_path / "data" / "train.jsonl"
    report = prepare(corpus, tiny_base, out, device="cpu", max_seconds=8.0, say=lambda s: None)
    cut = {str(out.parent / r["clip"]): r["cut_from"] for r in report["clips"] if r.get("cut_from")}
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    paths = [line["audio"] for line in lines]
    assert len(set(paths)) == len(paths) == len(cut) and set(paths) == set(cut)
    assert {c["recording"] for c in cut.values()} == {"ep.flac", "ep.wav"}
    sources = {name: load_24k_mono(corpus / name) for name in ("ep.flac", "ep.wav")}
    for path, c in cut.items():  # the clip holds exactly its own recording's stretch
        piece = sources[c["recording"]][int(c["start_s"] * SAMPLE_RATE): int(c["end_s"] * SAMPLE_RATE)]
        audio, _ = sf.read(path, dtype="float32")
        assert len(audio) == len(piece) and np.abs(audio - piece).max() < 1e-3, (path, c)
    assert {Path(p).name.rsplit("-", 1)[0] for p in paths} == {"ep.flac", "ep.wav"}  # named after each
    # another corpus's ep.flac and ep.wav (the same sentences, swapped), prepared into the same folder: the
    # first JSONL's clips are left as they were, the second's named apart
    before = {p: hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths}
    second = tmp_path / "second"
    second.mkdir()
    sf.write(second / "ep.flac", sources["ep.wav"], 24000)
    sf.write(second / "ep.wav", sources["ep.flac"], 24000)
    prepare(second, tiny_base, out.parent / "second.jsonl", device="cpu", max_seconds=8.0, say=lambda s: None)
    assert {p: hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths} == before
    again = [json.loads(x)["audio"] for x in (out.parent / "second.jsonl").read_text().splitlines()]
    assert again and not set(again) & set(paths)


# ---- bad input ----------------------------------------------------------------------------------------
def _good_clips(voices, folder, n: int):
    """A corpus folder that starts with n good SLT clips and their transcripts."""
    folder.mkdir()
    for i, src in enumerate(sorted(voices.reference.glob("*.wav"))[:n]):
        shutil.copy(src, folder / f"good_{i}.wav")
        shutil.copy(src.with_suffix(".txt"), folder / f"good_{i}.txt")
    return folder


def test_bad_input_is_one_line_each_and_the_good_clips_are_kept(voices, tiny_base, tmp_path):
    corpus = _good_clips(voices, tmp_path / "corpus", 4)
    shutil.copy(voices.slt, corpus / "latin1.wav")
    (corpus / "latin1.txt").write_bytes(b"\xff\xfe\xfa")                 # not UTF-8, a broken UTF-16 mark
    shutil.copy(voices.slt, corpus / "utf16.wav")
    (corpus / "utf16.txt").write_bytes(HELD_OUT.encode("utf-16"))        # says what it is: read
    (corpus / "empty.wav").write_bytes(b"")
    raw = (voices.reference / "clip_00.wav").read_bytes()
    (corpus / "truncated.wav").write_bytes(raw[: len(raw) * 6 // 10])
    (corpus / "truncated.txt").write_text(REFERENCE[0])
    (corpus / "notes.wav").write_text("these are my notes, not audio\n")
    (corpus / "metadata.csv").write_bytes(b"good_0|caf\xe9\n")            # Latin-1: not used, said once
    out = tmp_path / "train.jsonl"
    proc = run_module("training", "prepare", str(corpus), "--base", str(tiny_base), "--out", str(out), "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    said = proc.stdout.splitlines()
    expect = {
        "latin1.wav": "transcript is not UTF-8 text",
        "empty.wav": "unreadable",
        "truncated.wav": "truncated: the file ends after",
        "notes.wav": "unreadable",
    }
    for clip, why in expect.items():
        lines = [x for x in said if x.strip().startswith(f"skipped {clip}:")]
        assert len(lines) == 1 and why in lines[0], (clip, said)
    assert sum("problem: metadata.csv" in x and "not UTF-8" in x for x in said) == 1
    kept = {json.loads(x)["audio"].rsplit("/", 1)[-1]: json.loads(x) for x in out.read_text().splitlines()}
    assert set(kept) == {f"good_{i}.wav" for i in range(4)} | {"utf16.wav"}
    assert kept["utf16.wav"]["text"] == HELD_OUT


def test_a_recognizer_that_cannot_load_is_one_line(voices, tiny_base, tmp_path):
    corpus = _good_clips(voices, tmp_path / "corpus", 3)
    shutil.copy(voices.slt, corpus / "untranscribed.wav")
    broken = tmp_path / "broken-whisper"
    broken.mkdir()
    out = tmp_path / "t.jsonl"
    proc = run_module("training", "prepare", str(corpus), "--base", str(tiny_base), "--out", str(out), "--device", "cpu",
                      "--whisper", str(broken))
    assert proc.returncode == 0 and "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    line = [x for x in proc.stdout.splitlines() if "skipped untranscribed.wav" in x]
    assert len(line) == 1 and "no transcript: whisper (broken-whisper) cannot load" in line[0]
    assert len(out.read_text().splitlines()) == 3
    report = json.loads((tmp_path / ca.CORPUS_REPORT).read_text())
    assert all(r["measures"]["cer"].startswith("not scored: whisper (broken-whisper) cannot load")
               for r in report["clips"] if r["status"] == ca.KEPT)
    # a --whisper that is not a folder at all is refused before anything is read
    proc = run_module("training", "prepare", str(corpus), "--base", str(tiny_base), "--out", str(out),
                      "--whisper", str(tmp_path / "no-such-model"))
    assert proc.returncode == 3 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "is not a local folder" in proc.stderr


def test_numbers_are_compared_as_words():
    from inference.scoring.measures import error_rates, normalize

    assert normalize("Number 12, then 1,021 and 300!") == "number twelve then one thousand twenty one and three hundred"
    assert error_rates("It costs 21 dollars.", "it costs twenty one dollars") == (0.0, 0.0)
    assert error_rates("It costs 21 dollars.", "it costs twenty dollars")[0] > 0
