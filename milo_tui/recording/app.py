"""`milo-tui record SESSION_DIR [--script FILE] [--mic spark|laptop]`: the record screen on its own (the runs
screen opens the same screen with `M`). Everything wrong with the command line is one line, before any
audio device is opened or any file written."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from textual.app import App

from contract import recording as cr
from contract.configfile import ConfigError, config_file, read_config
from contract.listen import DEFAULT_PORT, parse_device
from milo_tui.recording.mic import MicError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="milo-tui record",
        description="Record a scripted corpus, every take checked while the speaker is at the microphone "
                    "(docs/recording.md). The folder holds the whole session: run the same command again to go on.")
    p.add_argument("session", metavar="SESSION_DIR", help="the session's folder (made when new)")
    p.add_argument("--script", metavar="FILE", help="UTF-8 text, one prompt per line (default: the starter script; "
                                                     "only when the session is new)")
    p.add_argument("--mic", choices=("spark", "laptop"), default="spark",
                   help="spark: an input device on this machine; laptop: the laptop's microphone through "
                        "`milo-listen --mic` and `ssh -R PORT:127.0.0.1:PORT`")
    p.add_argument("--device", metavar="DEV", help="the input device on this machine (name or index; default: the "
                                                   "system's default input)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"milo-listen's port (default {DEFAULT_PORT})")
    return p


def open_mic(kind: str, device: str | None = None, port: int = DEFAULT_PORT):
    from milo_tui.recording.mic import LaptopMic, LocalMic

    if kind == "laptop":
        return LaptopMic(port=port)
    return LocalMic(parse_device(device))


class RecordApp(App):
    CSS_PATH = Path(__file__).parent.parent / "milo.tcss"
    TITLE = "milo-tui record"

    def __init__(self, session: cr.Session, mic, settings: dict, **screen_kwargs) -> None:
        super().__init__()
        self.session, self.mic, self.settings, self.screen_kwargs = session, mic, settings, screen_kwargs

    def on_mount(self) -> None:
        from milo_tui.recording.screen import RecordScreen

        self.push_screen(RecordScreen(self.session, self.mic, self.settings, **self.screen_kwargs),
                         lambda _: self.exit())


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = cr.record_settings(read_config(), config_file())
        session = cr.Session.open(Path(args.session), Path(args.script) if args.script else None,
                                  heldout_every=int(settings["heldout_every"]))
    except (ConfigError, cr.SessionError) as exc:
        print(f"milo-tui record: error: {exc}", file=sys.stderr)
        return 2
    try:
        mic = open_mic(args.mic, args.device, args.port)
    except MicError as exc:
        print(f"milo-tui record: error: {exc}", file=sys.stderr)
        return 1
    RecordApp(session, mic, settings).run()
    kept = session.kept()
    print(f"milo-tui record: {len(kept)} take(s) kept, {session.kept_seconds() / 60:.1f} min, in "
          f"{session.folder / cr.CORPUS}; train on it with: milo-train prepare {session.folder / cr.CORPUS} "
          f"--base BASE --out DATA.jsonl")
    return 0
