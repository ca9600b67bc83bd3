"""DPM-Solver++(2M): multistep second-order solver of the diffusion ODE in data-prediction form.

Lu, Zhou, Bao, Chen, Li & Zhu 2022, "DPM-Solver++: Fast solver for guided sampling of diffusion
probabilistic models", arXiv 2211.01095, Sec. 4 and Algorithm 2. With ``α_t = sqrt(ᾱ_t)``,
``σ_t = sqrt(1 - ᾱ_t)`` and the half-log-SNR ``λ_t = log(α_t / σ_t)``, the probability-flow ODE
written for the data prediction ``x_θ`` (= ``x0_hat``) has the exact solution

    x_s = (σ_s/σ_t) x_t + σ_s ∫_{λ_t}^{λ_s} e^{λ} x_θ(x_λ, λ) dλ

On the respaced grid ``t_0 > t_1 > ... > t_M`` (the sampler's ``timesteps``, then clean data),
step ``i`` goes from ``t = t_{i}`` to ``s = t_{i+1}`` with ``h = λ_s - λ_t`` and

    first order (= deterministic DDIM):  x_s = (σ_s/σ_t) x_t - α_s (e^{-h} - 1) x0_hat_t
    second order (2M):                   x_s = (σ_s/σ_t) x_t - α_s (e^{-h} - 1) D
                                         D = (1 + 1/(2r)) x0_hat_t - 1/(2r) x0_hat_prev,
                                         r = h_prev / h

where ``x0_hat_prev`` is the data prediction of the previous step (kept between calls; reset by
``set_timesteps``) and ``h_prev`` that step's ``λ`` increment. ``α_s (1 - e^{-h})`` is evaluated
as ``α_s - α_t σ_s / σ_t``, which stays finite at both ends of the grid:

* the first step is first order (no previous prediction). If it starts at ``ᾱ = 0`` (zero terminal
  SNR, ``λ = -∞``), it is ``x_s = σ_s x_t + α_s x0_hat`` and the next step's ``r`` would be
  infinite, whose limit is again the first-order step, so that one is first order too;
* the last step lands on clean data (``σ = 0``, ``λ = +∞``, ``r = 0``): it is first order, so
  ``x_0 = x0_hat`` (Lu et al. also end with a lower-order step; "lower_order_final").

The solver is deterministic (no noise) and works for ε- and v-prediction networks through
:meth:`GaussianNoise.predict_x0`.

Legend: ``alpha``/``sigma`` = α/σ, ``lam`` = λ, ``h`` = h_i, ``r`` = r_i, ``x0_hat`` = x_θ,
``d`` = D_i.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from tapecast.core.errors import TapecastError
from tapecast.diffusion.noise_gaussian import GaussianNoise
from tapecast.diffusion.registry import register_sampler
from tapecast.diffusion.scheduling_ddpm import RespacedGaussianSampler, Spacing

SolverOrder = Literal[1, 2]


def half_log_snr(alpha_bar: float) -> float:
    """``λ = log(α/σ) = ½ log(ᾱ / (1 - ᾱ))``: ``-inf`` at ``ᾱ = 0``, ``+inf`` at ``ᾱ = 1``."""
    if alpha_bar <= 0.0:
        return -math.inf
    if alpha_bar >= 1.0:
        return math.inf
    return 0.5 * (math.log(alpha_bar) - math.log1p(-alpha_bar))


@register_sampler("dpm-solver++", noise_kind="gaussian")
class DPMSolverPlusPlus(RespacedGaussianSampler):
    """DPM-Solver++(2M) over a respaced grid (no nn.Module; the caller runs the network).

    Parameters
    ----------
    noise : GaussianNoise
        The model's forward process (ε- or v-prediction).
    order : {1, 2}
        2 (default): the multistep second-order solver; 1: its first-order step everywhere,
        which is deterministic DDIM.
    spacing : {"trailing", "leading"}
        How the respaced steps are chosen (see :func:`respaced_timesteps`).
    """

    def __init__(
        self, noise: GaussianNoise, order: SolverOrder = 2, spacing: Spacing = "trailing"
    ) -> None:
        super().__init__(noise, spacing)
        if order not in (1, 2):
            raise TapecastError(f"DPM-Solver++ order must be 1 or 2, got {order!r}")
        self.order: SolverOrder = order
        self._previous: tuple[int, torch.Tensor] | None = None  # (step index, x0_hat)

    def set_timesteps(self, n_steps: int) -> None:
        """Choose ``n_steps`` training steps and forget the previous data prediction."""
        super().set_timesteps(n_steps)
        self._previous = None

    def _lam(self, t: int) -> float:
        return half_log_snr(float(self.noise.alpha_bar(t)))

    def _second_order_ratio(self, index: int, x0_hat: torch.Tensor) -> float | None:
        """``1/(2r)`` of step ``index`` when a second-order step is possible, else ``None``."""
        if self.order == 1 or index == 0 or int(self.previous_time(index)) < 0:
            return None
        if self._previous is None or self._previous[0] != index - 1:
            return None
        if self._previous[1].shape != x0_hat.shape:
            return None
        lam_before = self._lam(int(self.timesteps[index - 1]))
        lam_t = self._lam(self.time_at(index))
        lam_s = self._lam(int(self.previous_time(index)))
        h_prev, h = lam_t - lam_before, lam_s - lam_t
        if not (math.isfinite(h_prev) and math.isfinite(h)) or h_prev <= 0.0 or h <= 0.0:
            return None
        return h / (2.0 * h_prev)  # 1/(2r), r = h_prev / h

    def step(
        self,
        model_output: torch.Tensor,
        index: int,
        x: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """One DPM-Solver++(2M) step from ``x_t`` (``t = timesteps[index]``) to ``x_s``.

        Parameters
        ----------
        model_output : torch.Tensor
            The network's ε or v at ``(x, t)``, shape of ``x``.
        index : int
            Reverse step; steps must run in order ``0, 1, ...`` after ``set_timesteps`` for the
            second-order update (otherwise the step is first order).
        x : torch.Tensor
            ``x_t``, shape ``(B, ...)``.
        generator : torch.Generator, optional
            Unused: the solver is deterministic.

        Returns
        -------
        torch.Tensor
            ``x_s``, shape and dtype of ``x``.
        """
        alpha_bar_t, alpha_bar_s = self._coefficients(index)
        x0_hat = self.noise.predict_x0(x, model_output, self.time_at(index))
        if index == 0:
            self._previous = None
        half_over_r = self._second_order_ratio(index, x0_hat)
        d = x0_hat
        if half_over_r is not None and self._previous is not None:
            d = (1.0 + half_over_r) * x0_hat - half_over_r * self._previous[1]
        self._previous = (index, x0_hat)
        alpha_t, sigma_t = math.sqrt(alpha_bar_t), math.sqrt(1.0 - alpha_bar_t)
        alpha_s, sigma_s = math.sqrt(alpha_bar_s), math.sqrt(1.0 - alpha_bar_s)
        # -α_s (e^{-h} - 1) = α_s - α_t σ_s / σ_t, since e^{-h} = α_t σ_s / (σ_t α_s)
        return (sigma_s / sigma_t) * x + (alpha_s - alpha_t * sigma_s / sigma_t) * d
