"""Byte-offset tailing of append-only files (metrics.jsonl, train.log).

A FileTail remembers how far it has read. Each `read` returns the complete lines appended since, and
leaves a torn last line in the file until its newline arrives. It starts over when the file shrinks
(truncated) or is another file (replaced: a new inode). Who decides *when* to read is the caller
(RunWatcher: watchfiles wake-ups, with a poll as fallback); the offset is the truth either way.
"""
from __future__ import annotations

import mmap
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from milo_tui.metrics import MetricsBatch, decode_lines, sample_span

SAMPLE_ABOVE = 4 << 20  # a metrics backlog larger than this is sampled, not parsed line by line
READ_LIMIT = 8 << 20  # at most this much is read line by line per call (the rest on the next call)
LOG_BACKLOG = 64 << 10  # a log is opened at its last 64 KiB


@dataclass
class FileTail:
    path: Path
    offset: int = 0
    _ident: tuple[int, int] | None = None
    _file: BinaryIO | None = None  # kept open between reads (reopened when the file is replaced)

    def _check(self) -> tuple[int, bool] | None:
        """(size, reset) of the file now, or None when it does not exist."""
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        ident = (st.st_dev, st.st_ino)
        reset = False
        if self._ident is not None and (ident != self._ident or st.st_size < self.offset):
            self.offset, reset = 0, True
        if ident != self._ident:
            self.close()
        self._ident = ident
        return st.st_size, reset

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def pending(self) -> tuple[int, int, bool] | None:
        """(offset, size, reset): what is there to read, without reading it."""
        checked = self._check()
        if checked is None:
            return None
        size, reset = checked
        return self.offset, size, reset

    def read(self, limit: int = READ_LIMIT) -> tuple[bytes, bool]:
        """The complete lines appended since the last read (at most about `limit` bytes), and whether the
        file was truncated or replaced since (the caller then forgets what it had)."""
        checked = self._check()
        if checked is None:
            return b"", False
        size, reset = checked
        if size <= self.offset:
            return b"", reset
        try:
            if self._file is None:
                self._file = open(self.path, "rb")
            self._file.seek(self.offset)
            buf = self._file.read(min(size - self.offset, limit))
        except OSError:
            self.close()
            return b"", reset
        end = buf.rfind(b"\n")
        if end < 0:
            if len(buf) >= limit:  # one line longer than the limit: skip it rather than stall
                self.offset += len(buf)
            return b"", reset
        self.offset += end + 1
        return buf[: end + 1], reset

    def skip_to(self, offset: int) -> None:
        self.offset = offset


class MetricsReader:
    """metrics.jsonl -> MetricsBatch; a large backlog is sampled (milo_tui.metrics.sample_span)."""

    def __init__(self, path: Path) -> None:
        self.tail = FileTail(Path(path))
        self.first = True

    def read(self) -> MetricsBatch | None:
        pending = self.tail.pending()
        if pending is None:
            return None
        offset, size, reset = pending
        reset = reset or self.first
        self.first = False
        if size - offset > SAMPLE_ABOVE:
            try:
                with open(self.tail.path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                    end = mm.rfind(b"\n", offset, size) + 1
                    if end > offset:
                        batch = sample_span(mm, offset, end, reset=reset)
                        self.tail.skip_to(end)
                        return batch
            except (OSError, ValueError):
                pass
        buf, again = self.tail.read()
        batch = decode_lines(buf, reset=reset or again)
        return batch if batch else None


def split_log(buf: bytes) -> list[str]:
    """Log lines as text: a carriage-return progress bar keeps only its last state, bad bytes are replaced."""
    text = buf.decode("utf-8", errors="replace")
    return [line.rsplit("\r", 1)[-1].rstrip() for line in text.split("\n")[:-1]]


class LogReader:
    """train.log -> text lines, opened at its last LOG_BACKLOG bytes."""

    def __init__(self, path: Path) -> None:
        self.tail = FileTail(Path(path))
        self.first = True

    def read(self) -> tuple[list[str], bool] | None:
        """(new lines, reset) or None when there is nothing new."""
        pending = self.tail.pending()
        if pending is None:
            return None
        offset, size, reset = pending
        reset = reset or self.first
        if self.first and size > LOG_BACKLOG:
            # start at a line boundary inside the last LOG_BACKLOG bytes
            with open(self.tail.path, "rb") as f:
                f.seek(size - LOG_BACKLOG)
                head = f.read(LOG_BACKLOG)
            cut = head.find(b"\n")
            self.tail.skip_to(size - LOG_BACKLOG + cut + 1 if cut >= 0 else size)
        self.first = False
        buf, again = self.tail.read()
        if not buf and not (reset or again):
            return None
        return split_log(buf), reset or again


def last_lines(path: Path, count: int, max_bytes: int = 32 << 10) -> list[bytes]:
    """The last `count` complete lines of a file (reading at most `max_bytes` from its end)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            buf = f.read()
    except OSError:
        return []
    end = buf.rfind(b"\n")
    if end < 0:
        return []
    lines = buf[:end].split(b"\n")
    if size > max_bytes:
        lines = lines[1:]  # the first one is probably cut
    return lines[-count:]
