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


def _score(run: Path, name: str, similarity: float, wer: float, **extra) -> None:
    """Write a checkpoint's scores into its eval.json as the scorer does."""
    ev = json.loads((run / name / EVAL_JSON).read_text())
    ev[SCORES] = {"v": 1, "means": {"similarity": similarity, "wer": wer, "runaway": 0, **extra}}
    write_json_atomic(run / name / EVAL_JSON, ev)


def test_no_prune_ranks_by_the_rule_before_the_baseline_is_scored(tmp_path):
    # the four checkpoints: by similarity alone epoch 3 (WER .6) is best; with the baseline's WER .2
    # (+ 0.05) it fails the rule and epoch 2 is the voice
    run = make_run(tmp_path, [3.0, 2.9, 2.8, 2.7])
    (run / BASELINE_JSON).unlink()
    for epoch, (sim, wer) in enumerate([(.6, .2), (.9, .22), (.95, .6), (.7, .21)], 1):
        _score(run, f"epoch-{epoch:04d}", sim, wer)
    policy = retention.Policy(keep_best=1, keep_last=1)
    early = retention.plan(run, policy)
    assert early.delete == [] and early.keep["epoch-0002"] == retention.NEEDS_BASELINE, early
    write_json_atomic(run / BASELINE_JSON, {"v": 1, "row": "baseline", "means": {"similarity": 0.5, "wer": 0.2}})
    late = retention.plan(run, policy)
    assert late.keep["epoch-0002"].startswith("the best by the rule"), late.keep
    assert set(late.delete) == {"epoch-0001", "epoch-0003"}  # epoch 4: newest and best by validation loss


def test_a_budget_alone_deletes_only_to_get_under_it(tmp_path):
    run = make_run(tmp_path, [3.0, 2.9, 2.8, 2.7, 2.6])
    size = retention.freed_by([run / "epoch-0001"])
    roomy = retention.plan(run, retention.Policy(keep_best=0, keep_last=0, budget_bytes=50 * 1024 ** 3))
    assert roomy.delete == [] and len(roomy.keep) == 5, roomy
    # room for three: the two worst by validation loss go, worst first
    tight = retention.plan(run, retention.Policy(keep_best=0, keep_last=0, budget_bytes=3 * size))
    assert tight.delete == ["epoch-0001", "epoch-0002"] and not tight.over_budget, tight
    assert tight.kept_bytes == 3 * size and tight.freed_bytes == 2 * size
    # the run's own policy of a budget alone (run.json, as `milo-train run --disk-budget 50G` writes it)
    own = make_run(tmp_path / "own", [3.0, 2.9, 2.8], hyper={"keep_best": 0, "keep_last": 0, "disk_budget": "50G"})
    proc = run_module("training", "prune", str(own), timeout=60)
    assert proc.returncode == 0 and "nothing to delete (3 checkpoints kept)" in proc.stdout, proc.stdout + proc.stderr


def test_the_budget_counts_files_shared_by_hard_links_once_as_du_does(tmp_path):
    """An adopted run's checkpoints hard-link their identical files: each holds little alone, together they
    take what `du -sc` says, and that is what the budget compares."""
    import subprocess

    run = make_run(tmp_path, [3.0, 2.9, 2.8, 2.7])
    (run / "shared.bin").write_bytes(b"\1" * 1024 * 1024)
    for ck in list_checkpoints(run):
        (ck / "speech_tokenizer.bin").hardlink_to(run / "shared.bin")
    (run / "shared.bin").unlink()
    folders = [str(ck) for ck in list_checkpoints(run)]
    du = int(subprocess.run(["du", "-scB1", *folders], capture_output=True, text=True).stdout.split()[-2])
    everything = retention.plan(run, retention.Policy(keep_best=4, keep_last=4, budget_bytes=du))
    assert everything.delete == [] and everything.kept_bytes == du
    # a budget under that: give up checkpoints (worst first) until what stays fits, or only what must stay is left
    under = retention.plan(run, retention.Policy(keep_best=4, keep_last=4, budget_bytes=du - 1))
    assert under.delete == ["epoch-0001"], under
    kept = [str(run / n) for n in under.keep]
    assert under.kept_bytes == int(subprocess.run(["du", "-scB1", *kept], capture_output=True, text=True)
                                   .stdout.split()[-2]) < du


def test_a_tie_goes_to_the_checkpoint_saved_first(tmp_path):
    """checkpoint-epoch-10 sorts before -9 as a string; the earlier save wins a tie, in the rule and in
    validation loss."""
    run = tmp_path / "output"
    run.mkdir()
    write_json_atomic(run / BASELINE_JSON, {"v": 1, "row": "baseline", "means": {"similarity": 0.5, "wer": 0.2}})
    for epoch in (8, 9, 10):
        ck = run / f"checkpoint-epoch-{epoch}"
        ck.mkdir()
        (ck / "model.safetensors").write_bytes(b"\0" * 4096)
        write_json_atomic(ck / EVAL_JSON, {"objective": 2.0 if epoch > 8 else 3.0})
        _score(run, ck.name, 0.8 if epoch > 8 else 0.7, 0.2)
    order, best, best_loss = retention.ranking(run, retention.BestRule())
    assert (best, best_loss) == ("checkpoint-epoch-9", "checkpoint-epoch-9")
    assert order == ["checkpoint-epoch-9", "checkpoint-epoch-10", "checkpoint-epoch-8"]


def test_newest_means_saved_last_not_named_last(tmp_path):
    """step-* and epoch-* checkpoints interleave: save order is the step each was saved at (eval.json)."""
    run = tmp_path / "voice"
    run.mkdir()
    for name, step in (("step-00000003", 3), ("epoch-0001", 4), ("step-00000006", 6), ("epoch-0002", 8),
                       ("step-00000009", 9), ("step-00000012", 12), ("epoch-0003", 12)):
        (run / name).mkdir()
        (run / name / "model.safetensors").write_bytes(b"\0" * 4096)
        write_json_atomic(run / name / EVAL_JSON, {"step": step, **({"objective": 3.0 - step / 10}
                                                                     if name.startswith("epoch") else {})})
    assert [p.name for p in list_checkpoints(run)][-3:] == ["step-00000009", "step-00000012", "epoch-0003"]
    plan = retention.plan(run, retention.Policy(keep_best=0, keep_last=2))
    assert list(plan.keep) == ["step-00000012", "epoch-0003"], plan.keep


def test_a_folder_that_cannot_be_removed_is_reported_and_not_counted_as_freed(tmp_path):
    import shutil
    import subprocess

    run = make_run(tmp_path, [3.0, 2.9, 2.8])
    stuck = run / "epoch-0001" / "model.safetensors"
    if subprocess.run(["chattr", "+i", str(stuck)], capture_output=True).returncode != 0:
        import pytest
        pytest.skip("chattr +i is not supported on this file system")
    try:
        # what is freed: epoch 2 whole, and of epoch 1 only its eval.json (its weights and folder stay)
        size = retention.freed_by([run / "epoch-0002"]) + (run / "epoch-0001" / EVAL_JSON).stat().st_blocks * 512
        assert size < retention.freed_by([run / "epoch-0001", run / "epoch-0002"])
        proc = run_module("training", "prune", str(run), "--keep-best", "1", "--keep-last", "0", timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert f"deleted 2 checkpoint(s), freed {retention.fmt_bytes(size)}" in proc.stdout, proc.stdout
        left = [p.name for p in run.glob(".deleting-epoch-0001-*")]
        assert len(left) == 1 and f"NOT REMOVED {left[0]}:" in proc.stderr, proc.stderr
        assert "Operation not permitted" in proc.stderr and "remove it by hand" in proc.stderr
        # every later prune says so again, until someone removes it
        again = retention.apply(run, [])
        assert list(again.left) == left and "NOT REMOVED" in again.describe()
    finally:
        for p in run.rglob("model.safetensors"):
            subprocess.run(["chattr", "-i", str(p)], capture_output=True)
    assert retention.apply(run, []).left == {} and not list(run.glob(".deleting-*"))
    shutil.rmtree(run)


def test_prune_refuses_a_negative_count_in_one_line(tmp_path):
    run = make_run(tmp_path, [3.0, 2.9])
    proc = run_module("training", "prune", str(run), "--keep-best", "-1", timeout=60)
    assert proc.returncode == 3 and proc.stderr.strip() == \
        "milo-train: error: --keep-best -1: give 0 or more checkpoints to keep", proc.stderr
    assert len(list_checkpoints(run)) == 2
