"""The other hosts of a run across hosts, seen from the dashboard (docs/multi-node.md, "In the dashboard").

For each other host of a live run the dashboard keeps one SSH session open to a small sampler on that host:

    ssh HOST PYTHON -m milo_tui.telemetry.remote --pid PID --log LOG --disk DIR

(PID, LOG and PYTHON are the launcher's, from state.json's `hosts`). About once a second the sampler prints one
JSON line: its rank (`up`: torchrun's trainer is running, `starting`: torchrun waits in the rendezvous, `gone`),
its GPU and host telemetry (the same Telemetry the local sampler makes, milo_tui.telemetry.to_dict), and the
lines its trainer's log gained since. The dashboard reads those lines like the local ones: the GPU panel shows
each host, the runs line says each rank's state, the log pane can show each host's log. Nothing is started on
the other host but the sampler, and it ends with its SSH session (its next line finds the pipe closed).

A session that ends (the host rebooted, the link dropped) is reported `unreachable`, with ssh's last words, and
opened again every RETRY_S while the run is live. Reading never blocks the dashboard: one thread per host.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from milo_tui.telemetry import Telemetry, from_dict, to_dict
from milo_tui.telemetry.history import TelemetryHistory

INTERVAL_S = 1.0
RETRY_S = 5.0
LOG_LINES = 500          # what the dashboard keeps of each host's log
UP, STARTING, GONE, UNREACHABLE, CONNECTING = "up", "starting", "gone", "unreachable", "connecting"
UNKNOWN = "unknown"      # ssh reached the host, but its sampler ended (the error says why): the rank is not known
SSH_FAILED = 255         # ssh's own exit status: the host was not reached


# ---------------------------------------------------------------------------------------------- the other host

def rank_state(pid: int, psutil_module=None) -> str:
    """`up` when torchrun `pid` has a live child (its trainer), `starting` when torchrun alone runs (the
    rendezvous), `gone` otherwise: the launcher's own test (training/launch.py, Remote.alive)."""
    import psutil

    ps = psutil_module or psutil
    try:
        proc = ps.Process(pid)
        if proc.status() == ps.STATUS_ZOMBIE:
            return GONE
        live = [c for c in proc.children() if c.status() != ps.STATUS_ZOMBIE]
    except (ps.NoSuchProcess, ps.AccessDenied):
        return GONE
    return UP if live else STARTING


def sample_forever(pid: int, log: Path, disk: Path, interval: float, out=sys.stdout) -> None:
    """Print one report a line until the reader goes (a closed pipe ends it quietly)."""
    from milo_tui.tail import LogReader
    from milo_tui.telemetry.source import TelemetrySource

    source, reader, host = TelemetrySource(disk), LogReader(log), socket.gethostname()
    try:
        while True:
            started = time.monotonic()
            lines, reset = reader.read() or ([], False)
            report = {"host": host, "rank": rank_state(pid), "telemetry": to_dict(source.sample()),
                      "log": lines[-LOG_LINES:], "log_reset": reset}
            out.write(json.dumps(report, separators=(",", ":")) + "\n")
            out.flush()
            time.sleep(max(0.05, interval - (time.monotonic() - started)))
    except (BrokenPipeError, KeyboardInterrupt):
        pass
    finally:
        source.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m milo_tui.telemetry.remote",
                                     description="a run's rank, GPU and log on this host, one JSON line a second")
    parser.add_argument("--pid", type=int, required=True, help="the remote torchrun's pid (state.json hosts)")
    parser.add_argument("--log", type=Path, required=True, help="its log on this host")
    parser.add_argument("--disk", type=Path, default=Path("/"), help="the folder whose disk's free space is shown")
    parser.add_argument("--interval", type=float, default=INTERVAL_S)
    args = parser.parse_args(argv)
    sample_forever(args.pid, args.log, args.disk if args.disk.exists() else Path("/"), args.interval)
    try:
        sys.stdout.close()
    except BrokenPipeError:
        pass
    return 0


# ---------------------------------------------------------------------------------------------- the dashboard

@dataclass(frozen=True)
class HostReport:
    """One change on one other host of a run, from its link's thread to the dashboard's handler."""
    host: str
    run_dir: Path
    rank: str                          # UP, STARTING, GONE, UNREACHABLE, UNKNOWN
    telemetry: Telemetry | None = None
    error: str | None = None           # why it cannot be reached (ssh's last line)
    log: tuple[str, ...] = ()          # the lines its log gained
    log_reset: bool = False            # the lines before these are not its log's (opened anew, or replaced)


@dataclass
class HostView:
    """What the dashboard knows of one other host of a run (owned by the app's handler: `apply` each report)."""
    host: str
    run_dir: Path
    rank: str = CONNECTING
    history: TelemetryHistory = field(default_factory=TelemetryHistory)  # its GPU panel section's
    error: str | None = None
    seen_at: float | None = None       # when its last report came (time.time)
    log: deque = field(default_factory=lambda: deque(maxlen=LOG_LINES))

    def apply(self, r: HostReport, now: float) -> None:
        if r.log_reset:
            self.log.clear()
        self.log.extend(r.log)
        self.rank, self.error = r.rank, r.error
        if r.telemetry is not None:
            self.history.add(r.telemetry)
            self.seen_at = now


@dataclass(frozen=True)
class HostEntry:
    """One other host of a live run, as state.json's `hosts` names it (the launcher writes it)."""
    host: str
    pid: int
    log: str
    python: str | None                 # None: the dashboard's own python path (the same on every host)
    run_dir: Path


def host_entries(run_dir: Path, state: dict) -> tuple[HostEntry, ...]:
    hosts = state.get("hosts")
    return tuple(HostEntry(h["host"], h["pid"], str(h.get("log") or ""), h.get("python"), Path(run_dir))
                 for h in (hosts if isinstance(hosts, list) else ())
                 if isinstance(h, dict) and isinstance(h.get("host"), str) and isinstance(h.get("pid"), int)
                 and not isinstance(h.get("pid"), bool))


class HostLink:
    """One SSH session to one host's sampler; `report` is called from its thread with each HostReport."""

    def __init__(self, entry: HostEntry, report: Callable[[HostReport], None], python: str,
                 interval: float = INTERVAL_S) -> None:
        self.entry, self.report, self.interval = entry, report, interval
        self.python = entry.python or python
        self.proc: subprocess.Popen | None = None
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"host {entry.host}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def argv(self) -> list[str]:
        from contract.ssh import ssh_argv

        e = self.entry
        return ssh_argv(e.host, [self.python, "-m", "milo_tui.telemetry.remote", "--pid", str(e.pid), "--log", e.log,
                                 "--disk", str(e.run_dir), "--interval", str(self.interval)])

    def _run(self) -> None:
        while not self.stopped.is_set():
            rank, said = self._session()
            if self.stopped.is_set():
                break
            self.report(HostReport(self.entry.host, self.entry.run_dir, rank, error=said))
            self.stopped.wait(RETRY_S)

    def _session(self) -> tuple[str, str]:
        """One SSH session, read to its end: UNREACHABLE (ssh failed) or UNKNOWN (the sampler ended), and why."""
        try:
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True, start_new_session=True)
        except OSError as exc:
            return UNREACHABLE, f"ssh could not start: {exc}"
        errors: deque[str] = deque(maxlen=3)
        drain = threading.Thread(target=lambda: errors.extend(self.proc.stderr), daemon=True)
        drain.start()
        e = self.entry
        for line in self.proc.stdout:
            try:
                d = json.loads(line)
                report = HostReport(e.host, e.run_dir, str(d["rank"]), from_dict(d["telemetry"]),
                                    log=tuple(str(x) for x in d.get("log") or ()), log_reset=bool(d.get("log_reset")))
            except (ValueError, TypeError, KeyError, AttributeError):
                continue  # not a sampler's line (a login banner, a newer sampler's field this side cannot read)
            self.report(report)
        self.proc.wait()
        drain.join(timeout=2)
        last = next((x.strip() for x in reversed(errors) if x.strip()), None)
        if self.proc.returncode == SSH_FAILED:
            return UNREACHABLE, last or f"ssh to {e.host} failed"
        return UNKNOWN, f"its sampler ended (exit {self.proc.returncode})" + (f": {last}" if last else "")

    def stop(self) -> None:
        self.stopped.set()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # the ssh client; the sampler there ends at its next line


class HostLinks:
    """The links the live runs need: `want(entries)` opens the missing ones and closes those no longer named
    (called from the dashboard's event loop only: opening and closing never wait)."""

    def __init__(self, report: Callable[[HostReport], None], python: str = sys.executable,
                 interval: float = INTERVAL_S) -> None:
        self.report, self.python, self.interval = report, python, interval
        self.links: dict[HostEntry, HostLink] = {}

    def want(self, entries) -> None:
        for entry in set(self.links) - set(entries):
            self.links.pop(entry).stop()
        for entry in entries:
            if entry not in self.links:
                link = self.links[entry] = HostLink(entry, self.report, self.python, self.interval)
                link.start()

    def close(self) -> None:
        self.want([])


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
