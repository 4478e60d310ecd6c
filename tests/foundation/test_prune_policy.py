"""One retention policy per run: `milo-train prune RUN` applies the run's own (run.json, the one its trainer
and scorer apply after each save) where it has one, the config's [retention] otherwise, flags over either,
and says which; and the ranking never gives up a scored checkpoint before unscored ones."""
from __future__ import annotations

import json
from pathlib import Path

from contract import retention
from contract.runfolder import EVAL_JSON, list_checkpoints, write_json_atomic
from contract.scores import BASELINE_JSON, SCORES
from tests.conftest import python_env, run_module


def make_run(root: Path, losses: list[float], *, hyper: dict | None = None,
             scored: dict[int, dict] | None = None) -> Path:
    """A run folder with a checkpoint per validation loss (epoch 1, 2, ...); `scored` epoch -> score means."""
    run = root / "voice"
    run.mkdir(parents=True)
    write_json_atomic(run / "run.json", {"speaker": "milo", "hyper": {"epochs": len(losses), **(hyper or {})}})
    write_json_atomic(run / BASELINE_JSON, {"v": 1, "row": "baseline", "means": {"similarity": 0.5, "wer": 0.2}})
    for epoch, loss in enumerate(losses, 1):
        ck = run / f"epoch-{epoch:04d}"
        ck.mkdir()
        (ck / "model.safetensors").write_bytes(b"\0" * 8192)
        ev = {"objective": loss, "epoch": epoch}
        if epoch in (scored or {}):
            ev[SCORES] = {"v": 1, "means": {"runaway": 0, **scored[epoch]}}
        write_json_atomic(ck / EVAL_JSON, ev)
    return run


def test_a_scored_checkpoint_outranks_the_unscored_ones(tmp_path):
    # epoch 2 is the only scored one; it misses the rule (WER far above the baseline's) and has the worst
    # validation loss: it still ranks above every unscored checkpoint, so "keep the best 1" keeps it
    run = make_run(tmp_path, [3.0, 3.5, 2.8, 2.7, 2.6], scored={2: {"similarity": 0.7, "wer": 0.9}})
    order, best, best_loss = retention.ranking(run, retention.BestRule())
    assert order == ["epoch-0002", "epoch-0005", "epoch-0004", "epoch-0003", "epoch-0001"]
    assert best is None and best_loss == "epoch-0005"
    plan = retention.plan(run, retention.Policy(keep_best=1, keep_last=1))
    assert "epoch-0002" in plan.keep and set(plan.delete) == {"epoch-0001", "epoch-0003", "epoch-0004"}
    # over a budget the unscored go first too: the scored one is the last given up
    size = retention.freed_by([run / "epoch-0001"])
    tight = retention.plan(run, retention.Policy(keep_best=5, keep_last=0, budget_bytes=2 * size))
    assert set(tight.keep) == {"epoch-0002", "epoch-0005"}


def _config(tmp_path: Path) -> dict:
    cfg = tmp_path / "config.toml"
    cfg.write_text("[retention]\nkeep_best = 10\nkeep_last = 10\n")
    return python_env(MILO_CONFIG=str(cfg))


def test_prune_applies_the_runs_own_policy_over_the_configs(tmp_path):
    run = make_run(tmp_path, [3.0, 2.9, 2.8, 2.7, 2.6], hyper={"keep_best": 1, "keep_last": 1})
    env = _config(tmp_path)
    proc = run_module("training", "prune", str(run), "--dry-run", env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "policy: the run's own policy (run.json" in proc.stdout
    assert "keep the best 1 " in proc.stdout and "the newest 1," in proc.stdout
    assert [line.split()[-1] for line in proc.stdout.splitlines() if line.startswith("  delete ")] == \
        ["epoch-0001", "epoch-0002", "epoch-0003", "epoch-0004"]
    # flags override, and say so
    proc = run_module("training", "prune", str(run), "--keep-best", "3", "--dry-run", env=env, timeout=60)
    assert "policy: --keep-best 3 given here, over the run's own policy" in proc.stdout
    assert "the run's trainer and scorer keep applying its own after each save" in proc.stdout
    assert sum(line.startswith("  delete ") for line in proc.stdout.splitlines()) == 2
    # and for real: the run's policy, once
    proc = run_module("training", "prune", str(run), env=env, timeout=60)
    assert proc.returncode == 0 and "deleted 4 checkpoint(s)" in proc.stdout, proc.stdout + proc.stderr
    assert [p.name for p in list_checkpoints(run)] == ["epoch-0005"]


def test_prune_applies_the_configs_policy_to_a_run_without_its_own(tmp_path):
    run = make_run(tmp_path, [3.0, 2.9, 2.8, 2.7, 2.6])
    env = _config(tmp_path)
    proc = run_module("training", "prune", str(run), "--dry-run", env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert f"policy: [retention] of {tmp_path / 'config.toml'}" in proc.stdout
    assert "nothing to delete (5 checkpoints kept)" in proc.stdout
    proc = run_module("training", "prune", str(run), "--dry-run",
                      env=python_env(MILO_CONFIG=str(tmp_path / "none.toml")), timeout=60)
    assert "policy: the defaults (no [retention] in" in proc.stdout
    assert json.loads((run / "run.json").read_text())["hyper"] == {"epochs": 5}
