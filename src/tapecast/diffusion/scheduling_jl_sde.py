"""Reverse Jump-Laplace SDE sampler (Baule 2025, arXiv 2503.06558).

With ``s = ∇V/p`` the generalized score of :mod:`tapecast.diffusion.noise_jump_laplace`, the
forward Kolmogorov–Feller equation ``∂_t p = ∇·(θ x p) + ΔV`` is reversed (reverse time
``τ = T - t``) by any process with jump rate ``γλ`` (same Laplace amplitudes) and drift

    dX/dτ = θ X + (1 + γ) s(X, T - τ)          (γ ≥ 0)

because its own jump generator contributes ``γ ΔV`` and the drift ``-∇·((θx + (1+γ)s) p)`` makes
up the rest. ``γ = 1`` is Baule's reverse SDE (drift ``θX + 2s`` plus the forward jump noise);
``γ = 0`` is the probability-flow ODE. One step over ``[t - Δ, t]`` uses the exponential
integrator of the linear part (as Baule's implementation does)::

    x_prev = e^{θΔ} x + (1 + γ) (e^{θΔ} - 1)/θ · s(x, t) + Σ_{j ≤ N} e^{θ(Δ - u_j)} A_j,
    N ~ Poisson(γ λ Δ), u_j ~ U(0, Δ), A_j ~ Laplace_d(b)

or plain Euler–Maruyama (``integrator="euler"``: ``x + Δ(θx + (1+γ)s)`` plus the jumps).
By default the last step (to ``t = 0``) is a probability-flow step (``final_step="ode"``): a jump
drawn there could not be pulled back by any later drift, and it would land in the samples as a
Laplace outlier. Card settings: 50 uniform steps, ``Δt = 0.12``, ``T = 6``, ``σ = b = 1``.

Legend: ``ou_rate`` = θ, ``jump_rate`` = λ, ``stochasticity`` = γ, ``dt`` = Δ.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

import torch

from tapecast.core.errors import TapecastError
from tapecast.diffusion.noise_jump_laplace import JumpLaplaceNoise
from tapecast.diffusion.registry import is_count, register_sampler
from tapecast.diffusion.sampler_base import GridSampler

if TYPE_CHECKING:
    from tapecast.diffusion.protocols import NoiseKind

Integrator = Literal["exponential", "euler"]
FinalStep = Literal["ode", "sde"]


@register_sampler("sde", noise_kind="jump-laplace")
class JumpLaplaceSDESampler(GridSampler[JumpLaplaceNoise]):
    """Reverse Jump-Laplace SDE on a uniform time grid (no nn.Module; the caller runs the network).

    Parameters
    ----------
    noise : JumpLaplaceNoise
        The model's forward process.
    stochasticity : float
        γ ≥ 0: 1 for Baule's reverse SDE, 0 for the probability-flow ODE.
    integrator : {"exponential", "euler"}
        Treatment of the linear drift ``θx``.
    final_step : {"ode", "sde"}
        Whether the last step to ``t = 0`` drops the jump noise (and uses γ = 0).
    """

    noise_kind: NoiseKind = "jump-laplace"

    def __init__(
        self,
        noise: JumpLaplaceNoise,
        stochasticity: float = 1.0,
        integrator: Integrator = "exponential",
        final_step: FinalStep = "ode",
    ) -> None:
        if not isinstance(noise, JumpLaplaceNoise):
            raise TapecastError(
                f"the JL-SDE sampler needs JumpLaplaceNoise, got {type(noise).__name__}"
            )
        if stochasticity < 0:
            raise TapecastError(f"stochasticity must be >= 0, got {stochasticity}")
        if integrator not in ("exponential", "euler") or final_step not in ("ode", "sde"):
            raise TapecastError(f"unknown integrator {integrator!r} or final_step {final_step!r}")
        self.noise = noise
        self.stochasticity = float(stochasticity)
        self.integrator: Integrator = integrator
        self.final_step: FinalStep = final_step
        self.dt = 0.0
        self.timesteps = torch.zeros(0, dtype=torch.float64)

    def set_timesteps(self, n_steps: int) -> None:
        """Uniform grid ``t_i = T i / n``, ``i = n .. 1`` (float64, decreasing); ``Δ = T/n``."""
        if not is_count(n_steps) or n_steps < 1:
            raise TapecastError(f"number of sampling steps must be >= 1, got {n_steps!r}")
        self.dt = self.noise.t_max / n_steps
        self.timesteps = torch.arange(n_steps, 0, -1, dtype=torch.float64) * self.dt

    def time_at(self, index: int) -> float:
        """The time of reverse step ``index`` (a TapecastError outside the grid)."""
        self._check_ready()
        return float(self.grid_time(index))

    def previous_time(self, index: int) -> torch.Tensor:
        """The time of the sample ``step`` returns at step ``index``: ``max(t - Δ, 0)``. float64
        scalar."""
        return torch.tensor(max(self.time_at(index) - self.dt, 0.0), dtype=torch.float64)

    def _check_ready(self) -> None:
        if self.dt <= 0:
            raise TapecastError("call set_timesteps before sampling")

    def step(
        self,
        model_output: torch.Tensor,
        index: int,
        x: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """One reverse step from time ``t`` to ``t - Δ``.

        Parameters
        ----------
        model_output : torch.Tensor
            The network output at ``(x, t)`` (scaled or plain generalized score, as the noise's
            parametrization says), shape of ``x``.
        index : int
            Reverse step: ``t = timesteps[index]`` is the current time.
        x : torch.Tensor
            Current sample, shape ``(B, ...)``.
        generator : torch.Generator, optional
            Source of the jump noise.

        Returns
        -------
        torch.Tensor
            The sample at ``t - Δ``, shape and dtype of ``x``.
        """
        t = self.time_at(index)
        dt, theta = min(self.dt, t), self.noise.ou_rate
        last = float(self.previous_time(index)) <= 0.0
        gamma = 0.0 if (last and self.final_step == "ode") else self.stochasticity
        score = self.noise.output_to_score(model_output, t)
        if self.integrator == "exponential":
            growth = math.exp(theta * dt)
            x_prev = growth * x + ((1.0 + gamma) * math.expm1(theta * dt) / theta) * score
        else:
            x_prev = x + dt * (theta * x + (1.0 + gamma) * score)
        if gamma > 0:
            kick = 0.0 if self.integrator == "euler" else theta
            x_prev = x_prev + self.noise.sample_compound_poisson(
                x.shape,
                dt,
                gamma * self.noise.jump_rate,
                kick,
                generator,
                dtype=x.dtype,
                device=x.device,
            )
        return x_prev
