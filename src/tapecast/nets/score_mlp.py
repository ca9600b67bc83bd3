"""A residual-MLP score network ``s_θ(x, σ)`` for state vectors (NCSN, Song & Ermon 2019).

The network sees a state ``x`` (B, D) and the noise level through ``log σ`` (the VE noise's
``time_input="log_sigma"``), embedded by sines and cosines and added into every residual block,
and returns ``σ ∇log p_σ(x)`` (the σ-scaled score of :class:`tapecast.diffusion.VENoise`).

With ``gaussian_skip`` the output is the σ-scaled score of a Gaussian ``N(0, (σ_data² + σ²) I)``
plus the MLP's correction::

    out(x, σ) = -σ x / (σ_data² + σ²) + MLP(x, log σ)

which is exact for z-scored Gaussian data and for every law at large σ (where ``p_σ`` is
nearly ``N(mean, σ² I)``), so the MLP learns only what the data adds (the skip of Karras et al.
2022, EDM, in the score form). The output layer starts at zero, so an untrained network is that
Gaussian.

Legend: ``x`` = x, ``log_sigma`` = log σ, ``width`` = W, ``depth`` = residual blocks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from tapecast.core.config import ConfigBase
from tapecast.diffusion.protocols import Unconditional
from tapecast.nets.embeddings import sinusoidal_embedding

__all__ = ["ScoreMLP", "ScoreMLPConfig"]


@dataclass(frozen=True)
class ScoreMLPConfig(ConfigBase):
    """Sizes of :class:`ScoreMLP`.

    Parameters
    ----------
    dim : int
        D, the state's dimension (set from the data at fit time).
    width : int
        W, the hidden width.
    depth : int
        Residual blocks.
    sigma_dim : int
        Width of the sinusoidal ``log σ`` embedding (even).
    gaussian_skip : bool
        Add the σ-scaled score of ``N(0, (σ_data² + σ²) I)`` to the output.
    sigma_data : float
        The data's standard deviation per coordinate assumed by the skip (1 for z-scored states).
    """

    dim: int = 2
    width: int = 128
    depth: int = 3
    sigma_dim: int = 32
    gaussian_skip: bool = True
    sigma_data: float = 1.0

    def validate(self) -> None:
        """Positive sizes, an even embedding."""
        self.check_range("dim", low=1)
        self.check_range("width", low=1)
        self.check_range("depth", low=1)
        self.check_range("sigma_dim", low=2)
        self.check_range("sigma_data", low=0.0, low_inclusive=False)
        if self.sigma_dim % 2:
            self.fail("sigma_dim", f"must be even, got {self.sigma_dim}")


class _Block(nn.Module):
    """``h + Linear(SiLU(Linear(SiLU(LayerNorm h)) + e_σ))``: a pre-norm residual block."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.inner = nn.Linear(width, width)
        self.sigma = nn.Linear(width, width)
        self.outer = nn.Linear(width, width)

    def forward(self, h: Tensor, emb: Tensor) -> Tensor:
        a = torch.nn.functional.silu(self.inner(torch.nn.functional.silu(self.norm(h))))
        out: Tensor = h + self.outer(torch.nn.functional.silu(a + self.sigma(emb)))
        return out


class ScoreMLP(nn.Module):
    """``σ ∇log p_σ(x)`` of a D-dimensional state, conditioned on ``log σ`` (unconditional
    otherwise: :meth:`condition` returns :class:`Unconditional`)."""

    def __init__(self, config: ScoreMLPConfig) -> None:
        super().__init__()
        self.config = config
        w = config.width
        self.embed = nn.Sequential(nn.Linear(config.sigma_dim, w), nn.SiLU(), nn.Linear(w, w))
        self.inp = nn.Linear(config.dim, w)
        self.blocks = nn.ModuleList(_Block(w) for _ in range(config.depth))
        self.norm = nn.LayerNorm(w)
        self.out = nn.Linear(w, config.dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def condition(self, batch: Mapping[str, Tensor]) -> Unconditional:
        """No condition: a score model of the state alone."""
        return Unconditional()

    def forward(self, x: Tensor, log_sigma: Tensor, cond: Unconditional | None = None
                ) -> Tensor:
        """The σ-scaled score at ``x`` (B, D) and noise levels ``log σ`` (B,): (B, D), dtype of
        the parameters (``x`` is cast to it)."""
        dtype = self.inp.weight.dtype
        x = x.to(dtype)
        log_sigma = log_sigma.to(dtype).reshape(-1)  # (B,)
        emb = self.embed(sinusoidal_embedding(log_sigma, self.config.sigma_dim,
                                              max_period=100.0).to(dtype))  # (B, W)
        h = self.inp(x)  # (B, W)
        for block in self.blocks:
            h = block(h, emb)
        out: Tensor = self.out(torch.nn.functional.silu(self.norm(h)))  # (B, D)
        if self.config.gaussian_skip:
            sigma = torch.exp(log_sigma)[:, None]  # (B, 1)
            out = out - sigma * x / (self.config.sigma_data**2 + sigma**2)
        return out
