"""Validation of a fit: the loss (and metrics) over the validation set, weighted by the loss's
own weights, with the EMA or the trained weights, optionally on the first batches only."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from tapecast.core.errors import TapecastError
from tapecast.train import distributed as ddp
from tapecast.train.data import Batch, Dataset
from tapecast.train.device import Resolved
from tapecast.train.ema import EMA
from tapecast.train.loss import LossFn, ShardLoss, compute_loss, derived_metrics
from tapecast.train.sampler import VAL, seeded_stream


@dataclass(frozen=True)
class Validation:
    """The weighted mean validation loss and metrics (``perplexity`` included when the loss
    names its NLL)."""

    loss: float
    metrics: dict[str, float]
    perplexity_of: str | None


@dataclass(frozen=True)
class ValidationPlan:
    """How to validate: batch size, batch cap, seed, device, precision, ranks."""

    batch_size: int
    max_batches: int | None
    seed: int
    device: torch.device
    precision: Resolved
    ctx: ddp.DistContext


def to_device(batch: Batch, device: torch.device) -> dict[str, torch.Tensor]:
    """Every tensor of ``batch`` on ``device``."""
    return {name: t.to(device, non_blocking=True) for name, t in batch.items()}


@torch.no_grad()
def validate(model: nn.Module, loss_fn: LossFn, data: Dataset, plan: ValidationPlan, *,
             ema: EMA | None) -> Validation:
    """Mean loss over consecutive batches of ``data`` (the first ``max_batches`` of them).

    Batch ``i`` draws its randomness from the stream ``(seed, VAL, i)``, the same at every
    validation; rank ``r`` computes batches ``r, r + W, ...`` and the sums are all-reduced.
    The model runs in eval mode with the EMA weights when ``ema`` is given (restored after).

    Raises
    ------
    TapecastError
        When the batches' weights sum to zero, or their metric names differ.
    """
    was_training = model.training
    model.eval()
    size = plan.batch_size
    n_batches = -(-len(data) // size)
    if plan.max_batches is not None:
        n_batches = min(n_batches, plan.max_batches)
    outputs: list[ShardLoss] = []
    applied = contextlib.nullcontext() if ema is None else ema.applied_to(model)
    with applied:
        for i in plan.ctx.rank_shards(n_batches):
            indices = torch.arange(i * size, min((i + 1) * size, len(data)))
            batch = to_device(data.batch(indices), plan.device)
            with seeded_stream(plan.seed, VAL, i, device=plan.device) as generator:
                outputs.append(compute_loss(loss_fn, model, batch, generator,
                                            n_samples=len(indices), device=plan.device,
                                            precision=plan.precision))
    model.train(was_training)
    return _combine(outputs, plan.ctx)


def _combine(outputs: list[ShardLoss], ctx: ddp.DistContext) -> Validation:
    first = outputs[0] if outputs else None  # rank 0 always has batch 0: its names rule
    shared = ddp.broadcast_names([] if first is None else
                                 [first.perplexity_of or "", *sorted(first.metrics)], ctx)
    perplexity_of, names = (shared[0] or None, shared[1:]) if shared else (None, ())
    sums = torch.zeros(2 + len(names), dtype=torch.float64)  # loss·w, w, metric·w ...
    for out in outputs:
        if set(out.metrics) != set(names):
            raise TapecastError(f"validation: every batch must report the metrics "
                                f"{list(names)}, got {sorted(out.metrics)}")
        sums += torch.tensor([float(out.loss) * out.weight, out.weight,
                              *[out.metrics[k] * out.weight for k in names]],
                             dtype=torch.float64)
    total = ddp.all_reduce_sum(sums, ctx)
    if not total[1] > 0:
        raise TapecastError("validation: the loss weights of all batches sum to zero")
    loss = float(total[0] / total[1])
    metrics = {k: float(total[2 + j] / total[1]) for j, k in enumerate(names)}
    return Validation(loss, derived_metrics(loss, metrics, perplexity_of), perplexity_of)
