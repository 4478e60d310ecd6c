"""One way to say an exception in one line, for every process (contract/errors.py)."""
from __future__ import annotations

from contract.errors import one_line


def test_an_exception_is_its_type_and_first_line_cut_short():
    assert one_line(ValueError("bad value")) == "ValueError: bad value"
    assert one_line(OSError()) == "OSError"
    assert one_line(RuntimeError("\n  first   line \nTraceback (most recent call last):\n  ...")) == "RuntimeError: first line"
    long = one_line(KeyError("x" * 500))
    assert long.startswith("KeyError: 'xxx") and long.endswith("...") and len(long) == len("KeyError: ") + 200
    assert one_line(ValueError("y" * 50), limit=10) == "ValueError: yyyyyyy..."
