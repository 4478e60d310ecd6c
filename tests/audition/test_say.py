"""milo-say as a real command: a 24 kHz WAV, the run's samples index, and one line for bad input."""
from __future__ import annotations


import numpy as np
import pytest
import soundfile as sf

from contract.samples import read_samples
from tests.conftest import run_module


def test_milo_say_writes_a_24khz_wav(tiny_custom_voice, tmp_path):
    out = tmp_path / "out.wav"
    proc = run_module("inference.say", str(tiny_custom_voice), "Hello, this is milo.", "-o", str(out), "--seed", "7",
                      "--max-new-tokens", "30", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out)
    info = sf.info(out)
    assert (info.samplerate, info.channels, info.subtype) == (24000, 1, "PCM_16")
    audio, _ = sf.read(out)
    assert info.duration == pytest.approx(29 * 1920 / 24000) and np.sqrt(np.mean(audio ** 2)) > 0.01
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("milo-say: epoch-0001 (milo_demo, seed 7): 2.32 s of audio in") and "first audio after" in line


def test_milo_say_into_a_run_keeps_the_index_and_reports_a_missing_device(audition_run, no_audio_env):
    before = {s.id for s in read_samples(audition_run)}
    proc = run_module("inference.say", str(audition_run / "epoch-0002"), "Saved in the run.", "--seed", "3",
                      "--max-new-tokens", "20", "--device", "cpu", "--play", env=no_audio_env)
    assert proc.returncode == 6, proc.stderr  # saved, not played (contract/exits.py)
    assert "not played: no default audio output device" in proc.stderr and "the WAV is saved" in proc.stderr
    new = [s for s in read_samples(audition_run) if s.id not in before]
    assert len(new) == 1 and new[0].wav.is_file() and str(new[0].wav) == proc.stdout.strip()
    assert new[0].checkpoint == "epoch-0002" and new[0].seed == 3 and new[0].get("source") == "milo-say"
    assert new[0].wav.name == f"{new[0].id:04d}-epoch-0002-3.wav"


@pytest.mark.parametrize("args, expected", [
    (["{ckpt}", "  "], "milo-say: nothing to say: the text is empty"),
    (["{ckpt}", "word " * 400], "the limit is 1200"),
    (["{base}", "Hi."], "not a custom-voice checkpoint"),
    (["{tmp}", "Hi."], "not a checkpoint folder: config.json is missing"),
    (["{ckpt}", "Hi.", "-o", "{tmp}/missing/x.wav"], "milo-say: cannot write {tmp}/missing/x.wav: the folder "
                                                     "{tmp}/missing does not exist (create it, or pick another -o)"),
    (["{ckpt}", "Hi.", "-o", "{tmp}"], "cannot write {tmp}: it is a folder (name a .wav file)"),
])
def test_milo_say_bad_input_exits_3_with_a_clear_line(tiny_custom_voice, tiny_base, tmp_path, args, expected):
    args = [a.format(ckpt=tiny_custom_voice, base=tiny_base, tmp=tmp_path) for a in args]
    expected = expected.format(tmp=tmp_path)
    proc = run_module("inference.say", *args)
    assert proc.returncode == 3 and expected in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_milo_say_unknown_speaker(tiny_custom_voice):
    proc = run_module("inference.say", str(tiny_custom_voice), "Hi.", "--speaker", "bob", "--device", "cpu")
    assert proc.returncode == 3 and "unknown speaker 'bob': epoch-0001 has milo_demo" in proc.stderr, proc.stderr


def test_milo_say_run_best_speaks_with_the_best_checkpoint(audition_run, tmp_path):
    """RUN/best: the run's best checkpoint by the [best] rule, said with why; none yet is one line."""
    import json
    import shutil

    from contract import scores as sc
    from contract.runfolder import write_json_atomic

    run = tmp_path / "run"
    shutil.copytree(audition_run, run, ignore=shutil.ignore_patterns("samples"))
    proc = run_module("inference.say", str(run / "best"), "Hi.", "--device", "cpu")
    assert proc.returncode == 3 and "Traceback" not in proc.stderr
    assert f"milo-say: {run}: no best checkpoint yet: no checkpoint meets the rule (0 scored" in proc.stderr
    base = {"similarity": 0.6, "wer": 0.2, "runaway": 0}
    write_json_atomic(run / sc.BASELINE_JSON, {"v": 1, "row": "baseline", "means": base})
    for name, sim in (("epoch-0001", 0.7), ("epoch-0002", 0.9)):
        ev = json.loads((run / name / "eval.json").read_text()) if (run / name / "eval.json").is_file() else {}
        ev[sc.SCORES] = {"v": 1, "means": {**base, "similarity": sim}}
        write_json_atomic(run / name / "eval.json", ev)
    out = tmp_path / "best.wav"
    proc = run_module("inference.say", str(run / "best"), "Hi.", "-o", str(out), "--seed", "1",
                      "--max-new-tokens", "10", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    assert "milo-say: best in run is epoch-0002: highest similarity 0.900 among 2 of 2 scored" in proc.stderr
    assert "milo-say: epoch-0002 (" in proc.stderr and out.is_file()


def test_milo_say_ctrl_c_keeps_the_audio_made_so_far(tiny_custom_voice, tmp_path):
    """SIGINT mid-synthesis (about 40 s of work): the audio already made is written to -o (a whole, valid
    WAV, atomically) and said in one line; exit 130."""
    import signal
    import subprocess
    import sys
    import threading

    from tests.conftest import python_env

    out = tmp_path / "partial.wav"
    text = " ".join(["This sentence is long enough to take a while to say."] * 8)
    proc = subprocess.Popen([sys.executable, "-m", "inference.say", str(tiny_custom_voice), text, "-o", str(out),
                             "--seed", "1", "--no-budget", "--max-new-tokens", "400", "--device", "cpu"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=python_env())
    lines, first_audio = [], threading.Event()

    def read_stderr() -> None:
        for line in proc.stderr:
            lines.append(line)
            if "first audio after" in line:
                first_audio.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    first_audio.wait(timeout=20)  # the audio has started flowing (or, without that line, the load is long over)
    proc.send_signal(signal.SIGINT)
    stdout = proc.stdout.read()
    proc.wait(timeout=60)
    reader.join(timeout=10)
    stderr = "".join(lines)
    assert proc.returncode == 130, stderr
    assert out.is_file(), stderr
    info = sf.info(out)
    assert (info.samplerate, info.channels, info.subtype) == (24000, 1, "PCM_16") and info.duration > 0
    assert info.duration < 8 * 400 * 1920 / 24000  # not the whole text
    assert stdout.strip() == str(out) and "Traceback" not in stderr
    assert "ctrl+c now stops and keeps what is made" in stderr
    assert stderr.strip().splitlines()[-1] == (f"milo-say: interrupted: the {info.duration:.2f} s of audio made "
                                               f"so far is saved in {out}")
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary file left behind


def test_milo_say_run_best_speaks_for_a_demo_run_and_not_for_a_real_one_with_the_same_scores(audition_run, tmp_path):
    """The tiny demo model runs away on every prompt: RUN/best resolves by the demo run's own rule (its run.json,
    as the trainer writes it from the dashboard's demo flags) and speaks; a run with the same scores and no rule
    of its own is held to the default rule (no runaway) and has none."""
    import json
    import shutil

    from contract import scores as sc
    from contract.runfolder import write_json_atomic
    from milo_tui.demo import DEMO_BEST_NOTE

    runs = {}
    for name in ("demo", "real"):
        run = runs[name] = tmp_path / name
        shutil.copytree(audition_run, run, ignore=shutil.ignore_patterns("samples"))
        base = {"similarity": 0.38, "wer": 1.0, "runaway": 4}
        write_json_atomic(run / sc.BASELINE_JSON, {"v": 1, "row": "baseline", "means": base})
        for ck, sim in (("epoch-0001", 0.41), ("epoch-0002", 0.39)):
            ev = json.loads((run / ck / "eval.json").read_text()) if (run / ck / "eval.json").is_file() else {}
            ev[sc.SCORES] = {"v": 1, "means": {**base, "similarity": sim, "runaway": 5}}
            write_json_atomic(run / ck / "eval.json", ev)
    run_json = json.loads((runs["demo"] / "run.json").read_text())
    run_json["best"] = sc.rule_block(sc.BestRule(max_runaway=5), DEMO_BEST_NOTE)
    write_json_atomic(runs["demo"] / "run.json", run_json)

    real = run_module("inference.say", str(runs["real"] / "best"), "Hi.", "-o", str(tmp_path / "real.wav"),
                      "--device", "cpu")
    assert real.returncode == 3 and "no best checkpoint yet: no checkpoint meets the rule (2 scored" in real.stderr
    assert not (tmp_path / "real.wav").exists()
    out = tmp_path / "demo.wav"
    demo = run_module("inference.say", str(runs["demo"] / "best"), "Hi.", "-o", str(out), "--seed", "1",
                      "--max-new-tokens", "10", "--device", "cpu")
    assert demo.returncode == 0, demo.stderr
    assert ("milo-say: best in demo is epoch-0001: highest similarity 0.410 among 2 of 2 scored" in demo.stderr
            and "by this run's rule (demo: runaway allowed, the tiny model never stops)" in demo.stderr), demo.stderr
    assert out.is_file() and demo.stdout.strip() == str(out)
