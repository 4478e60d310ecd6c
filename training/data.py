"""Training data: reading and checking the JSONL, the held-out split, and the order of batches.

One line per clip, the official fine-tuning format (a file written by Qwen's `prepare_data.py` works as
it is) and what `milo-train prepare` writes (the same keys plus a few extra ones):

    {"audio": "clip.wav", "text": "...", "audio_codes": [[16 ints], ...], "ref_audio": "ref.wav"}

`audio_codes` are the 12 Hz speech tokenizer's codes, one row of 16 codebooks per 80 ms frame. Relative
paths are taken from the JSONL's folder first, then from the current folder. The training audio itself is
not read (its codes are in the line); `ref_audio` is, once, for the speaker embedding.

Order and split depend only on the seed, so every process of a multi-process run and every resume
computes the same ones.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

CODEBOOK_SIZE = 2048
from contract.audio import NUM_CODEBOOKS


class DataError(Exception):
    """Bad training data: the message names the file (and line) and says what to do. Exit code 3."""


@dataclass
class Example:
    line: int                 # 1-based line in the JSONL
    text: str
    codes: np.ndarray         # [T, 16] int
    ref_audio: Path
    audio: str = ""
    language: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def frames(self) -> int:
        return int(self.codes.shape[0])


def _resolve(path: str, folder: Path) -> Path:
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    beside = folder / p
    return beside if beside.exists() or not p.exists() else p.absolute()


def _check_line(obj, folder: Path, line: int) -> tuple[Example | None, str | None]:
    if not isinstance(obj, dict):
        return None, "not a JSON object"
    missing = [k for k in ("text", "audio_codes", "ref_audio") if k not in obj]
    if missing:
        hint = " (run `milo-train prepare` to compute codes)" if "audio_codes" in missing else ""
        return None, f"missing {', '.join(missing)}{hint}"
    text = obj["text"]
    if not isinstance(text, str) or not text.strip():
        return None, "empty text"
    ref = obj["ref_audio"]
    if isinstance(ref, list) and ref:
        ref = ref[0]
    if not isinstance(ref, str) or not ref:
        return None, "ref_audio is not a path"
    try:
        codes = np.asarray(obj["audio_codes"], dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        return None, "audio_codes is not a list of integer rows"
    if codes.ndim != 2 or codes.shape[0] == 0:
        return None, "audio_codes must be a non-empty list of frames, each a list of 16 codes"
    if codes.shape[1] != NUM_CODEBOOKS:
        return None, (f"audio_codes has {codes.shape[1]} codebooks per frame, expected {NUM_CODEBOOKS} "
                      "(codes from another speech tokenizer? prepare them with this base model)")
    if codes.min() < 0 or codes.max() >= CODEBOOK_SIZE:
        return None, f"audio_codes outside 0..{CODEBOOK_SIZE - 1}"
    language = obj.get("language")
    ex = Example(line, text.strip(), codes.astype(np.int32), _resolve(ref, folder), str(obj.get("audio", "")),
                 language if isinstance(language, str) and language.lower() != "auto" else None,
                 {k: v for k, v in obj.items() if k not in ("text", "audio_codes", "ref_audio", "audio", "language")})
    return ex, None


def read_jsonl(path: str | os.PathLike) -> list[Example]:
    """All examples of a training JSONL, or DataError naming every bad line (the first few in full)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    folder = path.absolute().parent
    examples, bad = [], []
    for n, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            ex, why = None, f"not valid JSON ({str(exc).split(':')[0]})"
        else:
            ex, why = _check_line(obj, folder, n)
        if why:
            bad.append((n, why))
        else:
            examples.append(ex)
    if bad:
        shown = "; ".join(f"line {n}: {why}" for n, why in bad[:3])
        more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
        raise DataError(f"{path}: {len(bad)} bad line{'s' * (len(bad) > 1)}: {shown}{more}")
    if not examples:
        raise DataError(f"{path}: no training examples")
    missing = {}
    for ex in examples:
        if not ex.ref_audio.is_file():
            missing.setdefault(str(ex.ref_audio), ex.line)
    if missing:
        ref, line = next(iter(missing.items()))
        raise DataError(f"{path}: line {line}: reference audio not found: {ref}"
                        + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    return examples


def split_indices(n: int, val_fraction: float, seed: int, held: list[int] = ()) -> tuple[list[int], list[int]]:
    """(train, validation) indices: the clips the data holds out (`held`: lines marked "split": "val", as a
    recording session's corpus is prepared) when there are some and a clip is left to train on; else a
    seeded, fixed choice of round(n * val_fraction) clips (at least one when the fraction is above zero and
    there are two clips or more). A fraction of 0 validates on nothing."""
    if val_fraction <= 0 or n < 2:
        return list(range(n)), []
    if held and len(set(held)) < n:
        chosen = set(held)
        return [i for i in range(n) if i not in chosen], sorted(chosen)
    k = min(n - 1, max(1, round(n * val_fraction)))
    perm = np.random.default_rng([seed, 1_000_003]).permutation(n)
    val = sorted(int(i) for i in perm[:k])
    chosen = set(val)
    return [i for i in range(n) if i not in chosen], val


def epoch_order(indices: list[int], seed: int, epoch: int) -> list[int]:
    """The order of training clips in `epoch` (1-based): a permutation that depends only on seed and epoch."""
    perm = np.random.default_rng([seed, epoch]).permutation(len(indices))
    return [indices[int(i)] for i in perm]


def rank_batches(order: list[int], batch_size: int, rank: int = 0, world: int = 1) -> list[list[int]]:
    """This process's micro-batches of one epoch. With several processes, the order is padded by
    wrapping around to a multiple of the process count and dealt out (rank r takes every world-th clip),
    so every process has the same number of batches and they step together."""
    if world > 1:
        order = order + order[: (-len(order)) % world]
        order = order[rank::world]
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def micro_batches_per_epoch(n_train: int, batch_size: int, world: int = 1) -> int:
    return math.ceil(math.ceil(n_train / world) / batch_size)


def steps_per_epoch(n_train: int, batch_size: int, grad_accum: int, world: int = 1) -> int:
    return math.ceil(micro_batches_per_epoch(n_train, batch_size, world) / grad_accum)
