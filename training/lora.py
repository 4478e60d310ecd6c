"""LoRA fine-tuning into voice bundles (contract/bundle.py; docs/training.md, "LoRA").

peft's LoRA layers are put into the talker's linear layers (`TARGETS`): attention only, attention and
MLP (the default), or those and the code predictor's layers. Everything else is frozen, so the base
weights stay bit-identical and only the adapter (tens of MB at the 1.7B shape) is saved. The speaker
embedding is handled as on the full path: the same x-vector, in the same slot (3000), written into the
bundle's speaker.safetensors instead of the codec embedding.
"""
from __future__ import annotations

import json
from pathlib import Path

from contract.bundle import ADAPTER, FORMAT, MANIFEST, SPEAKER, TARGETS
from training.checkpoint import SPEAKER_SLOT, custom_voice_config, staged

_ATTENTION = r"self_attn\.(q_proj|k_proj|v_proj|o_proj)"
_MLP = r"mlp\.(gate_proj|up_proj|down_proj)"
_PATTERNS = {
    "talker": rf"^talker\.model\.layers\.\d+\.{_ATTENTION}$",
    "talker+mlp": rf"^talker\.model\.layers\.\d+\.({_ATTENTION}|{_MLP})$",
    "talker+predictor": rf"^talker\.(model|code_predictor\.model)\.layers\.\d+\.({_ATTENTION}|{_MLP})$",
}
assert set(_PATTERNS) == set(TARGETS)


def is_adapter_key(name: str) -> bool:
    return ".lora_A." in name or ".lora_B." in name


def apply_lora(model, rank: int, alpha: float, targets: str, seed: int) -> list[str]:
    """Put LoRA layers into `model`'s target modules and freeze everything else; the modules' names. The
    adapters' random start (lora_A; lora_B starts at zero) comes from `seed` alone, not from whatever the
    process drew before, so the same run starts from the same adapter in any process."""
    import re

    import torch
    from peft import LoraConfig, inject_adapter_in_model

    pattern = re.compile(_PATTERNS[targets])
    modules = [name for name, _ in model.named_modules() if pattern.match(name)]
    if not modules:
        raise ValueError(f"no module of this model matches the LoRA targets {targets!r}")
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=modules, bias="none")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        inject_adapter_in_model(config, model)
    for name, param in model.named_parameters():
        param.requires_grad_(is_adapter_key(name))
    return modules


def adapter_state(model) -> dict:
    """The adapter's tensors (peft's names), on the CPU."""
    return {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items() if is_adapter_key(k)}


def save_bundle(adapter: dict, speaker_embedding, base_dir: Path, out_dir: Path, speaker: str, manifest: dict,
                extra_files: dict[str, str] | None = None, after_weights=None) -> Path:
    """Write a voice bundle atomically (hidden temporary folder, renamed into place when complete)."""
    import torch
    from safetensors.torch import save_file

    base, out = Path(base_dir).absolute(), Path(out_dir).absolute()
    cfg = custom_voice_config(json.loads((base / "config.json").read_text()), speaker)
    with staged(out) as tmp:
        save_file(adapter, str(tmp / ADAPTER), metadata={"format": "pt"})
        embedding = torch.as_tensor(speaker_embedding).detach().to("cpu", torch.float32).reshape(-1).contiguous()
        save_file({"speaker_embedding": embedding}, str(tmp / SPEAKER), metadata={"format": "pt"})
        if after_weights is not None:
            after_weights(tmp)
        (tmp / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
        (tmp / MANIFEST).write_text(json.dumps({"format": FORMAT, "slot": SPEAKER_SLOT, **manifest}, indent=2) + "\n")
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)
    return out
