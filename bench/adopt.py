"""What adopting an official output folder reads (docs/benchmarks.md, "Adopting a folder"): `link_identical`
on checkpoints laid out as the official script writes them, against the whole-file hashing of every copy
that adoption did before (the baseline), measured in the same run on the same folder.

Each checkpoint holds its epoch's weights (the same size and the same leading header in every epoch, the
rest different), a copy of the speech tokenizer (identical in all) and small identical configs. Bytes read
come from /proc/self/io (rchar); the page cache is warm for both arms (this machine cannot drop it), so
the time favours the baseline: on a cold disk time follows the bytes.

    .venv/bin/python bench/adopt.py [--checkpoints 6] [--weights-mb 256] [--tokenizer-mb 128] [--quick]
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from contract.adopt import link_identical  # noqa: E402

MB = 1 << 20
HEADER = 100 << 10  # a safetensors header of a 1.7B model is about this long, and the same every epoch


def read_bytes() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    return 0


def make_output(folder: Path, checkpoints: int, weights_mb: int, tokenizer_mb: int) -> None:
    header = os.urandom(HEADER)
    tokenizer = folder / "tokenizer.bin"
    folder.mkdir(parents=True)
    with open(tokenizer, "wb") as f:
        for _ in range(tokenizer_mb):
            f.write(os.urandom(MB))
    for epoch in range(1, checkpoints + 1):
        ck = folder / f"checkpoint-epoch-{epoch}"
        (ck / "speech_tokenizer").mkdir(parents=True)
        with open(ck / "model.safetensors", "wb") as f:
            f.write(header)
            left = weights_mb * MB - HEADER
            while left > 0:
                f.write(os.urandom(min(MB, left)))
                left -= MB
        shutil.copyfile(tokenizer, ck / "speech_tokenizer" / "model.safetensors")
        for name in ("config.json", "generation_config.json", "tokenizer_config.json", "vocab.json"):
            (ck / name).write_text('{"tts_model_type": "custom_voice", "n": %d}' % (len(name) * 1000))
    tokenizer.unlink()


def hash_every_copy(folder: Path) -> int:
    """The baseline: what adoption did before, SHA-256 of every file that has a copy in another checkpoint."""
    by_path: dict[str, list[Path]] = {}
    for ck in sorted(folder.glob("checkpoint-epoch-*")):
        for p in ck.rglob("*"):
            if p.is_file():
                by_path.setdefault(str(p.relative_to(ck)), []).append(p)
    hashed = 0
    for copies in by_path.values():
        if len(copies) < 2:
            continue
        for p in copies:
            h = hashlib.sha256()
            with open(p, "rb") as f:
                for block in iter(lambda f=f: f.read(MB), b""):
                    h.update(block)
            hashed += 1
    return hashed


def measure(fn, *args):
    r0, t0 = read_bytes(), time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0, read_bytes() - r0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoints", type=int, default=6)
    p.add_argument("--weights-mb", type=int, default=256)
    p.add_argument("--tokenizer-mb", type=int, default=128)
    p.add_argument("--quick", action="store_true", help="the smallest setting, for tests/foundation/test_bench.py: proves the benchmark runs, measures nothing")
    a = p.parse_args()
    if a.quick:
        a.checkpoints, a.weights_mb, a.tokenizer_mb = 2, 1, 1
    with tempfile.TemporaryDirectory(prefix="milo-bench-adopt-") as tmp:
        folder = Path(tmp) / "output"
        make_output(folder, a.checkpoints, a.weights_mb, a.tokenizer_mb)
        total = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        hashed, base_s, base_read = measure(hash_every_copy, folder)
        (linked, freed), new_s, new_read = measure(link_identical, folder)
        print(f"folder: {a.checkpoints} checkpoints, {total / MB:.0f} MiB ({a.weights_mb} MiB weights, "
              f"{a.tokenizer_mb} MiB speech tokenizer each)")
        print(f"baseline (hash every copy): {hashed} files, {base_read / MB:.0f} MiB read, {base_s:.2f} s")
        print(f"adopt (size, glance, hash): {linked} files linked, {freed / MB:.0f} MiB freed, "
              f"{new_read / MB:.0f} MiB read, {new_s:.2f} s")
        print(f"ratio adopt/baseline: bytes read {new_read / max(base_read, 1):.3f}, time {new_s / max(base_s, 1e-9):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
