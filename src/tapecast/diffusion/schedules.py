"""Beta schedules for variance-preserving diffusion.

A schedule is a float64 tensor ``betas`` of shape ``(T,)`` with ``0 < beta_i < 1``; the forward
process keeps ``alpha_bar_i = prod_{j<=i} (1 - beta_j)`` of the signal power at training step ``i``
(Ho et al. 2020, eq. 4 notation). Index ``i`` runs over ``0 .. T-1``; the noisiest step is ``T-1``.

Schedules
---------
``linear``
    ``beta`` evenly spaced from ``beta_start`` to ``beta_end`` (Ho et al. 2020, Sec. 4:
    1e-4 .. 0.02 over 1000 steps).
``quad``
    ``sqrt(beta)`` evenly spaced, then squared: CSDI's default (Tashiro et al. 2021, App. E:
    ``beta_start=1e-4``, ``beta_end=0.5`` over 50 steps).
``cosine``
    ``alpha_bar(t) = cos^2(pi/2 (t + s)/(1 + s))`` (Nichol & Dhariwal 2021, eq. 17, ``s = 0.008``).
``tanh6-1``
    ``alpha_bar(t) ∝ tanh(t1) - tanh((t0 + t1) t - t0)`` on ``t in [0, 1]`` with ``t0 = 6``,
    ``t1 = 1`` (Li et al. 2024, "Synthetic Lagrangian turbulence by generative diffusion models",
    arXiv 2307.08529). The curve keeps most of the signal for ~85 % of the steps and drops to zero
    at ``t = 1``.

Schedules given as a continuous ``alpha_bar(t)`` are turned into betas on the grid ``t_i = i/T``
by ``beta_i = 1 - alpha_bar(t_{i+1}) / alpha_bar(t_i)`` (Nichol & Dhariwal 2021, Sec. 3.2), clipped
at ``max_beta = 0.999``: at ``t = 1`` the tanh and cosine curves reach zero, so without the clip the
last beta would be exactly 1 and ``alpha_bar`` would vanish.

Zero terminal SNR
-----------------
:func:`rescale_zero_terminal_snr` (Lin et al. 2024, "Common diffusion noise schedules and sample
steps are flawed", arXiv 2305.08891, Sec. 3.1 and Algorithm 1) shifts and stretches
``sqrt(alpha_bar)`` so that the last step carries no signal at all (``alpha_bar_{T-1} = 0``, last
beta exactly 1) while the first keeps its value. Such a schedule needs v-prediction (see
:mod:`tapecast.diffusion.noise_gaussian`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal, get_args

import torch

from tapecast.core.errors import TapecastError

ScheduleName = Literal["linear", "quad", "cosine", "tanh6-1"]
SCHEDULES: tuple[str, ...] = get_args(ScheduleName)


def _check_steps(num_steps: int) -> None:
    if not isinstance(num_steps, int) or num_steps < 1:
        raise TapecastError(f"a beta schedule needs num_steps >= 1, got {num_steps!r}")


def _check_range(beta_start: float, beta_end: float) -> None:
    if not 0.0 < beta_start <= beta_end < 1.0:
        raise TapecastError(
            f"beta schedule needs 0 < beta_start <= beta_end < 1, got {beta_start}, {beta_end}"
        )


def linear_betas(num_steps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """Evenly spaced betas (Ho et al. 2020, Sec. 4).

    Returns
    -------
    torch.Tensor
        float64, shape ``(num_steps,)``.
    """
    _check_steps(num_steps)
    _check_range(beta_start, beta_end)
    return torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64)


def quad_betas(num_steps: int, beta_start: float = 1e-4, beta_end: float = 0.5) -> torch.Tensor:
    """CSDI's "quad" schedule: ``sqrt(beta)`` evenly spaced, then squared (Tashiro et al. 2021).

    The defaults are CSDI's values for its 50-step models; pass smaller ``beta_end`` for long
    schedules.

    Returns
    -------
    torch.Tensor
        float64, shape ``(num_steps,)``.
    """
    _check_steps(num_steps)
    _check_range(beta_start, beta_end)
    root = torch.linspace(
        math.sqrt(beta_start), math.sqrt(beta_end), num_steps, dtype=torch.float64
    )
    return root**2


def betas_from_alpha_bar(
    alpha_bar: Callable[[torch.Tensor], torch.Tensor], num_steps: int, max_beta: float = 0.999
) -> torch.Tensor:
    """Discretise a continuous ``alpha_bar(t)``, ``t in [0, 1]``, into ``num_steps`` betas.

    ``beta_i = min(1 - alpha_bar((i+1)/T) / alpha_bar(i/T), max_beta)`` (Nichol & Dhariwal 2021,
    Sec. 3.2). ``alpha_bar`` need not be normalised: only ratios enter.

    Returns
    -------
    torch.Tensor
        float64, shape ``(num_steps,)``, each in ``[0, max_beta]``.
    """
    _check_steps(num_steps)
    if not 0.0 < max_beta < 1.0:
        raise TapecastError(f"max_beta must lie in (0, 1), got {max_beta}")
    grid = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps  # t_0 .. t_T
    curve = alpha_bar(grid)
    betas = 1.0 - curve[1:] / curve[:-1]
    return betas.clamp(min=0.0, max=max_beta)


def cosine_betas(num_steps: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Cosine schedule (Nichol & Dhariwal 2021, eq. 17).

    Returns
    -------
    torch.Tensor
        float64, shape ``(num_steps,)``.
    """

    def alpha_bar(t: torch.Tensor) -> torch.Tensor:
        return torch.cos((t + s) / (1.0 + s) * (math.pi / 2.0)) ** 2

    return betas_from_alpha_bar(alpha_bar, num_steps, max_beta)


def tanh_betas(
    num_steps: int, t0: float = 6.0, t1: float = 1.0, max_beta: float = 0.999
) -> torch.Tensor:
    """The tanh schedule of Li et al. 2024 ("tanh6-1" for ``t0 = 6``, ``t1 = 1``).

    ``alpha_bar(t) ∝ tanh(t1) - tanh((t0 + t1) t - t0)``, which is zero at ``t = 1``; the last beta
    is therefore clipped to ``max_beta``.

    Returns
    -------
    torch.Tensor
        float64, shape ``(num_steps,)``.
    """

    def alpha_bar(t: torch.Tensor) -> torch.Tensor:
        return math.tanh(t1) - torch.tanh((t0 + t1) * t - t0)

    return betas_from_alpha_bar(alpha_bar, num_steps, max_beta)


def make_betas(name: str, num_steps: int, **params: float) -> torch.Tensor:
    """Betas of the named schedule (``linear``, ``quad``, ``cosine``, ``tanh6-1``).

    Parameters
    ----------
    name : str
        Schedule name.
    num_steps : int
        Number of training steps ``T``.
    **params : float
        Schedule parameters (``beta_start``/``beta_end`` for linear and quad, ``s`` for cosine,
        ``t0``/``t1`` for tanh, ``max_beta`` for cosine and tanh).

    Returns
    -------
    torch.Tensor
        float64, shape ``(num_steps,)``.
    """
    builders: dict[str, Callable[..., torch.Tensor]] = {
        "linear": linear_betas,
        "quad": quad_betas,
        "cosine": cosine_betas,
        "tanh6-1": tanh_betas,
    }
    if name not in builders:
        raise TapecastError(
            f"unknown beta schedule {name!r}; expected one of {', '.join(SCHEDULES)}"
        )
    try:
        return builders[name](num_steps, **params)
    except TypeError as exc:  # an unknown keyword for this schedule
        raise TapecastError(f"schedule {name!r}: {exc}") from None


def rescale_zero_terminal_snr(betas: torch.Tensor) -> torch.Tensor:
    """Rescale a schedule to zero terminal SNR (Lin et al. 2024, Algorithm 1).

    With ``a_i = sqrt(alpha_bar_i)`` of the given schedule, the rescaled curve is the affine map

        a'_i = a_0 (a_i - a_{T-1}) / (a_0 - a_{T-1})

    which fixes ``a'_0 = a_0`` and sends ``a'_{T-1}`` to 0; betas follow from
    ``beta'_i = 1 - a'_i² / a'_{i-1}²`` (``beta'_0 = 1 - a_0²``), so ``beta'_{T-1} = 1`` exactly.

    Parameters
    ----------
    betas : torch.Tensor
        Schedule, shape ``(T,)`` with ``T >= 2`` and strictly decreasing ``alpha_bar``.

    Returns
    -------
    torch.Tensor
        float64, shape ``(T,)``, in ``(0, 1]``; the last entry is exactly 1.
    """
    root = alphas_cumprod(betas).sqrt()  # a_i = sqrt(alpha_bar_i)
    if root.numel() < 2 or bool((root[1:] >= root[:-1]).any()):
        raise TapecastError(
            "zero-terminal-SNR rescaling needs at least 2 steps and a strictly decreasing alpha_bar"
        )
    first, last = root[0], root[-1]
    rescaled = first * (root - last) / (first - last)
    rescaled[0], rescaled[-1] = first, 0.0  # exact ends, free of rounding
    alpha_bar = rescaled**2
    ratios = alpha_bar[1:] / alpha_bar[:-1]  # alpha'_i = alpha_bar_i / alpha_bar_{i-1}
    return torch.cat([1.0 - alpha_bar[:1], 1.0 - ratios])


def alphas_cumprod(betas: torch.Tensor) -> torch.Tensor:
    """``alpha_bar_i = prod_{j<=i} (1 - beta_j)`` in float64 (Ho et al. 2020, eq. 4).

    Returns
    -------
    torch.Tensor
        float64, same shape as ``betas``; decreasing.
    """
    return torch.cumprod(1.0 - betas.to(torch.float64), dim=0)
