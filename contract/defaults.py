"""Run defaults, written once: the trainer fills what a command line leaves out from here, and the
dashboard's new-run form and its RunRequest start from the same values (docs/training.md).

ATTENTION lists the attention implementations the trainer accepts (flash-attn has no GB10 build, so
"sdpa" is the default). RUN_LIMITS are the ranges a run's numbers must fall in, beside their defaults:
the form refuses a value outside them with run_limit_problem's line.
"""
from __future__ import annotations

from dataclasses import dataclass

ATTENTION = ("sdpa", "eager", "flash_attention_2")

RUN_DEFAULTS: dict = dict(
    epochs=10, lr=2e-5, batch_size=2, grad_accum=4, val_fraction=0.05, patience=3, sub_talker_weight=0.3,
    attn="sdpa", seed=0, save_every_steps=0, resume_every_steps=0, weight_decay=0.01, warmup_steps=0,
    schedule="constant", clip=1.0, autocast=True, save_dtype="base", language="auto",
    gradient_checkpointing=False, score=True,
    # after each save: keep the best K and the newest N checkpoints within a disk budget (0 / "": no pruning);
    # stop when the best score has not improved for this many scored checkpoints (0: off). docs/retention.md
    keep_best=0, keep_last=0, disk_budget="", stop_unimproved=0,
    # full fine-tuning (every weight, full checkpoints) or LoRA (adapters on the talker, voice bundles;
    # contract/bundle.py, docs/training.md "LoRA"): rank, alpha and which layers get adapters
    method="full", lora_rank=16, lora_alpha=32.0, lora_targets="talker+mlp",
)
# LoRA's own default learning rate, used when none is given: adapters start at zero and need a larger step
# than full fine-tuning's 2e-5, but adapters trained at 2e-4 and above were seen never to stop talking while
# their loss looked fine (docs/training.md): 5e-5 stays well below that.
LORA_LR = 5e-5


@dataclass(frozen=True)
class RunLimit:
    label: str        # the operator's word for it, as the form labels it
    kind: type        # int: a whole number; float: any number
    low: float
    high: float


RUN_LIMITS: dict[str, RunLimit] = {
    "lr": RunLimit("learning rate", float, 1e-9, 1e-2),
    "epochs": RunLimit("epochs", int, 1, 10000),
    "batch_size": RunLimit("batch size", int, 1, 1024),
    "grad_accum": RunLimit("gradient accumulation", int, 1, 1024),
    "restart_limit": RunLimit("restarts on crash", int, 0, 100),  # the keeper's, for runs the dashboard starts
    # after each save (docs/retention.md); 0 is off
    "keep_best": RunLimit("prune: keep best", int, 0, 1000),
    "keep_last": RunLimit("prune: keep newest", int, 0, 1000),
    "stop_unimproved": RunLimit("quality stop after n", int, 0, 1000),
    "lora_rank": RunLimit("LoRA rank", int, 1, 512),
    "lora_alpha": RunLimit("LoRA alpha", float, 0.01, 4096),
}


def run_limit_problem(key: str, value) -> str | None:
    """Why `value` cannot be the run's `key` (RUN_LIMITS), in one line, or None."""
    limit = RUN_LIMITS[key]
    whole = limit.kind is int
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (whole and not isinstance(value, int)):
        return f"{limit.label} must be {'a whole number' if whole else 'a number'}"
    if not limit.low <= value <= limit.high:
        return f"{limit.label} must be from {limit.low:g} to {limit.high:g}"
    return None


def parse_run_value(key: str, text: str):
    """(value, None) for a run's number typed as text, or (None, one line saying why not)."""
    limit = RUN_LIMITS[key]
    try:
        value = limit.kind(text.strip())
    except ValueError:
        return None, f"{limit.label} must be {'a whole number' if limit.kind is int else 'a number'}"
    problem = run_limit_problem(key, value)
    return (None, problem) if problem else (value, None)
