"""Checkpoints made elsewhere: the official fine-tuning script's output folder (docs/adopt.md).

sft_12hz.py writes OUTPUT/checkpoint-epoch-N/ for each epoch: a full copy of the base model folder (text
tokenizer, speech tokenizer, configs) with that epoch's model.safetensors and a custom-voice config.json.
The dashboard lists such a folder as a read-only run (status "external") with no metrics; adopting it
(`milo-train adopt DIR`, or `A` on the runs screen):

- hard-links the files that are identical across its checkpoints (same relative path, same size, same
  SHA-256: the tokenizers, most configs), each replaced atomically (a link made beside it, renamed over it),
  and reports the bytes that frees. Each epoch's weights are the same size but never the same: a glance
  at eight blocks of each tells them apart, so they are not read whole (bench/adopt.py);
- turns the loss lines of a log beside it (`*.log`: "Epoch 3 | Step 40 | Loss: 4.2170") into metrics.jsonl,
  so its loss curve shows (its losses are the official script's, shifted targets included: not comparable
  with ours, docs/upstream.md);
- writes run.json (`adopted`: true, the speaker from the checkpoints' config, `--data` for the scorer's
  reference voice, `--base` for the baseline row).

Torch-free: the dashboard runs it in a thread.
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from contract.runfolder import METRICS, RUN_JSON, append_records, list_checkpoints, read_json, record, write_json_atomic

LOSS_LINE = re.compile(r"epoch\W*(\d+)\W+step\W*(\d+)\W+loss\W*([-+0-9.eE]+)", re.IGNORECASE)
CHUNK = 1 << 20
GLANCE = 64 << 10  # bytes per block of the first look at a large file
GLANCES = 8


class AdoptError(ValueError):
    """The folder cannot be adopted; the message is one line."""


@dataclass
class Adopted:
    checkpoints: int = 0
    linked_files: int = 0
    freed_bytes: int = 0
    loss_lines: int = 0
    log: str | None = None
    speaker: str | None = None
    problems: list[str] = field(default_factory=list)
    already: bool = False            # run.json said adopted before this call
    losses_before: bool = False      # metrics.jsonl was there already: its loss lines were read before
    logs: list[str] = field(default_factory=list)  # the *.log files beside the checkpoints
    data: str | None = None          # the corpus the scorer compares with (run.json data), None: none known

    def describe(self) -> str:
        from contract.units import fmt_bytes

        parts = [f"{self.checkpoints} checkpoints", f"{self.linked_files} identical files hard-linked, "
                 f"{fmt_bytes(self.freed_bytes)} freed"]
        if self.log:
            parts.append(f"{self.loss_lines} loss lines from {self.log}")
        elif self.losses_before:
            parts.append("its loss lines were read before (metrics.jsonl)")
        elif self.logs:
            parts.append(f"no loss lines in {', '.join(self.logs)}")
        else:
            parts.append("no log beside it")
        parts.append(f"scored against {self.data}" if self.data else
                     "no corpus to score against: give it with A again or milo-train adopt DIR --data CORPUS")
        return "; ".join(parts + self.problems)

    def headline(self, name: str) -> str:
        """The one line the dashboard and `milo-train adopt` say."""
        return (f"{name} was adopted already (updated): " if self.already else f"adopted {name}: ") + self.describe()


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _glance(path: Path, size: int) -> bytes:
    """A first look at a file: GLANCES blocks spread evenly over it, the first and the last among them.
    Copies of one file agree; two epochs' weights (the same size, the same safetensors header) differ in
    the blocks that hold weights, so they part here without being read whole."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for i in range(GLANCES):
            f.seek((size - GLANCE) * i // (GLANCES - 1))
            h.update(f.read(GLANCE))
    return h.digest()


def _same_content(copies: list[tuple[Path, os.stat_result]]) -> list[list[tuple[Path, os.stat_result]]]:
    """Split copies of one relative path into groups of identical content, cheapest test first: the size,
    then a glance (files over GLANCES blocks), then the whole file's SHA-256. Hard links of one inode are
    read once. Keeps the copies' order, so each group's first is the earliest checkpoint's."""
    def split(items, key):
        out: dict = {}
        seen: dict = {}
        for path, st in items:
            inode = (st.st_dev, st.st_ino)
            if inode not in seen:
                seen[inode] = key(path, st)
            out.setdefault(seen[inode], []).append((path, st))
        return [g for g in out.values() if len({(s.st_dev, s.st_ino) for _p, s in g}) > 1]

    groups = split(copies, lambda _p, st: st.st_size)
    groups = [g for group in groups
              for g in (split(group, lambda p, st: _glance(p, st.st_size)) if group[0][1].st_size > GLANCES * GLANCE
                        else [group])]
    return [g for group in groups for g in split(group, lambda p, _st: _digest(p))]


def link_identical(run_dir: Path) -> tuple[int, int]:
    """Hard-link files with the same relative path and content across the run's checkpoints. Returns
    (files linked, bytes freed). A file already sharing the first copy's inode is left as it is."""
    checkpoints = list_checkpoints(run_dir)
    by_path: dict[str, list[tuple[Path, os.stat_result]]] = {}
    for ck in checkpoints:
        for root, _dirs, names in os.walk(ck):
            for name in names:
                full = Path(root) / name
                if full.is_file() and not full.is_symlink():
                    by_path.setdefault(str(full.relative_to(ck)), []).append((full, full.stat()))
    linked = freed = 0
    for copies in by_path.values():
        if len(copies) < 2:
            continue
        for group in _same_content(copies):
            first, first_st = group[0]
            for path, st in group[1:]:
                if st.st_ino == first_st.st_ino and st.st_dev == first_st.st_dev:
                    continue
                tmp = path.with_name(f".milo-link-{path.name}")
                tmp.unlink(missing_ok=True)
                os.link(first, tmp)
                os.replace(tmp, path)  # atomic: the name is the old file or the link, never missing
                linked += 1
                if st.st_nlink == 1:
                    freed += st.st_blocks * 512
    return linked, freed


def loss_records(text: str) -> list[dict]:
    """Step records from the official script's loss lines (its step counts restart each epoch; ours do not)."""
    out, step = [], 0
    for line in text.splitlines():
        m = LOSS_LINE.search(line)
        if not m:
            continue
        try:
            loss = float(m[3])
        except ValueError:
            continue
        step += 1
        out.append(record("step", time=0.0, epoch=int(m[1]), step=step, epoch_step=int(m[2]), objective=loss,
                          source="official log"))
    return out


def adopt(run_dir: Path, *, data: Path | None = None, base: Path | None = None, link: bool = True) -> Adopted:
    run_dir = Path(run_dir).absolute()
    checkpoints = list_checkpoints(run_dir)
    if not checkpoints:
        raise AdoptError(f"{run_dir} holds no checkpoint folders (checkpoint-epoch-N/ or epoch-NNNN/)")
    existing = read_json(run_dir / RUN_JSON) or {}
    if existing and not existing.get("adopted"):
        raise AdoptError(f"{run_dir} is a milo run already (run.json): nothing to adopt")
    if data is not None and not Path(data).exists():
        raise AdoptError(f"--data {data} does not exist: give the training JSONL or the corpus folder, or leave it out")
    result = Adopted(checkpoints=len(checkpoints), already=bool(existing.get("adopted")))
    config = read_json(checkpoints[-1] / "config.json") or {}
    speakers = list(((config.get("talker_config") or {}).get("spk_id") or {}).keys())
    result.speaker = speakers[0] if speakers else None
    if config.get("tts_model_type") not in (None, "custom_voice"):
        result.problems.append(f"{checkpoints[-1].name} is a {config.get('tts_model_type')} model, not a custom voice")
    if link:
        result.linked_files, result.freed_bytes = link_identical(run_dir)
    logs = sorted(p for p in run_dir.glob("*.log") if p.is_file())
    result.logs = [p.name for p in logs]
    result.losses_before = (run_dir / METRICS).exists()
    if logs and not result.losses_before:
        records = []
        for log in logs:
            records += loss_records(log.read_text(encoding="utf-8", errors="replace"))
        if records:
            append_records(run_dir / METRICS, records)
            result.loss_lines, result.log = len(records), ", ".join(p.name for p in logs)
    spec = {**existing, "adopted": True, "source": "official fine-tuning script", "speaker": result.speaker,
            "hyper": {"epochs": len(checkpoints)}}
    if data is not None:
        spec["data"] = str(Path(data).absolute())
    if base is not None:
        spec["base_model"] = str(Path(base).absolute())
    result.data = spec.get("data") or None
    write_json_atomic(run_dir / RUN_JSON, spec)
    return result
