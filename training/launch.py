"""`milo-train run --hosts HOST[,HOST] --master-addr ADDR ...`: one run across hosts (docs/multi-node.md).

This process is the launcher; the dashboard's keeper (or the operator) starts it like any trainer, so Stop,
Kill, restarts and re-attaching work as for a run on one host. After the preflight (training/hosts.py: each
problem one line, nothing started) it starts

    here          torchrun (c10d rendezvous at ADDR:PORT) -m training run ...    MILO_HOME_NODE=1, its child
    each HOST     the same over OpenSSH, detached from the SSH session (setsid, its own log at
                  RUN/hosts/HOST.log on that host's disk)                        MILO_HOME_NODE=0

and then watches every host: a remote side that has died or cannot be reached for `UNREACHABLE_S` stops the
whole run the normal way (SIGTERM here: the trainer saves what it can and records why, naming the host), and
an end here stops the remote sides. SIGTERM or SIGINT to the launcher reaches every host. The home host's
first process writes the run folder; the others write only their logs (training/dist.py).
"""
from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from contract import exits
from contract import runfolder as rf
from contract.ssh import SSH_CONFIG, signal_group, ssh_argv
from training.dist import HOME_NODE, HOST_NAME

POLL_S = 2.0          # how often the remote sides are looked at
UNREACHABLE_S = 20.0  # a host that cannot be reached this long is taken for gone
GRACE_S = 10.0        # a remote trainer gone this long while this side goes on: the run has lost it
HOSTS_DIR = "hosts"   # RUN/hosts/HOST.log: each remote side's log, on that host
LAUNCH_FLAGS = {"--hosts": 1, "--master-addr": 1, "--rdzv-port": 1, "--iface": 1, "--nproc-per-node": 1,
                "--sync": 0, "--remote-python": 1}


def trainer_args(argv: list[str]) -> list[str]:
    """The `run` arguments each host's trainer gets: the launcher's own flags taken out, and `--run` spelt
    `--run-dir` (torchrun's parser reads `--run` as its own `--run-path`)."""
    out, skip = [], 0
    for arg in argv:
        if skip:
            skip -= 1
            continue
        name, eq, value = arg.partition("=")
        if name in LAUNCH_FLAGS:
            skip = LAUNCH_FLAGS[name] if not eq else 0
            continue
        out.append(f"--run-dir{eq}{value}" if name == "--run" else arg)
    return out


def torchrun_argv(python: str, args, nnodes: int, run_args: list[str]) -> list[str]:
    return [python, "-m", "torch.distributed.run", f"--nnodes={nnodes}", f"--nproc-per-node={args.nproc_per_node}",
            "--rdzv-backend=c10d", f"--rdzv-endpoint={args.master_addr}:{args.rdzv_port}",
            f"--rdzv-id={Path(args.run).name}", "--max-restarts=0", "-m", "training", "run", *run_args]


def remote_env(iface: str | None) -> dict:
    """What every host's trainer gets: the interface, and this side's MILO_ settings and offline switches
    (an SSH session starts with an environment of its own)."""
    env = {k: v for k, v in os.environ.items()
           if (k.startswith("MILO_") and k != SSH_CONFIG) or k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    return {**env, **({"GLOO_SOCKET_IFNAME": iface, "NCCL_SOCKET_IFNAME": iface} if iface else {})}


class Remote:
    """One remote side: started detached over SSH, then looked at (`alive`) and stopped (`signal`)."""

    def __init__(self, host: str, run_dir: Path) -> None:
        self.host, self.run_dir = host, run_dir
        self.pid: int | None = None
        self.unreachable_since: float | None = None
        self.seen = False   # its trainer was seen running once
        self.log = run_dir / HOSTS_DIR / f"{host}.log"

    def start(self, argv: list[str], env: dict) -> None:
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        script = (f"mkdir -p {shlex.quote(str(self.log.parent))} && cd {shlex.quote(os.getcwd())} && "
                  f"setsid env {exports} {shlex.join(argv)} > {shlex.quote(str(self.log))} 2>&1 < /dev/null & "
                  f"echo $!")
        done = subprocess.run(ssh_argv(self.host, ["sh", "-c", script]), capture_output=True, text=True, timeout=60)
        if done.returncode != 0 or not done.stdout.strip().isdigit():
            raise RuntimeError(f"{self.host}: the trainer did not start there "
                               f"({(done.stderr or done.stdout).strip().splitlines()[-1:] or ['no answer']})")
        self.pid = int(done.stdout.strip())

    def alive(self) -> bool | None:
        """True, False (gone), or None (cannot be reached now). Its trainer (torchrun's child) is looked for, not
        only its torchrun (which outlives a killed trainer by seconds); before the trainer is first seen,
        torchrun alone (the rendezvous) counts as alive."""
        look = (f"if ps -o stat= --ppid {self.pid} | grep -qv Z; then echo up; "   # a live child: the trainer
                f"elif kill -0 {self.pid} 2>/dev/null; then echo starting; else echo gone; fi")
        try:
            done = subprocess.run(ssh_argv(self.host, ["sh", "-c", look]), capture_output=True, text=True, timeout=15)
        except subprocess.TimeoutExpired:
            return None
        said = done.stdout.strip()
        if said == "up":
            self.seen = True
            return True
        if said == "starting":
            return not self.seen
        return False if said == "gone" else None

    def stopped_line(self) -> str:
        """What the run's line says when its trainer stopped: the host, its ranks, where its log is."""
        return f"the trainer on {self.host}{ranks_of(self.run_dir, self.host)} stopped (its log: {self.host}:{self.log})"

    def signal(self, sig: int) -> None:
        """To its whole session (setsid made the remote torchrun a group leader): torchrun and its trainer."""
        if self.pid is not None:
            signal_group(self.host, self.pid, sig)


def launch(args, argv: list[str]) -> int:
    """Preflight, start every host, watch them; the exit code of this host's side (docs/run-folder.md)."""
    from training.hosts import preflight

    hosts = [h.strip() for h in args.hosts.split(",") if h.strip()]
    if not args.master_addr:
        print("milo-train: error: --hosts needs --master-addr: this host's address on the link the others reach",
              file=sys.stderr)
        return exits.USAGE
    args.iface = args.iface or os.environ.get("GLOO_SOCKET_IFNAME") or os.environ.get("NCCL_SOCKET_IFNAME")
    run_dir = Path(args.run).absolute()
    python = args.remote_python or sys.executable
    recorded = rf.read_json(run_dir / rf.RUN_JSON) or {} if args.resume else {}
    base, data = args.base or recorded.get("base_model"), args.data or recorded.get("data")
    problems = preflight(hosts, base=base and Path(base), data=data and Path(data),
                         master_addr=args.master_addr, port=args.rdzv_port, iface=args.iface, python=python,
                         sync=args.sync)
    if problems:
        for line in problems:
            print(f"milo-train: error: {line}", file=sys.stderr)
        print(f"milo-train: nothing was started on any host ({len(problems)} problem(s))", file=sys.stderr)
        more = f"; {len(problems) - 1} more in train.log" if len(problems) > 1 else ""
        record_failure(run_dir, f"{problems[0]} (nothing was started on any host{more})", exits.BAD_INPUT)
        return exits.BAD_INPUT
    run_args = trainer_args(argv)
    nnodes = 1 + len(hosts)
    env = remote_env(args.iface)
    remotes = [Remote(h, run_dir) for h in hosts]
    home = os.uname().nodename
    local = subprocess.Popen(torchrun_argv(sys.executable, args, nnodes, run_args),
                             env={**os.environ, **env, HOME_NODE: "1", HOST_NAME: home}, stdin=subprocess.DEVNULL)
    stopping: list[int] = []

    def forward(sig, _frame) -> None:
        stopping.append(sig)
        local.send_signal(sig)
        for r in remotes:
            r.signal(sig)
    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        for r in remotes:
            r.start(torchrun_argv(python, args, nnodes, run_args), {**env, HOME_NODE: "0", HOST_NAME: r.host})
        if run_dir.is_dir():
            rf.update_state(run_dir, hosts=[dict(host=r.host, pid=r.pid, log=str(r.log), python=python) for r in remotes],
                            home_host=home)
        code = watch(local, remotes, run_dir, stopping)
    except RuntimeError as exc:
        print(f"milo-train: error: {exc}", file=sys.stderr)
        local.send_signal(signal.SIGTERM)
        for r in remotes:
            r.signal(signal.SIGTERM)
        local.wait()
        record_failure(run_dir, str(exc), exits.BAD_INPUT)
        return exits.BAD_INPUT
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return code


def ranks_of(run_dir: Path, host: str) -> str:
    """" (rank 1)" or " (ranks 2, 3)": the ranks the trainers recorded for `host` (state.json ranks); "" before."""
    ranks = ((rf.read_json(run_dir / rf.STATE_JSON) or {}).get("ranks") or {}).get(host)
    if not isinstance(ranks, list) or not ranks:
        return ""
    return f" (rank{'s' if len(ranks) > 1 else ''} {', '.join(map(str, ranks))})"


def record_failure(run_dir: Path, message: str, code: int) -> None:
    """What the run's line says when the launch failed before any trainer could say it: written only for a run a
    supervisor launched (status "starting"), as the trainer does; a mistyped command leaves a run as it was."""
    if (rf.read_json(run_dir / rf.STATE_JSON) or {}).get("status") == rf.STARTING:
        rf.update_state(run_dir, status=rf.CRASHED, exit_code=code, error=message, ended_at=time.time())


def watch(local: subprocess.Popen, remotes: list[Remote], run_dir: Path, stopping: list[int]) -> int:
    """Until this host's side ends: a remote side gone (or unreachable too long) stops the run, naming it. A
    remote trainer that ends is given GRACE_S for this side to end too: at the run's end the ranks finish
    within moments of each other, and when a remote rank died this side fails at its next collective."""
    lost: str | None = None
    gone_since: float | None = None
    while True:
        try:
            code = local.wait(POLL_S)
            break
        except subprocess.TimeoutExpired:
            pass
        if lost or stopping:
            continue
        now = time.monotonic()
        for r in remotes:
            state = r.alive()
            if state is None:
                r.unreachable_since = r.unreachable_since or now
                if now - r.unreachable_since >= UNREACHABLE_S:
                    lost = f"{r.host}{ranks_of(run_dir, r.host)} cannot be reached (for {UNREACHABLE_S:.0f} s)"
            elif state:
                r.unreachable_since = None
            else:
                gone_since = gone_since or now
                if now - gone_since >= GRACE_S:
                    lost = r.stopped_line()
            if lost:
                local.send_signal(signal.SIGTERM)   # the normal way: this side saves and ends
                break
    if code != 0 and not lost and not stopping:
        # this side ended first, usually of the lost peer itself ("Connection closed by peer"): name the host
        gone = [r for r in remotes if r.alive() is False]
        if gone:
            lost = gone[0].stopped_line()
    for r in remotes:
        r.signal(signal.SIGTERM)
    if lost:
        message = f"run stopped: {lost}; resume continues on the same hosts"
        print(f"milo-train: {message}", file=sys.stderr)
        if (run_dir / rf.STATE_JSON).is_file():
            rf.update_state(run_dir, status=rf.CRASHED, error=message, ended_at=time.time(),
                            exit_code=exits.ERROR)
        return exits.ERROR
    return code
