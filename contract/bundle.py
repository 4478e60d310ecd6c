"""Voice bundles: what a LoRA run saves in place of a full checkpoint (docs/training.md, "LoRA").

    epoch-0004/
      voice.json            the manifest: format, method, the base (path, size, sha256 of its weights),
                            the speaker and its slot, the LoRA settings and modules, the training settings
      config.json           the config patch: the base's config.json turned custom-voice (speaker -> slot 3000)
      adapter.safetensors   the LoRA A/B tensors (peft's names)
      speaker.safetensors   the speaker embedding written into the slot (the full path's x-vector)
      eval.json             as for every checkpoint

A bundle keeps the name and place of a checkpoint (epoch-NNNN, step-NNNNNNNN in the run folder), so
listing, retention, scoring and the resume logic take it as they take a full one. Anything that speaks
with it loads the base named in voice.json, checks the base's hash, and applies the adapter.

Torch-free: the dashboard reads it (sizes, the method), and the checks run before any model loads.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from contract.configfile import APP

MANIFEST = "voice.json"
ADAPTER = "adapter.safetensors"
SPEAKER = "speaker.safetensors"
FORMAT = "milo-voice-bundle/1"
METHODS = ("full", "lora")
TARGETS = ("talker", "talker+mlp", "talker+predictor")   # attention; + MLP; + the code predictor's layers
DEFAULT_TARGETS = "talker+mlp"


class BundleError(ValueError):
    """One line: what is wrong with a bundle and what it needs."""


def is_bundle(path: Path) -> bool:
    return (Path(path) / MANIFEST).is_file()


def read_manifest(path: Path) -> dict:
    """voice.json of a bundle (BundleError when unreadable or not a bundle of ours)."""
    file = Path(path) / MANIFEST
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BundleError(f"{file} is unreadable: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"{file} is not a voice bundle manifest ({FORMAT})")
    return manifest


def _hash_cache() -> Path:
    from platformdirs import user_cache_path

    return user_cache_path(APP) / "weights-sha256.json"


def weights_sha256(path: Path) -> str:
    """sha256 of a weights file, remembered by (path, size, mtime) so a 3.8 GB base is read once."""
    path = Path(path).resolve()
    st = path.stat()
    key = f"{path}|{st.st_size}|{st.st_mtime_ns}"
    cache = _hash_cache()
    try:
        known = json.loads(cache.read_text())
    except (OSError, ValueError):
        known = {}
    if isinstance(known, dict) and isinstance(known.get(key), str):
        return known[key]
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    value = digest.hexdigest()
    try:
        from contract.runfolder import write_json_atomic

        cache.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(cache, {**(known if isinstance(known, dict) else {}), key: value})
    except OSError:
        pass   # a cache we cannot write only costs the next reader the hash again
    return value


def base_of(path: Path, manifest: dict | None = None) -> Path:
    """The base model a bundle needs, checked: there, and the weights it was trained on (same sha256).
    BundleError (one line naming the base it needs) otherwise."""
    manifest = manifest or read_manifest(path)
    base = manifest.get("base") or {}
    where, want = Path(str(base.get("path", ""))), base.get("sha256")
    weights = where / "model.safetensors"
    if not weights.is_file():
        raise BundleError(f"{Path(path).name} needs its base model {where} (sha256 {str(want)[:12]}...), which is not "
                          f"there: put the base back at that path")
    if want and weights_sha256(weights) != want:
        raise BundleError(f"{Path(path).name} was trained on other weights than {where} holds now (sha256 "
                          f"{str(want)[:12]}... expected): it needs the base it was trained on")
    return where


def bundle_bytes(path: Path) -> int:
    """The bytes a bundle holds of its own (what its folder costs on disk)."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())
