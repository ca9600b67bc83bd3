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

from tapecast.core.errors import TapecastError
from tapecast.diffusion.protocols import ConditionalDenoiser, Conditioning, Sampler


def reverse_sample(net: ConditionalDenoiser, sampler: Sampler, cond: Conditioning,
                   shape: Sequence[int], *, generator: torch.Generator,
                   device: torch.device | str | None = None) -> torch.Tensor:
    """Run ``sampler`` from its initial noise to data with ``net`` at every step.

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

    Returns
    -------
    Tensor
        The samples, ``shape``, float32, on ``device``.
    """
    x = sampler.init_noise(shape, generator, device=device)  # (rows, *event)
    for i, t in enumerate(sampler.timesteps):
        out = net(x, sampler.model_time(t).to(x.device).expand(shape[0]), cond)
        x = sampler.step(out, i, x, generator=generator)
    return x


@torch.no_grad()
def draw_samples(net: ConditionalDenoiser, sampler: Sampler,
                 batch: Mapping[str, torch.Tensor], n_samples: int,
                 event_shape: Sequence[int], *, seed: int,
                 device: torch.device | str | None = None, rows: int | None = None
                 ) -> torch.Tensor:
    """``n_samples`` draws per row of ``batch``, shape ``(B, n_samples, *event_shape)``.

    ``batch`` holds what the network's ``condition`` reads (its tensors on ``device``); ``B``
    is their shared first dimension, or ``rows`` for a network that reads no tensor.
    """
    cond = net.condition(batch)
    rows = rows if rows is not None else _rows(batch)
    x = reverse_sample(net, sampler, cond.expand(n_samples), (rows * n_samples, *event_shape),
                       generator=torch.Generator().manual_seed(seed), device=device)
    return x.reshape(rows, n_samples, *event_shape)


def _rows(batch: Mapping[str, torch.Tensor]) -> int:
    """The rows of a batch (the first dimension its tensors share)."""
    sizes = {int(v.shape[0]) for v in batch.values() if v.dim() > 0}
    if len(sizes) != 1:
        raise TapecastError(f"batch tensors must share one first dimension (pass rows= for an "
                            f"unconditional network), got {sorted(sizes)}")
    return sizes.pop()
