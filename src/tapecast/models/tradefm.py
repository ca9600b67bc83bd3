"""TradeFM at the model layer: what ties the decoder of :mod:`tapecast.nets.tradefm` to the
training loop (its loss). The forecaster and generation API of issue 14 build on it.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from tapecast.nets.tradefm import IGNORE_INDEX
from tapecast.train import LossOutput

__all__ = ["tradefm_loss"]


def tradefm_loss(model: nn.Module, batch: Mapping[str, Tensor],
                 generator: torch.Generator | None = None) -> LossOutput:
    """Token-weighted mean next-token cross-entropy, for :func:`tapecast.train.fit`.

    Parameters
    ----------
    model : nn.Module
        A :class:`TradeFM` (or a wrapper with the same call).
    batch : mapping of str to Tensor
        ``inputs`` and ``targets`` int64 (B, T) (as :class:`tapecast.train.TokenWindows` gives;
        targets of ``IGNORE_INDEX`` = −100 are padding); optional ``tier``, ``flag`` and
        ``dp_bin`` (B, T) of the inputs, zeros where absent.
    generator : torch.Generator, optional
        Unused (the loss draws nothing); part of the trainer's loss signature.

    Returns
    -------
    LossOutput
        Mean NLL in nats over the kept targets, weight = their count, ``accuracy`` of the
        argmax, perplexity of the loss.
    """
    inputs, targets = batch["inputs"], batch["targets"]  # (B, T) each
    zeros = torch.zeros_like(inputs)
    logits = model(inputs, batch.get("tier", zeros), batch.get("flag", zeros),
                   batch.get("dp_bin", zeros))  # (B, T, V)
    keep = targets != IGNORE_INDEX  # (B, T)
    n_tokens = keep.sum()
    nll_sum = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(),
                              ignore_index=IGNORE_INDEX, reduction="sum")
    correct = ((logits.argmax(-1) == targets) & keep).sum()
    denominator = n_tokens.clamp(min=1)
    return LossOutput(nll_sum / denominator, weight=n_tokens,
                      metrics={"accuracy": (correct / denominator).detach()},
                      perplexity_of="loss")
