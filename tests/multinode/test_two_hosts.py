"""One run across two hosts: this machine, and this machine again through a real OpenSSH server on the
loopback address standing in for the second Spark (tests/multinode/conftest.py). The tiny model on gloo,
one process per host, launched by `milo-train run --hosts`."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import psutil

from tests.conftest import python_env
from tests.training.conftest import metrics, state, steps, wait_for
from tests.training.test_distributed import _torchrun

TRAIN = ("--epochs", "2", "--batch-size", "2", "--grad-accum", "1", "--val-fraction", "0.2", "--lr", "2e-3",
         "--seed", "3", "--no-score")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_hosts(ssh_host, *args, hooks: str = "") -> subprocess.Popen:
    env = python_env(**ssh_host.env)
    env.pop("MILO_TEST_HOOKS", None)
    if hooks:
        env["MILO_TEST_HOOKS"] = hooks
    cmd = [sys.executable, "-m", "training", "run", "--hosts", ssh_host.name, "--master-addr", "127.0.0.1",
           "--rdzv-port", str(free_port()), "--iface", "lo", *args]
    return subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


def remote_trainers(run) -> list[psutil.Process]:
    """The trainer the other host runs (not its torchrun): MILO_HOME_NODE=0 in its environment."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info["cmdline"] or []
        if "training" in cmd and "run" in cmd and str(run) in cmd and "torch.distributed.run" not in " ".join(cmd):
            try:
                if p.environ().get("MILO_HOME_NODE") == "0":
                    found.append(p)
            except psutil.Error:
                pass
    return found


def test_two_hosts_train_like_two_processes_on_one(ssh_host, tiny_base, demo_data, tmp_path):
    base = ("--base", str(tiny_base), "--data", str(demo_data))
    one = tmp_path / "one-host"
    proc = _torchrun(*base, "--run-dir", str(one), *TRAIN)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    two = tmp_path / "two-hosts"
    started = time.monotonic()
    proc = two_hosts(ssh_host, *base, "--run", str(two), *TRAIN)
    out, _ = proc.communicate(timeout=300)
    seconds = time.monotonic() - started
    assert proc.returncode == 0, out
    st = state(two)
    assert st["status"] == "finished" and st["epoch"] == 2, out
    assert [h["host"] for h in st["hosts"]] == [ssh_host.name]
    a, b = steps(one), steps(two)
    assert [r["step"] for r in b] == [r["step"] for r in a] == list(range(1, 9))
    assert [r["objective"] for r in b] == [r["objective"] for r in a]      # the same training, to the bit
    assert [r["layers"] for r in b] == [r["layers"] for r in a]
    # the other host wrote its log, and nothing in the run folder but that
    assert (two / "hosts" / f"{ssh_host.name}.log").is_file()
    assert "[rank" not in (two / "train.log").read_text()
    samples = sum(r["samples"] for r in b)
    print(f"two hosts: {samples} samples in {seconds:.1f} s")


def test_a_dead_remote_rank_stops_the_run_naming_its_host_and_resume_continues(ssh_host, tiny_base, demo_data, tmp_path):
    run = tmp_path / "killed"
    args = ("--base", str(tiny_base), "--data", str(demo_data), "--run", str(run), "--epochs", "3",
            "--batch-size", "2", "--grad-accum", "1", "--val-fraction", "0.2", "--no-score")
    proc = two_hosts(ssh_host, *args, hooks="step_delay=0.4")
    wait_for(lambda: (run / "resume" / "trainer.json").is_file() and len(steps(run)) >= 5 or proc.poll() is not None, 240,
             "epoch 1 saved")
    assert proc.poll() is None, proc.stdout.read()
    (victim,) = wait_for(lambda: remote_trainers(run), 30, "the remote trainer")
    victim.send_signal(signal.SIGKILL)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0
    st = state(run)
    assert st["status"] == "crashed" and ssh_host.name in st["error"], (st, out)
    assert sorted(st["ranks"]) == sorted([ssh_host.name, st["home_host"]]), st   # a rank a host, recorded at start
    (rank,) = st["ranks"][ssh_host.name]
    assert f"the trainer on {ssh_host.name} (rank {rank}) stopped" in out
    assert not remote_trainers(run)
    done_before = steps(run)[-1]["step"]
    proc = two_hosts(ssh_host, "--run", str(run), "--resume", "--no-score")
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    st = state(run)
    assert st["status"] == "finished" and st["epoch"] == 3, out
    assert steps(run)[-1]["step"] == 12 and steps(run)[-1]["step"] > done_before
    records = metrics(run)
    starts = [i for i, r in enumerate(records) if r.get("event") == "start"]
    resumed = records[starts[-1]]
    assert len(starts) == 2 and resumed["resumed_from_step"] is not None and resumed["world_size"] == 2
    after = [r["step"] for r in records[starts[-1]:] if r["kind"] == "step"]
    assert after == list(range(resumed["resumed_from_step"] + 1, 13))   # on from the resume point, every step once


def test_a_run_whose_preflight_fails_starts_nothing_on_any_host(ssh_host, down_host, tiny_base, demo_data, tmp_path):
    run = tmp_path / "never"
    env = python_env(**ssh_host.env)
    done = subprocess.run([sys.executable, "-m", "training", "run", "--hosts", f"{ssh_host.name},{down_host}",
                           "--master-addr", "127.0.0.1", "--rdzv-port", str(free_port()), "--iface", "lo",
                           "--base", str(tiny_base), "--data", str(demo_data), "--run", str(run), "--no-score"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"milo-train: error: {down_host}: cannot log in over SSH"), lines
    assert "nothing was started on any host" in lines[1]
    assert not run.exists() and not remote_trainers(run)
    done = subprocess.run([sys.executable, "-m", "training", "run", "--hosts", ssh_host.name, "--base", str(tiny_base),
                           "--data", str(demo_data), "--run", str(run)], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and "--hosts needs --master-addr" in done.stderr and not run.exists()


def test_stop_reaches_every_host_and_each_rank_ends_at_the_same_step(ssh_host, tiny_base, demo_data, tmp_path):
    """The dashboard's Stop: SIGTERM to the launcher's process group (the keeper's, in a real run)."""
    run = tmp_path / "stopped"
    proc = two_hosts(ssh_host, "--base", str(tiny_base), "--data", str(demo_data), "--run", str(run), "--epochs", "3",
                     "--batch-size", "1", "--grad-accum", "1", "--val-fraction", "0.2", "--no-score",
                     hooks="step_delay=0.4")
    wait_for(lambda: len(steps(run)) >= 2 or proc.poll() is not None, 240, "step 2")
    assert proc.poll() is None, proc.stdout.read()
    wait_for(lambda: remote_trainers(run), 30, "the remote trainer")
    os.killpg(proc.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    st = state(run)
    last = steps(run)[-1]["step"]
    assert st["status"] == "stopped" and st["step"] == last, (st, out)
    wait_for(lambda: not remote_trainers(run), 30, "the remote trainer to end")
    remote_log = (run / "hosts" / f"{ssh_host.name}.log").read_text()
    # the other host's trainer stopped with this one, at the same step (the stop is agreed between the ranks;
    # the launcher's SIGTERM over SSH is the backstop), not left to fail at its next collective
    assert "Connection closed by peer" not in remote_log and "training/trainer.py" not in remote_log, remote_log
    point = json.loads((run / "resume" / "trainer.json").read_text())
    assert point["step"] == last and point["world_size"] == 2
