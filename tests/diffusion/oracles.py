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
from tapecast.diffusion.noise_ve import VENoise


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


def gaussian_x0(
    noise: GaussianNoise,
    x: torch.Tensor,
    t: torch.Tensor | int,
    mu: float | torch.Tensor,
    s: float | torch.Tensor,
) -> torch.Tensor:
    """Exact ``E[x0 | x_t] = mu + sqrt(ab) s^2 (x_t - sqrt(ab) mu) / (ab s^2 + 1 - ab)``."""
    ab = float(noise.alpha_bar(int(t)))
    return mu + math.sqrt(ab) * s * s * (x - math.sqrt(ab) * mu) / (ab * s * s + 1.0 - ab)


def gaussian_v(
    noise: GaussianNoise,
    x: torch.Tensor,
    t: torch.Tensor | int,
    mu: float | torch.Tensor,
    s: float | torch.Tensor,
) -> torch.Tensor:
    """Exact ``E[v | x_t] = sqrt(ab) E[eps | x_t] - sqrt(1 - ab) E[x0 | x_t]`` (v is linear in
    ``(eps, x0)``, Salimans & Ho 2022); finite at ``ab = 0``, where it is ``-mu``."""
    ab = float(noise.alpha_bar(int(t)))
    eps = gaussian_eps(noise, x, t, mu, s)
    return math.sqrt(ab) * eps - math.sqrt(1.0 - ab) * gaussian_x0(noise, x, t, mu, s)


def gaussian_model_output(
    noise: GaussianNoise,
    x: torch.Tensor,
    t: torch.Tensor | int,
    mu: float | torch.Tensor,
    s: float | torch.Tensor,
) -> torch.Tensor:
    """What a perfect network of ``noise.prediction`` (ε or v) outputs for data ``N(mu, s^2)``."""
    if noise.prediction == "v":
        return gaussian_v(noise, x, t, mu, s)
    return gaussian_eps(noise, x, t, mu, s)


# -- variance-exploding noise: Gaussian data and Gaussian mixtures ------------------------------


def ve_model_output(
    noise: VENoise,
    x: torch.Tensor,
    t: torch.Tensor | float,
    mu: float | torch.Tensor,
    s: float | torch.Tensor,
) -> torch.Tensor:
    """What a perfect VE network outputs for data ``N(mu, s^2)``: ``σ ∇log p_t`` with
    ``p_t = N(mu, s^2 + σ(t)^2)``, i.e. ``-σ (x - mu) / (s^2 + σ^2)``."""
    sigma = float(noise.sigma(float(t)))
    return -sigma * (x - mu) / (s * s + sigma * sigma)


def mixture_logp(
    x: torch.Tensor,
    weights: torch.Tensor,
    means: torch.Tensor,
    stds: torch.Tensor,
    sigma: float | torch.Tensor,
) -> torch.Tensor:
    """Log-density of ``Σ_k w_k N(m_k, s_k^2 I)`` convolved with ``N(0, σ^2 I)`` at ``x``.

    ``x`` (B, D), ``weights`` (K,), ``means`` (K, D), ``stds`` (K,), ``sigma`` scalar or (B,).
    Differentiable in ``x``; returns (B,).
    """
    dim = x.shape[1]
    sigma = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, 1)  # (B | 1, 1)
    var = stds[None, :] ** 2 + sigma**2  # (B | 1, K)
    sq = ((x[:, None, :] - means[None]) ** 2).sum(-1)  # (B, K)
    log_comp = -0.5 * sq / var - 0.5 * dim * torch.log(2.0 * math.pi * var)
    return torch.logsumexp(torch.log(weights)[None] + log_comp, dim=1)


def mixture_score(
    x: torch.Tensor,
    weights: torch.Tensor,
    means: torch.Tensor,
    stds: torch.Tensor,
    sigma: float | torch.Tensor,
) -> torch.Tensor:
    """``∇_x`` of :func:`mixture_logp` in closed form (responsibility-weighted component
    scores), differentiable in ``x``. (B, D)."""
    sigma = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, 1)  # (B | 1, 1)
    var = stds[None, :] ** 2 + sigma**2  # (B | 1, K)
    diff = x[:, None, :] - means[None]  # (B, K, D)
    log_comp = -0.5 * (diff**2).sum(-1) / var - 0.5 * x.shape[1] * torch.log(var)
    resp = torch.softmax(torch.log(weights)[None] + log_comp, dim=1)  # (B, K)
    return -(resp[..., None] * diff / var[..., None]).sum(1)
