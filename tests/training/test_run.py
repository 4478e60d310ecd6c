"""End to end on the demo corpus: prepare, train 3 epochs in a real child process, and use the best
checkpoint the way the operator does (from_pretrained on the absolute path, generate_custom_voice)."""
from __future__ import annotations

import json
import os

import pytest

from contract import runfolder as rf
from tests.training.conftest import metrics, run_training, state, steps, train_in_process

SPEAKER = "Milo_Demo"


@pytest.fixture(scope="module")
def finished_run(tiny_base, demo_data, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "demo-run"
    proc = run_training("--base", str(tiny_base), "--data", str(demo_data), "--run", str(run), "--epochs", "3",
                        "--lr", "2e-3", "--batch-size", "2", "--grad-accum", "2", "--val-fraction", "0.2",
                        "--speaker", SPEAKER, "--save-every-steps", "3", "--patience", "0")
    assert proc.returncode == 0, proc.stderr
    return run, proc


def test_run_folder_layout_and_state(finished_run, tiny_base, demo_data):
    run, proc = finished_run
    names = sorted(p.name for p in run.iterdir())
    assert names == ["epoch-0001", "epoch-0002", "epoch-0003", "metrics.jsonl", "resume", "run.json", "state.json",
                     "step-00000003", "step-00000006", "step-00000009", "train.log"], names
    st = state(run)
    assert st["status"] == "finished" and st["exit_code"] == 0 and st["error"] is None
    assert st["epoch"] == 3 and st["step"] == 12
    assert st["pid"] and st["pid_start_time"] and st["host"]
    val = [r for r in metrics(run) if r["kind"] == "validation" and not r.get("mid_epoch")]
    best = min(val, key=lambda r: r["objective"])
    assert st["best_epoch"] == best["epoch"] and st["best_val"] == pytest.approx(best["objective"])
    info = json.loads((run / "run.json").read_text())
    assert info["base_model"] == str(tiny_base) and info["data"] == str(demo_data)
    assert info["speaker"] == SPEAKER.lower()
    assert info["hyper"]["lr"] == 2e-3 and info["hyper"]["sub_talker_weight"] == 0.3 and info["hyper"]["dtype"] == "float32"
    log = (run / "train.log").read_text()
    assert "epoch 3 validation objective" in log and "finished" in log
    assert "Traceback" not in proc.stderr and "Traceback" not in log


def test_every_step_record_has_the_schema(finished_run):
    run, _ = finished_run
    records = metrics(run)
    assert all(r["v"] == 1 and isinstance(r["time"], float) for r in records)
    start = [r for r in records if r.get("event") == "start"]
    assert len(start) == 1 and start[0]["steps_per_epoch"] == 4 and start[0]["total_steps"] == 12
    assert start[0]["train_samples"] == 13 and start[0]["val_samples"] == 3 and start[0]["resumed_from_step"] is None
    recs = steps(run)
    assert [r["step"] for r in recs] == list(range(1, 13))
    assert [(r["epoch"], r["epoch_step"], r["epoch_steps"]) for r in recs[:5]] == \
        [(1, 1, 4), (1, 2, 4), (1, 3, 4), (1, 4, 4), (2, 1, 4)]
    for r in recs:
        assert len(r["layers"]) == 16 and all(x > 0 for x in r["layers"])
        assert r["layer_sum"] == pytest.approx(sum(r["layers"]))
        assert r["objective"] == pytest.approx(r["layers"][0] + 0.3 * sum(r["layers"][1:]) / 15)
        assert r["lr"] == 2e-3 and r["grad_norm"] > 0
        assert r["samples_per_s"] > 0 and r["tokens_per_s"] > r["samples_per_s"] and r["memory_bytes"] > 1e6
    assert sum(r["samples"] for r in recs[:4]) == 13, "one epoch covers every training clip once"
    # It learns: the objective of the last epoch is below the first's.
    assert sum(r["objective"] for r in recs[-4:]) < sum(r["objective"] for r in recs[:4])


def test_validation_checkpoints_and_events(finished_run):
    run, _ = finished_run
    records = metrics(run)
    val = [r for r in records if r["kind"] == "validation"]
    assert [(r["epoch"], r["step"], bool(r.get("mid_epoch"))) for r in val] == \
        [(1, 3, True), (1, 4, False), (2, 6, True), (2, 8, False), (3, 9, True), (3, 12, False)]
    for r in val:
        assert r["samples"] == 3 and len(r["layers"]) == 16 and r["layer_sum"] == pytest.approx(sum(r["layers"]))
    ends = [r for r in val if not r.get("mid_epoch")]
    assert ends[0]["best"] is True
    lowest = float("inf")
    for r in ends:
        assert r["best"] == (r["objective"] < lowest)
        lowest = min(lowest, r["objective"])
    saved = [r for r in records if r.get("event") == "checkpoint"]
    assert [r["path"] for r in saved] == ["step-00000003", "epoch-0001", "step-00000006", "epoch-0002",
                                          "step-00000009", "epoch-0003"]
    assert all(r["bytes"] > 1e6 and 0 < r["seconds"] < 120 for r in saved)
    ev = json.loads((run / "epoch-0002" / "eval.json").read_text())
    assert ev["epoch"] == 2 and ev["step"] == 8 and ev["samples"] == 3 and len(ev["layers"]) == 16
    assert ev["objective"] == pytest.approx(ends[1]["objective"])
    finish = [r for r in records if r.get("event") == "finish"]
    assert len(finish) == 1 and finish[0]["best_epoch"] == state(run)["best_epoch"]
    # One resume point, the newest, and no temporary folders left.
    resume = json.loads((run / "resume" / "trainer.json").read_text())
    assert resume["step"] == 12 and resume["epoch"] == 4 and resume["micro"] == 0
    assert not [p for p in run.iterdir() if p.name.startswith(".") and p.name != ".test"]


def test_checkpoint_files_are_linked_and_speaker_is_slot_3000(finished_run, tiny_base):
    from safetensors.torch import load_file

    run, _ = finished_run
    ckpt = run / "epoch-0003"
    cfg = json.loads((ckpt / "config.json").read_text())
    assert cfg["tts_model_type"] == "custom_voice" and cfg["talker_config"]["spk_id"] == {SPEAKER.lower(): 3000}
    for name in ("vocab.json", "speech_tokenizer/model.safetensors"):
        assert os.stat(ckpt / name).st_ino == os.stat(tiny_base / name).st_ino, name
    a = load_file(str(run / "epoch-0001" / "model.safetensors"))
    b = load_file(str(ckpt / "model.safetensors"))
    key = "talker.model.codec_embedding.weight"
    assert a[key][3000].equal(b[key][3000]), "the speaker vector is fixed for the whole run"
    assert not a["talker.codec_head.weight"].equal(b["talker.codec_head.weight"]), "weights were trained"
    assert not any(k.startswith("speaker_encoder.") for k in b)


def test_best_checkpoint_synthesizes(finished_run):
    from inference.qwen import import_qwen_tts

    run, _ = finished_run
    best = run / rf.epoch_dir_name(state(run)["best_epoch"])
    tts = import_qwen_tts().Qwen3TTSModel.from_pretrained(str(best.absolute()))
    wavs, sr = tts.generate_custom_voice("Every checkpoint deserves a listen.", speaker=SPEAKER, max_new_tokens=20)
    assert sr == 24000 and 0 < len(wavs[0]) <= 20 * 1920


def test_early_stopping_ends_the_run_at_its_patience(tiny_base, demo_data, tmp_path):
    # A large learning rate overfits 13 clips within a few epochs, so validation turns up early.
    run = tmp_path / "early"
    proc = train_in_process("--base", str(tiny_base), "--data", str(demo_data), "--run", str(run), "--epochs", "8",
                        "--lr", "0.01", "--patience", "1", "--val-fraction", "0.2", "--grad-accum", "1")
    assert proc.returncode == 0, proc.stderr
    records = metrics(run)
    val = [r for r in records if r["kind"] == "validation"]
    assert 2 <= len(val) < 8
    assert val[-1]["best"] is False and min(v["objective"] for v in val[:-1]) <= val[-1]["objective"]
    stop = [r for r in records if r.get("event") == "stop"]
    assert len(stop) == 1 and stop[0]["reason"] == "early_stopping"
    st = state(run)
    best = min(val, key=lambda r: r["objective"])
    assert st["status"] == "finished" and st["best_epoch"] == best["epoch"] and st["epoch"] == len(val)
    assert sorted(p.name for p in run.glob("epoch-*")) == [rf.epoch_dir_name(e) for e in range(1, len(val) + 1)]
