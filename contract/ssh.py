"""SSH to the other hosts of a run across hosts (docs/multi-node.md), shared by the launcher and its preflight
(training/) and the dashboard (milo_tui/), which reaches the same hosts for their ranks, GPUs and logs.

Every call goes through OpenSSH with BatchMode (a host that would prompt for a password fails at once instead
of waiting on a prompt nobody sees) and, where MILO_SSH_CONFIG names one, that client config file (ssh -F).
"""
from __future__ import annotations

import os
import shlex
import subprocess

SSH_CONFIG = "MILO_SSH_CONFIG"      # an ssh client config file for every ssh call (ssh -F): the tests' own sshd


def ssh_base() -> list[str]:
    """ssh and its options, without a host: what rsync's -e runs too."""
    config = os.environ.get(SSH_CONFIG)
    return ["ssh", *(["-F", config] if config else []), "-o", "BatchMode=yes", "-o", "ConnectTimeout=5"]


def ssh_argv(host: str, command: list[str]) -> list[str]:
    """The argv that runs `command` on `host` (the remote shell gets it quoted; "--" keeps the host a host)."""
    return [*ssh_base(), "--", host, shlex.join(command)]


def signal_group(host: str, pid: int, sig: int, timeout: float = 15) -> bool:
    """`sig` to the process group `pid` leads on `host` (a remote side started with setsid: its torchrun and
    trainer). True when ssh reached the host; a group already gone is not an error."""
    try:
        # `kill -SIG -PGID`: dash's kill (sh on Debian) takes no "--" and refuses "kill -9 -- -PGID" outright
        done = subprocess.run(ssh_argv(host, ["sh", "-c", f"kill -{int(sig)} -{int(pid)} 2>/dev/null; true"]),
                              capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except (subprocess.TimeoutExpired, OSError):
        return False
    return done.returncode == 0
