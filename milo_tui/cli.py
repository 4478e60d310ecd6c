"""`milo-tui`: resolve the configuration, find (or create) the workspace, open the dashboard."""
from __future__ import annotations

import argparse
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

from milo_tui import __version__
from milo_tui.config import ConfigError, Settings, config_file, load_settings


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="milo-tui",
        description="Fine-tune, watch and audition Qwen3-TTS voices from one terminal dashboard. "
                    "With no base model configured it opens the demo workspace.",
        epilog=f"`milo-tui record SESSION_DIR` records a corpus (milo-tui record --help). "
               f"Configuration file: {config_file()} (see docs/configuration.md).",
    )
    p.add_argument("--demo", action="store_true", help="open the demo workspace (tiny model, synthetic corpus)")
    p.add_argument("--base", dest="base_model", metavar="DIR", help="Qwen3-TTS-12Hz Base model folder")
    p.add_argument("--checkpoints", metavar="DIR", help="folder holding the training runs")
    p.add_argument("--data", metavar="PATH", help="corpus folder or training JSONL")
    p.add_argument("--device", metavar="DEV", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--demo-dir", metavar="DIR", help="where the demo workspace lives")
    p.add_argument("--ascii", action="store_true", default=None,
                   help="ASCII charts and borders (default: when the locale is not UTF-8, or ui.ascii in config.toml)")
    p.add_argument("--print-config", action="store_true", help="print the resolved configuration and exit")
    p.add_argument("--version", action="version", version=f"milo-tui {__version__}")
    return p


class StepPrinter:
    """Prints the lines of a long preparation (the demo workspace's steps) before the dashboard opens. On a
    terminal the current step's line counts its seconds in place, so that a 20 s step is visibly alive, and
    keeps its final count when the next line comes; elsewhere each line is printed once, a step's with the
    seconds since the first line."""

    TICK_S = 0.5

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self.stream = stream
        self.live = stream.isatty()
        self.first: float | None = None
        self.step: str | None = None  # the step line being counted
        self.since = 0.0
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.ticker: threading.Thread | None = None

    def __call__(self, line: str) -> None:
        with self.lock:
            now = time.monotonic()
            self.first = now if self.first is None else self.first
            is_step = line.startswith("  step")
            if not self.live:
                print(f"{line}  (at {now - self.first:.0f} s)" if is_step else line, file=self.stream, flush=True)
                return
            self._draw(end="\n")  # the previous step keeps its final count
            if not is_step:
                self.step = None
                print(line, file=self.stream, flush=True)
                return
            self.step, self.since = line, now
            self._draw()
            if self.ticker is None:
                self.ticker = threading.Thread(target=self._tick, name="step-printer", daemon=True)
                self.ticker.start()

    def _draw(self, end: str = "") -> None:
        if self.step is None:
            return
        count = f"  {time.monotonic() - self.since:.0f} s"
        room = shutil.get_terminal_size().columns - len(count) - 1  # one row, or \r cannot redraw it
        self.stream.write(f"\r\x1b[K{self.step[:room]}{count}{end}")
        self.stream.flush()

    def _tick(self) -> None:
        while not self.stopped.wait(self.TICK_S):
            with self.lock:
                self._draw()

    def close(self) -> None:
        self.stopped.set()
        if self.ticker is not None:
            self.ticker.join()
        with self.lock:
            self._draw(end="\n")
            self.step = None


def resolve_workspace(args: argparse.Namespace, progress=lambda s: None) -> Settings:
    """Settings for this session; the demo workspace when asked for or when no base model is set."""
    flags = {k: getattr(args, k) for k in ("base_model", "checkpoints", "data", "device", "demo_dir")}
    settings = load_settings(flags)
    if args.demo or settings.base_model is None:
        from milo_tui.demo import ensure_demo_workspace

        ws = ensure_demo_workspace(settings.demo_dir, progress=progress)
        values = {"base_model": ws.base, "data": ws.corpus}
        if settings.source("checkpoints") == "default":
            values["checkpoints"] = ws.checkpoints
        settings = settings.with_values("demo workspace", **values)
        settings = Settings(**{**settings.__dict__, "demo": True})
    return settings


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["record"]:
        from milo_tui.recording.app import main as record

        return record(argv[1:])
    args = build_parser().parse_args(argv)
    steps = StepPrinter()
    try:
        try:
            settings = resolve_workspace(args, progress=steps)
        finally:
            steps.close()  # before any error line, which would otherwise land on a counting line
    except ConfigError as exc:
        print(f"milo-tui: error: {exc}", file=sys.stderr)
        return 2
    except (OSError, RuntimeError) as exc:
        print(f"milo-tui: error: cannot prepare the workspace: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl+C while the demo workspace is made: nothing half-made is left behind
        print("milo-tui: interrupted: the demo workspace was not made; the next start makes it", file=sys.stderr)
        return 130
    if args.print_config:
        for key in ("base_model", "checkpoints", "data", "device", "demo_dir"):
            print(f"{key:12} {getattr(settings, key)!s:60} ({settings.source(key)})")
        return 0
    Path(settings.checkpoints).mkdir(parents=True, exist_ok=True)
    from milo_tui.app import MiloApp

    app = MiloApp(settings, ascii=args.ascii)
    app.run()
    live = [r.name for r in app.runs.values() if r.live]
    if live:
        print(f"milo-tui: still training in the background: {', '.join(live)} (open milo-tui again to watch)")
    return 0
