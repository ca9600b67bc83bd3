"""Data-parallel training across processes started by ``torchrun`` (gloo on CPU).

``torchrun --nproc_per_node=N script.py`` starts N copies of the script with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in the environment.
:func:`init` joins them into one process group (or reports a single process), and the
training loop then:

* broadcasts rank 0's weights and buffers once, so every rank starts equal;
* cuts each global batch into ``batch_shards`` strided shards (shard ``s`` holds positions
  ``s, s + S, s + 2S, ...`` of the batch) and gives rank ``r`` the shards ``r, r + N, ...``;
* sums the shards' weighted gradients over ranks (:func:`reduce_gradients`, one all-reduce of
  one flat buffer per dtype, as DDP's buckets do), so every rank applies the same update;
* sums validation losses over ranks (:func:`all_reduce_sum`), so all ranks agree on them;
* lets only rank 0 (:attr:`DistContext.is_main`) write checkpoints and logs.

The weights are not wrapped in ``DistributedDataParallel``: the loss function receives the bare
model (its attributes and methods stay reachable), a rank may hold no sample of a short last
batch, and one rank may run several shards; the explicit reduction covers all three.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from tapecast.core.errors import TapecastError


@dataclass(frozen=True)
class DistContext:
    """Rank and size of the process group a fit runs in.

    Attributes
    ----------
    rank, world_size, local_rank : int
        This process's place (0, 1, 0 when single).
    owns_group : bool
        True when :func:`init` created the process group (and :func:`teardown` ends it).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        """True on rank 0, the one that writes files and draws progress."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """True when more than one process takes part."""
        return self.world_size > 1

    def rank_shards(self, shards: int) -> range:
        """The shard numbers this rank computes: ``rank, rank + world_size, ...`` below shards."""
        return range(self.rank, shards, self.world_size)


def env_world_size() -> int:
    """``WORLD_SIZE`` from the environment (1 when unset).

    Raises
    ------
    TapecastError
        When it is not a positive integer.
    """
    raw = os.environ.get("WORLD_SIZE", "1")
    if not raw.isdigit() or int(raw) < 1:
        raise TapecastError(f"environment variable WORLD_SIZE: expected a positive integer, "
                            f"got {raw!r}")
    return int(raw)


def init(backend: str = "gloo") -> DistContext:
    """Join the process group torchrun set up, or describe a single process.

    An existing process group is used as it is (and left open by :func:`teardown`).

    Parameters
    ----------
    backend : str
        ``"gloo"`` (CPU, and CUDA all-reduce) or ``"nccl"``.

    Raises
    ------
    TapecastError
        When ``WORLD_SIZE`` > 1 but torch.distributed or the backend is unavailable, or the
        torchrun variables are incomplete.
    """
    if dist.is_available() and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(),
                           int(os.environ.get("LOCAL_RANK", "0")), owns_group=False)
    world = env_world_size()
    if world == 1:
        return DistContext()
    check_backend(backend)
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise TapecastError(f"distributed run: WORLD_SIZE={world} but {', '.join(missing)} "
                            f"unset; start it with torchrun --nproc_per_node=N")
    dist.init_process_group(backend=backend, init_method="env://")
    return DistContext(dist.get_rank(), dist.get_world_size(),
                       int(os.environ.get("LOCAL_RANK", "0")), owns_group=True)


def check_backend(backend: str) -> None:
    """Raise a one-line TapecastError when torch.distributed or ``backend`` is missing."""
    if not dist.is_available():
        raise TapecastError("distributed run: this torch build has no torch.distributed")
    available = {"gloo": dist.is_gloo_available(), "nccl": dist.is_nccl_available()}
    if not available.get(backend, False):
        raise TapecastError(f"distributed run: backend {backend!r} is not available in this "
                            f"torch build (gloo: {available['gloo']}, nccl: {available['nccl']})")


def teardown(ctx: DistContext) -> None:
    """Destroy the process group if :func:`init` created it."""
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_module(model: nn.Module, ctx: DistContext) -> None:
    """Copy rank 0's parameters and buffers to every rank (in place)."""
    if not ctx.active:
        return
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            dist.broadcast(tensor.data, src=0)


def reduce_gradients(params: Sequence[nn.Parameter], extras: torch.Tensor,
                     ctx: DistContext) -> torch.Tensor:
    """Sum ``p.grad`` over ranks in place, and the float64 vector ``extras`` with them.

    A parameter with no gradient on any rank keeps ``grad = None`` (AdamW then skips it, as it
    would in one process); one with a gradient on some ranks gets zeros on the others.

    Parameters
    ----------
    params : sequence of nn.Parameter
        The trained parameters, in the same order on every rank.
    extras : Tensor
        float64, shape (E,): per-rank numbers to sum alongside (loss parts, flags).

    Returns
    -------
    Tensor
        float64, shape (E,): ``extras`` summed over ranks (unchanged when single).
    """
    if not ctx.active:
        return extras
    has_grad = torch.tensor([float(p.grad is not None) for p in params], dtype=torch.float64)
    head = torch.cat([extras.to(torch.float64).cpu(), has_grad])
    dist.all_reduce(head, op=dist.ReduceOp.SUM)
    summed, anywhere = head[: extras.numel()], head[extras.numel():] > 0
    with_grad = [p for p, keep in zip(params, anywhere.tolist(), strict=True) if keep]
    for p in with_grad:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    for group in _by_dtype_and_device(with_grad):
        grads = [p.grad for p in group if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads])  # (sum of numels,)
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        offset = 0
        for g in grads:
            g.copy_(flat[offset: offset + g.numel()].view_as(g))
            offset += g.numel()
    return summed


def all_reduce_sum(values: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum a float64 vector over ranks (a copy; unchanged when single)."""
    out = values.to(torch.float64).cpu().clone()
    if ctx.active:
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (no-op when single)."""
    if ctx.active:
        dist.barrier()


def _by_dtype_and_device(params: Iterable[nn.Parameter]) -> list[list[nn.Parameter]]:
    groups: dict[tuple[torch.dtype, torch.device], list[nn.Parameter]] = {}
    for p in params:
        groups.setdefault((p.dtype, p.device), []).append(p)
    return list(groups.values())
