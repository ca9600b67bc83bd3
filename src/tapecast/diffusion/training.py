"""The denoising training loss of any :class:`~tapecast.diffusion.protocols.ConditionalDenoiser`.

The loss every diffusion model of tapecast trains with, through :func:`tapecast.train.fit`::

    loss_fn = denoising_loss(noise, draws=8)
    fit(net, loss_fn, train_data, val_data, config, run_dir="runs/x")

For each row of a batch: condition once (``net.condition(batch)``), draw ``draws`` noise levels
``t`` and noisy targets ``x_t`` with the noise process' regression target (ε or v for Gaussian
noise, Ho et al. 2020 eq. 14 / Salimans & Ho 2022; the scaled generalized score for
Jump-Laplace noise; −z for variance-exploding noise), and regress the network output on it,
weighted by ``noise.loss_weight(t)`` and masked to the observed target entries.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from tapecast.diffusion.protocols import ConditionalDenoiser, Conditioning, NoiseProcess

Batch = Mapping[str, torch.Tensor]


def diffusion_loss(net: ConditionalDenoiser, noise: NoiseProcess, batch: Batch,
                   generator: torch.Generator, *, draws: int = 1,
                   cond: Conditioning | None = None) -> torch.Tensor:
    """Masked, weighted MSE between the network output and the noise process' target.

    Parameters
    ----------
    net : ConditionalDenoiser
    noise : NoiseProcess
    batch : mapping of str to Tensor
        ``target`` (B, ...), optional ``target_mask`` (B, ...) with 1 where observed (all ones
        by default); the rest is the network's condition (:meth:`ConditionalDenoiser.condition`).
    generator : torch.Generator
        Every random draw of the loss (times, then noise).
    draws : int
        Noise draws per row, sharing the row's conditioning.
    cond : Conditioning, optional
        ``net.condition(batch)`` when the caller has already computed it (to use the same
        encoding for another loss term); computed here otherwise.

    Returns
    -------
    Tensor
        Scalar: the weighted squared error summed over observed entries, divided by their count
        (0 when none is observed).
    """
    cond = (net.condition(batch) if cond is None else cond).expand(draws)
    x0 = batch["target"].repeat_interleave(draws, dim=0)  # (B·d, ...), row-major
    mask = (batch["target_mask"].repeat_interleave(draws, dim=0) if "target_mask" in batch
            else torch.ones_like(x0))
    t = noise.sample_timesteps(x0.shape[0], generator=generator, device=x0.device)
    x_t, target = noise.add_noise(x0, t, generator=generator)
    predicted = net(x_t, noise.model_time(t).to(x0.device), cond)  # (B·d, ...)
    weight = noise.loss_weight(t).to(x0.device).reshape(-1, *([1] * (x0.dim() - 1)))
    squared = weight * mask * (_at_least_fp32(predicted) - _at_least_fp32(target)) ** 2
    loss: torch.Tensor = squared.sum() / mask.sum().clamp_min(1.0)
    return loss


def _at_least_fp32(x: torch.Tensor) -> torch.Tensor:
    """Half-precision outputs (autocast) upcast to float32; float32 and float64 kept."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def denoising_loss(noise: NoiseProcess, *, draws: int = 1
                   ) -> Callable[[nn.Module, Batch, torch.Generator], torch.Tensor]:
    """:func:`diffusion_loss` as the ``loss_fn(model, batch, generator)`` of
    :func:`tapecast.train.fit` (the model must be a :class:`ConditionalDenoiser`)."""
    def loss_fn(model: nn.Module, batch: Batch, generator: torch.Generator) -> torch.Tensor:
        net: Any = model  # an nn.Module that also has condition() (checked at the call)
        return diffusion_loss(net, noise, batch, generator, draws=draws)
    return loss_fn
