"""Several hosts as one run (docs/multi-node.md): the preflight that runs before anything starts.

This host is the master; each other host is named by its SSH name. The preflight asks each of them, over
SSH with no password prompt, for its facts (`milo-train host-facts PATH... --json`, run by the same python
path as here) and compares them with this host's: the project and torch versions, and the base model and
the training data at the same paths with the same sizes and sha256. Here it checks the rendezvous port and
the network interface. Every problem is one line naming the host and the fix, so an operator sees them all
at once instead of a hang or a traceback minutes into a run.

Torch-free: torch's version is read from its installed metadata (an import costs seconds on each host).
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import contract
from contract.bundle import weights_sha256
from contract.ssh import ssh_argv, ssh_base

PROJECT = "milo-tui"
FACTS_TIMEOUT = 900                 # seconds: the first hash of a 3.8 GB base model on the other host


def _torch_version() -> str | None:
    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return None


def _file_facts(path: Path) -> dict:
    return {"size": path.stat().st_size, "sha256": weights_sha256(path)}


def path_facts(path: Path) -> dict:
    """exists, size and sha256 of a file; of a folder, those of every file under it (by relative path).
    Hashes are remembered by (path, size, mtime), so a base model is read once per host."""
    if path.is_file():
        return {"exists": True, **_file_facts(path)}
    if path.is_dir():
        files = {str(f.relative_to(path)): _file_facts(f) for f in sorted(path.rglob("*")) if f.is_file()}
        return {"exists": True, "size": sum(f["size"] for f in files.values()), "files": files}
    return {"exists": False}


def host_facts(paths) -> dict:
    """This host's side of the preflight."""
    return {"hostname": socket.gethostname(), "version": contract.__version__, "torch": _torch_version(),
            "python": sys.executable, "interfaces": sorted(name for _i, name in socket.if_nameindex()),
            "paths": {str(p): path_facts(Path(p)) for p in paths}}


def data_files(data: Path) -> list[Path]:
    """The training data a run reads on every host: the JSONL and the reference audio its lines name, resolved
    as the trainer resolves them (the clips' own audio is not read: their codes are in the lines)."""
    from training.data import _resolve

    files, folder = [data.absolute()], data.absolute().parent
    try:
        lines = data.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return files
    for line in lines:
        try:
            ref = json.loads(line).get("ref_audio")
        except (ValueError, AttributeError):
            continue
        ref = ref[0] if isinstance(ref, list) and ref else ref
        if isinstance(ref, str) and ref and (path := _resolve(ref, folder).absolute()) not in files:
            files.append(path)
    return files


def _port_problems(addr: str, port: int) -> list[str]:
    """The rendezvous (torchrun's c10d store) listens on this host: its address must be one of this host's and the
    port free on it and on the wildcard address (the store binds every address)."""
    try:
        family, *_rest, sockaddr = socket.getaddrinfo(addr, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        return [f"master address {addr} does not resolve ({exc.strerror}): give --master-addr this host's address "
                f"on the link"]
    for where in (sockaddr, ("", port)):
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(where)
            except OSError as exc:
                if exc.errno == errno.EADDRNOTAVAIL:
                    return [f"master address {addr} is not an address of this host: give --master-addr this host's "
                            f"address on the link (ip -br addr lists them)"]
                return [f"port {port} on {addr} is in use ({exc.strerror}): give --rdzv-port another port"]
    return []


def iface_names(iface: str | None) -> list[str]:
    """The interfaces named for the run's traffic: --iface, else GLOO_SOCKET_IFNAME, else NCCL_SOCKET_IFNAME
    (a comma list; NCCL's "^" exclusion lists name nothing to look for)."""
    value = iface or os.environ.get("GLOO_SOCKET_IFNAME") or os.environ.get("NCCL_SOCKET_IFNAME") or ""
    return [] if value.startswith("^") else [n for n in value.lstrip("=").split(",") if n]


def _iface_problems(names: list[str], present: list[str], where: str = "here", host: str = "") -> list[str]:
    prefix = f"{host}: " if host else ""
    return [f"{prefix}interface {n} not found {where} (NCCL_SOCKET_IFNAME/GLOO_SOCKET_IFNAME or --iface): "
            f"ip -br link lists them" for n in names if n not in present]


def _differs(here: dict, there: dict) -> str | None:
    """None when the same; else "missing" or a few words on what differs."""
    if not there.get("exists"):
        return "missing"
    if "files" not in here:
        return None if (here["size"], here["sha256"]) == (there.get("size"), there.get("sha256")) else "size or sha256"
    theirs = there.get("files") or {}
    odd = [name for name, f in here["files"].items() if theirs.get(name) != f]
    return f"{len(odd)} of its {len(here['files'])} files missing or different, e.g. {odd[0]}" if odd else None


def _ask(host: str, python: str, paths: list[Path]) -> subprocess.Popen:
    command = [python, "-m", "training", "host-facts", *map(str, paths), "--json"]
    return subprocess.Popen(ssh_argv(host, command), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _answer(host: str, python: str, proc: subprocess.Popen) -> tuple[dict | None, str | None]:
    """(facts, None), or (None, the one-line problem)."""
    try:
        out, err = proc.communicate(timeout=FACTS_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return None, f"{host}: no answer in {FACTS_TIMEOUT} s: check the host is not overloaded and try again"
    said = next((line.strip() for line in reversed(err.splitlines()) if line.strip()), f"exit {proc.returncode}")
    if proc.returncode == 255:  # ssh's own failure: the command never ran
        return None, (f"{host}: cannot log in over SSH without a password ({said.rsplit(': ', 1)[-1]}): check the "
                      f"host is up and run ssh-copy-id {host}")
    line = next((line for line in reversed(out.splitlines()) if line.startswith("{")), None)
    if proc.returncode == 0 and line:
        with contextlib.suppress(ValueError):
            return json.loads(line), None
    return None, (f"{host}: `{python} -m training host-facts` failed there ({said}): install {PROJECT} there "
                  f"with the same python path (or give --remote-python)")


def _compare(host: str, here: dict, there: dict, base: Path, data: list[Path], names: list[str],
             sync: bool) -> tuple[list[str], list[Path]]:
    """The problems of one host, and the data files that --sync would copy."""
    problems = []
    if there.get("version") != here["version"]:
        problems.append(f"{host}: {PROJECT} {there.get('version')} there, {here['version']} here: install the same "
                        f"version on both hosts")
    if there.get("torch") != here["torch"]:
        problems.append(f"{host}: torch {there.get('torch') or 'missing'} there, {here['torch'] or 'missing'} here: "
                        f"install the same torch on both hosts")
    problems += _iface_problems(names, there.get("interfaces", []), "there", host)
    ours, theirs = here["paths"], there.get("paths", {})
    if ours[str(base)]["exists"] and (why := _differs(ours[str(base)], theirs.get(str(base), {}))):
        problems.append(f"{host}: base model {base} {'is missing' if why == 'missing' else f'differs ({why})'} there: "
                        f"copy it to the same path (or mount it)" + ("; --sync copies only the data" if sync else ""))
    stale = []
    for path in data:
        if ours[str(path)]["exists"] and (why := _differs(ours[str(path)], theirs.get(str(path), {}))):
            stale.append(path)
            problems.append(f"{host}: data {path} {'is missing' if why == 'missing' else 'differs'} there"
                            f"{' (size or sha256)' if why != 'missing' else ''}: give --sync to copy it, or copy it "
                            f"yourself")
    return problems, stale


def sync_data(host: str, files: list[Path]) -> str | None:
    """Copy data files to the same absolute paths on `host` with rsync over the same ssh; None, or the problem."""
    if not shutil.which("rsync"):
        return "--sync needs rsync on this host: sudo apt install rsync"
    argv = ["rsync", "-a", "--relative", "--no-implied-dirs", "-e", shlex.join(ssh_base()), *map(str, files), f"{host}:/"]
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=FACTS_TIMEOUT)
    if proc.returncode == 0:
        return None
    said = next((line.strip() for line in reversed(proc.stderr.splitlines()) if line.strip()), "")
    return f"{host}: --sync could not copy the data ({said or f'rsync exit {proc.returncode}'}): is rsync installed there?"


def preflight(hosts: list[str], *, base: Path | None, data: Path | None, master_addr: str, port: int,
              iface: str | None, python: str = sys.executable, sync: bool = False) -> list[str]:
    """Every problem that would stop a run over `hosts` (this host is the master), one line each; [] when ready.
    With `sync`, data missing or different on a host is copied there first (never the base model)."""
    unnamed = [f"no {what} given: give {flag}" for what, flag, value in
               (("base model", "--base", base), ("training data", "--data", data)) if not value]
    if unnamed:   # `run --hosts` without them (a resume reads them from run.json first)
        return unnamed
    base, data = Path(base).absolute(), Path(data).absolute()
    files = data_files(data)
    asked = {host: _ask(host, python, [base, *files]) for host in hosts}   # the hosts hash while this one does
    here = host_facts([base, *files])
    names = iface_names(iface)
    problems = [*_port_problems(master_addr, port), *_iface_problems(names, here["interfaces"])]
    if not names:
        problems.append("no network interface named (NCCL_SOCKET_IFNAME/GLOO_SOCKET_IFNAME or --iface): name the one "
                        "on the link between the hosts; ip -br link lists them")
    if not here["paths"][str(base)].get("files"):
        problems.append(f"base model {base} is not a model folder here: give --base the Base model folder")
    problems += [f"data {p} is missing here: give --data the training JSONL (and its reference audio)"
                 for p in files if not here["paths"][str(p)]["exists"]]
    for host, proc in asked.items():
        there, trouble = _answer(host, python, proc)
        if trouble:
            problems.append(trouble)
            continue
        found, stale = _compare(host, here, there, base, files, names, sync)
        if sync and stale:
            trouble = sync_data(host, stale)
            if trouble:
                problems.append(trouble)
            else:
                there, trouble = _answer(host, python, _ask(host, python, [base, *files]))
                found, _stale = _compare(host, here, there, base, files, names, sync) if there else ([trouble], [])
        problems += found
    return problems
