"""Data-parallel training across processes started by ``torchrun`` (gloo on CPU, NCCL on CUDA).

``torchrun --nproc_per_node=N script.py`` starts N copies of the script with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in the environment.
:func:`init` joins them into one process group (or reports a single process) with the backend
that fits the training device (gloo for CPU; NCCL for CUDA, each rank on ``cuda:LOCAL_RANK``),
and the training loop then:

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
    backend : str
        ``"gloo"`` or ``"nccl"``: NCCL reduces tensors on this rank's GPU only.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False
    backend: str = "gloo"

    @property
    def is_main(self) -> bool:
        """True on rank 0, the one that writes files and draws progress."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """True when more than one process takes part."""
        return self.world_size > 1

    @property
    def comm_device(self) -> torch.device:
        """Where tensors must be for a collective: this rank's GPU under NCCL, else the CPU."""
        if self.backend == "nccl":
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")

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


def env_local_rank() -> int:
    """``LOCAL_RANK`` from the environment (0 when unset or not a number)."""
    raw = os.environ.get("LOCAL_RANK", "0")
    return int(raw) if raw.isdigit() else 0


def init(backend: str = "gloo") -> DistContext:
    """Join the process group torchrun set up, or describe a single process.

    An existing process group is used as it is (and left open by :func:`teardown`).

    Parameters
    ----------
    backend : str
        ``"gloo"`` (CPU) or ``"nccl"`` (CUDA: the process's GPU must be ``cuda:LOCAL_RANK``;
        it is made the current device).

    Raises
    ------
    TapecastError
        When ``WORLD_SIZE`` > 1 but torch.distributed or the backend is unavailable, or the
        torchrun variables are incomplete.
    """
    if dist.is_available() and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), env_local_rank(),
                           owns_group=False, backend=str(dist.get_backend()))
    world = env_world_size()
    if world == 1:
        return DistContext(backend=backend)
    check_backend(backend)
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise TapecastError(f"distributed run: WORLD_SIZE={world} but {', '.join(missing)} "
                            f"unset; start it with torchrun --nproc_per_node=N")
    if backend == "nccl":
        torch.cuda.set_device(env_local_rank())
    dist.init_process_group(backend=backend, init_method="env://")
    return DistContext(dist.get_rank(), dist.get_world_size(), env_local_rank(),
                       owns_group=True, backend=backend)


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
    head = torch.cat([extras.to(torch.float64).cpu(), has_grad]).to(ctx.comm_device)
    dist.all_reduce(head, op=dist.ReduceOp.SUM)
    head = head.cpu()
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
        out = out.to(ctx.comm_device)
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        out = out.cpu()
    return out


def broadcast_names(names: Sequence[str], ctx: DistContext) -> tuple[str, ...]:
    """Rank 0's ``names`` on every rank (unchanged when single)."""
    if not ctx.active:
        return tuple(names)
    box: list[object] = [list(names)]
    dist.broadcast_object_list(box, src=0, device=ctx.comm_device)
    received = box[0]
    assert isinstance(received, list)
    return tuple(str(name) for name in received)


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (no-op when single)."""
    if ctx.active:
        dist.barrier()


def _by_dtype_and_device(params: Iterable[nn.Parameter]) -> list[list[nn.Parameter]]:
    groups: dict[tuple[torch.dtype, torch.device], list[nn.Parameter]] = {}
    for p in params:
        groups.setdefault((p.dtype, p.device), []).append(p)
    return list(groups.values())
