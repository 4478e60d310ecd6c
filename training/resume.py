"""Resume points: everything needed to continue a run exactly where it stopped.

    resume/
      model.safetensors   fp32 weights (the Base speaker encoder, never trained, is left out)
      optimizer.pt        optimizer and learning-rate scheduler state
      training.pt         the fixed speaker embedding and every process's RNG states
      trainer.json        position (epoch, next micro-batch), step, best epoch, early-stopping count ...

A new resume point is written under a hidden temporary name, then put in place of the old one, which is
removed after: at any moment one complete resume point exists (trainer.json, written last, marks a
complete one). Interrupted between the two renames, the old one waits under `.resume.old-*` and is
found there.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from contract.runfolder import RESUME_DIR
from training.checkpoint import fsync_dir

MARKER = "trainer.json"


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def save_resume_point(run_dir: Path, weights: dict, optimizer_state: dict, training_state: dict,
                      info: dict) -> Path:
    import torch
    from safetensors.torch import save_file

    run_dir = Path(run_dir)
    tmp = Path(tempfile.mkdtemp(prefix=".resume.tmp-", dir=run_dir))
    try:
        save_file({k: v.detach().to("cpu").contiguous() for k, v in weights.items()}, str(tmp / "model.safetensors"))
        torch.save(optimizer_state, tmp / "optimizer.pt")
        torch.save(training_state, tmp / "training.pt")
        for name in ("model.safetensors", "optimizer.pt", "training.pt"):
            _fsync_file(tmp / name)
        (tmp / MARKER).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
        _fsync_file(tmp / MARKER)
        fsync_dir(tmp)
        final = run_dir / RESUME_DIR
        old = None
        if final.exists():
            old = run_dir / f".resume.old-{info.get('step', 0)}-{os.getpid()}"
            os.rename(final, old)
        os.rename(tmp, final)
        fsync_dir(run_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for stale in run_dir.glob(".resume.old-*"):
        shutil.rmtree(stale, ignore_errors=True)
    return final


def find_resume_point(run_dir: Path) -> Path | None:
    """The newest complete resume point of a run, or None."""
    run_dir = Path(run_dir)
    final = run_dir / RESUME_DIR
    if (final / MARKER).is_file():
        return final
    olds = [p for p in run_dir.glob(".resume.old-*") if (p / MARKER).is_file()]
    return max(olds, key=lambda p: json.loads((p / MARKER).read_text()).get("step", 0), default=None)


def load_resume_point(path: Path, device) -> tuple[dict, dict, dict, dict]:
    """(weights, optimizer state, training state, info)."""
    import torch
    from safetensors.torch import load_file

    path = Path(path)
    info = json.loads((path / MARKER).read_text())
    weights = load_file(str(path / "model.safetensors"), device=str(device))
    optimizer_state = torch.load(path / "optimizer.pt", map_location=device, weights_only=False)
    training_state = torch.load(path / "training.pt", map_location="cpu", weights_only=False)
    return weights, optimizer_state, training_state, info


def remove_leftovers(run_dir: Path) -> None:
    """Temporary folders of saves that a crash or SIGKILL interrupted."""
    for p in Path(run_dir).glob(".*.tmp-*"):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
