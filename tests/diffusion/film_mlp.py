"""A 60-line conditional denoiser for tests: a FiLM-MLP over a 1-D target.

It plugs into :mod:`tapecast.diffusion` through the ``ConditionalDenoiser`` protocol alone (no
edit of the core): ``condition(batch)`` encodes the batch's ``context`` (B, D) once, and a call
maps the noisy target (B, 1), the network time (B,) and that encoding to the model output. FiLM
(Perez et al. 2018): each hidden layer is scaled and shifted by the condition and the time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class Encoded:
    """The condition of B rows: one embedding per row, repeated by ``expand``."""

    embedding: Tensor  # (B, W)

    def expand(self, n: int) -> Encoded:
        return Encoded(self.embedding.repeat_interleave(n, dim=0))  # (B·n, W), row b·n + s


class FiLMMLP(nn.Module):
    """``net(x_t, t, cond)`` -> output of x_t's shape (B, 1); ``t`` is the noise's model time."""

    def __init__(self, context_dim: int, width: int = 64, depth: int = 3,
                 time_scale: float = 1.0) -> None:
        super().__init__()
        self.time_scale = time_scale  # maps the noise's model time to about [0, 1]
        self.encoder = nn.Sequential(nn.Linear(context_dim, width), nn.SiLU(),
                                     nn.Linear(width, width))
        self.inp = nn.Linear(1, width)
        self.films = nn.ModuleList(nn.Linear(2 * width, 2 * width) for _ in range(depth))
        self.layers = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
        self.out = nn.Linear(width, 1)
        self.width = width

    def condition(self, batch: Mapping[str, Tensor]) -> Encoded:
        return Encoded(self.encoder(batch["context"]))

    def time_features(self, t: Tensor) -> Tensor:
        """Sinusoidal features of the (scaled) time, (B, W)."""
        half = self.width // 2
        freqs = torch.exp(torch.arange(half, dtype=torch.float32) * (-math.log(1e3) / half))
        angle = (t.float() * self.time_scale)[:, None] * freqs[None] * 1e3
        return torch.cat([angle.sin(), angle.cos()], dim=1)

    def forward(self, x_t: Tensor, t: Tensor, cond: Encoded) -> Tensor:
        h = self.inp(x_t)  # (B, W)
        both = torch.cat([cond.embedding, self.time_features(t)], dim=1)  # (B, 2W)
        for film, layer in zip(self.films, self.layers, strict=True):
            scale, shift = film(both).chunk(2, dim=1)
            h = h + layer(torch.nn.functional.silu(h * (1 + scale) + shift))
        out: Tensor = self.out(h)
        return out
