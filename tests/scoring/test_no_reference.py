"""An adopted folder of the official script's checkpoints, given no corpus: `milo-train adopt` says so and is
truthful when run again, and its scorer refuses at once, before any model loads, with how to give one (real
processes; the checkpoints are never loaded, so they need not be real models)."""
from __future__ import annotations

import json
import time
from pathlib import Path

from contract import exits
from contract import scores as sc
from tests.conftest import run_module


def _official(tmp_path: Path) -> Path:
    out = tmp_path / "output"
    for e in range(2):
        ck = out / f"checkpoint-epoch-{e}"
        ck.mkdir(parents=True)
        (ck / "config.json").write_text(json.dumps({"tts_model_type": "custom_voice",
                                                    "talker_config": {"spk_id": {"operator": 3000}}}))
        (ck / "vocab.json").write_text('{"a": 1}\n')
        (ck / "model.safetensors").write_bytes(bytes([e]) * 4096)
    (out / "train.log").write_text("Epoch 0 | Step 0 | Loss: 9.0\nEpoch 1 | Step 0 | Loss: 8.0\n")
    return out


def test_adopting_again_is_truthful_and_no_corpus_is_said(tmp_path):
    out = _official(tmp_path)
    first = run_module("training", "adopt", str(out), timeout=120)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith(f"adopted {out}: ") and "2 loss lines from train.log" in first.stdout
    assert "no corpus to score against" in first.stdout
    again = run_module("training", "adopt", str(out), timeout=120)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"{out} was adopted already (updated): ")
    assert "its loss lines were read before (metrics.jsonl)" in again.stdout and "no log beside it" not in again.stdout
    missing = run_module("training", "adopt", str(out), "--data", str(tmp_path / "nope.jsonl"), timeout=120)
    assert missing.returncode == exits.BAD_INPUT and "nope.jsonl does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr and "data" not in json.loads((out / "run.json").read_text())


def test_the_scorer_of_a_run_without_a_corpus_refuses_at_once(tmp_path):
    out = _official(tmp_path)
    assert run_module("training", "adopt", str(out), timeout=120).returncode == 0
    sc.set_state(out, "checkpoint-epoch-1", sc.QUEUED)
    started = time.monotonic()
    proc = run_module("inference.scoring", "queue", str(out), "--device", "cpu", timeout=120)
    took = time.monotonic() - started
    why = (f"output names no corpus to score against: give it with A on the runs screen, or "
           f"milo-train adopt {out} --data CORPUS")
    assert proc.returncode == exits.BAD_INPUT, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [f"[scoring] not scoring: {why}"] and took < 30
    assert sc.states(out)["checkpoint-epoch-1"] == {**sc.states(out)["checkpoint-epoch-1"], "state": sc.FAILED,
                                                    "error": why}
    proc = run_module("inference.scoring", "eval", str(out / "checkpoint-epoch-1"), timeout=120)
    assert proc.returncode == exits.BAD_INPUT and proc.stderr.strip() == (
        f"milo-train eval: error: {why} (or give --reference CORPUS_OR_JSONL)")
