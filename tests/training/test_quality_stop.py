"""Quality-aware stopping and pruning after each save, on a real training run: the test plays the scorer
(it writes each checkpoint's scores into its eval.json as the scorer process would, similarity rising for
three epochs and then falling, each once the trainer is past that save and before the next); with
--stop-unimproved 2 the trainer stops the normal way at exactly the save whose check sees two scored
checkpoints after the best (epoch 6), with the reason in state.json, a resume point, and the best kept by
--keep-best 1 --keep-last 1."""
from __future__ import annotations

import json
import threading
import time

from contract import scores as sc
from contract.runfolder import EVAL_JSON, RESUME_DIR, list_checkpoints, write_json_atomic
from tests.training.conftest import metrics, start_run, state

SIMILARITY = {1: 0.50, 2: 0.60, 3: 0.70, 4: 0.69, 5: 0.68, 6: 0.67, 7: 0.66, 8: 0.65, 9: 0.64, 10: 0.63}


def _score_after_each_save(run, stop: threading.Event, seen: list, late: list) -> None:
    """Scores epoch k's checkpoint once the trainer is past its save (a step of epoch k+1 is logged, so the stop
    check of save k has run without it) and before the next save (a whole epoch of steps later): each check
    then sees exactly the checkpoints before the one just saved scored. `late` records any score written
    after the next checkpoint had landed, which would make the stop point a matter of timing."""
    while not stop.is_set():
        try:
            stepped = max((r["epoch"] for r in metrics(run) if r["kind"] == "step"), default=0)
        except ValueError:  # a line half written
            stepped = 0
        for ck in list_checkpoints(run):
            epoch = int(ck.name.split("-")[1])
            if epoch in seen or epoch >= stepped:
                continue
            try:
                ev = json.loads((ck / EVAL_JSON).read_text())
            except (OSError, ValueError):
                continue
            if not (run / sc.BASELINE_JSON).exists():  # the scorer scores the baseline first
                write_json_atomic(run / sc.BASELINE_JSON, {"v": 1, "row": "baseline",
                                                          "means": {"similarity": 0.4, "wer": 0.2, "runaway": 0}})
            ev[sc.SCORES] = {"v": 1, "means": {"similarity": SIMILARITY[epoch], "wer": 0.2, "runaway": 0}}
            write_json_atomic(ck / EVAL_JSON, ev)
            seen.append(epoch)
            if (run / f"epoch-{epoch + 1:04d}").exists():
                late.append(epoch)
        time.sleep(0.01)


def test_the_run_stops_when_the_voice_stops_improving(tiny_base, demo_data, tmp_path):
    run = tmp_path / "quality"
    proc = start_run("--base", str(tiny_base), "--data", str(demo_data), "--run", str(run), "--epochs", "10",
                     "--batch-size", "4", "--grad-accum", "2", "--lr", "1e-3", "--patience", "0",
                     "--stop-unimproved", "2", "--keep-best", "1", "--keep-last", "1", "--device", "cpu",
                     hooks="step_delay=0.15")
    stop, seen, late = threading.Event(), [], []
    scorer = threading.Thread(target=_score_after_each_save, args=(run, stop, seen, late), daemon=True)
    scorer.start()
    try:
        _out, err = proc.communicate(timeout=240)
    finally:
        stop.set()
        scorer.join(5)
    assert proc.returncode == 0, err
    assert not late, f"the test's scorer fell behind the trainer at epoch(s) {late}: the stop point would be timing"
    st = state(run)
    assert st["status"] == "stopped", st
    # best epoch 3; epochs 4 and 5 scored make two after it, and the check at the save of epoch 6 (which sees
    # 1-5 scored) stops the run there: not one checkpoint sooner or later, and the reason counts exactly 2
    assert st["stop_reason"].startswith("the best score has not improved for 2 scored checkpoints (best epoch-0003"), st
    assert "--stop-unimproved 2" in st["stop_reason"], st["stop_reason"]
    assert st["epoch"] == 6 and sorted(seen) == [1, 2, 3, 4, 5], (st, seen)
    assert (run / RESUME_DIR).is_dir()
    saved = [r["path"] for r in metrics(run) if r["kind"] == "event" and r.get("event") == "checkpoint"]
    assert saved == [f"epoch-{e:04d}" for e in range(1, 7)], saved
    event = [r for r in metrics(run) if r["kind"] == "event" and r.get("event") == "stop"][-1]
    assert event["reason"] == "quality"
    # pruned after each save: the best (epoch 3) and the newest stay
    assert [p.name for p in list_checkpoints(run)] == ["epoch-0003", "epoch-0006"]
    pruned = [r for r in metrics(run) if r["kind"] == "event" and r.get("event") == "prune"]
    assert pruned and sum(len(r["deleted"]) for r in pruned) == 4 and all(r["freed_bytes"] > 0 for r in pruned)
