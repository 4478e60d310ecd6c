"""Retention and checkpoints made elsewhere, with real checkpoints of the tiny model, the real audition worker
and the real `milo-train prune` / `adopt` commands: the policy keeps exactly the right ones (the best among
them), reports the bytes freed with hard-linked files counted once, and leaves a checkpoint loaded in the
worker alone; an output folder laid out as the official script writes it is listed, auditioned, scored,
pruned and its shared files hard-linked."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from contract import retention
from contract.units import fmt_bytes
from contract import scores as sc
from contract.runfolder import EVAL_JSON, list_checkpoints, list_runs, write_json_atomic
from tests.audition.conftest import start_client
from tests.conftest import python_env, run_module

pytestmark = pytest.mark.slow


def _blocks(folder: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in folder.rglob("*") if p.is_file())


def _scored(ck: Path, similarity: float, wer: float, objective: float) -> None:
    ev = json.loads((ck / EVAL_JSON).read_text()) if (ck / EVAL_JSON).is_file() else {}
    ev.update(objective=objective)
    ev[sc.SCORES] = {"v": 1, "means": {"similarity": similarity, "wer": wer, "runaway": 0}}
    write_json_atomic(ck / EVAL_JSON, ev)


@pytest.fixture
def six_epochs(tiny_custom_voice, tmp_path):
    """A run of six real checkpoints: by the default rule epoch 2 is the best (epoch 3 sounds closer but its
    WER is far above the baseline's), epoch 4 has the lowest validation loss. epoch-0005 shares its
    speech tokenizer with epoch-0006 through hard links, as adopted folders do."""
    run = tmp_path / "voice"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"speaker": "milo_demo", "hyper": {"epochs": 6}}))
    write_json_atomic(run / sc.BASELINE_JSON, {"v": 1, "row": "baseline", "means": {"similarity": 0.5, "wer": 0.2}})
    values = {1: (0.60, 0.20, 5.0), 2: (0.90, 0.22, 4.0), 3: (0.95, 0.60, 3.5), 4: (0.70, 0.21, 3.0),
              5: (0.65, 0.20, 3.2), 6: (0.62, 0.20, 3.1)}
    for epoch, (sim, wer, loss) in values.items():
        ck = run / f"epoch-{epoch:04d}"
        shutil.copytree(tiny_custom_voice, ck)
        _scored(ck, sim, wer, loss)
    for f in (run / "epoch-0006" / "speech_tokenizer").iterdir():
        twin = run / "epoch-0005" / "speech_tokenizer" / f.name
        twin.unlink()
        os.link(f, twin)
    (run / "resume").mkdir()
    (run / "resume" / "weights.safetensors").write_bytes(b"\0" * 4096)
    return run


def test_prune_keeps_exactly_the_policy_and_a_loaded_checkpoint(six_epochs, tmp_path):
    run = six_epochs
    # the worker loads epoch-0001, which the policy would delete: it holds the folder as in use
    client, events = start_client(python_env(), tmp_path, output="none")
    try:
        client.load(str(run / "epoch-0001"))
        events.wait_for("loaded", timeout=120)
        # expected: keep 2 (the rule's best, and the best 1), 4 (best validation loss), 6 (the newest 1),
        # 1 (loaded); delete 3 and 5. 5's speech tokenizer stays linked from 6: it frees nothing.
        expected_freed = (_blocks(run / "epoch-0003")
                          + _blocks(run / "epoch-0005") - _blocks(run / "epoch-0005" / "speech_tokenizer"))
        proc = run_module("training", "prune", str(run), "--keep-best", "1", "--keep-last", "1", "--dry-run")
        assert proc.returncode == 0, proc.stderr
        assert "  delete epoch-0001" in proc.stdout  # the plan does not know about the worker ...
        assert "(dry run: nothing deleted)" in proc.stdout and len(list_checkpoints(run)) == 6
        proc = run_module("training", "prune", str(run), "--keep-best", "1", "--keep-last", "1")
        assert proc.returncode == 0, proc.stderr
        assert "keep   epoch-0002: the best by the rule" in proc.stdout
        assert "keep   epoch-0004: the best by validation loss" in proc.stdout
        assert "keep   epoch-0006: among the newest 1" in proc.stdout
        assert "kept epoch-0001: in use (loaded for audition, or being scored)" in proc.stdout  # ... the lock does
        assert [p.name for p in list_checkpoints(run)] == ["epoch-0001", "epoch-0002", "epoch-0004", "epoch-0006"]
        freed = proc.stdout.strip().splitlines()[-1]
        assert freed == f"deleted 2 checkpoint(s), freed {fmt_bytes(expected_freed)}", (freed, expected_freed)
        assert (run / "resume" / "weights.safetensors").is_file()  # the resume point is never touched
        assert not list(run.glob(".deleting-*"))
        # the worker still speaks with the checkpoint it holds
        job = client.say("Still here.", checkpoint=str(run / "epoch-0001"), seed=1, max_new_tokens=5)
        events.wait_for("done", job, timeout=120)
        # once the worker lets go, the next prune takes it
        client.send("unload")
        events.wait_for("unloaded", timeout=60)
        proc = run_module("training", "prune", str(run), "--keep-best", "1", "--keep-last", "1")
        assert proc.returncode == 0 and [p.name for p in list_checkpoints(run)] == ["epoch-0002", "epoch-0004",
                                                                                    "epoch-0006"]
    finally:
        client.close()


def test_a_deletion_cut_short_leaves_no_checkpoint_half_present(six_epochs):
    run = six_epochs
    # a prune that died after renaming: the hidden folder is no checkpoint, and the next prune finishes it
    os.rename(run / "epoch-0003", run / ".deleting-epoch-0003-999")
    (run / ".deleting-epoch-0003-999" / "model.safetensors").unlink()
    assert [p.name for p in list_checkpoints(run)] == ["epoch-0001", "epoch-0002", "epoch-0004", "epoch-0005",
                                                       "epoch-0006"]
    out = retention.apply(run, [])
    assert out.deleted == [] and not list(run.glob(".deleting-*"))


# ---- the official script's output ------------------------------------------------------------------------
@pytest.fixture
def official_output(tiny_custom_voice, tmp_path):
    """OUTPUT/checkpoint-epoch-0..2 as sft_12hz.py writes them (whole copies of the model folder each), and
    the loss lines it printed, redirected to a log beside them."""
    out = tmp_path / "output"
    out.mkdir()
    for epoch in range(3):
        shutil.copytree(tiny_custom_voice, out / f"checkpoint-epoch-{epoch}")
        (out / f"checkpoint-epoch-{epoch}" / EVAL_JSON).unlink(missing_ok=True)
    (out / "train.log").write_text("".join(f"Epoch {e} | Step {s} | Loss: {9.5 - e - s / 100:.4f}\n"
                                           for e in range(3) for s in range(0, 40, 10)))
    return out


def test_an_official_output_is_listed_auditioned_scored_pruned_and_adopted(official_output, demo_clips, tmp_path):
    out = official_output
    assert list_runs(out) == [out] and list_runs(out.parent) == [out]  # as --checkpoints, or a folder above
    assert [p.name for p in list_checkpoints(out)] == [f"checkpoint-epoch-{e}" for e in range(3)]
    # auditioned: milo-say by path, and the same folder through RUN/best once it is scored
    wav = tmp_path / "said.wav"
    proc = run_module("inference.say", str(out / "checkpoint-epoch-1"), "Hello.", "-o", str(wav), "--seed", "1",
                      "--max-new-tokens", "5", "--device", "cpu")
    assert proc.returncode == 0 and wav.is_file(), proc.stderr
    # scored: the real scorer, as `milo-train eval` runs it
    proc = run_module("inference.scoring", "eval", str(out / "checkpoint-epoch-2"), "--prompts", str(_one_prompt(tmp_path)),
                      "--reference", str(demo_clips[0].parent), timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert sc.is_score(sc.scores_of(json.loads((out / "checkpoint-epoch-2" / EVAL_JSON).read_text()))["similarity"])
    # adopted: identical files hard-linked, the bytes reported, the loss lines read, run.json written
    shared = _blocks(out / "checkpoint-epoch-0") - (out / "checkpoint-epoch-0" / "model.safetensors").stat().st_blocks * 512
    proc = run_module("training", "adopt", str(out), "--data", str(demo_clips[0].parent))  # the corpus it was made from
    assert proc.returncode == 0, proc.stderr
    # the three copies are identical (the tiny model's weights too): two copies of every file are freed
    every = _blocks(out / "checkpoint-epoch-0")
    assert f"{fmt_bytes(2 * every)} freed" in proc.stdout and "12 loss lines from train.log" in proc.stdout
    assert shared < every
    a, b = out / "checkpoint-epoch-0" / "speech_tokenizer", out / "checkpoint-epoch-2" / "speech_tokenizer"
    assert all((a / f.name).stat().st_ino == f.stat().st_ino for f in b.iterdir() if f.is_file())
    spec = json.loads((out / "run.json").read_text())
    assert spec["adopted"] and spec["speaker"] == "milo_demo" and spec["data"] == str(demo_clips[0].parent)
    steps = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == list(range(1, 13)) and steps[0]["objective"] == pytest.approx(9.5)
    # pruned: nothing is freed while the copies share their files, and the scored best stays
    # (the tiny model never says end-of-speech: its one prompt ran away, which the rule here allows)
    config = tmp_path / "config.toml"
    config.write_text("[best]\nmax_runaway = 1\n")
    # what the two folders hold alone: their own directory blocks (du counts them); every file is shared
    folders = sum(d.stat().st_blocks * 512 for e in (0, 1) for d in [out / f"checkpoint-epoch-{e}",
                  *(p for p in (out / f"checkpoint-epoch-{e}").rglob("*") if p.is_dir())])
    proc = run_module("training", "prune", str(out), "--keep-best", "1", "--keep-last", "0",
                      env={**python_env(), "MILO_CONFIG": str(config)})
    assert proc.returncode == 0, proc.stderr
    # no baseline row (eval of one checkpoint): the rule cannot rank it, so being scored keeps it
    assert f"keep   checkpoint-epoch-2: {retention.NEEDS_BASELINE}" in proc.stdout
    assert [p.name for p in list_checkpoints(out)] == ["checkpoint-epoch-2"]
    assert f"deleted 2 checkpoint(s), freed {fmt_bytes(folders)}" in proc.stdout
    assert (out / "checkpoint-epoch-2" / "model.safetensors").is_file()


def _one_prompt(tmp_path: Path) -> Path:
    path = tmp_path / "prompt.txt"
    path.write_text("1\tHello there.\n")
    return path


def test_a_checkpoint_being_scored_is_not_deleted_under_the_scorer(six_epochs, demo_clips, tmp_path):
    """The scorer holds the checkpoint it scores as in use: a prune meanwhile keeps it, says why, and takes it
    once the scorer is done."""
    import subprocess
    import sys
    import time

    from contract.runfolder import claim

    run, ck = six_epochs, six_epochs / "epoch-0003"
    scorer = subprocess.Popen([sys.executable, "-m", "inference.scoring", "eval", str(ck), "--prompts",
                               str(_one_prompt(tmp_path)), "--reference", str(demo_clips[0].parent)],
                              env=python_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:  # until the scorer holds the folder
            fd = claim(ck)
            if fd is None:
                break
            os.close(fd)
            assert scorer.poll() is None and time.monotonic() < deadline, "the scorer never held the checkpoint"
            time.sleep(0.02)
        out = retention.apply(run, ["epoch-0003"])
        assert out.deleted == [] and out.skipped == {"epoch-0003": "in use (loaded for audition, or being scored)"}
        assert scorer.wait(300) == 0, scorer.stderr.read()
        assert sc.scores_of(json.loads((ck / EVAL_JSON).read_text())) is not None  # it finished its work
        assert retention.apply(run, ["epoch-0003"]).deleted == ["epoch-0003"] and not ck.exists()
    finally:
        scorer.kill()


def test_adopt_links_only_what_is_identical(tmp_path):
    """Each epoch's weights have the same size and, in the official format, the same header: a copy that
    differs outside the blocks the first look reads is still told apart by the whole-file hash, one that
    differs inside them never gets that far, and identical copies are linked to the earliest."""
    from contract.adopt import GLANCE, GLANCES, link_identical

    size = 32 * GLANCE
    assert size > GLANCES * GLANCE
    weights = bytearray(os.urandom(size))
    unseen = bytearray(weights)
    unseen[2 * GLANCE + 5] ^= 0xFF  # between the first look's blocks 1 and 2
    seen = bytearray(weights)
    seen[0] ^= 0xFF
    tokenizer = os.urandom(size)
    out = tmp_path / "output"
    for epoch, w in ((1, weights), (2, unseen), (3, weights), (4, seen)):
        ck = out / f"checkpoint-epoch-{epoch}"
        (ck / "speech_tokenizer").mkdir(parents=True)
        (ck / "model.safetensors").write_bytes(w)
        (ck / "speech_tokenizer" / "model.safetensors").write_bytes(tokenizer)
        (ck / "config.json").write_text('{"tts_model_type": "custom_voice"}')
    before = _blocks(out)
    linked, freed = link_identical(out)

    def inode(epoch, rel):
        return (out / f"checkpoint-epoch-{epoch}" / rel).stat().st_ino

    assert {inode(e, "speech_tokenizer/model.safetensors") for e in (1, 2, 3, 4)} == {inode(1, "speech_tokenizer/model.safetensors")}
    assert {inode(e, "config.json") for e in (1, 2, 3, 4)} == {inode(1, "config.json")}
    assert inode(3, "model.safetensors") == inode(1, "model.safetensors")
    assert len({inode(e, "model.safetensors") for e in (1, 2, 4)}) == 3
    assert (out / "checkpoint-epoch-2" / "model.safetensors").read_bytes() == unseen
    assert (out / "checkpoint-epoch-4" / "model.safetensors").read_bytes() == seen
    assert linked == 3 + 3 + 1
    assert freed == before - _blocks_once(out)
    assert link_identical(out) == (0, 0)  # a second adoption finds nothing new


def _blocks_once(folder: Path) -> int:
    inodes = {}
    for p in folder.rglob("*"):
        if p.is_file():
            st = p.stat()
            inodes[(st.st_dev, st.st_ino)] = st.st_blocks * 512
    return sum(inodes.values())
