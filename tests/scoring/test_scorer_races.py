"""The scorer where its input or a prune could break it, each case forced: a run's prompt set that is blank or
not UTF-8, and a prune in the moment between a checkpoint's scoring and the write of its scores (real
trainer, real scorer processes, real prune; docs/scoring.md)."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from contract import exits, retention
from contract import scores as sc
from tests.conftest import python_env, run_module
from tests.scoring.test_scorers import _add_checkpoint, _copy_run, trained  # noqa: F401 - trained is a fixture


@pytest.mark.parametrize("content", [b"\n  \n", b"\xff\xfeGood morning.\n"], ids=["blank", "not-utf8"])
def test_a_bad_prompt_set_fails_the_queue_in_one_line_and_frees_it_for_pruning(trained, tmp_path, content):
    """A blank or undecodable score-prompts.txt: the run's scorer says so in one line naming the file, its
    queued checkpoints become `failed` with that line (not `queued` forever, which would keep them from every
    prune), exit 3; `eval --prompts` with the same file likewise."""
    run = _copy_run(trained, tmp_path / "run")
    _add_checkpoint(run, "epoch-0002")
    prompts = run / sc.PROMPTS_TXT
    prompts.write_bytes(content)
    for name in ("epoch-0001", "epoch-0002"):
        sc.set_state(run, name, sc.QUEUED)
    proc = sc.start_scorer(run, python=sys.executable, env=python_env())
    assert proc.wait(120) == exits.BAD_INPUT
    log = (run / sc.SCORING_LOG).read_text()
    assert "Traceback" not in log and len(log.strip().splitlines()) == 1, log[-3000:]
    assert log.startswith(f"[scoring] not scoring: {prompts} "), log
    assert ("is not UTF-8 text" if b"\xff" in content else "holds no sentence") in log, log
    states = sc.states(run)
    for name in ("epoch-0001", "epoch-0002"):
        assert states[name]["state"] == sc.FAILED and str(prompts) in states[name]["error"], states
    assert retention.waiting_for_scores(run) == {}
    chosen = retention.plan(run, retention.Policy(keep_best=0, keep_last=0),
                            protect=retention.waiting_for_scores(run))
    assert "waiting to be scored" not in chosen.keep.values() and chosen.delete, chosen
    ev = run_module("inference.scoring", "eval", str(run / "epoch-0001"), "--prompts", str(prompts), timeout=120)
    assert ev.returncode == exits.BAD_INPUT and "Traceback" not in ev.stderr, ev.stderr
    assert ev.stderr.strip().splitlines() == [ev.stderr.strip()] and str(prompts) in ev.stderr, ev.stderr


def test_a_prune_while_eval_writes_the_scores_leaves_the_checkpoint_and_the_rest_are_scored(trained, tmp_path):
    """The race, forced (MILO_TEST_HOOKS=scorer_hold_scored): epoch-0001 is scored, its scores not yet written,
    when a prune deletes epoch-0001 and epoch-0002. The scorer still holds epoch-0001 (the prune skips it as in
    use) and writes its scores; epoch-0002, deleted before it was claimed, is skipped; epoch-0003 is scored."""
    run = _copy_run(trained, tmp_path / "run")
    for name in ("epoch-0002", "epoch-0003"):
        _add_checkpoint(run, name)
    names = ["epoch-0001", "epoch-0002", "epoch-0003"]
    proc = subprocess.Popen([sys.executable, "-m", "inference.scoring", "eval", *(str(run / n) for n in names),
                             "--prompts", str(run / sc.PROMPTS_TXT), "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=python_env(MILO_TEST_HOOKS="scorer_hold_scored=120"))
    try:
        marker = run / ".test-hook-scored"
        deadline = time.monotonic() + 400
        while not marker.exists() and proc.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert marker.read_text() == "epoch-0001"
        done = retention.apply(run, ["epoch-0001", "epoch-0002"])
        assert done.deleted == ["epoch-0002"] and list(done.skipped) == ["epoch-0001"], done
        assert "in use" in done.skipped["epoch-0001"]
        marker.unlink()
        out, err = proc.communicate(timeout=400)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == exits.OK and "Traceback" not in err, err[-3000:]
    results = json.loads(out)
    assert [r.get("checkpoint") for r in results] == names
    assert results[1] == {"checkpoint": "epoch-0002", "skipped": "the checkpoint is gone (deleted before it was scored)"}
    assert "[scoring] epoch-0002: skipped: the checkpoint is gone" in err
    for name in ("epoch-0001", "epoch-0003"):
        assert sc.scores_of(json.loads((run / name / "eval.json").read_text())) is not None, name


def test_a_scorer_slots_folder_that_cannot_be_made_fails_the_queue_in_one_line(tmp_path):
    """MILO_SCORER_SLOTS under a file (or any slots' folder that cannot be made or written): the run's scorer
    says so in one line and how to fix it, its queued checkpoint becomes `failed` with that line, exit 3, before
    any model loads. It ended with a traceback and left the entry `queued`, kept from every prune."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"data": str(tmp_path / "corpus.jsonl")}))
    sc.set_state(run, "epoch-0001", sc.QUEUED)
    (tmp_path / "a-file").write_text("")
    slots = tmp_path / "a-file" / "slots"
    proc = sc.start_scorer(run, python=sys.executable, env=python_env(MILO_SCORER_SLOTS=str(slots)))
    assert proc.wait(120) == exits.BAD_INPUT
    log = (run / sc.SCORING_LOG).read_text()
    assert "Traceback" not in log and len(log.strip().splitlines()) == 1, log[-3000:]
    assert log.startswith(f"[scoring] not scoring: the scorer slots' folder {slots} cannot be used ("), log
    assert "MILO_SCORER_SLOTS" in log, log
    entry = sc.states(run)["epoch-0001"]
    assert entry["state"] == sc.FAILED and str(slots) in entry["error"], entry
