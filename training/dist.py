"""The trainer's processes: one, or many under `torchrun` or `accelerate launch` (RANK, WORLD_SIZE,
LOCAL_RANK in the environment). Each rank trains on its own shard; only one writes files: rank 0, or in a
run across hosts (training/launch.py) the first process of the home host, where the run folder is. torchrun's
c10d rendezvous gives global ranks in no particular host order, so the launcher names the home host
(MILO_HOME_NODE=1 there, 0 elsewhere) instead. With one process every call here is free and
torch.distributed is never imported.
"""
from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass

HOME_NODE = "MILO_HOME_NODE"
HOST_NAME = "MILO_HOST"            # across hosts: the launcher's name for this process's host (its SSH name)
TORCHRUN = "TORCHELASTIC_RUN_ID"   # set by torchrun in each worker's environment
PR_SET_PDEATHSIG = 1               # linux/prctl.h


def die_with_torchrun() -> bool:
    """Under torchrun: have the kernel SIGKILL this process when torchrun, its parent, dies. torchrun starts each
    worker in a session of its own (start_new_session), so a SIGKILL to torchrun's process group (the dashboard's
    Kill, here and over SSH on another host) would leave the trainers running, each still training with the
    other. True when the tie is made (Linux, under torchrun)."""
    if TORCHRUN not in os.environ or not sys.platform.startswith("linux"):
        return False
    import ctypes
    import signal

    parent = os.getppid()
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
        return False
    if os.getppid() != parent:  # torchrun died before the tie was made
        os.kill(os.getpid(), signal.SIGKILL)
    return True


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    home: bool | None = None   # across hosts: whether this process runs on the run folder's host

    @property
    def is_main(self) -> bool:
        if self.home is not None:
            return self.home and self.local_rank == 0
        return self.rank == 0

    @classmethod
    def from_env(cls) -> "Dist":
        die_with_torchrun()
        world = int(os.environ.get("WORLD_SIZE", "1"))
        home = os.environ.get(HOME_NODE)
        return cls(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")),
                   None if home is None else home == "1")

    def init(self, device_type: str) -> None:
        if self.world > 1:
            import torch.distributed as td

            td.init_process_group("nccl" if device_type == "cuda" else "gloo")

    def rank_hosts(self) -> dict[str, list[int]] | None:
        """Across hosts: each host's global ranks ({"spark1": [1], "spark2": [0]}), gathered from every rank (a
        collective: every rank calls it); None for a run on one host."""
        if self.world == 1 or HOST_NAME not in os.environ:
            return None
        out: dict[str, list[int]] = {}
        for rank, host in enumerate(self.gather_objects(os.environ[HOST_NAME])):
            out.setdefault(str(host), []).append(rank)
        return out

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
