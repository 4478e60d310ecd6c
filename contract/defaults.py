"""Run defaults, written once: the trainer fills what a command line leaves out from here, and the
dashboard's new-run form and its RunRequest start from the same values (docs/training.md).

ATTENTION lists the attention implementations the trainer accepts (flash-attn has no GB10 build, so
"sdpa" is the default).
"""
from __future__ import annotations

ATTENTION = ("sdpa", "eager", "flash_attention_2")

RUN_DEFAULTS: dict = dict(
    epochs=10, lr=2e-5, batch_size=2, grad_accum=4, val_fraction=0.05, patience=3, sub_talker_weight=0.3,
    attn="sdpa", seed=0, save_every_steps=0, resume_every_steps=0, weight_decay=0.01, warmup_steps=0,
    schedule="constant", clip=1.0, autocast=True, save_dtype="base", language="auto",
    gradient_checkpointing=False, score=True,
    # after each save: keep the best K and the newest N checkpoints within a disk budget (0 / "": no pruning);
    # stop when the best score has not improved for this many scored checkpoints (0: off). docs/retention.md
    keep_best=0, keep_last=0, disk_budget="", stop_unimproved=0,
)
