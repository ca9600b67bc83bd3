"""Exact model outputs for Gaussian data, used to test samplers without training a network.

Data ``x0 ~ N(mu, s^2)`` independently per coordinate (``mu``, ``s`` broadcast over the sample).

* Gaussian VP: ``x_t ~ N(sqrt(ab) mu, ab s^2 + 1 - ab)``, so ``E[eps | x_t] =
  sqrt(1 - ab) (x_t - sqrt(ab) mu) / (ab s^2 + 1 - ab)``.
* Jump-Laplace (1-D events): the marginal generalized score ``∇V(x)/p(x)`` with
  ``p = a N(c mu, c^2 s^2) + (1 - a) (Laplace_b * N)`` and ``∇V = λ b^2 [a ∇(L * N) + (1 - a)
  ∇(L * L * N)]``, ``∇(L * L)(u) = -u L(u) / (2 b^2)``; the Laplace-Gaussian convolutions are
  written with ``erfcx`` (derivation in docs/diffusion.md).
"""

from __future__ import annotations

import math

import torch

from tapecast.diffusion import GaussianNoise, JumpLaplaceNoise


def gaussian_eps(
    noise: GaussianNoise,
    x: torch.Tensor,
    t: torch.Tensor | int,
    mu: float | torch.Tensor,
    s: float | torch.Tensor,
) -> torch.Tensor:
    """Exact ``E[eps | x_t]`` for data ``N(mu, s^2)``."""
    ab = float(noise.alpha_bar(int(t)))
    return math.sqrt(1.0 - ab) * (x - math.sqrt(ab) * mu) / (ab * s * s + 1.0 - ab)


def _exp_erfcx(
    w: torch.Tensor, z: torch.Tensor, sig: torch.Tensor, b: float, sign: float
) -> torch.Tensor:
    """``exp(sig²/2b² + sign z/b) erfc(w)``, stable via ``erfcx``; w = (sig/b + sign z/sig)/√2."""
    gauss = torch.exp(-z * z / (2.0 * sig * sig))
    positive = gauss * torch.special.erfcx(w.abs())
    return torch.where(
        w >= 0, positive, 2.0 * torch.exp(sig * sig / (2 * b * b) + sign * z / b) - positive
    )


def laplace_gauss_terms(z: torch.Tensor, sig: torch.Tensor, b: float) -> tuple[torch.Tensor, ...]:
    """``∫ L(u) φ_sig(z-u) du``, ``∫ sign(u) L(u) φ_sig(z-u) du``, ``∫ u L(u) φ_sig(z-u) du``."""
    w1 = (sig / b - z / sig) / math.sqrt(2.0)
    w2 = (sig / b + z / sig) / math.sqrt(2.0)
    e1 = _exp_erfcx(w1, z, sig, b, -1.0)  # the u > 0 half
    e2 = _exp_erfcx(w2, z, sig, b, +1.0)  # the u < 0 half
    gauss = torch.exp(-z * z / (2.0 * sig * sig)) * sig / math.sqrt(2.0 * math.pi)
    m1, m2 = z - sig * sig / b, z + sig * sig / b
    density = (e1 + e2) / (4.0 * b)
    signed = (e1 - e2) / (4.0 * b)
    first = ((m1 * e1 / 2.0 + gauss) + (m2 * e2 / 2.0 - gauss)) / (2.0 * b)
    return density, signed, first


def jl_score(
    noise: JumpLaplaceNoise,
    x: torch.Tensor,
    t: float,
    mu: float | torch.Tensor,
    s: float | torch.Tensor,
) -> torch.Tensor:
    """Exact marginal generalized score ``∇V/p`` at ``t`` for data ``N(mu, s^2)`` (1-D events)."""
    t = float(t)
    lam, b = noise.jump_rate, noise.laplace_scale
    c, a = math.exp(-noise.ou_rate * t), math.exp(-lam * t)
    sig = torch.as_tensor(c * s, dtype=x.dtype).expand_as(x)
    z = x - c * mu
    density, signed, first = laplace_gauss_terms(z, sig, b)
    atom = torch.exp(-0.5 * (z / sig) ** 2) / (sig * math.sqrt(2.0 * math.pi))
    p = a * atom + (1.0 - a) * density
    grad_v = lam * b * b * (a * (-signed / b) + (1.0 - a) * (-first / (2.0 * b * b)))
    return grad_v / p


def jl_model_output(
    noise: JumpLaplaceNoise,
    x: torch.Tensor,
    t: torch.Tensor | float,
    mu: float | torch.Tensor,
    s: float | torch.Tensor,
) -> torch.Tensor:
    """What a perfect network would output (the score times ``κ(t)``)."""
    return jl_score(noise, x, float(t), mu, s) * float(noise.target_scale(float(t)))
