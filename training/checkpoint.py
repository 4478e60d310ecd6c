"""Writing custom-voice checkpoints: the folder `Qwen3TTSModel.from_pretrained` loads as it is.

A checkpoint is assembled in a hidden temporary folder beside its final place and renamed into place
only when complete, so a crash or a full disk never leaves a half-written checkpoint under its real
name. Files that never change during fine-tuning (speech tokenizer, text tokenizer, generation
config) are hard-linked from the base model folder: a checkpoint of the 1.7B model then costs the
3.8 GB of `model.safetensors` and nothing more (copied only where the base is on another file system).
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from pathlib import Path

# Row of talker.model.codec_embedding that holds the fine-tuned speaker (as in Qwen's CustomVoice models).
SPEAKER_SLOT = 3000
# Base-model files that fine-tuning never changes, shared with each checkpoint by hard link.
UNCHANGED_FILES = (
    "generation_config.json", "vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json",
    "special_tokens_map.json", "added_tokens.json", "preprocessor_config.json", "chat_template.json",
    "chat_template.jinja",
)
UNCHANGED_DIRS = ("speech_tokenizer",)


def link_or_copy(src: Path, dst: Path) -> str:
    """Hard-link `src` to `dst`; copy where a link is impossible. Returns "link" or "copy"."""
    try:
        os.link(src, dst)
        return "link"
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise
    shutil.copy2(src, dst)
    return "copy"


def custom_voice_config(base_config: dict, speaker: str) -> dict:
    """The Base model's config.json turned into a CustomVoice one with `speaker` in slot 3000."""
    if base_config.get("tts_model_type") != "base":
        raise ValueError(f"expected a Base model config (tts_model_type 'base'), got {base_config.get('tts_model_type')!r}")
    cfg = json.loads(json.dumps(base_config))
    cfg["tts_model_type"] = "custom_voice"
    talker = cfg.setdefault("talker_config", {})
    # generate() looks speakers up lower-cased, so a key with capitals could never be found.
    name = speaker.strip().lower()
    talker["spk_id"] = {name: SPEAKER_SLOT}
    talker["spk_is_dialect"] = {name: False}
    return cfg


def save_custom_voice(state_dict: dict, base_dir: str | os.PathLike, out_dir: str | os.PathLike,
                      speaker: str, speaker_embedding, extra_files: dict[str, str] | None = None,
                      after_weights=None) -> Path:
    """Write a custom-voice checkpoint folder atomically.

    `state_dict` is the full model's state (the Base speaker encoder is dropped), `speaker_embedding`
    the [hidden] vector written into codec-embedding row 3000. `extra_files` maps file names to text
    written into the folder (eval.json, for example). `after_weights(tmp)`, when given, is called once the
    weights are in the temporary folder (the trainer's disk-full test hook raises there)."""
    import torch
    from safetensors.torch import save_file

    base, out = Path(base_dir).absolute(), Path(out_dir).absolute()
    cfg = custom_voice_config(json.loads((base / "config.json").read_text()), speaker)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items() if not k.startswith("speaker_encoder.")}
    key = "talker.model.codec_embedding.weight"
    emb = tensors[key].clone()
    emb[SPEAKER_SLOT] = torch.as_tensor(speaker_embedding).detach().to("cpu", emb.dtype).reshape(-1)
    tensors[key] = emb

    with staged(out) as tmp:
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        if after_weights is not None:
            after_weights(tmp)
        (tmp / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
        for name in UNCHANGED_FILES:
            if (base / name).is_file():
                link_or_copy(base / name, tmp / name)
        for d in UNCHANGED_DIRS:
            for src in sorted((base / d).rglob("*")):
                dst = tmp / src.relative_to(base)
                if src.is_dir():
                    dst.mkdir(parents=True, exist_ok=True)
                else:
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    link_or_copy(src, dst)
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)
    return out


@contextlib.contextmanager
def staged(out: Path):
    """A hidden temporary folder beside `out` to assemble a checkpoint in: put in place as `out` when the body
    ends (publish), removed when it fails, so no half-written checkpoint ever has the real name."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
        publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def publish(tmp: Path, out: Path) -> None:
    """Put a checkpoint assembled in `tmp` in place as `out`: shared modes, everything on disk, renamed.
    mkdtemp and safetensors create owner-only (0700/0600) entries; a checkpoint is shared like the base
    model is. Hard-linked files keep the base's own mode (chmod would change the base)."""
    for p in [tmp, *tmp.rglob("*")]:
        if p.is_dir():
            p.chmod(0o755)
        elif p.stat().st_nlink == 1:
            p.chmod(0o644)
    _fsync_tree(tmp)
    if out.exists():
        shutil.rmtree(out)
    os.rename(tmp, out)
    fsync_dir(out.parent)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for p in root.rglob("*"):
        if p.is_file() and p.stat().st_nlink == 1:  # linked files are already durable
            with open(p, "rb") as f:
                os.fsync(f.fileno())
    fsync_dir(root)
