"""The retention ranking never gives up a scored checkpoint before unscored ones."""
from __future__ import annotations

from pathlib import Path

from contract import retention
from contract.runfolder import EVAL_JSON, write_json_atomic
from contract.scores import BASELINE_JSON, SCORES


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
