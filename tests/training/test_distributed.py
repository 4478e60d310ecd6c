"""One code path for one or many processes: `torchrun --nproc_per_node 2 -m training run` on the CPU
(gloo). Both ranks train on their own shard, only rank 0 writes, and a SIGTERM to the process group
stops both ranks at the same step."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from tests.conftest import python_env
from tests.training.conftest import metrics, state, steps, wait_for


def _torchrun(*args, hooks=""):
    env = python_env()
    env.pop("MILO_TEST_HOOKS", None)
    if hooks:
        env["MILO_TEST_HOOKS"] = hooks
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "training", "run", *args, "--no-score"]  # scoring after a save: tests/scoring
    return subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


def _official_jsonl(demo_data, folder):
    """The official fine-tuning format as operators have it: four keys, paths relative to the file."""
    folder.mkdir()
    lines = []
    for line in demo_data.read_text().splitlines():
        row = json.loads(line)
        os.symlink(row["audio"], folder / os.path.basename(row["audio"]))
        lines.append(json.dumps({"audio": os.path.basename(row["audio"]), "text": row["text"],
                                 "audio_codes": row["audio_codes"], "ref_audio": os.path.basename(row["ref_audio"])}))
    (folder / "train_with_codes.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "train_with_codes.jsonl"


def test_two_processes_train_and_one_writes(tiny_base, demo_data, tmp_path):
    data = _official_jsonl(demo_data, tmp_path / "official")
    run = tmp_path / "ddp"
    proc = _torchrun("--base", str(tiny_base), "--data", str(data), "--run-dir", str(run), "--epochs", "2",
                     "--batch-size", "2", "--grad-accum", "1", "--val-fraction", "0.2", "--lr", "2e-3")
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out
    assert "process 0 of 2 trains its own shard" in out and "[rank 1] process 1 of 2 trains its own shard" in out
    st = state(run)
    assert st["status"] == "finished" and st["epoch"] == 2
    start = [r for r in metrics(run) if r.get("event") == "start"]
    assert len(start) == 1 and start[0]["world_size"] == 2 and start[0]["steps_per_epoch"] == 4
    recs = steps(run)
    assert [r["step"] for r in recs] == list(range(1, 9)), "one writer: each step once"
    # 13 training clips dealt to 2 ranks (padded to 14): each step counts both ranks' clips.
    assert [r["samples"] for r in recs[:4]] == [4, 4, 4, 2]
    assert all(len(r["layers"]) == 16 for r in recs)
    assert sorted(p.name for p in run.iterdir()) == ["epoch-0001", "epoch-0002", "metrics.jsonl", "resume",
                                                     "run.json", "state.json", "train.log"]
    assert "[rank" not in (run / "train.log").read_text()
    assert json.loads((run / "resume" / "trainer.json").read_text())["world_size"] == 2


def test_sigterm_stops_every_rank_at_the_same_step(tiny_base, demo_data, tmp_path):
    run = tmp_path / "ddp-stop"
    proc = _torchrun("--base", str(tiny_base), "--data", str(demo_data), "--run-dir", str(run), "--epochs", "3",
                     "--batch-size", "1", "--grad-accum", "1", "--val-fraction", "0.2", hooks="step_delay=0.4")
    wait_for(lambda: len(steps(run)) >= 2, what="step 2", proc=proc)
    os.killpg(proc.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    last = steps(run)[-1]["step"]
    st = state(run)
    assert st["status"] == "stopped" and st["exit_code"] == 0 and st["step"] == last, out
    stop = [r for r in metrics(run) if r.get("event") == "stop"]
    assert len(stop) == 1 and stop[0]["step"] == last
    point = json.loads((run / "resume" / "trainer.json").read_text())
    assert point["step"] == last and point["micro"] == last and point["world_size"] == 2
    # torchrun itself reports the signal with a traceback of its own and a non-zero exit; the workers end
    # cleanly, and state.json carries the trainer's exit code (docs/run-folder.md).
    assert "training/trainer.py" not in out and "milo-train: error" not in out


def test_each_rank_dies_with_its_torchrun(tmp_path):
    """torchrun starts each worker in a session of its own, so a SIGKILL to torchrun's group (the dashboard's
    Kill) misses the workers, which go on without it. Dist.from_env ties each to its torchrun (training/dist.py
    die_with_torchrun). The workers here are silent and write to a file, so nothing else ends them: no broken
    pipe to a dead reader, no peer gone."""
    import psutil

    worker = tmp_path / "worker.py"
    worker.write_text("import time\nfrom training.dist import Dist\n\nDist.from_env()\nprint('tied', flush=True)\n"
                      "while True:\n    time.sleep(0.2)\n")
    with open(tmp_path / "log", "w") as log:
        torchrun = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                                     "2", str(worker)], env=python_env(), stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
    workers: list[psutil.Process] = []

    def gone(w: psutil.Process) -> bool:
        try:
            return not w.is_running() or w.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    try:
        wait_for(lambda: (tmp_path / "log").read_text().count("tied") == 2, 60, "both workers started")
        workers = psutil.Process(torchrun.pid).children()
        assert len(workers) == 2 and all(os.getsid(w.pid) != os.getsid(torchrun.pid) for w in workers)
        os.killpg(torchrun.pid, signal.SIGKILL)
        torchrun.wait(10)
        wait_for(lambda: all(gone(w) for w in workers), 10, "both workers gone with their torchrun")
    finally:
        if torchrun.poll() is None:
            os.killpg(torchrun.pid, signal.SIGKILL)
        for w in workers:
            if not gone(w):
                w.kill()
