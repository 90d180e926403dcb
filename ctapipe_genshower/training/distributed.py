"""Several processes under ``torchrun``: process group, devices, DDP and failing together.

Without ``torchrun`` (no ``WORLD_SIZE`` > 1 in the environment) everything here is a
no-op for one process of rank 0. The process group uses NCCL on GPUs and gloo on CPU.
"""

import os
from contextlib import contextmanager

import torch
import torch.distributed as dist

__all__ = [
    "all_ranks_agree",
    "all_reduce_min_max",
    "barrier",
    "process_group_from_env",
    "rank_and_world_size",
    "resolve_device",
    "wrap_ddp",
]


def rank_and_world_size():
    """``(rank, world_size)`` of this process; ``(0, 1)`` without a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@contextmanager
def process_group_from_env(device="auto"):
    """Join the process group ``torchrun`` describes in the environment, for a ``with`` block.

    Nothing happens in a single process (no ``WORLD_SIZE`` > 1) or when the caller has
    already initialised a group; a group created here is destroyed at the end.

    Parameters
    ----------
    device : str
        The training device setting; anything but ``"cpu"`` uses NCCL when CUDA is there.

    Yields
    ------
    tuple of int
        ``(rank, world_size)``.
    """
    created = False
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        cuda = device != "cpu" and torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if cuda else "gloo")
        created = True
    try:
        yield rank_and_world_size()
    finally:
        if created:
            dist.destroy_process_group()


def resolve_device(device, rank):
    """``"auto"`` -> CUDA if available; a bare ``"cuda"`` -> this rank's GPU under DDP."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda" and device.index is None and rank_and_world_size()[1] > 1:
        device = torch.device("cuda", rank % torch.cuda.device_count())
    return device


def wrap_ddp(module, device):
    """``module`` in ``DistributedDataParallel`` under a process group, else unchanged."""
    if rank_and_world_size()[1] == 1:
        return module
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(
        module, device_ids=[device.index] if device.type == "cuda" else None
    )


def barrier():
    """Wait for all ranks (no-op in one process)."""
    if rank_and_world_size()[1] > 1:
        dist.barrier()


def all_reduce_min_max(lo, hi):
    """Element-wise minimum of ``lo`` and maximum of ``hi`` over all ranks (in place)."""
    if rank_and_world_size()[1] > 1:
        dist.all_reduce(lo, op=dist.ReduceOp.MIN)
        dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    return lo, hi


@contextmanager
def all_ranks_agree(error_type=RuntimeError):
    """Run rank-specific work; if it fails on one rank, every rank stops (no hang).

    The failing rank re-raises its own error; the others raise ``error_type``.
    """
    if rank_and_world_size()[1] == 1:
        yield
        return
    failed = None
    try:
        yield
    except Exception as err:
        failed = err
    flag = torch.tensor([0 if failed is None else 1])
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    if failed is not None:
        raise failed
    if int(flag) != 0:
        raise error_type("stopping: another process failed (see its log)")
