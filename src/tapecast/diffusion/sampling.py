"""The reverse loop: the one loop over noise levels, for any network and any fitting sampler.

::

    sampler = get_sampler("ddim", noise); sampler.set_timesteps(10)
    x = draw_samples(net, sampler, batch, n_samples=32, event_shape=(K, H), seed=0)  # (B, S, K, H)

The network is conditioned once per batch and its conditioning expanded over the samples; each
reverse step is one network call and one ``sampler.step`` by index (a sampler may visit one
noise level several times). Draws come from a CPU generator and are moved to the network's
device, so a seed gives the same samples on every device.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from tapecast.core.errors import TapecastError
from tapecast.diffusion.protocols import ConditionalDenoiser, Conditioning, Sampler


def reverse_sample(net: ConditionalDenoiser, sampler: Sampler, cond: Conditioning,
                   shape: Sequence[int], *, generator: torch.Generator,
                   device: torch.device | str | None = None,
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Run ``sampler`` from its initial noise to data with ``net`` at every step.

    Autograd records the loop unless the caller disables it (:func:`draw_samples` runs under
    ``torch.no_grad``); the network's time input is the sampler's ``model_time`` (float32: a
    float64 network casts it).

    Parameters
    ----------
    net : ConditionalDenoiser
    sampler : Sampler
        With its timesteps set.
    cond : Conditioning
        Already expanded to ``shape[0]`` rows.
    shape : sequence of int
        ``(rows, *event)`` of the samples.
    generator : torch.Generator
        Every draw (initial noise, step noise).
    device : torch.device or str, optional
        Where the samples live (the network's device).
    dtype : torch.dtype
        Of the samples (the network's parameters' dtype).

    Returns
    -------
    Tensor
        The samples, ``shape``, ``dtype``, on ``device``.
    """
    x = sampler.init_noise(shape, generator, dtype=dtype, device=device)  # (rows, *event)
    for i, t in enumerate(sampler.timesteps):
        out = net(x, sampler.model_time(t).to(x.device).expand(shape[0]), cond)
        x = sampler.step(out, i, x, generator=generator)
    return x


@torch.no_grad()
def draw_samples(net: ConditionalDenoiser, sampler: Sampler,
                 batch: Mapping[str, torch.Tensor], n_samples: int,
                 event_shape: Sequence[int], *, seed: int,
                 device: torch.device | str | None = None, rows: int | None = None,
                 cond: Conditioning | None = None) -> torch.Tensor:
    """``n_samples`` draws per row of ``batch``, shape ``(B, n_samples, *event_shape)``.

    ``batch`` holds what the network's ``condition`` reads; ``B`` is its tensors' shared first
    dimension, or ``rows`` for a network that reads no tensor. The samples live on ``device``
    (default: the network's parameters', else the batch's, else the CPU) in the dtype of the
    network's parameters (float32 for a network without any). ``cond``: ``net.condition(batch)``
    when the caller has already computed it (to read more from the same encoding).
    """
    cond = net.condition(batch) if cond is None else cond
    rows = rows if rows is not None else _rows(batch)
    param = next(iter(net.parameters()), None) if isinstance(net, nn.Module) else None
    tensors = [v for v in batch.values() if isinstance(v, torch.Tensor)]
    if device is None:
        device = param.device if param is not None else (
            tensors[0].device if tensors else None)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    x = reverse_sample(net, sampler, cond.expand(n_samples), (rows * n_samples, *event_shape),
                       generator=torch.Generator().manual_seed(seed), device=device,
                       dtype=dtype)
    return x.reshape(rows, n_samples, *event_shape)


def _rows(batch: Mapping[str, torch.Tensor]) -> int:
    """The rows of a batch (the first dimension its tensors share)."""
    sizes = {int(v.shape[0]) for v in batch.values()
             if isinstance(v, torch.Tensor) and v.dim() > 0}
    if len(sizes) != 1:
        raise TapecastError(f"batch tensors must share one first dimension (pass rows= for an "
                            f"unconditional network), got {sorted(sizes)}")
    return sizes.pop()
