"""Sizes on disk, said and read the same way by every process (the dashboard, prune, adopt, the trainer)."""
from __future__ import annotations


def fmt_bytes(n: int | float | None) -> str:
    if n is None:
        return "N/A"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def parse_size(text: str) -> int:
    """'50G', '800M', '1.5T', or bytes; ValueError with one line otherwise."""
    t = str(text).strip().upper().removesuffix("B").removesuffix("I")
    factor = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3, "T": 1024 ** 4}.get(t[-1:], 1)
    number = t[:-1] if factor > 1 else t
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"{text!r} is not a size: give bytes, or a number with K, M, G or T (e.g. 50G)") from None
    if value < 0:
        raise ValueError(f"{text!r}: a size cannot be negative")
    return int(value * factor)


def size_text(n: int) -> str:
    """Bytes as parse_size reads them back exactly: the largest unit that divides them ('40G'), else bytes."""
    for unit, factor in (("T", 1024 ** 4), ("G", 1024 ** 3), ("M", 1024 ** 2), ("K", 1024)):
        if n and n % factor == 0:
            return f"{n // factor}{unit}"
    return str(n)
