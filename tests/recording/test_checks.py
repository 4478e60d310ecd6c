"""The take checks on real speech (festival's SLT voice), through the checker's own process: good takes pass
every check; a misread, a clipped, a noisy and a long-silent take are each flagged with their values."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from contract import recording as cr
from tests.conftest import festival, python_env

PROMPTS = ("Check the fuse before you touch the wires.", "The train to the coast leaves at nine in the morning.",
           "Please remind me to call my sister tomorrow.", "It will rain this afternoon, so take an umbrella.",
           "The soup needs another pinch of salt and some pepper.", "Turn left at the bakery and walk two more blocks.",
           "We planted tomatoes and beans along the garden fence.", "The library closes early on Sunday evenings.")
ROOM = {"rms_dbfs": -75.0}


def take(speech: np.ndarray, rate: int, lead: float = 0.3, trail: float = 0.3, noise_rms: float = 10 ** (-75 / 20)):
    x = np.concatenate([np.zeros(int(lead * rate)), speech, np.zeros(int(trail * rate))]).astype(np.float32)
    return x + np.random.default_rng(1).standard_normal(len(x)).astype(np.float32) * noise_rms


class Checker:
    """`python -m inference.recording` as the record screen runs it: JSON lines in and out."""

    def __init__(self, folder) -> None:
        self.folder = folder
        self.proc = subprocess.Popen([sys.executable, "-m", "inference.recording"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=python_env())
        self.ready = json.loads(self.proc.stdout.readline())
        self.limits = {k: v for k, v in cr.record_settings().items() if k in cr.THRESHOLDS}
        self.peers = {"embeddings": [], "paces": []}

    def check(self, name: str, audio: np.ndarray, rate: int, text: str) -> dict:
        path = self.folder / f"{name}.wav"
        sf.write(path, audio, rate, subtype="PCM_16")
        self.proc.stdin.write(json.dumps(dict(id=name, audio=str(path), text=text, room=ROOM, peers=self.peers,
                                              limits=self.limits, pad=0.15, out=str(self.folder / f"{name}-trim.wav")))
                              + "\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        assert answer["type"] == "checked", answer
        return answer["result"]

    def close(self) -> None:
        self.proc.stdin.close()
        assert self.proc.wait(30) == 0


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    folder = tmp_path_factory.mktemp("slt")
    return [sf.read(festival(t, folder / f"s{i}.wav"), dtype="float32") for i, t in enumerate(PROMPTS)]


@pytest.fixture(scope="module")
def checked(speech, tmp_path_factory):
    """Six good takes (which make the session's voice and pace), then the bad ones and a good one."""
    c = Checker(tmp_path_factory.mktemp("takes"))
    got = {}
    for i in range(6):
        a, r = speech[i]
        got[f"good{i}"] = res = c.check(f"good{i}", take(a, r), r, PROMPTS[i])
        c.peers["embeddings"].append(res["embedding"])
        c.peers["paces"].append(res["pace"])
    a, r = speech[6]
    got["misread"] = c.check("misread", take(a, r), r, PROMPTS[7])
    got["clipped"] = c.check("clipped", np.clip(take(a, r) * 8, -1, 1), r, PROMPTS[6])
    got["noisy"] = c.check("noisy", take(a, r, noise_rms=0.03), r, PROMPTS[6])
    got["silence"] = c.check("silence", take(a, r, lead=4.0), r, PROMPTS[6])
    got["good6"] = c.check("good6", take(a, r), r, PROMPTS[6])
    c.close()
    got["_ready"], got["_folder"] = c.ready, c.folder
    return got


def checks(result: dict) -> dict:
    return {f["check"]: f for f in result["flags"]}


def test_the_checker_says_it_is_ready_with_the_audit_models(checked):
    assert checked["_ready"]["type"] == "ready"
    assert checked["_ready"]["models"]["asr"].startswith("pocketsphinx")


def test_good_takes_pass_every_check(checked):
    for name in [f"good{i}" for i in range(7)]:
        assert checked[name]["flags"] == [], (name, checked[name]["flags"])
    last = checked["good6"]["measures"]
    # the session's voice and pace were there to compare against, and the words were heard
    assert last["speaker_similarity"] >= 0.75 and 0.7 < last["pace_ratio"] < 1.4 and last["cer"] <= 0.2


def test_a_take_is_trimmed_to_the_pad_around_its_speech(checked):
    got = checked["silence"]
    trimmed, rate = sf.read(checked["_folder"] / "silence-trim.wav")
    assert rate == 24000 and sf.info(checked["_folder"] / "silence-trim.wav").subtype == "PCM_16"
    assert abs(len(trimmed) / rate - got["measures"]["length_s"]) < 0.02
    # 4 s of silence before the speech are gone; 0.15 s stays
    assert got["trim"]["start_s"] == pytest.approx(got["measures"]["leading_silence_s"] - 0.15, abs=0.01)
    assert len(trimmed) / rate < 4.5


def test_a_misread_is_flagged_with_its_cer(checked):
    flag = checks(checked["misread"])["misread"]
    assert flag["value"] > 0.6 and flag["threshold"] == 0.6
    assert "CER" in flag["reason"] and "above 0.6" in flag["reason"]


def test_a_clipped_take_is_flagged_with_its_peak_and_clipping(checked):
    got = checks(checked["clipped"])
    assert got["clipping"]["value"] > 0.001 and got["peak"]["value"] >= -1.0


def test_a_noisy_take_is_flagged_with_its_snr(checked):
    flag = checks(checked["noisy"])["snr"]
    assert flag["value"] < 35 and "SNR" in flag["reason"]
    assert checked["good6"]["measures"]["snr_db"] > 35


def test_a_take_with_long_silence_is_flagged_with_the_seconds(checked):
    flag = checks(checked["silence"])["leading_silence"]
    assert 4.0 <= flag["value"] < 4.6 and flag["threshold"] == 2.0
    assert set(checks(checked["silence"])) == {"leading_silence"}


def test_a_bad_take_is_an_error_line_and_the_checker_goes_on(tmp_path):
    c = Checker(tmp_path)
    c.proc.stdin.write(json.dumps({"id": "p0001-1", "audio": str(tmp_path / "missing.wav"), "text": "x"}) + "\n")
    c.proc.stdin.flush()
    answer = json.loads(c.proc.stdout.readline())
    assert answer["type"] == "error" and answer["id"] == "p0001-1" and "\n" not in answer["message"]
    silence = np.zeros(24000, dtype=np.float32)
    result = c.check("quiet", silence, 24000, "Nothing was said here.")
    assert "no_speech" in checks(result) and "peak" in checks(result)
    c.close()


def test_the_trainer_validates_on_exactly_the_clips_the_data_holds_out():
    from training.data import split_indices

    assert split_indices(10, 0.05, 0, held=[3, 7]) == ([0, 1, 2, 4, 5, 6, 8, 9], [3, 7])
    assert split_indices(10, 0.0, 0, held=[3]) == (list(range(10)), [])           # 0 validates on nothing
    assert split_indices(3, 0.05, 0, held=[0, 1, 2]) == split_indices(3, 0.05, 0)  # none left to train: seeded
