"""`milo-train export BUNDLE OUT`: a voice bundle as a full custom-voice checkpoint in the official layout,
which stock `Qwen3TTSModel.from_pretrained(OUT)` loads and speaks with `generate_custom_voice`.

The base's weights (in their own dtype) with the adapter merged and the speaker in its slot
(inference/voice.py: the same merge the engine makes when it loads the bundle), written by the trainer's
own checkpoint writer (atomically; tokenizers and codec hard-linked from the base).
"""
from __future__ import annotations

from pathlib import Path


class ExportError(ValueError):
    """One line: why the export cannot be made."""


def export(bundle: Path, out: Path) -> Path:
    from safetensors.torch import load_file

    from contract.checkpoint import CheckpointError, validate_checkpoint
    from inference.voice import merge, speaker_embedding
    from training.checkpoint import save_custom_voice

    try:
        info = validate_checkpoint(bundle)
    except CheckpointError as exc:
        raise ExportError(f"{exc.path} cannot be exported: {'; '.join(exc.problems)}") from None
    if info.bundle is None:
        raise ExportError(f"{info.path} is a full checkpoint already: it is in the official layout")
    out = Path(out).absolute()
    if out.exists():
        raise ExportError(f"{out} exists: give a new folder")
    if not out.parent.is_dir():
        raise ExportError(f"the folder {out.parent} does not exist")
    weights = load_file(str(info.base / "model.safetensors"))
    merged = merge(weights, info.path)
    return save_custom_voice(merged, info.base, out, info.speaker, speaker_embedding(info.path))
