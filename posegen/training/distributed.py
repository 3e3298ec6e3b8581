"""Data-parallel training under ``torchrun``: process group set-up and gradient averaging.

posegen's objectives call the flow through ``torch.func`` transforms (the divergence) rather than through
``module.forward``, which ``DistributedDataParallel``'s hooks expect. So gradients are averaged explicitly
after ``backward`` with one all-reduce over a flat buffer: the same arithmetic DDP performs, without the
hooks. Parameters are broadcast from rank 0 at start, so every rank holds identical weights throughout.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialized_here: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device: torch.device) -> DistInfo:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1): NCCL on CUDA, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    here = False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
        here = True
    return DistInfo(rank=rank, world_size=world, local_rank=local, initialized_here=here)


def broadcast_parameters(module: torch.nn.Module, info: DistInfo) -> None:
    if info.enabled:
        for t in module.state_dict().values():
            dist.broadcast(t, src=0)


def average_gradients(params, info: DistInfo) -> None:
    """All-reduce (mean) the gradients of ``params`` in one flat buffer."""
    if not info.enabled:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= info.world_size
    i = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[i:i + n].view_as(g))
        i += n


def broadcast_flag(flag: bool, info: DistInfo, device) -> bool:
    """Rank 0's boolean decision (early stop, NaN) on every rank."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.broadcast(t, src=0)
    return bool(t.item())


def any_flag(flag: bool, info: DistInfo, device) -> bool:
    """True on every rank if any rank says True (e.g. a non-finite loss anywhere)."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def teardown(info: DistInfo) -> None:
    if info.initialized_here and dist.is_initialized():
        dist.destroy_process_group()
