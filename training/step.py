"""One optimizer step, and what a step or a validation pass adds up (`StepTotals`). Shared by the trainer and
bench/train_throughput.py; torch is imported only when a step runs."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from contract.runfolder import NUM_LAYERS

if TYPE_CHECKING:
    import torch


@dataclass
class StepTotals:
    """Per-layer cross-entropy sums and the targets they cover (float64, on the CPU), clips and frames: of
    this process, or summed over all of them (`summed`)."""
    layer_sums: torch.Tensor    # [NUM_LAYERS]
    layer_counts: torch.Tensor  # [NUM_LAYERS]
    samples: int = 0
    frames: int = 0

    @classmethod
    def zero(cls) -> StepTotals:
        import torch

        return cls(torch.zeros(NUM_LAYERS, dtype=torch.float64), torch.zeros(NUM_LAYERS, dtype=torch.float64))

    def layer_losses(self) -> torch.Tensor:
        """The mean loss of each layer (codebook)."""
        return self.layer_sums / self.layer_counts.clamp(min=1)

    def summed(self, dist, stop: bool = False) -> tuple[StepTotals, bool]:
        """The totals of all processes, and whether any of them asks to stop: one all-reduce carries both, so
        every process stops at the same step."""
        import torch

        flat = torch.cat([self.layer_sums, self.layer_counts,
                          torch.tensor([self.samples, self.frames, float(stop)], dtype=torch.float64)])
        dist.all_sum(flat)
        sums, counts, (samples, frames, stops) = flat[:NUM_LAYERS], flat[NUM_LAYERS:2 * NUM_LAYERS], flat[2 * NUM_LAYERS:]
        return StepTotals(sums, counts, int(samples), int(frames)), bool(stops > 0)


def train_step(module, optimizer, params, batches, n_batches: int, sub_talker_weight: float, clip: float,
               autocast=contextlib.nullcontext, no_sync=None) -> tuple[StepTotals, float]:
    """Forward and backward over `n_batches` micro-batches (each loss divided by their number), clip the
    gradient norm, update. Returns this process's totals and the gradient norm before clipping."""
    import torch

    from training.forward import objective

    sums = counts = None
    samples = frames = 0
    for i, batch in enumerate(batches):
        # With several processes, gradients are averaged across them only on the step's last micro-batch.
        with (no_sync() if no_sync is not None and i < n_batches - 1 else contextlib.nullcontext()):
            with autocast():
                out = module(batch)
            (objective(out.layer_means(), sub_talker_weight) / n_batches).backward()
        sums = out.layer_sums.detach() if sums is None else sums + out.layer_sums.detach()
        counts = out.layer_counts.detach() if counts is None else counts + out.layer_counts.detach()
        samples += batch.samples
        frames += batch.tokens
    grad_norm = torch.nn.utils.clip_grad_norm_(params, clip if clip > 0 else float("inf"))
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return StepTotals(sums.double().cpu(), counts.double().cpu(), samples, frames), float(grad_norm)
