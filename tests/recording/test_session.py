"""The session folder (contract/recording.py) on its own: takes kept, flagged, replaced, discarded and skipped
put the right files in the corpus and lose none; a session reopens where it was."""
from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest
import soundfile as sf

from contract import recording as cr

SCRIPT = "# a test script\nThe first prompt is here.\nIt costs $45 to park.\n\nA third prompt to read.\nThe fourth one.\n"


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "script.txt"
    path.write_text(SCRIPT, encoding="utf-8")
    return path


def record(session: cr.Session, prompt_id: str, flags=(), seconds: float = 1.0, rate: int = 48000) -> str:
    """A take as the screen stores it, and the checker's answer as it comes back."""
    audio = (np.sin(np.arange(int(seconds * rate)) * 0.05 * seconds) * 0.3).astype(np.float32)
    take = session.add_take(prompt_id, audio, rate, "test mic @ 48000 Hz")
    cr.write_wav(session.trimmed(take), audio[: int(0.8 * rate)], 24000)
    session.checked(take, dict(measures={"length_s": 0.8, "peak_dbfs": -10.5}, flags=list(flags),
                               embedding=[0.1, 0.2], pace=14.0))
    return take


def test_a_new_session_copies_its_script_and_starts_at_the_first_prompt(tmp_path, script):
    s = cr.Session.open(tmp_path / "s", script)
    assert [p.id for p in s.prompts] == ["p0001", "p0002", "p0003", "p0004"]
    assert s.current.display == "The first prompt is here." and s.data["room_tone"] is None
    assert (s.folder / cr.SCRIPT_COPY).read_text() == SCRIPT
    assert s.prompts[1].text != s.prompts[1].display and "$" not in s.prompts[1].text
    script.write_text("Something else entirely now.\n")        # the session keeps its own copy
    assert cr.Session.open(tmp_path / "s").prompts[0].display == "The first prompt is here."


def test_bad_folders_and_scripts_are_one_line(tmp_path, script):
    cr.Session.open(tmp_path / "s", script)
    other = tmp_path / "other.txt"
    other.write_text("A different script entirely.\n")
    for folder, given, said in ((tmp_path / "s", other, "recorded from another script"),
                                (script, None, "is a file"),
                                (tmp_path, None, "holds other files and no session"),
                                (tmp_path / "new", tmp_path / "missing.txt", "missing.txt")):
        with pytest.raises(cr.SessionError) as err:
            cr.Session.open(folder, given)
        assert said in str(err.value) and "\n" not in str(err.value)


def test_a_passed_take_goes_into_the_corpus_prepare_reads(tmp_path, script):
    s = cr.Session.open(tmp_path / "s", script)
    take = record(s, "p0002")
    corpus = s.folder / cr.CORPUS
    wav = corpus / "wavs" / "p0002.wav"
    assert os.path.samefile(wav, s.trimmed(take))          # a link, not a second copy
    assert sf.info(wav).samplerate == 24000 and sf.info(wav).subtype == "PCM_16"
    assert sf.info(s.original(take)).samplerate == 48000  # the original at the microphone's rate
    assert (corpus / "wavs" / "p0002.txt").read_text().strip() == s.prompts[1].text
    assert (corpus / cr.METADATA).read_text() == f"p0002|It costs $45 to park.|{s.prompts[1].text}\n"
    saved = json.loads((s.folder / cr.SESSION_FILE).read_text())
    assert saved["prompts"]["p0002"]["status"] == cr.KEPT and saved["takes"][take]["status"] == cr.KEPT
    report = json.loads((s.folder / cr.REPORT).read_text())
    assert [c["clip"] for c in report["clips"]] == [take] and report["counts"]["kept"] == 1


def test_a_flagged_take_stays_out_until_kept_anyway(tmp_path, script):
    s = cr.Session.open(tmp_path / "s", script)
    bad = cr.flag("misread", 0.9, 0.6, "misread: CER 0.90, above 0.6")
    take = record(s, "p0001", flags=[bad])
    assert s.state("p0001")["status"] == cr.FLAGGED and not (s.folder / cr.CORPUS / "wavs" / "p0001.wav").exists()
    s.keep_anyway("p0001")
    assert s.state("p0001") == dict(status=cr.KEPT, take=take, reason=None, kept_anyway=True)
    assert (s.folder / cr.CORPUS / "wavs" / "p0001.wav").exists()
    report = json.loads((s.folder / cr.REPORT).read_text())
    assert report["clips"][0]["kept_anyway"] and report["clips"][0]["flags"][0]["check"] == "misread"


def test_back_and_retake_replace_the_right_file_and_keep_the_old_one(tmp_path, script):
    s = cr.Session.open(tmp_path / "s", script)
    first = record(s, "p0001")
    record(s, "p0002")
    kept_before = {p: sha(s.folder / cr.CORPUS / "wavs" / f"{p}.wav") for p in ("p0001", "p0002")}
    s.go(0)
    second = record(s, "p0001", seconds=2.0)
    assert second == "p0001-2" and s.take(first)["status"] == cr.REPLACED
    assert os.path.samefile(s.folder / cr.CORPUS / "wavs" / "p0001.wav", s.trimmed(second))
    assert sha(s.folder / cr.CORPUS / "wavs" / "p0001.wav") != kept_before["p0001"]
    assert sha(s.folder / cr.CORPUS / "wavs" / "p0002.wav") == kept_before["p0002"]   # the other prompt untouched
    assert s.original(first).is_file() and s.trimmed(first).is_file()               # nothing lost


def test_discard_and_skip_remove_only_the_corpus_link(tmp_path, script):
    """The worst case of what the session deletes: every file of every take stays, byte for byte."""
    s = cr.Session.open(tmp_path / "s", script)
    takes = [record(s, p) for p in ("p0001", "p0002", "p0003")]
    before = {p: sha(p) for t in takes for p in (s.original(t), s.trimmed(t))}
    s.discard("p0001")
    s.skip("p0002", "tongue twister")
    assert s.state("p0001") == {} and s.take(takes[0])["status"] == cr.DISCARDED
    assert s.state("p0002")["status"] == cr.SKIPPED and s.state("p0002")["reason"] == "tongue twister"
    assert sorted(p.name for p in (s.folder / cr.CORPUS / "wavs").iterdir()) == ["p0003.txt", "p0003.wav"]
    assert (s.folder / cr.CORPUS / cr.METADATA).read_text().startswith("p0003|")
    assert {p: sha(p) for p in before} == before
    assert [p.name for p in s.folder.rglob("*.tmp")] == []


def test_a_killed_session_reopens_at_the_same_prompt_and_checks_what_was_not_checked(tmp_path, script):
    s = cr.Session.open(tmp_path / "s", script)
    record(s, "p0001")
    s.go(2)
    audio = np.zeros(48000, dtype=np.float32)
    pending = s.add_take("p0003", audio, 48000, "test mic")       # killed before its checks came back
    again = cr.Session.open(tmp_path / "s")
    assert again.position == 2 and again.current.id == "p0003"
    assert again.pending() == [pending] and again.state("p0001")["status"] == cr.KEPT


def test_a_failed_write_leaves_the_session_as_it_was(tmp_path, script, monkeypatch):
    s = cr.Session.open(tmp_path / "s", script)
    record(s, "p0001")
    saved = (s.folder / cr.SESSION_FILE).read_bytes()

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr("soundfile.write", full_disk)
    with pytest.raises(OSError):
        s.add_take("p0002", np.zeros(4800, dtype=np.float32), 48000, "test mic")
    assert (s.folder / cr.SESSION_FILE).read_bytes() == saved
    assert not list((s.folder / cr.ORIGINALS).glob("p0002*")) and not list(s.folder.rglob("*.tmp"))


def test_the_held_out_prompts_are_fixed_from_the_first_take_and_spread_out(tmp_path):
    held = [i for i in range(60) if cr.is_heldout(i, 20)]
    assert held == [9, 29, 49]
    assert not any(cr.is_heldout(i, 0) for i in range(60))
    lines = "".join(f"Prompt number {n} is read here.\n" for n in range(1, 13))
    path = tmp_path / "twelve.txt"
    path.write_text(lines)
    s = cr.Session.open(tmp_path / "s", path, heldout_every=4)
    for p in s.prompts[:6]:
        record(s, p.id)
    assert (s.folder / cr.CORPUS / cr.HELDOUT).read_text() == "p0002\np0006\n"


def test_the_record_table_is_checked_like_every_other_table():
    from contract.configfile import ConfigError

    assert cr.record_settings({"record": {"goal_minutes": 30}})["goal_minutes"] == 30.0
    with pytest.raises(ConfigError, match=r"\[record\] snr_min_db = 'x' must be a number"):
        cr.record_settings({"record": {"snr_min_db": "x"}})
    with pytest.raises(ConfigError, match="unknown key"):
        cr.record_settings({"record": {"goal": 30}})


def test_every_record_key_is_documented_with_its_default():
    from tests.conftest import ROOT

    config = (ROOT / "docs" / "configuration.md").read_text()
    recording = (ROOT / "docs" / "recording.md").read_text()
    for key, value in cr.record_settings().items():
        assert f"| `record.{key}` | {value:g} |" in config, key
    for key, t in cr.THRESHOLDS.items():
        assert f"`{key}` ({t.default:g})" in recording and f"`{t.check}`" in recording, key
