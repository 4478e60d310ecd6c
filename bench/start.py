"""Start benchmarks (docs/benchmarks.md, "Start"): the operator's wait, in a real terminal (tmux).

  1. command to first frame, everything installed and the demo workspace present: `scripts/run.sh`
     (bootstrap's checks, then the dashboard) and `milo-tui --demo` alone, against a bare Textual app
     measured in the same run (ratio);
  2. with --first: the first start, with a fresh HOME so that the demo workspace is made, and the lines
     the terminal showed while the operator waited.

With --before DIR (another checkout, e.g. `git worktree add /tmp/before <commit>` with its .venv linked to
this one's), its scripts/run.sh is timed in the same loop, alternating, and the table gives the ratio.

A frame is "drawn" when capture-pane first shows the dashboard's text. Polled every 20 ms. Run from the
repository root (scripts/run.sh uses the .venv there):

    python bench/start.py [--repeat 5] [--first] [--before DIR] [--work /tmp/milo-bench-start] [--quick]
"""
from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = "milo-tui ·"  # the header of its first frame
BARE_APP = """
from textual.app import App
from textual.widgets import Static
class Bare(App):
    def compose(self):
        yield Static("bare textual frame")
Bare().run()
"""


class Pane:
    """One tmux server with one pane running `argv`; `until(text)` is the time `text` first showed."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path = ROOT, width: int = 100,
                 height: int = 30) -> None:
        self.socket = f"milo-bench-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        keep = {k: v for k, v in env.items()
                if k in ("PYTHONPATH", "PATH", "HOME", "TERM") or k.startswith(("XDG_", "MILO_"))}
        cmd = f"cd {shlex.quote(str(cwd))} && env -u COLUMNS -u LINES " \
              f"{' '.join(f'{k}={shlex.quote(v)}' for k, v in keep.items())} {shlex.join(argv)}; sleep 60"
        self.started = time.monotonic()
        self._tmux("-f", "/dev/null", "new-session", "-d", "-s", "b", "-x", str(width), "-y", str(height), cmd)
        self.seen: list[tuple[float, str]] = []  # (seconds since start, line) for each new line shown

    def _tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True).stdout

    def until(self, text: str, timeout: float) -> float:
        deadline = self.started + timeout
        known: set[str] = set()
        while time.monotonic() < deadline:
            screen = self._tmux("capture-pane", "-p", "-t", "b")
            now = time.monotonic() - self.started
            if text in screen:
                return now
            for line in screen.splitlines():
                if line.strip() and line not in known:
                    known.add(line)
                    self.seen.append((now, line.rstrip()))
            time.sleep(0.02)
        raise SystemExit(f"{text!r} did not show within {timeout} s; last screen:\n{screen}")

    def close(self) -> None:
        self._tmux("kill-server")


def env_for(home: Path, checkout: Path = ROOT) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",) and not k.startswith(("XDG_", "MILO_"))}
    env.update(HOME=str(home), TERM="xterm-256color", PYTHONPATH=str(checkout))
    return env


def first_frame(argv: list[str], env: dict[str, str], marker: str, cwd: Path = ROOT,
                timeout: float = 120) -> float:
    pane = Pane(argv, env, cwd)
    try:
        return pane.until(marker, timeout)
    finally:
        pane.close()


def bench_warm(work: Path, repeat: int, before: Path | None) -> dict:
    home = work / "home"
    env = env_for(home)
    first_frame(["scripts/run.sh"], env, DASHBOARD, timeout=600)  # makes the workspace if missing
    python = str(ROOT / ".venv" / "bin" / "python")
    rows: dict[str, list[float]] = {"bare": [], "milo": [], "run": []} | ({"before": []} if before else {})
    for _ in range(repeat):  # interleaved, so that load on the machine falls on all alike
        rows["bare"].append(first_frame([python, "-c", BARE_APP], env, "bare textual frame"))
        rows["milo"].append(first_frame([python, "-m", "milo_tui", "--demo"], env, DASHBOARD))
        rows["run"].append(first_frame(["scripts/run.sh"], env, DASHBOARD))
        if before:
            rows["before"].append(first_frame(["scripts/run.sh"], env_for(home, before), DASHBOARD, before))
    return {k: statistics.median(v) for k, v in rows.items()} | {f"{k}_all": v for k, v in rows.items()}


def bench_first(work: Path, checkout: Path = ROOT) -> dict:
    home = work / "fresh-home"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    pane = Pane(["scripts/run.sh"], env_for(home, checkout), checkout)
    try:
        total = pane.until(DASHBOARD, timeout=600)
    finally:
        pane.close()
    return {"total": total, "seen": pane.seen}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--first", action="store_true", help="also time the first start (fresh HOME, ~1 min)")
    ap.add_argument("--before", type=Path, metavar="DIR", help="another checkout to time alongside (same run)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/milo-bench-start"))
    ap.add_argument("--quick", action="store_true",
                    help="the smallest setting, for tests/foundation/test_bench.py: proves the benchmark runs, measures nothing")
    args = ap.parse_args()
    if args.quick:
        args.repeat = 1
    for checkout in (ROOT, args.before) if args.before else (ROOT,):
        if not (checkout / ".venv" / "bin" / "milo-tui").exists():
            print(f"bench/start.py: error: no .venv in {checkout}: run its scripts/run.sh once first (or link "
                  f"this one's .venv there)", file=sys.stderr)
            return 2
    args.work.mkdir(parents=True, exist_ok=True)
    firsts = {}
    if args.first:
        for label, checkout in [("before", args.before)] * bool(args.before) + [("this checkout", ROOT)]:
            firsts[label] = first = bench_first(args.work, checkout)
            print(f"first start (fresh HOME), {label}: when each line first showed (a counting line, last count)")
            shown: dict[str, tuple[float, str]] = {}  # a line without its count -> (first seen, last seen)
            for t, line in first["seen"]:
                key = re.sub(r"  \d+ s$", "", line)
                shown[key] = (shown.get(key, (t, line))[0], line)
            for t, line in shown.values():
                print(f"  {t:6.2f} s  {line[:100]}")
    warm = bench_warm(args.work, args.repeat, args.before)
    print(f"\ncommand to first frame, workspace present, median of {args.repeat} (tmux 100x30):")
    print(f"  {'':32} {'seconds':>8} {'ratio to bare':>14}   all")
    rows = [("bare", "bare Textual app (baseline)"), ("milo", "milo-tui --demo"), ("run", "scripts/run.sh")]
    for key, label in rows + [("before", "scripts/run.sh, before")] * bool(args.before):
        runs = " ".join(f"{t:.2f}" for t in warm[f"{key}_all"])
        print(f"  {label:32} {warm[key]:8.2f} {warm[key] / warm['bare']:13.2f}x   {runs}")
    if args.before:
        print(f"  {'scripts/run.sh, this / before':32} {warm['run'] / warm['before']:8.2f}x")
    for label, first in firsts.items():
        print(f"  {'first start (' + label + ')':32} {first['total']:8.2f} {first['total'] / warm['bare']:13.2f}x")
    if len(firsts) == 2:
        print(f"  {'first start, this / before':32} {firsts['this checkout']['total'] / firsts['before']['total']:8.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
