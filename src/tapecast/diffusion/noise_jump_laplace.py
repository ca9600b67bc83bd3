"""Jump-Laplace noise: a pure-jump Ornstein–Uhlenbeck forward process (Baule 2025).

Baule, "Generative modelling with jump-diffusions", arXiv 2503.06558 (v2), drives the forward
process ``dY = f(Y, t) dt + g(t) dξ`` with Gaussian noise plus compound-Poisson jumps and shows the
generative process is governed by a *generalized score* ``∇V(x, t) / p(x, t)``; for a pure-jump
process with Laplace amplitudes this score has a closed form. This module implements that case;
the equations below are derived here from the process' Kolmogorov–Feller equation and follow the
paper's construction (the derivation is reproduced in ``docs/diffusion.md``).

Forward process (OU drift θ, jump rate λ, isotropic Laplace amplitudes of scale b)::

    dX = -θ X dt + dJ,   J compound Poisson, rate λ, amplitudes A with E[e^{i k·A}] = 1/(1 + b²|k|²)

Its characteristic function from ``X_0 = x_0`` is
``exp(i k·c x_0) [(1 + b²|k|² a_θ)/(1 + b²|k|²)]^{λ/(2θ)}``, ``c = e^{-θt}``, ``a_θ = e^{-2θt}``.
We tie ``λ = 2θ`` (Baule's implementation uses θ = 1/2, λ = 1), so the exponent is 1 and the
transition law is an exact two-part mixture::

    x_t = c x_0                       with probability a = e^{-λ t}   (no jump yet)
    x_t = c x_0 + L,  L ~ Laplace_d(b)  with probability 1 - a

The jump term of the Kolmogorov–Feller equation, ``λ ∫ [p(x - y) - p(x)] ρ(y) dy``, equals
``λ b² Δ (ρ * p)`` for the Laplace law ρ (in Fourier space ``λ(ρ̂ - 1) = -λ b² |k|² ρ̂``), so

    ∂_t p = ∇·(θ x p) + ΔV,     V = λ b² (ρ * p)

and the generalized score is ``s = ∇V / p``. With ``∇(ρ*ρ)(u) = -u ρ(u) / (2 b²)`` (any dimension)
the conditional score, for an event that has jumped (``u = x_t - c x_0 ≠ 0``), is

    s(x_t | x_0) = -λ b a/(1 - a) R_{d/2}(|u|/b) û  -  (λ/2) u,    R_ν(z) = K_ν(z) / K_{ν-1}(z)

(``R_{1/2} = 1``, so in one dimension the first term is ``-λ b a/(1-a) sign(u)``); for an event that
has not jumped the target is 0, the value that makes the regression identity
``E[target | x_t] = ∇V(x_t)/p(x_t)`` hold for the marginal (the atom carries infinite density).
The network learns it by MSE, as in conventional denoising score matching.

Parametrization: the network predicts ``κ(t) s`` with ``κ(t) = sqrt(1 - a)/(λ b)``, which keeps the
expected squared target bounded as ``t → 0`` (``parametrization="scaled_score"``, the default);
``parametrization="score"`` regresses ``s`` itself with loss weight ``κ(t)²`` (same objective).

``event_ndim = 0`` (default) makes every scalar coordinate an independent 1-D process; with
``event_ndim = k`` the last ``k`` dimensions form one isotropic d-dimensional event (the paper's
multivariate Laplace), which jumps as a whole.

Legend: ``ou_rate`` = θ, ``jump_rate`` = λ = 2θ, ``laplace_scale`` = b (the card's global σ),
``survival`` = a = e^{-λt}, ``mean_scale`` = c = e^{-θt}, ``t_max`` = T.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import torch

from tapecast.core.errors import TapecastError
from tapecast.diffusion.noise_gaussian import draw_normal, draw_uniform, expand_to
from tapecast.diffusion.registry import register_noise

if TYPE_CHECKING:
    from tapecast.diffusion.protocols import NoiseKind

Parametrization = Literal["scaled_score", "score"]


def bessel_k_ratio(dim: int, z: torch.Tensor) -> torch.Tensor:
    """``R(z) = K_{d/2}(z) / K_{d/2-1}(z)``: the radial log-derivative of the d-dim Laplace law.

    Upward recurrence ``R_{ν+1} = 1/R_ν + 2ν/z`` (from ``K_{ν+1} = K_{ν-1} + (2ν/z) K_ν``), started
    at ``R_{1/2} = 1`` for odd ``d`` and at ``K_1/K_0`` for even ``d``.

    Returns
    -------
    torch.Tensor
        Same shape and dtype as ``z`` (``z > 0``).
    """
    if dim < 1:
        raise TapecastError(f"a Laplace event needs dimension >= 1, got {dim}")
    if dim % 2 == 1:
        ratio, nu = torch.ones_like(z), 0.5
    else:
        ratio = torch.special.scaled_modified_bessel_k1(
            z
        ) / torch.special.scaled_modified_bessel_k0(z)
        nu = 1.0
    while nu < dim / 2.0:
        ratio = 1.0 / ratio + 2.0 * nu / z
        nu += 1.0
    return ratio


@register_noise("jump-laplace")
class JumpLaplaceNoise:
    """Pure-jump OU forward process with Laplace amplitudes and its closed-form generalized score.

    Parameters
    ----------
    laplace_scale : float
        Laplace scale ``b`` (the card's global σ = 1.0); stationary variance ``2 b²``.
    ou_rate : float
        OU rate θ; the jump rate is ``λ = 2θ`` (required for the closed form). Default 1/2, as in
        Baule's implementation (mean decays as ``e^{-t/2}``, jump-free probability as ``e^{-t}``).
    t_max : float
        Terminal time T (card: 6.0).
    num_train_timesteps : int
        Training times are the grid ``T k / N``, ``k = 1 .. N`` (card: 800).
    event_ndim : int
        Trailing dimensions forming one isotropic jump event (0: every coordinate on its own).
    parametrization : {"scaled_score", "score"}
        What the network predicts (see module docstring).
    """

    kind: NoiseKind = "jump-laplace"

    def __init__(
        self,
        laplace_scale: float = 1.0,
        ou_rate: float = 0.5,
        t_max: float = 6.0,
        num_train_timesteps: int = 800,
        event_ndim: int = 0,
        parametrization: Parametrization = "scaled_score",
    ) -> None:
        if not (laplace_scale > 0 and ou_rate > 0 and t_max > 0):
            raise TapecastError("Jump-Laplace noise needs laplace_scale, ou_rate, t_max > 0")
        if num_train_timesteps < 1 or event_ndim < 0:
            raise TapecastError(
                "Jump-Laplace noise needs num_train_timesteps >= 1, event_ndim >= 0"
            )
        if parametrization not in ("scaled_score", "score"):
            raise TapecastError(f"unknown parametrization {parametrization!r}")
        self.laplace_scale = float(laplace_scale)
        self.ou_rate = float(ou_rate)
        self.jump_rate = 2.0 * self.ou_rate
        self.t_max = float(t_max)
        self.num_train_timesteps = int(num_train_timesteps)
        self.event_ndim = int(event_ndim)
        self.prediction: Parametrization = parametrization

    # -- scalar curves (float64, shape of t) ---------------------------------------------------
    def survival(self, t: torch.Tensor | float) -> torch.Tensor:
        """``a = e^{-λ t}``: probability that an event has not jumped by time ``t``."""
        return torch.exp(-self.jump_rate * torch.as_tensor(t, dtype=torch.float64))

    def mean_scale(self, t: torch.Tensor | float) -> torch.Tensor:
        """``c = e^{-θ t}``: the decay of the mean ``E[x_t | x_0] = c x_0``."""
        return torch.exp(-self.ou_rate * torch.as_tensor(t, dtype=torch.float64))

    def target_scale(self, t: torch.Tensor | float) -> torch.Tensor:
        """``κ(t) = sqrt(1 - a)/(λ b)`` for ``scaled_score``, 1 for ``score``."""
        t = torch.as_tensor(t, dtype=torch.float64)
        if self.prediction == "score":
            return torch.ones_like(t)
        one_minus_a = -torch.expm1(-self.jump_rate * t)
        return one_minus_a.sqrt() / (self.jump_rate * self.laplace_scale)

    # -- sampling helpers ------------------------------------------------------------------------
    def _event_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        shape = tuple(shape)
        if self.event_ndim > len(shape):
            raise TapecastError(f"event_ndim={self.event_ndim} exceeds the data rank {len(shape)}")
        k = self.event_ndim
        return shape[: len(shape) - k] + (1,) * k

    def _event_dim(self, shape: Sequence[int]) -> int:
        k = self.event_ndim
        return math.prod(tuple(shape)[len(shape) - k :]) if k else 1

    def sample_laplace(
        self,
        shape: Sequence[int],
        generator: torch.Generator | None = None,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """Draws of the isotropic Laplace law ``b sqrt(2E) Z`` (E ~ Exp(1) per event)."""
        scale_mix = -torch.log(draw_uniform(self._event_shape(shape), generator, dtype, device))
        z = draw_normal(shape, generator, dtype, device)
        return self.laplace_scale * torch.sqrt(2.0 * scale_mix) * z

    def sample_compound_poisson(
        self,
        shape: Sequence[int],
        duration: float,
        rate: float,
        growth: float,
        generator: torch.Generator | None = None,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """Sum of Poisson(``rate duration``) Laplace jumps, each × ``e^{growth (duration - u)}``.

        ``u ~ U(0, duration)`` is the jump time. ``growth = -θ`` gives the forward OU noise over an
        interval; ``growth = +θ`` the jump noise of one reverse step under the exponential
        integrator. Uses ``sum_j w_j A_j = b sqrt(2 sum_j w_j² E_j) Z`` (Gaussian scale mixture).

        Returns
        -------
        torch.Tensor
            Shape ``shape``, dtype ``dtype``.
        """
        event = self._event_shape(shape)
        where = generator.device if generator is not None else device
        rates = torch.full(event, rate * duration, dtype=torch.float64, device=where)
        counts = torch.poisson(rates, generator=generator).to(device)
        k_max = int(counts.max().item()) if counts.numel() else 0
        if k_max == 0:
            return torch.zeros(tuple(shape), dtype=dtype, device=device)
        u = duration * draw_uniform((k_max, *event), generator, torch.float64, device)
        expo = -torch.log(draw_uniform((k_max, *event), generator, torch.float64, device))
        live = torch.arange(k_max, device=device).reshape(-1, *([1] * len(event))) < counts
        weight = torch.exp(2.0 * growth * (duration - u))
        mix = (live * weight * expo).sum(0).to(dtype)  # (event shape)
        z = draw_normal(shape, generator, dtype, device)
        return self.laplace_scale * torch.sqrt(2.0 * mix) * z

    # -- training ------------------------------------------------------------------------------
    def sample_timesteps(
        self,
        batch_size: int,
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """Training times ``T k / N``, ``k`` uniform on ``1 .. N``. Float64, ``(batch_size,)``."""
        where = generator.device if generator is not None else device
        k = torch.randint(
            1, self.num_train_timesteps + 1, (batch_size,), generator=generator, device=where
        )
        return (k.to(torch.float64) * (self.t_max / self.num_train_timesteps)).to(device)

    def conditional_score(self, u: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        """Closed-form ``∇V(x_t | x_0) / p(x_t | x_0)`` at ``u = x_t - c x_0`` for jumped events.

        Parameters
        ----------
        u : torch.Tensor
            Displacements, shape ``(B, ...)`` (nonzero for jumped events).
        t : torch.Tensor or float
            Times, scalar or ``(B,)``.

        Returns
        -------
        torch.Tensor
            Shape and dtype of ``u``.
        """
        t = torch.as_tensor(t, dtype=torch.float64)
        a = torch.exp(-self.jump_rate * t)
        odds = expand_to(a / (-torch.expm1(-self.jump_rate * t)), u)  # a / (1 - a)
        lam, b = self.jump_rate, self.laplace_scale
        dims = tuple(range(u.dim() - self.event_ndim, u.dim()))
        radius = u.abs() if not dims else u.norm(dim=dims, keepdim=True)
        radius = radius.clamp_min(torch.finfo(u.dtype).tiny)
        ratio = bessel_k_ratio(self._event_dim(u.shape), radius / b)
        return -lam * b * odds * ratio * (u / radius) - 0.5 * lam * u

    def add_noise(
        self, x0: torch.Tensor, t: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``x_t`` from the exact transition law and return it with the regression target.

        Parameters
        ----------
        x0 : torch.Tensor
            Clean data, shape ``(B, ...)``.
        t : torch.Tensor
            Times in ``(0, T]``, shape ``(B,)`` or scalar.
        generator : torch.Generator, optional
            Source of randomness.

        Returns
        -------
        (torch.Tensor, torch.Tensor)
            ``x_t`` and the target ``κ(t) s(x_t | x_0)`` (0 for events without a jump), both of
            the shape and dtype of ``x0``.
        """
        t = torch.as_tensor(t, dtype=torch.float64)
        if bool((t <= 0).any()):
            raise TapecastError(
                "Jump-Laplace add_noise needs times > 0 (the score is singular at 0)"
            )
        a = expand_to(self.survival(t), x0)
        jumped = draw_uniform(self._event_shape(x0.shape), generator, x0.dtype, x0.device) >= a
        jump = self.sample_laplace(x0.shape, generator, dtype=x0.dtype, device=x0.device)
        u = torch.where(jumped, jump, torch.zeros_like(jump))
        x_t = expand_to(self.mean_scale(t), x0) * x0 + u
        score = self.conditional_score(jump, t)
        target = torch.where(jumped, score, torch.zeros_like(score))
        return x_t, expand_to(self.target_scale(t), x0) * target

    def output_to_score(self, model_output: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        """Turn the network output back into the generalized score ``s`` (divide by ``κ(t)``)."""
        return model_output / expand_to(self.target_scale(t), model_output)

    def model_time(self, t: torch.Tensor | float) -> torch.Tensor:
        """The network's time input ``t N / T`` (in ``(0, N]``), float32, shape of ``t``."""
        scaled = torch.as_tensor(t, dtype=torch.float64) * (self.num_train_timesteps / self.t_max)
        return scaled.to(torch.float32)

    def loss_weight(self, t: torch.Tensor) -> torch.Tensor:
        """Per-example MSE weight: 1 for ``scaled_score``, ``κ(t)²`` for ``score``. Float32."""
        t = torch.as_tensor(t, dtype=torch.float64)
        if self.prediction == "scaled_score":
            return torch.ones(t.shape, dtype=torch.float32)
        one_minus_a = -torch.expm1(-self.jump_rate * t)
        return (one_minus_a / (self.jump_rate * self.laplace_scale) ** 2).to(torch.float32)

    # -- sampling ------------------------------------------------------------------------------
    def init_noise(
        self,
        shape: Sequence[int],
        generator: torch.Generator | None = None,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """The stationary law Laplace_d(b) as ``x_T`` (neglects ``c_T x_0``, ``a_T``)."""
        return self.sample_laplace(shape, generator, dtype=dtype, device=device)

    def moment_transfer(
        self, t: torch.Tensor | float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x_t = c x_0 + n``: returns float64 ``(c, E[n²], E[n⁴])`` per coordinate.

        ``n`` is 0 with probability ``a`` and a Laplace(b) coordinate otherwise (every coordinate
        of the isotropic law is a 1-D Laplace): ``E[n²] = 2 b² (1 - a)``, ``E[n⁴] = 24 b⁴ (1 - a)``;
        coordinates are uncorrelated.
        """
        t = torch.as_tensor(t, dtype=torch.float64)
        jumped = -torch.expm1(-self.jump_rate * t)
        b = self.laplace_scale
        return self.mean_scale(t), 2.0 * b**2 * jumped, 24.0 * b**4 * jumped
