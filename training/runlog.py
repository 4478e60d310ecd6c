"""The trainer's log: lines to the console and to the run's train.log, errors as one line on stderr."""
from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path


class RunLog:
    """Lines to the console and to train.log. A supervisor may already send our stdout/stderr to
    train.log; then each line is written once (we notice that the descriptor is the same file)."""

    def __init__(self, path: Path | None, prefix: str = "", quiet: bool = False):
        self.path, self.prefix, self.file, self.quiet = path, prefix, None, quiet
        self.stdout_is_log = self.stderr_is_log = False
        if path is not None:
            self.file = open(path, "a", encoding="utf-8", buffering=1)
            mine = os.fstat(self.file.fileno())
            for name in ("stdout", "stderr"):
                try:
                    st = os.fstat(getattr(sys, name).fileno())
                    same = (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)
                except (OSError, ValueError, AttributeError):
                    same = False
                setattr(self, f"{name}_is_log", same)

    def _to_file(self, text: str) -> None:
        if self.file is not None:
            try:
                self.file.write(text)
            except OSError:
                pass  # a full disk must not turn a log line into a second error

    def info(self, msg: str, all_ranks: bool = False) -> None:
        if self.quiet and not all_ranks:
            return
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {self.prefix}{msg}\n"
        if not self.stdout_is_log:
            self._to_file(line)
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.write(line)
            sys.stdout.flush()

    def error(self, msg: str, trace: str | None = None) -> None:
        """One line on stderr; the traceback (if any) only to train.log."""
        line = f"milo-train: error: {self.prefix}{msg}\n"
        if not self.stderr_is_log:
            self._to_file(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}")
        if trace and self.file is not None:
            self._to_file(trace if trace.endswith("\n") else trace + "\n")
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.write(line)
            sys.stderr.flush()

    def close(self) -> None:
        if self.file is not None:
            with contextlib.suppress(OSError):
                self.file.close()
