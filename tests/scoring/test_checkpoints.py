"""Scoring checkpoints of the tiny model: `milo-train eval` writes a complete eval.json (the tiny model's
audio is not speech, so this checks the fields and the "not scored" paths), a run scores each checkpoint
after saving it in its own process, and a generation cut at the frame limit is flagged runaway."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import pytest

from contract import scores as sc
from contract.runfolder import list_checkpoints, read_json
from tests.conftest import python_env

PROMPTS = "21\tHello from the dashboard.\n22\tGood morning.\n"


@pytest.fixture
def run_with_checkpoint(tiny_custom_voice, demo_clips, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"speaker": "milo_demo"}))
    ckpt = run / "epoch-0001"
    shutil.copytree(tiny_custom_voice, ckpt)
    (ckpt / "eval.json").write_text(json.dumps({"epoch": 1, "objective": 5.25}))  # the trainer's fields
    (tmp_path / "prompts.txt").write_text(PROMPTS)
    return run, ckpt


def _eval(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "training", "eval", *args], capture_output=True, text=True,
                          timeout=600, env=python_env(), cwd=cwd)


def test_eval_writes_a_complete_eval_json(run_with_checkpoint, demo_clips, tmp_path):
    run, ckpt = run_with_checkpoint
    proc = _eval(str(ckpt), "--reference", str(demo_clips[0].parent), "--prompts", str(tmp_path / "prompts.txt"))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "epoch-0001" in proc.stdout
    ev = read_json(ckpt / "eval.json")
    assert ev["epoch"] == 1 and ev["objective"] == 5.25  # the trainer's fields stay
    scores = ev[sc.SCORES]
    assert scores["v"] == sc.SCORES_VERSION and scores["seconds"] > 0
    assert scores["models"] == {"speaker": "resemblyzer GE2E", "asr": "pocketsphinx en-us",
                                "quality": "DNSMOS P.835 (speechmos)"}
    # the demo corpus's synthetic speech: 18.40 characters a second (median over its 16 clips, measured)
    assert scores["reference"]["clips"] > 5 and scores["reference"]["rate_cps_median"] == pytest.approx(18.4, rel=0.1)
    assert [(c["text"], c["seed"]) for c in scores["clips"]] == [("Hello from the dashboard.", 21), ("Good morning.", 22)]
    for clip in scores["clips"]:
        for name in sc.MEASURES:
            value = clip[name]
            assert sc.is_score(value) or isinstance(value, bool) or value.startswith("not scored: "), (name, value)
        assert -1 <= clip["similarity"] <= 1 and 0 <= clip["wer"] and isinstance(clip["runaway"], bool)
        assert clip["frames"] > 0 and clip["asr"] == "pocketsphinx en-us"
    assert set(scores["means"]) == set(sc.MEASURES)
    assert sc.states(run)["epoch-0001"]["state"] == sc.DONE


def test_eval_says_what_it_could_not_score(run_with_checkpoint, tmp_path):
    run, ckpt = run_with_checkpoint
    proc = _eval(str(ckpt), "--prompts", str(tmp_path / "prompts.txt"), "--whisper", str(tmp_path / "no-whisper"),
                 "--json")
    assert proc.returncode == 0, proc.stderr
    [scores] = json.loads(proc.stdout)
    means = scores["means"]
    assert means["similarity"] == "not scored: no corpus reference given"   # run.json names no data
    assert means["wer"].startswith("not scored: whisper (no-whisper) cannot load (FileNotFoundError")
    assert means["rate_ratio"] == "not scored: the reference has no transcripts"
    assert sc.is_score(means["dnsmos_ovrl"]) and sc.is_score(means["silence_ratio"])


def test_eval_refuses_what_is_not_a_checkpoint_in_one_line(tmp_path):
    proc = _eval(str(tmp_path))
    assert proc.returncode == 3 and "is not a checkpoint folder (no config.json)" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = _eval("--audio", str(tmp_path / "missing.wav"))
    assert proc.returncode == 3 and "no such audio file" in proc.stderr


def test_eval_says_why_an_audio_file_that_is_not_audio_has_no_scores(tmp_path):
    """Its row is one line saying so (it was a row of dashes with no reason: the why was only in --json)."""
    (tmp_path / "take.wav").write_text("not audio")
    proc = _eval("--audio", str(tmp_path / "take.wav"))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "? cannot read take.wav: " in proc.stdout, proc.stdout


def test_a_generation_cut_at_the_frame_limit_is_runaway(tiny_custom_voice):
    from inference.engine import Engine, Timings

    engine = Engine(device="cpu", tune_threads=True)
    engine.load(tiny_custom_voice)
    sampling = engine.sampling(max_new_tokens=40)
    results = {}
    for seed in (1, 11):  # measured: seed 1 runs to the limit (3.12 s), seed 11 ends itself after 1.2 s
        timings = Timings()
        list(engine.stream("Hello from the dashboard.", seed=seed, sampling=sampling, timings=timings))
        results[seed] = (timings.frames, timings.runaway)
    assert results[1] == (39, 1)
    assert results[11][0] < 39 and results[11][1] == 0


def test_a_runaway_prompt_is_cut_at_its_bound_not_the_budget(run_with_checkpoint, demo_clips, tmp_path):
    """The tiny model never says end-of-speech on this prompt: the scorer cuts it at a multiple of the time
    its text takes at the corpus's pace (not the frame budget), counts it runaway, and eval.json says the
    bound and the scorer's own time."""
    from contract.audio import FRAME_RATE

    run, ckpt = run_with_checkpoint
    text = "When the storm finally passed, the fishermen pulled their boats back onto the beach."
    (tmp_path / "long.txt").write_text(f"15\t{text}\n")
    proc = _eval(str(ckpt), "--reference", str(demo_clips[0].parent), "--prompts", str(tmp_path / "long.txt"))
    assert proc.returncode == 0, proc.stderr
    scores = read_json(ckpt / "eval.json")[sc.SCORES]
    [clip] = scores["clips"]
    rate = scores["reference"]["rate_cps_median"]
    bound = sc.score_bound(text, rate)
    assert bound["by"] == "speaking rate" and bound["frames"] < sc.score_budget_frames(text) * 0.75
    assert clip["bound_by"] == "speaking rate" and abs(clip["bound_frames"] - bound["frames"]) <= 1
    assert clip["runaway"] is True and scores["means"]["runaway"] == 1
    assert clip["frames"] == clip["bound_frames"] - 1  # the last allowed token is never fed (stock's rule)
    assert abs(clip["audio_s"] - clip["frames"] / FRAME_RATE) < 0.1
    assert abs(clip["bound_s"] - clip["bound_frames"] / FRAME_RATE) < 0.01
    assert clip["generate_s"] > 0 and clip["measure_s"] > 0
    assert clip["generate_s"] + clip["measure_s"] <= scores["seconds"]
    assert scores["timing"] == {**scores["timing"], "bound_multiple": sc.SCORE_BOUND_MULTIPLE,
                                "bound_margin_s": sc.SCORE_BOUND_MARGIN_S}
    assert scores["timing"]["generate_s"] == round(clip["generate_s"], 2)


def test_without_a_speaking_rate_the_bound_is_the_budget(monkeypatch):
    text = "Please check the fuse before you touch the wires."
    budget = sc.score_budget_frames(text)
    assert sc.score_bound(text, None) == {"frames": budget, "seconds": round(budget / 12.5, 2), "expected_s": None,
                                          "by": "budget"}
    fast = sc.score_bound(text, 14.0)
    assert fast["expected_s"] == round(40 / 14.0, 2)  # 40 letters and digits at the corpus's 14 a second
    assert fast["frames"] == int((sc.SCORE_BOUND_MULTIPLE * 40 / 14.0 + sc.SCORE_BOUND_MARGIN_S) * 12.5) + 1
    monkeypatch.setenv(sc.SCORE_BOUND_ENV, "budget")  # bench/scoring.py's "before" arm
    assert sc.score_bound(text, 14.0)["frames"] == budget


def test_a_run_scores_each_checkpoint_after_saving_it_and_keeps_exactly_the_policys(tiny_base, demo_data, tmp_path):
    """Training, scoring and pruning on together, with their own timing (4 epochs, keep-best 2, newest 1): the
    trainer queues each saved
    checkpoint and starts the scorer; the scorer writes eval.json scores, the run's ceiling and baseline rows,
    skips a queued checkpoint that was deleted, and prunes by the run's policy; at the end exactly the
    checkpoints the policy keeps by the final scores (computed here, deleted checkpoints' scores included)
    exist."""
    data = demo_data
    run = tmp_path / "run"
    run.mkdir()
    (run / sc.PROMPTS_TXT).write_text("31\tGood morning.\n")  # this run's prompt set: one short sentence
    # the tiny model never says end-of-speech: its one prompt runs away, which this run's own rule allows
    proc = subprocess.run([sys.executable, "-m", "training", "run", "--base", str(tiny_base), "--data", str(data),
                           "--run", str(run), "--epochs", "4", "--batch-size", "2", "--grad-accum", "2",
                           "--val-fraction", "0.2", "--keep-best", "2", "--keep-last", "1",
                           "--best-max-runaway", "1"], capture_output=True, text=True, timeout=600, env=python_env())
    assert proc.returncode == 0, proc.stderr
    sc.set_state(run, "epoch-0099", sc.QUEUED)  # queued, then deleted before its turn
    deadline = time.monotonic() + 500
    while (any(e["state"] in (sc.QUEUED, sc.RUNNING) for e in sc.states(run).values())
           or sc.states(run, "rows").get("baseline", {}).get("state") in (None, sc.RUNNING) or scorer_running(run)):
        assert time.monotonic() < deadline, (sc.states(run), (run / sc.SCORING_LOG).read_text()[-2000:])
        time.sleep(0.5)
    states = sc.states(run)
    assert all(states[f"epoch-{e:04d}"]["state"] == sc.DONE for e in (1, 2, 3, 4)), \
        (states, (run / sc.SCORING_LOG).read_text()[-2000:])
    assert states["epoch-0099"] == {**states["epoch-0099"], "state": sc.SKIPPED,
                                    "error": "the checkpoint is gone (deleted before it was scored)"}
    ceiling = read_json(run / sc.CEILING_JSON)
    assert ceiling["row"] == "ceiling" and len(ceiling["clips"]) == 5 and sc.is_score(ceiling["means"]["similarity"])
    baseline = read_json(run / sc.BASELINE_JSON)
    assert baseline["row"] == "baseline" and "error" not in baseline, baseline  # the tiny Base model clones
    assert len(baseline["clips"]) == 1 and isinstance(baseline["clips"][0]["runaway"], bool)
    assert sc.states(run, "rows") == {"ceiling": {**sc.states(run, "rows")["ceiling"], "state": sc.DONE},
                                      "baseline": {**sc.states(run, "rows")["baseline"], "state": sc.DONE}}
    assert "Traceback" not in (run / sc.SCORING_LOG).read_text()
    # every checkpoint's final eval.json: those still there, and those pruned (scoring.json remembers them)
    final = {**(read_json(run / sc.SCORING_JSON) or {}).get("pruned", {}),
             **{p.name: read_json(p / "eval.json") for p in list_checkpoints(run)}}
    assert sorted(final) == ["epoch-0001", "epoch-0002", "epoch-0003", "epoch-0004"]
    ev = final["epoch-0004"]
    assert "objective" in ev and [(c["text"], c["seed"]) for c in ev[sc.SCORES]["clips"]] == [("Good morning.", 31)]
    # the policy by hand: the best by the run's rule (similarity, WER <= baseline + 0.05, runaway <= 1; a tie to
    # the earlier), the best by validation loss, the newest, and the best 2 by the ranking: those meeting the
    # rule by similarity, then the other scored ones by validation loss
    means = {n: ev[sc.SCORES]["means"] for n, ev in final.items()}
    meets = [n for n in sorted(final) if sc.is_score(means[n]["similarity"])
             and means[n]["wer"] <= baseline["means"]["wer"] + 0.05 and means[n]["runaway"] <= 1]
    by_loss = min(sorted(final), key=lambda n: final[n]["objective"])
    ranked = sorted(meets, key=lambda n: (-means[n]["similarity"], n)) + \
        sorted((n for n in final if n not in meets), key=lambda n: (final[n]["objective"], n))
    assert {p.name for p in list_checkpoints(run)} == {*ranked[:2], by_loss, "epoch-0004"}, (means, ranked, by_loss)
    assert meets, means  # the rule had checkpoints to choose from: not only validation loss decided


def test_a_scorer_slower_than_the_trainer_still_leaves_the_policys_checkpoints(tiny_base, demo_data, tmp_path):
    """The trainer's prune after a save keeps what waits to be scored; when the scorer lags (here it waits for
    a scorer slot the test holds until the run has ended), the scorer applies the run's policy (run.json) once
    the scores are in."""
    from contract.runfolder import claim
    from contract.scorers import release

    data = demo_data
    run = tmp_path / "run"
    run.mkdir()
    (run / sc.PROMPTS_TXT).write_text("31\tGood morning.\n")
    # the machine's scorer slots of this test, all held (1 on the CPU, 2 on a GPU): the run's scorer must wait
    slots = tmp_path / "slots"
    slots.mkdir()
    held = [claim(slots / f"slot-{i}", create=True) for i in range(2)]
    try:
        proc = subprocess.run([sys.executable, "-m", "training", "run", "--base", str(tiny_base), "--data", str(data),
                               "--run", str(run), "--epochs", "2", "--batch-size", "2", "--grad-accum", "2",
                               "--lr", "2e-3", "--val-fraction", "0.2", "--keep-best", "0", "--keep-last", "1"],
                              capture_output=True, text=True, timeout=600,
                              env=python_env(MILO_SCORER_SLOTS=str(slots)))
        assert proc.returncode == 0, proc.stderr
        events = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        val = {r["epoch"]: r["objective"] for r in events if r["kind"] == "validation"}
        assert val[2] < val[1]  # epoch 2 is the newest and the best by validation loss: epoch 1 has no reason to stay
        assert (run / "epoch-0001").is_dir(), "the trainer kept epoch 1: it was waiting to be scored"
        assert {n: e["state"] for n, e in sc.states(run).items()} == {"epoch-0001": sc.QUEUED, "epoch-0002": sc.QUEUED}
        assert not any(r.get("event") == "prune" for r in events)
        waiting = time.monotonic() + 120  # the scorer reaches the slots after its imports: then it must wait
        while "waiting for a scorer slot" not in (run / sc.SCORING_LOG).read_text():
            assert time.monotonic() < waiting, (run / sc.SCORING_LOG).read_text()[-2000:]
            time.sleep(0.2)
        assert {n: e["state"] for n, e in sc.states(run).items()} == {"epoch-0001": sc.QUEUED, "epoch-0002": sc.QUEUED}
    finally:
        for fd in held:
            release(fd)
    deadline = time.monotonic() + 400
    while (any(e["state"] in (sc.QUEUED, sc.RUNNING) for e in sc.states(run).values())
           or sc.states(run, "rows").get("baseline", {}).get("state") in (None, sc.RUNNING)
           or scorer_running(run)):
        assert time.monotonic() < deadline, (sc.states(run), (run / sc.SCORING_LOG).read_text()[-2000:])
        time.sleep(0.5)
    assert [p.name for p in list_checkpoints(run)] == ["epoch-0002"], (run / sc.SCORING_LOG).read_text()[-2000:]
    pruned = [r for r in (json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines())
              if r.get("event") == "prune"]
    assert [(r["deleted"], r.get("by")) for r in pruned] == [(["epoch-0001"], "scorer")]
    assert pruned[0]["freed_bytes"] > 0 and "retention: pruned 1 checkpoint(s)" in (run / sc.SCORING_LOG).read_text()
    assert (run / "resume").is_dir()


def scorer_running(run) -> bool:
    """The run's scorer holds .scoring.lock while it works (one scorer per run)."""
    import fcntl
    import os

    from contract.scorers import RUN_LOCK

    fd = os.open(run / RUN_LOCK, os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def test_a_scorer_killed_mid_score_is_said_and_the_next_one_scores_it_again(tiny_base, demo_data, tmp_path):
    """A scorer killed while scoring (out of memory, a reboot) leaves its entry `running`; readers see it as
    failed with why (nothing would finish it), and the next scorer of the run scores it again."""
    import os
    import signal

    run = tmp_path / "run"
    run.mkdir()
    (run / sc.PROMPTS_TXT).write_text("31\tGood morning.\n")
    proc = subprocess.run([sys.executable, "-m", "training", "run", "--base", str(tiny_base), "--data", str(demo_data),
                           "--run", str(run), "--epochs", "1", "--batch-size", "2", "--grad-accum", "2",
                           "--val-fraction", "0.2", "--no-score"], capture_output=True, text=True, timeout=600,
                          env=python_env())
    assert proc.returncode == 0, proc.stderr
    (run / sc.CEILING_JSON).write_text('{"v": 1, "row": "ceiling", "error": "not scored: not in this test"}')
    sc.set_state(run, "epoch-0001", sc.QUEUED)
    first = sc.start_scorer(run, python=sys.executable, env=python_env())
    deadline = time.monotonic() + 120
    while sc.states(run)["epoch-0001"]["state"] != sc.RUNNING:
        assert time.monotonic() < deadline and first.poll() is None, (run / sc.SCORING_LOG).read_text()[-2000:]
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(30)
    assert sc.states(run, as_written=True)["epoch-0001"]["state"] == sc.RUNNING  # what the dead scorer left
    seen = sc.states(run)["epoch-0001"]
    assert seen["state"] == sc.FAILED and f"process {first.pid} is gone" in seen["error"]
    again = subprocess.run([sys.executable, "-m", "inference.scoring", "queue", str(run), "--device", "cpu",
                            "--no-baseline"], capture_output=True, text=True, timeout=400, env=python_env())
    assert again.returncode == 0, again.stdout + again.stderr
    assert sc.states(run)["epoch-0001"]["state"] == sc.DONE
    assert "epoch-0001: the last scorer stopped before it finished; scoring it again" in again.stdout + again.stderr
    assert sc.scores_of(read_json(run / "epoch-0001" / "eval.json")) is not None


def test_a_runs_own_rule_and_the_scoring_device_reach_run_json_and_the_scorers_command_line(tiny_base, demo_data,
                                                                                           tmp_path):
    """The trainer as the dashboard starts it on the demo workspace: --best-max-runaway/--best-note become the
    run's own rule in run.json (the configuration's [best] otherwise, here its wer_margin), and the
    configuration's [scoring] device is where the scorer it starts after a save generates."""
    import psutil

    from milo_tui.demo import DEMO_BEST_FLAGS, DEMO_BEST_NOTE

    config = tmp_path / "config.toml"
    config.write_text('[best]\nwer_margin = 0.1\n\n[scoring]\ndevice = "auto"\n')
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "training", "run", "--base", str(tiny_base), "--data", str(demo_data),
                           "--run", str(run), "--epochs", "1", "--batch-size", "2", "--grad-accum", "2",
                           "--val-fraction", "0.2", "--device", "cpu", *DEMO_BEST_FLAGS],
                          capture_output=True, text=True, timeout=600, env=python_env(MILO_CONFIG=str(config)))
    assert proc.returncode == 0, proc.stderr
    run_json = read_json(run / "run.json")
    assert run_json["best"] == {"metric": "similarity", "wer_margin": 0.1, "max_runaway": 5, "note": DEMO_BEST_NOTE}
    assert run_json["score_device"] == "auto"
    scorers = [p for p in psutil.process_iter(["cmdline"])
               if "inference.scoring" in (p.info["cmdline"] or []) and str(run) in (p.info["cmdline"] or [])]
    try:
        assert scorers, (run / sc.SCORING_LOG).read_text()  # it loads models for seconds: still there
        cmd = scorers[0].info["cmdline"]
        assert cmd[cmd.index("--device") + 1] == "auto", cmd
    finally:
        for p in scorers:  # the scorer this test's trainer started
            p.terminate()
        psutil.wait_procs(scorers, timeout=30)
