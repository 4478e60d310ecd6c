"""A second Spark on one machine: a real OpenSSH server (Debian's openssh-server) on 127.0.0.1, started here
with its own host key and a client key made for the test session, as the other host a multi-host run reaches.

Its sessions get this checkout on PYTHONPATH (sshd's SetEnv: the other host has milo-tui installed) and their own
cache folder (the other host's own hash cache). `other_host(hide=[DIR...])` starts one more sshd inside a mount
namespace of its own in which each DIR is an empty tmpfs: a host whose files at those paths are its own.
"""
from __future__ import annotations

import getpass
import shlex
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import ROOT, need_binary
from tests.dashboard.conftest import pytest_pyfunc_call  # noqa: F401 (async tests: the dashboard driven by Pilot)

SSHD = "/usr/sbin/sshd"


@dataclass
class SshHost:
    name: str
    config: Path                                  # the ssh client config that reaches it
    proc: subprocess.Popen | None = None
    env: dict = field(default_factory=dict)       # {"MILO_SSH_CONFIG": config}

    def run(self, command: str) -> subprocess.CompletedProcess:
        """A shell command run on the host, over its ssh."""
        return subprocess.run(["ssh", "-F", str(self.config), self.name, command], capture_output=True, text=True,
                              timeout=30, stdin=subprocess.DEVNULL)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(port: int, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"sshd exited {proc.returncode}: {log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail("sshd did not listen within 20 s")


class Hosts:
    """Keys, configs and the sshd processes of the test session."""

    def __init__(self, root: Path):
        need_binary("ssh")
        if not Path(SSHD).exists():
            pytest.fail("openssh-server is not installed: run scripts/test.sh, which installs the Debian packages")
        self.root, self.procs = root, []
        for key in ("host_key", "client_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "milo-test", "-f", str(root / key)],
                           check=True, capture_output=True)
        (root / "authorized_keys").write_text((root / "client_key.pub").read_text())
        Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)   # sshd's privilege separation folder

    def client_entry(self, name: str, port: int) -> str:
        return (f"Host {name}\n  HostName 127.0.0.1\n  Port {port}\n  User {getpass.getuser()}\n"
                f"  IdentityFile {self.root / 'client_key'}\n  IdentitiesOnly yes\n  StrictHostKeyChecking no\n"
                f"  UserKnownHostsFile {self.root / 'known_hosts'}\n  BatchMode yes\n  LogLevel ERROR\n")

    def start(self, name: str, hide: tuple[Path, ...] = (), extra: str = "", pythonpath: tuple[Path, ...] = ()) -> SshHost:
        port = _free_port()
        cache = self.root / f"{name}-cache"
        cache.mkdir(exist_ok=True)
        config = self.root / f"{name}-sshd_config"
        config.write_text(
            f"Port {port}\nListenAddress 127.0.0.1\nHostKey {self.root / 'host_key'}\n"
            f"AuthorizedKeysFile {self.root / 'authorized_keys'}\nPubkeyAuthentication yes\n"
            f"PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
            f"StrictModes no\nUsePAM no\nPidFile {self.root / f'{name}-sshd.pid'}\n"
            f"SetEnv PYTHONPATH={':'.join(map(str, (*pythonpath, ROOT)))} XDG_CACHE_HOME={cache} "
            f"PYTHONDONTWRITEBYTECODE=1\n")
        argv = [SSHD, "-D", "-e", "-f", str(config)]
        if hide:   # its own mount namespace: an empty tmpfs over each hidden folder, seen by its sessions only
            need_binary("unshare")
            mounts = " && ".join(f"mount -t tmpfs milo-other-host {shlex.quote(str(d))}" for d in hide)
            argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", f'{mounts} && exec "$@"', "sh", *argv]
        log = self.root / f"{name}-sshd.log"
        with open(log, "w") as out:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        _wait_listening(port, proc, log)
        client = self.root / f"{name}-ssh_config"
        client.write_text(self.client_entry(name, port) + extra)
        return SshHost(name, client, proc, {"MILO_SSH_CONFIG": str(client)})

    def stop(self, host: SshHost) -> None:
        host.proc.terminate()
        host.proc.wait(timeout=10)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=10)


@pytest.fixture(scope="session")
def _hosts(tmp_path_factory):
    hosts = Hosts(tmp_path_factory.mktemp("ssh"))
    yield hosts
    hosts.close()


@pytest.fixture(scope="session")
def ssh_host(_hosts) -> SshHost:
    """"spark2": this machine through its own sshd (the same files at the same paths). Its config also names
    "spark-down" (the `down_host` fixture), a host whose port nothing listens on."""
    return _hosts.start("spark2", extra=_hosts.client_entry("spark-down", _free_port()))


@pytest.fixture
def down_host(ssh_host) -> str:
    return "spark-down"


@pytest.fixture(scope="session")
def gb10_host(_hosts) -> SshHost:
    """"spark-gb10": like spark2, but every python its sessions start finds a GB10's NVML (tests/multinode/gb10):
    what the dashboard's sampler on a second Spark reads."""
    return _hosts.start("spark-gb10", pythonpath=(Path(__file__).parent / "gb10",))


@pytest.fixture
def other_host(_hosts):
    """other_host(hide=[DIR, ...]): a host whose DIRs are its own (empty at first), stopped after the test."""
    started = []

    def start(hide) -> SshHost:
        host = _hosts.start(f"spark{3 + len(started)}", hide=tuple(hide))
        started.append(host)
        return host

    yield start
    for host in started:
        _hosts.stop(host)


@pytest.fixture
def ssh_env(monkeypatch):
    """use(host): the preflight's ssh calls in this process go through the host's client config."""
    def use(host: SshHost) -> None:
        for var, value in host.env.items():
            monkeypatch.setenv(var, value)
    return use


def remote_python(folder: Path, pythonpath: str) -> Path:
    """A python for the other host that finds the project in `pythonpath` first (another install of milo-tui)."""
    script = folder / "python"
    script.write_text(f"#!/bin/sh\nPYTHONPATH={pythonpath} exec {sys.executable} \"$@\"\n")
    script.chmod(0o755)
    return script

