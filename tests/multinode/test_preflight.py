"""The preflight of a run over two hosts (`milo-train hosts check`, training/hosts.py) against a real sshd on
127.0.0.1 standing in for the second Spark (tests/multinode/conftest.py).

On one machine the "other host" shares this one's files, so each difference is made real where it lives:
- host down: a Host entry whose port nothing listens on (ssh says "Connection refused");
- base model missing there, data different there: an sshd started in a mount namespace of its own with an
  empty tmpfs over the folder, so its sessions (the facts, rsync) see their own files at the same path;
- another project version there: the other host's python (--remote-python) runs a copy of the project whose
  contract/__init__.py says another version, as another install of milo-tui would.
The base model is a folder of made-up files: the preflight only sizes and hashes them.
"""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import contract
from tests.conftest import ROOT, python_env
from tests.multinode.conftest import remote_python
from training.hosts import preflight


@pytest.fixture
def inputs(tmp_path) -> tuple[Path, Path]:
    """(base, data): a base model folder and a training JSONL naming its reference audio, in folders of their own."""
    base = tmp_path / "models" / "base"
    (base / "speech_tokenizer").mkdir(parents=True)
    (base / "config.json").write_text('{"model_type": "qwen3_tts"}\n')
    (base / "model.safetensors").write_bytes(bytes(range(256)) * 512)
    (base / "speech_tokenizer" / "model.safetensors").write_bytes(b"\x01" * 4096)
    data = tmp_path / "data" / "train.jsonl"
    data.parent.mkdir()
    (data.parent / "ref.wav").write_bytes(b"RIFF" + b"\x00" * 2000)
    line = {"audio": "clip.wav", "text": "Hello.", "audio_codes": [[1] * 16], "ref_audio": "ref.wav"}
    data.write_text(json.dumps(line) + "\n" + json.dumps({**line, "text": "Again."}) + "\n")
    return base, data


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check(host: str, base: Path, data: Path, **kw) -> list[str]:
    return preflight([host], base=base, data=data, master_addr="127.0.0.1", port=kw.pop("port", None) or _free_port(),
                     iface=kw.pop("iface", "lo"), **kw)


def hosts_check(host, base, data, *extra) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "training", "hosts", "check", "--hosts", host.name, "--base", str(base),
                           "--data", str(data), "--master-addr", "127.0.0.1", "--rdzv-port", str(_free_port()),
                           "--iface", "lo", *extra], capture_output=True, text=True, timeout=120,
                          env=python_env(**host.env), stdin=subprocess.DEVNULL)


def test_the_same_checkout_is_ready(ssh_host, ssh_env, inputs):
    ssh_env(ssh_host)
    assert check(ssh_host.name, *inputs) == []
    proc = hosts_check(ssh_host, *inputs)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("ready: this host (master 127.0.0.1:") and "spark2" in proc.stdout, proc.stdout


def test_a_host_that_is_down_is_one_line_and_nothing_else_is_tried(down_host, ssh_env, ssh_host, inputs):
    ssh_env(ssh_host)
    assert check(down_host, *inputs, sync=True) == [
        f"{down_host}: cannot log in over SSH without a password (Connection refused): check the host is up and run "
        f"ssh-copy-id {down_host}"]


def test_a_base_model_missing_there(other_host, ssh_env, inputs):
    base, data = inputs
    host = other_host(hide=[base.parent])
    ssh_env(host)
    assert host.run(f"test -e {base}").returncode == 1   # the other host's own view
    assert check(host.name, base, data) == [
        f"{host.name}: base model {base} is missing there: copy it to the same path (or mount it)"]
    assert check(host.name, base, data, sync=True) == [
        f"{host.name}: base model {base} is missing there: copy it to the same path (or mount it); --sync copies "
        f"only the data"]
    assert host.run(f"test -e {base}").returncode == 1, "--sync copied the base model"


def test_another_project_version_there(ssh_host, ssh_env, inputs, tmp_path):
    other = tmp_path / "other-install"
    shutil.copytree(ROOT / "contract", other / "contract", ignore=shutil.ignore_patterns("__pycache__"))
    init = other / "contract" / "__init__.py"
    init.write_text(init.read_text().replace(f'__version__ = "{contract.__version__}"', '__version__ = "0.0.9"'))
    python = remote_python(tmp_path, f"{other}:{ROOT}")   # the rest of the project as here
    ssh_env(ssh_host)
    line = f"spark2: milo-tui 0.0.9 there, {contract.__version__} here: install the same version on both hosts"
    assert check(ssh_host.name, *inputs, python=str(python)) == [line]
    proc = hosts_check(ssh_host, *inputs, "--remote-python", str(python))
    assert (proc.returncode, proc.stdout) == (3, line + "\n"), proc.stderr


def test_data_that_differs_there_is_copied_by_sync(other_host, ssh_env, inputs):
    base, data = inputs
    host = other_host(hide=[data.parent])
    ssh_env(host)
    assert host.run(f"echo 'another corpus' > {data}").returncode == 0   # ref.wav is missing there
    ref = data.parent / "ref.wav"
    assert check(host.name, base, data) == [
        f"{host.name}: data {data} differs there (size or sha256): give --sync to copy it, or copy it yourself",
        f"{host.name}: data {ref} is missing there: give --sync to copy it, or copy it yourself"]
    assert check(host.name, base, data, sync=True) == []
    there = host.run(f"sha256sum {data} {ref}").stdout.split()
    here = subprocess.run(["sha256sum", data, ref], capture_output=True, text=True).stdout.split()
    assert there == here
    proc = hosts_check(host, base, data)
    assert proc.returncode == 0, proc.stdout


def test_the_rendezvous_port_and_the_interface_are_checked(ssh_host, ssh_env, inputs):
    ssh_env(ssh_host)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        problems = check(ssh_host.name, *inputs, port=port, iface="milo9")
    assert problems == [
        f"port {port} on 127.0.0.1 is in use (Address already in use): give --rdzv-port another port",
        "interface milo9 not found here (NCCL_SOCKET_IFNAME/GLOO_SOCKET_IFNAME or --iface): ip -br link lists them",
        "spark2: interface milo9 not found there (NCCL_SOCKET_IFNAME/GLOO_SOCKET_IFNAME or --iface): ip -br link "
        "lists them"]


def test_a_base_or_data_not_given_is_one_line_each():
    assert check("spark2", None, None) == ["no base model given: give --base", "no training data given: give --data"]
