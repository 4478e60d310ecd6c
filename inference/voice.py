"""Voice bundles as models (contract/bundle.py): the base with the adapter merged in, made a custom voice.

A bundle is loaded as its base model (Qwen3TTSModel.from_pretrained), then turned into the custom voice the
full path would have saved: the config patched as the bundle's config.json says (custom_voice, speaker ->
slot 3000), the speaker embedding written into that slot of the codec embedding, and each adapted layer's
weight W replaced by W + (alpha / rank) * B @ A (peft's LoRA, merged; computed in float32, then cast to
W's dtype). The merged model is an ordinary custom voice: both frame loops, the scorer and the speech
server run it unchanged, and `milo-train export` writes the same weights in the official layout.

Several voices on one base: the engine keeps the base loaded and switches bundles in place
(`make_voice` puts the changed weights back from their saved originals, then merges the next bundle),
a matter of the adapted layers' bytes, not a model load.
"""
from __future__ import annotations

import json
from pathlib import Path

from contract.bundle import ADAPTER, SPEAKER, read_manifest

SPEAKER_ROW = "talker.model.codec_embedding.weight"


def deltas(bundle: Path) -> dict:
    """weight name -> the float32 update (alpha / rank) * B @ A of each adapted layer of `bundle`."""
    from safetensors.torch import load_file

    manifest = read_manifest(bundle)
    lora = manifest["lora"]
    scale = float(lora["alpha"]) / int(lora["rank"])
    tensors = load_file(str(Path(bundle) / ADAPTER))
    out = {}
    for module in lora["modules"]:
        a = tensors[f"{module}.lora_A.default.weight"].float()
        b = tensors[f"{module}.lora_B.default.weight"].float()
        out[f"{module}.weight"] = scale * (b @ a)
    return out


def speaker_embedding(bundle: Path):
    from safetensors.torch import load_file

    return load_file(str(Path(bundle) / SPEAKER))["speaker_embedding"]


def merge(weights: dict, bundle: Path) -> dict:
    """A state dict (name -> tensor) with the bundle's adapter merged and its speaker in its slot; new
    tensors for what changes, the others as they were."""
    import torch

    manifest = read_manifest(bundle)
    out = dict(weights)
    for name, delta in deltas(bundle).items():
        w = weights[name]
        out[name] = (w.float() + delta.to(w.device)).to(w.dtype)
    emb = weights[SPEAKER_ROW].clone()
    emb[int(manifest["slot"])] = torch.as_tensor(speaker_embedding(bundle)).to(emb.device, emb.dtype).reshape(-1)
    out[SPEAKER_ROW] = emb
    return out


def make_voice(tts, bundle: Path, originals: dict) -> None:
    """Make a loaded base Qwen3TTSModel the bundle's custom voice, in place. `originals` holds the plain
    base's value of every weight a voice has changed so far (on the CPU; filled here as needed): those
    are put back first, so switching from one bundle to another on the same base is exact, and the tensors
    keep their storage (the fast path's references and CUDA graphs stay valid)."""
    import torch

    model = tts.model
    patch = json.loads((Path(bundle) / "config.json").read_text())
    names = list(deltas(bundle)) + [SPEAKER_ROW]
    with torch.no_grad():
        params = dict(model.named_parameters())
        for name in names:
            if name not in originals:
                originals[name] = params[name].detach().to("cpu", copy=True)
        for name, value in originals.items():
            params[name].data.copy_(value)
        for name, value in merge({n: originals[n] for n in names}, bundle).items():
            params[name].data.copy_(value)
    talker = patch["talker_config"]
    model.config.tts_model_type = model.tts_model_type = patch["tts_model_type"]
    model.config.talker_config.spk_id = dict(talker["spk_id"])
    model.config.talker_config.spk_is_dialect = dict(talker.get("spk_is_dialect", {}))
    model.supported_speakers = model.config.talker_config.spk_id.keys()
