"""Every failure ends with one clear line (stderr, state.json, train.log, an error event), the exit code
of docs/run-folder.md, no traceback on screen, and nothing written earlier damaged."""
from __future__ import annotations

import json
import shutil
import subprocess
import uuid

import pytest

from tests.training.conftest import metrics, run_training, state, steps, train_in_process, tree_digest

QUICK = ("--batch-size", "2", "--grad-accum", "2", "--val-fraction", "0.2", "--lr", "1e-3")


def _error_lines(stderr: str) -> list[str]:
    return [l for l in stderr.splitlines() if l.startswith("milo-train: error:")]


def assert_failed(run, proc, code: int, *words: str) -> str:
    """The run ended with `code`, one error line everywhere, and no traceback on screen."""
    assert proc.returncode == code, proc.stderr
    lines = _error_lines(proc.stderr)
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    message = lines[0].removeprefix("milo-train: error: ")
    for w in words:
        assert w in message, message
    st = state(run)
    assert st["status"] == "crashed" and st["exit_code"] == code and st["error"] == message
    assert "\n" not in st["error"] and st["ended_at"]
    assert message in (run / "train.log").read_text()
    assert [r["message"] for r in metrics(run) if r.get("event") == "error"][-1] == message
    return message


@pytest.fixture(scope="module")
def earlier_run(tiny_base, demo_data, tmp_path_factory):
    """A finished one-epoch run whose data file the bad-data tests spoil before --resume --epochs 2."""
    folder = tmp_path_factory.mktemp("earlier")
    data = folder / "train.jsonl"
    shutil.copy(demo_data, data)
    run = folder / "run"
    proc = train_in_process("--base", str(tiny_base), "--data", str(data), "--run", str(run), "--epochs", "1", *QUICK)
    assert proc.returncode == 0, proc.stderr
    return run, data


@pytest.fixture
def spoil(earlier_run, tmp_path):
    """A copy of the earlier run and its data, and a function that writes bad data and resumes it."""
    src_run, src_data = earlier_run
    folder = tmp_path / uuid.uuid4().hex[:8]
    folder.mkdir()
    data, run = folder / "train.jsonl", folder / "run"
    shutil.copy(src_data, data)
    shutil.copytree(src_run, run)
    info = json.loads((run / "run.json").read_text())
    info["data"] = str(data)
    (run / "run.json").write_text(json.dumps(info))
    before = tree_digest(run / "epoch-0001") | {f"resume/{k}": v for k, v in tree_digest(run / "resume").items()}

    def resume_with(lines: list[str]):
        data.write_text("\n".join(lines) + "\n")
        proc = run_training("--run", str(run), "--resume", "--epochs", "2")
        after = tree_digest(run / "epoch-0001") | {f"resume/{k}": v for k, v in tree_digest(run / "resume").items()}
        assert after == before, "the earlier checkpoint and resume point are untouched"
        assert not (run / "epoch-0002").exists()
        return run, proc

    good = data.read_text().splitlines()
    return resume_with, good


def test_bad_jsonl_lines_are_named_by_number(spoil):
    resume_with, good = spoil
    row = json.loads(good[3])
    del row["audio_codes"]
    run, proc = resume_with(good[:1] + ["{not json"] + good[2:3] + [json.dumps(row)] + good[4:])
    msg = assert_failed(run, proc, 3, "train.jsonl", "2 bad lines", "line 2: not valid JSON", "line 4: missing audio_codes")
    assert "milo-train prepare" in msg


def test_mismatched_codebook_count(spoil):
    resume_with, good = spoil
    row = json.loads(good[5])
    row["audio_codes"] = [frame[:8] for frame in row["audio_codes"]]
    run, proc = resume_with(good[:5] + [json.dumps(row)] + good[6:])
    assert_failed(run, proc, 3, "line 6: audio_codes has 8 codebooks per frame, expected 16")


def test_missing_reference_audio(spoil, tmp_path):
    resume_with, good = spoil
    row = json.loads(good[0])
    row["ref_audio"] = str(tmp_path / "gone.wav")
    run, proc = resume_with([json.dumps(row)] + good[1:])
    assert_failed(run, proc, 3, "line 1: reference audio not found", "gone.wav")


@pytest.mark.parametrize("case", ["missing", "custom_voice"])
def test_base_folder_must_be_a_base_model(case, tiny_custom_voice, demo_data, tmp_path):
    base = tmp_path / "nowhere" if case == "missing" else tiny_custom_voice
    run = tmp_path / "run"
    proc = run_training("--base", str(base), "--data", str(demo_data), "--run", str(run))
    words = ("is not a folder: give the Base model folder",) if case == "missing" else (
        "is a custom_voice model; fine-tuning starts from a Base model",)
    assert_failed(run, proc, 3, *words)
    assert not (run / "run.json").exists() and not list(run.glob("epoch-*")), "nothing half-made"


def test_a_mistyped_command_leaves_an_earlier_run_as_it_was(earlier_run):
    run, _ = earlier_run
    before = {k: v for k, v in tree_digest(run).items() if k != "train.log"}
    proc = run_training("--run", str(run), "--resume", "--lr", "0.5")
    assert proc.returncode == 2 and _error_lines(proc.stderr) == [
        "milo-train: error: --resume: --lr cannot change (the run has 0.001); only --epochs, --patience, --no-score, "
        "--keep-best, --keep-last, --disk-budget, --stop-unimproved can"]
    fresh = run_training("--base", "x", "--data", "y", "--run", str(run))
    assert fresh.returncode == 2 and "already holds a run" in fresh.stderr
    assert {k: v for k, v in tree_digest(run).items() if k != "train.log"} == before
    assert state(run)["status"] == "finished"


def test_a_supervised_start_that_fails_says_so_in_state_json(earlier_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(earlier_run[0], run)
    from contract import runfolder as rf

    rf.update_state(run, status="starting", pid=12345, pid_start_time=1.0, restarts=2)
    proc = run_training("--run", str(run), "--resume", "--batch-size", "64")
    assert proc.returncode == 2
    st = state(run)
    assert st["status"] == "crashed" and st["exit_code"] == 2 and "--batch-size cannot change" in st["error"]
    assert st["restarts"] == 2 and st["pid"] == 12345, "the supervisor's fields are kept"


def _short_run(tiny_base, demo_data, run, hooks, *extra):
    return train_in_process("--base", str(tiny_base), "--data", str(demo_data), "--run", str(run), "--epochs", "3",
                        *QUICK, *extra, hooks=hooks)


def test_cuda_out_of_memory_says_what_to_lower(tiny_base, demo_data, tmp_path):
    run = tmp_path / "oom"
    proc = _short_run(tiny_base, demo_data, run, "oom_at_step=5")  # epoch 1 is steps 1-4
    msg = assert_failed(run, proc, 4, "CUDA out of memory", "--batch-size", "--grad-accum", "--gradient-checkpointing")
    assert "Traceback" not in (run / "train.log").read_text(), msg
    assert json.loads((run / "resume" / "trainer.json").read_text())["step"] == 4
    assert (run / "epoch-0001" / "model.safetensors").is_file() and not (run / "epoch-0002").exists()


def test_unexpected_error_keeps_the_traceback_in_train_log(tiny_base, demo_data, tmp_path):
    run = tmp_path / "crash"
    proc = _short_run(tiny_base, demo_data, run, "crash_at_step=1")
    assert_failed(run, proc, 1, "RuntimeError: test hook: crash at step 1")
    log = (run / "train.log").read_text()
    assert "Traceback (most recent call last)" in log and "after_step" in log


def test_crash_once_then_resume_continues(tiny_base, demo_data, tmp_path):
    run = tmp_path / "once"
    proc = train_in_process("--base", str(tiny_base), "--data", str(demo_data), "--run", str(run), "--epochs", "2",
                            *QUICK, hooks="crash_once_at_step=6")
    assert_failed(run, proc, 1, "crash once at step 6")
    # The restarted run goes on past the hook's step, and --resume may extend the run.
    proc = train_in_process("--run", str(run), "--resume", "--epochs", "3", hooks="crash_once_at_step=6")
    assert proc.returncode == 0, proc.stderr
    st = state(run)
    assert st["status"] == "finished" and st["error"] is None and st["exit_code"] == 0 and st["step"] == 12
    starts = [(r["resumed_from_step"], r["total_steps"]) for r in metrics(run) if r.get("event") == "start"]
    assert starts == [(None, 8), (4, 12)]
    assert json.loads((run / "run.json").read_text())["hyper"]["epochs"] == 3


def _mount_tmpfs(folder, megabytes) -> bool:
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}M", "tmpfs", str(folder)],
                          capture_output=True)
    return done.returncode == 0


@pytest.mark.parametrize("how", ["tmpfs", "hook"])
def test_disk_full_while_saving_keeps_earlier_checkpoints(tiny_base, demo_data, tmp_path, how):
    """A real ENOSPC: the run folder on a tmpfs that holds epoch 1's checkpoint and resume point (about
    40 MB) but not epoch 2's checkpoint (skipped where mounting is not permitted). And the
    disk_full_at_save hook, which raises the same OSError inside the save, once epoch 2's temporary folder
    holds its weights."""
    disk = tmp_path / "disk"
    real = how == "tmpfs" and _mount_tmpfs(disk, 46)
    if how == "tmpfs" and not real:
        pytest.skip("mounting a tmpfs is not permitted here; the hook case covers the same path")
    disk.mkdir(exist_ok=True)
    try:
        run = disk / "run"
        proc = _short_run(tiny_base, demo_data, run, "" if real else "disk_full_at_save=2")
        msg = assert_failed(run, proc, 5, "disk full while saving epoch-0002", "earlier checkpoints are intact", "--resume")
        assert msg
        assert not [p.name for p in run.iterdir() if p.name.startswith(".") and "tmp" in p.name]
        if not real:  # the fault fired inside the save, with the temporary folder there and holding weights
            fired = json.loads((run / ".test-hook-disk-full.json").read_text())
            assert fired["temporary"].startswith(".epoch-0002.tmp-") and "model.safetensors" in fired["files"]
            assert not (run / fired["temporary"]).exists() and not (run / "epoch-0002").exists()
        assert json.loads((run / "resume" / "trainer.json").read_text())["step"] == 4
        assert json.loads((run / "epoch-0001" / "eval.json").read_text())["epoch"] == 1
        from inference.qwen import import_qwen_tts

        tts = import_qwen_tts().Qwen3TTSModel.from_pretrained(str(run / "epoch-0001"))
        assert tts.model.tts_model_type == "custom_voice"
        assert [r["step"] for r in steps(run)][-1] == 8
    finally:
        if real:
            subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.mark.parametrize("what", ["missing base", "bad data"])
def test_bad_input_is_found_before_torch_is_imported(demo_data, tiny_base, tmp_path, what):
    """docs/training.md: bad input is answered before torch loads (a second or more on its own)."""
    import sys

    from tests.conftest import python_env

    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    base, data = (tmp_path / "no-base", demo_data) if what == "missing base" else (tiny_base, bad)
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "training", "run", "--base", str(base),
                           "--data", str(data), "--run", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=120, env=python_env())
    assert proc.returncode == 3, proc.stderr
    imported = {l.rsplit("|", 1)[-1].strip().split(".")[0] for l in proc.stderr.splitlines() if "import time:" in l}
    assert "contract" in imported and "torch" not in imported, sorted(imported)
    assert ("is not a folder" if what == "missing base" else "not valid JSON") in proc.stderr
