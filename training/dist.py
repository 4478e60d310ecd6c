"""The trainer's processes: one, or many under `torchrun` or `accelerate launch` (RANK, WORLD_SIZE,
LOCAL_RANK in the environment). Each rank trains on its own shard; only rank 0 writes files. With one
process every call here is free and torch.distributed is never imported.
"""
from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> "Dist":
        world = int(os.environ.get("WORLD_SIZE", "1"))
        return cls(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))

    def init(self, device_type: str) -> None:
        if self.world > 1:
            import torch.distributed as td

            td.init_process_group("nccl" if device_type == "cuda" else "gloo")

    def all_sum(self, tensor):
        if self.world > 1:
            import torch.distributed as td

            td.all_reduce(tensor, op=td.ReduceOp.SUM)
        return tensor

    def gather_objects(self, obj) -> list:
        if self.world == 1:
            return [obj]
        import torch.distributed as td

        out = [None] * self.world
        td.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as td

            td.barrier()

    def close(self, clean: bool = False) -> None:
        """Tear the process group down. After a clean end the ranks first meet at a barrier, so none tears
        down while another still talks to it; after a failure there is none (the other rank may be gone)."""
        if self.world > 1:
            import torch.distributed as td

            if td.is_initialized():
                if clean:
                    td.barrier()
                td.destroy_process_group()

    def leave(self, code: int) -> int:
        """The process's exit code; a rank of several exits here, after close(), without interpreter
        finalization: a gloo thread that destroy_process_group did not join can abort the C++ runtime at
        exit (SIGABRT), and torchrun would then report a run failed whose files were all written."""
        if self.world > 1:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os._exit(code)
        return code
