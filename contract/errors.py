"""An exception said in one line: what every process shows an operator in a log, a table cell or an event.
Torch-free. (contract/listen.py keeps its own copy: it is one self-contained file a laptop copies.)"""
from __future__ import annotations

ONE_LINE_MAX = 200


def one_line(exc: BaseException, limit: int = ONE_LINE_MAX) -> str:
    """"Type: first line": libraries append whole tracebacks and lists of every model type they know, so only
    the first non-blank line is kept, its whitespace collapsed, cut at `limit` characters; the type alone
    when the exception says nothing."""
    lines = [x for x in str(exc).splitlines() if x.strip()]
    text = " ".join(lines[0].split()) if lines else ""
    if len(text) > limit:
        text = text[: limit - 3].rstrip() + "..."
    return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__
