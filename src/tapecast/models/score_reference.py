"""A known law for checking score models: an isotropic Gaussian mixture whose blurred density
and score are exact at every noise level.

``p_σ(x) = Σ_k w_k N(x; μ_k, (s² + σ²) I)`` (a mixture of N(μ_k, s² I) convolved with
N(0, σ² I)), so ``∇log p_σ(x) = Σ_k r_k(x) (μ_k − x) / (s² + σ²)`` with ``r_k`` the
responsibilities. :meth:`GaussianMixtureLaw.analytic_net` wraps that score as a parameter-free
network of the score model's interface (``net(x, log σ) = σ ∇log p_σ(x)``), so the sampler and
the density of :mod:`tapecast.models.score_matching_ops` can be checked against the truth, and
a trained network against the same numbers (tests/models/test_score_matching.py,
scripts/results_score_matching.py).

Legend: w_k weights, μ_k means (K, D), s the component spread, σ the noise level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from tapecast.diffusion.protocols import Unconditional

__all__ = ["TWO_COMPONENTS", "GaussianMixtureLaw"]


@dataclass(frozen=True)
class GaussianMixtureLaw:
    """``Σ_k w_k N(μ_k, spread² I)``; weights (K,), means (K, D), float64."""

    weights: Tensor
    means: Tensor
    spread: float

    def sample(self, n: int, seed: int) -> Tensor:
        """``n`` draws, float64 (n, D)."""
        gen = torch.Generator().manual_seed(seed)
        u = torch.rand(n, generator=gen, dtype=torch.float64)
        k = torch.searchsorted(torch.cumsum(self.weights, 0)[:-1], u, right=True)  # (n,)
        noise = torch.randn(n, self.means.shape[1], generator=gen, dtype=torch.float64)
        return self.means[k] + self.spread * noise

    def log_prob(self, x: Tensor, var: float | None = None) -> Tensor:
        """Exact log density of the law blurred to variance ``var`` per coordinate (default:
        the unblurred spread²): (n,)."""
        var = self.spread**2 if var is None else var
        d = self.means.shape[1]
        d2 = ((x.double()[None] - self.means[:, None]) ** 2).sum(-1)  # (K, n)
        parts = (torch.log(self.weights)[:, None] - d2 / (2 * var)
                 - 0.5 * d * math.log(2 * math.pi * var))
        return torch.logsumexp(parts, 0)

    def moments(self) -> tuple[Tensor, Tensor]:
        """Mean (D,) and covariance (D, D)."""
        mean = (self.weights[:, None] * self.means).sum(0)
        dev = self.means - mean  # (K, D)
        between = (self.weights[:, None, None] * dev[:, :, None] * dev[:, None, :]).sum(0)
        eye = torch.eye(self.means.shape[1], dtype=torch.float64)
        return mean, self.spread**2 * eye + between

    def component_share(self, x: Tensor, k: int = -1) -> float:
        """Share of points whose likeliest component is ``k``."""
        d2 = ((x.double()[None] - self.means[:, None]) ** 2).sum(-1)  # (K, n)
        best = (torch.log(self.weights)[:, None] - d2 / (2 * self.spread**2)).argmax(0)
        return float((best == (k % len(self.weights))).double().mean())

    def analytic_net(self) -> nn.Module:
        """The exact ``σ ∇log p_σ`` as a parameter-free score network."""
        return _AnalyticScore(self)


class _AnalyticScore(nn.Module):
    def __init__(self, law: GaussianMixtureLaw) -> None:
        super().__init__()
        self.law = law

    def condition(self, batch: object) -> Unconditional:
        return Unconditional()

    def forward(self, x: Tensor, log_sigma: Tensor, cond: object = None) -> Tensor:
        law = self.law
        sigma = torch.exp(log_sigma.double())[:, None]  # (B, 1)
        var = law.spread**2 + sigma**2
        xd = x.double()
        logits = (torch.log(law.weights)[None]
                  - ((xd[:, None] - law.means[None]) ** 2).sum(-1) / (2 * var))  # (B, K)
        resp = torch.softmax(logits, 1)
        grad = (resp[:, :, None] * (law.means[None] - xd[:, None])).sum(1) / var  # (B, D)
        return (sigma * grad).to(x.dtype)


TWO_COMPONENTS = GaussianMixtureLaw(
    weights=torch.tensor([0.3, 0.7], dtype=torch.float64),
    means=torch.tensor([[-1.5, -0.5], [1.5, 1.0]], dtype=torch.float64), spread=0.5)
"""0.3 N((-1.5, -0.5), 0.5² I) + 0.7 N((1.5, 1.0), 0.5² I): the law of the density checks."""
