"""What a loss function returns to the training loop, and how shards of it are combined.

``loss_fn(model, batch, generator)`` returns either a scalar tensor, the mean loss over the
samples of ``batch`` (its weight is then the number of samples), or a :class:`LossOutput`: the
mean over its own units (tokens, observed values, ...) with the count of those units as its
weight, and extra metrics averaged over the same units. The loop weighs every shard by its
weight, on one process or many, so the step follows the gradient of

    L = Σ_s w_s · ℓ_s / Σ_s w_s        (ℓ_s: the mean loss of shard s, w_s its weight)

— a token-weighted mean for a language model however its tokens fall into shards.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from tapecast.core.errors import TapecastError
from tapecast.train.data import Batch
from tapecast.train.device import Resolved, autocast


@dataclass(frozen=True)
class LossOutput:
    """A loss with its own weight and extra metrics.

    Attributes
    ----------
    loss : Tensor
        Scalar: the mean loss over the ``weight`` units of the batch (differentiable).
    weight : float, Tensor or None
        How many units ``loss`` averages (e.g. the target tokens not masked); None means the
        number of samples in the batch. A batch with weight 0 adds nothing.
    metrics : mapping of str to float or Tensor
        Extra scalars, each a mean over the same units (e.g. ``accuracy``); reported as
        ``train_<name>`` and ``val_<name>``. The names must be the same for every batch.
    perplexity_of : str or None
        ``"loss"`` or a metric name holding a mean negative log-likelihood in nats: the loop
        then also reports ``perplexity = exp(mean)`` of it, averaged first over all units.
    """

    loss: torch.Tensor
    weight: float | torch.Tensor | None = None
    metrics: Mapping[str, float | torch.Tensor] = field(default_factory=dict)
    perplexity_of: str | None = None


LossFn = Callable[[nn.Module, Batch, torch.Generator], "torch.Tensor | LossOutput"]


@dataclass(frozen=True)
class ShardLoss:
    """One shard's loss as the loop uses it: float32 scalar loss, float weight, float metrics."""

    loss: torch.Tensor
    weight: float
    metrics: dict[str, float]
    perplexity_of: str | None


def as_shard_loss(value: object, n_samples: int) -> ShardLoss:
    """Check and normalise what ``loss_fn`` returned for a batch of ``n_samples`` samples.

    Raises
    ------
    TapecastError
        When the loss is not a scalar tensor, the weight is negative or not finite, a metric
        is not a scalar or is named ``loss``/``perplexity``, or ``perplexity_of`` names
        nothing.
    """
    out = value if isinstance(value, LossOutput) else LossOutput(value)  # type: ignore[arg-type]
    loss = out.loss
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise TapecastError(f"fit: loss_fn must return a scalar tensor, got "
                            f"{getattr(loss, 'shape', type(loss).__name__)}")
    weight = float(n_samples if out.weight is None else out.weight)
    if not math.isfinite(weight) or weight < 0:
        raise TapecastError(f"fit: expected a loss weight >= 0, got {weight}")
    metrics = {}
    for name, metric in out.metrics.items():
        if name in ("loss", "perplexity") or not isinstance(name, str) or not name:
            raise TapecastError(f"fit: metric name {name!r} is reserved or empty")
        if isinstance(metric, torch.Tensor) and metric.numel() != 1:
            raise TapecastError(f"fit: metric '{name}' must be a scalar, got {metric.shape}")
        metrics[name] = float(metric)
    if out.perplexity_of is not None and out.perplexity_of != "loss" and \
            out.perplexity_of not in metrics:
        raise TapecastError(f"fit: perplexity_of={out.perplexity_of!r} names neither 'loss' "
                            f"nor a metric ({', '.join(metrics) or 'none'})")
    return ShardLoss(loss.float().reshape(()), weight, metrics, out.perplexity_of)


def derived_metrics(loss: float, metrics: Mapping[str, float],
                    perplexity_of: str | None) -> dict[str, float]:
    """``metrics`` plus ``perplexity = exp(mean NLL)`` when ``perplexity_of`` is set."""
    out = dict(metrics)
    if perplexity_of is not None:
        nll = loss if perplexity_of == "loss" else metrics[perplexity_of]
        out["perplexity"] = math.exp(nll) if nll < 709.0 else math.inf
    return out


def compute_loss(loss_fn: LossFn, model: nn.Module, batch: Batch, generator: torch.Generator,
                 *, n_samples: int, device: torch.device, precision: Resolved) -> ShardLoss:
    """Run ``loss_fn`` on one shard or batch under the run's autocast; checked and normalised."""
    with autocast(device, precision):
        value = loss_fn(model, batch, generator)
    return as_shard_loss(value, n_samples)
