"""The trainer's prune after each save, with the real trainer resumed on a real run folder whose checkpoints
were scored as the scorer scores them: each test forces the state a lagging scorer leaves (scores landed,
the baseline not yet; step-* and epoch-* saves interleaved; checkpoints pruned before a --resume) and checks
exactly which checkpoints exist afterwards against the rule computed here from the eval.json files."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from contract.runfolder import EVAL_JSON, METRICS, list_checkpoints, write_json_atomic
from contract.scores import BASELINE_JSON, SCORES
from tests.conftest import python_env, run_module
from tests.training.conftest import state, train_in_process

TRAIN = ("--batch-size", "2", "--grad-accum", "2", "--lr", "2e-3", "--val-fraction", "0.2", "--patience", "0",
         "--device", "cpu")


@pytest.fixture(scope="module")
def epochs_run(tiny_base, demo_data, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("epochs") / "run"
    proc = train_in_process("--base", str(tiny_base), "--data", str(demo_data), "--run", str(run), "--epochs", "3",
                            *TRAIN)
    assert proc.returncode == 0, proc.stderr
    return run


@pytest.fixture(scope="module")
def steps_run(tiny_base, demo_data, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("steps") / "run"
    proc = train_in_process("--base", str(tiny_base), "--data", str(demo_data), "--run", str(run), "--epochs", "3",
                            "--save-every-steps", "3", *TRAIN)
    assert proc.returncode == 0, proc.stderr
    return run


def copy(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / "run", symlinks=True))


def score(run: Path, name: str, similarity: float, wer: float) -> None:
    ev = json.loads((run / name / EVAL_JSON).read_text())
    ev[SCORES] = {"v": 1, "means": {"similarity": similarity, "wer": wer, "runaway": 0}}
    write_json_atomic(run / name / EVAL_JSON, ev)


def baseline(run: Path, wer: float = 0.2) -> None:
    write_json_atomic(run / BASELINE_JSON, {"v": 1, "row": "baseline", "means": {"similarity": 0.4, "wer": wer}})


def resume(run: Path, *args: str):
    proc = train_in_process("--run", str(run), "--resume", *args)
    assert proc.returncode == 0, proc.stderr
    return proc


def names(run: Path) -> list[str]:
    return [p.name for p in list_checkpoints(run)]


def losses(run: Path) -> dict[str, float]:
    return {p.name: json.loads((p / EVAL_JSON).read_text()).get("objective") for p in list_checkpoints(run)}


def best_loss(run: Path) -> str:
    known = {n: v for n, v in losses(run).items() if v is not None}
    return min(known, key=known.get)


def pruned(run: Path) -> list[list[str]]:
    records = [json.loads(line) for line in (run / METRICS).read_text().splitlines()]
    return [r["deleted"] for r in records if r.get("event") == "prune"]


def test_the_trainers_prune_keeps_every_scored_checkpoint_until_the_baseline_is_scored(epochs_run, tmp_path):
    run = copy(epochs_run, tmp_path)
    for name, (sim, wer) in zip(names(run), [(.6, .2), (.9, .22), (.95, .6)]):
        score(run, name, sim, wer)
    resume(run, "--epochs", "4", "--keep-best", "1", "--keep-last", "1")
    # by similarity alone epoch 3 would be best and epoch 2 deleted; the rule's WER part needs the baseline
    assert names(run) == ["epoch-0001", "epoch-0002", "epoch-0003", "epoch-0004"] and pruned(run) == []
    # the baseline (WER 0.2: at most 0.25 meets the rule) and epoch 4's scores land: the rule picks epoch 2
    baseline(run)
    score(run, "epoch-0004", .7, .21)
    assert best_loss(run) != "epoch-0002"  # else validation loss alone would keep it
    proc = run_module("training", "prune", str(run), timeout=60, env=python_env())  # the run's own policy
    assert proc.returncode == 0, proc.stderr
    assert set(names(run)) == {"epoch-0002", "epoch-0004", best_loss(run)}, proc.stdout


def test_a_disk_budget_alone_deletes_nothing_while_under_it(epochs_run, tmp_path):
    run = copy(epochs_run, tmp_path)
    resume(run, "--epochs", "5", "--disk-budget", "50G")
    assert names(run) == [f"epoch-{e:04d}" for e in range(1, 6)] and pruned(run) == []


def test_keep_last_keeps_the_newest_saves_not_the_last_names(steps_run, tmp_path):
    run = copy(steps_run, tmp_path)
    # saved so far, in order: step-3, epoch-1 (step 4), step-6, epoch-2 (8), step-9, epoch-3 (12)
    assert names(run) == ["step-00000003", "epoch-0001", "step-00000006", "epoch-0002", "step-00000009",
                          "epoch-0003"]
    resume(run, "--epochs", "4", "--keep-best", "0", "--keep-last", "2")
    # the session saves step-15 then epoch-4 (step 16), each followed by a prune keeping the newest two and
    # the best by validation loss (the lowest of all: it is kept at every prune while it exists)
    assert set(names(run)) == {"step-00000015", "epoch-0004", best_loss(run)}, (names(run), pruned(run))
    assert "step-00000009" not in names(run)  # last by name among the step-* saves, not among the newest


def test_the_quality_stop_counts_checkpoints_after_the_best_in_save_order(steps_run, tmp_path):
    run = copy(steps_run, tmp_path)
    baseline(run)
    score(run, "step-00000006", .9, .2)  # the best; three scored saves follow it
    for name in ("epoch-0002", "step-00000009", "epoch-0003"):
        score(run, name, .5, .2)
    resume(run, "--epochs", "4", "--stop-unimproved", "3")
    st = state(run)
    assert st["status"] == "stopped" and st["stop_reason"].startswith(
        "the best score has not improved for 3 scored checkpoints (best step-00000006"), st
    assert names(run)[-1] == "step-00000015" and "epoch-0004" not in names(run)  # the first save's check stops it


def test_the_quality_stop_counts_pruned_checkpoints_after_a_resume(epochs_run, tmp_path):
    run = copy(epochs_run, tmp_path)
    baseline(run)
    for name, sim in zip(names(run), (.9, .5, .5)):
        score(run, name, sim, .2)
    proc = run_module("training", "prune", str(run), "--keep-best", "1", "--keep-last", "0", timeout=60,
                      env=python_env())
    assert proc.returncode == 0 and "epoch-0002" not in names(run), proc.stdout + proc.stderr
    # epochs 2 and 3 were scored after the best (epoch 1); epoch 2 is gone but its scores are remembered
    resume(run, "--epochs", "6", "--stop-unimproved", "2")
    st = state(run)
    assert st["status"] == "stopped" and st["epoch"] == 4, st
    assert st["stop_reason"].startswith("the best score has not improved for 2 scored checkpoints (best epoch-0001")


def test_an_invalid_best_table_skips_the_quality_stop_as_it_skips_retention(epochs_run, tmp_path, monkeypatch):
    run = copy(epochs_run, tmp_path)
    baseline(run)
    for name, sim in zip(names(run), (.9, .5, .5)):
        score(run, name, sim, .2)
    config = tmp_path / "config.toml"
    config.write_text("[best]\nmetric = \"loudness\"\n")
    monkeypatch.setenv("MILO_CONFIG", str(config))
    resume(run, "--epochs", "4", "--stop-unimproved", "1", "--keep-best", "1", "--keep-last", "1")
    assert state(run)["status"] == "finished"  # by the default rule it would have stopped at epoch 4's save
    log = (run / "train.log").read_text()
    assert "quality stop skipped:" in log and "retention skipped:" in log and "loudness" in log
    assert names(run) == [f"epoch-{e:04d}" for e in range(1, 5)]
