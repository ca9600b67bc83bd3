"""Log-likelihood of data under a score model, through the probability-flow ODE.

Song et al. 2021 (score SDE, arXiv 2011.13456): every SDE ``dx = f dt + g dw`` has a deterministic
probability-flow ODE with the same marginals ``p_t`` (eq. 13)::

    dx/dt = f̃(x, t) = f(x, t) - ½ g(t)² ∇log p_t(x)

and, by the instantaneous change of variables (Chen et al. 2018; score SDE App. D.2),
``d log p_t(x(t))/dt = -∇·f̃(x(t), t)`` along a solution. Integrating from ``t_0`` to ``t_1``::

    log p_t0(x(t_0)) = log p_t1(x(t_1)) + ∫_{t_0}^{t_1} ∇·f̃(x(t), t) dt

We solve the augmented system ``d(x, Δ)/dt = (f̃, ∇·f̃)`` forward from ``(x, 0)`` at ``t_0`` and
return ``log p_T(x(t_1)) + Δ(t_1)``, with ``log p_T`` the noise's prior (``N(0, σ_max² I)`` for VE)
or a caller's ``prior_logp``. The divergence is exact (one vector-Jacobian product per dimension)
or the Skilling–Hutchinson estimate ``E[vᵀ (∂f̃/∂x) v]`` with Rademacher probes ``v`` (App. D.2;
Grathwohl et al. 2019, FFJORD), the probes drawn once and held fixed along the trajectory, so each
probe gives an unbiased estimate of the whole integral.

``score_fn(x, t)`` must treat the rows of ``x`` independently (a network in eval mode does) and be
differentiable in ``x``: the divergence is taken with autograd on a batch that stacks the probes
(exact: the ``D`` unit vectors) as copies of ``x``, one call and one backward pass per evaluation.

Legend: ``drift`` = f̃, ``delta`` = Δ = ∫ ∇·f̃ dt, ``probes`` = v, ``t0``/``t1`` = t_0/t_1.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal, Protocol

import numpy as np
import torch
from scipy.integrate import solve_ivp  # type: ignore[import-untyped]

from tapecast.core.errors import TapecastError
from tapecast.diffusion.noise_gaussian import expand_to

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
PriorLogp = Callable[[torch.Tensor], torch.Tensor]
Method = Literal["rk4", "solve_ivp"]
Divergence = Literal["auto", "exact", "hutchinson"]

EXACT_MAX_DIM = 32
"""``divergence="auto"`` is exact up to this many dimensions per example, Hutchinson above."""


class SDENoise(Protocol):
    """A noise process with a continuous-time SDE and a prior density (e.g. ``VENoise``)."""

    def sde(
        self, x: torch.Tensor, t: torch.Tensor | float
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def prior_logp(self, z: torch.Tensor) -> torch.Tensor: ...


def probability_flow_drift(
    score_fn: ScoreFn, noise: SDENoise, x: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    """``f̃ = f - ½ g² ∇log p_t`` (score SDE eq. 13). ``t`` has shape ``(B,)``; result as ``x``."""
    f, g = noise.sde(x, t)
    return f - 0.5 * expand_to(g**2, x) * score_fn(x, t)


def _probes(
    kind: Literal["exact", "hutchinson"],
    x: torch.Tensor,
    n_probes: int,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, float]:
    """Probe vectors ``(P, B, D)`` and the weight of their sum (1 exact, 1/P Hutchinson)."""
    batch, dim = x.shape[0], math.prod(x.shape[1:])
    if kind == "exact":
        eye = torch.eye(dim, dtype=x.dtype, device=x.device)  # (D, D)
        return eye[:, None, :].expand(dim, batch, dim), 1.0
    where = generator.device if generator is not None else x.device
    bits = torch.randint(0, 2, (n_probes, batch, dim), generator=generator, device=where)
    return (2.0 * bits - 1.0).to(dtype=x.dtype, device=x.device), 1.0 / n_probes


def _drift_and_divergence(
    score_fn: ScoreFn,
    noise: SDENoise,
    x: torch.Tensor,
    t: float,
    probes: torch.Tensor,
    weight: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``f̃(x, t)`` (shape of ``x``) and ``weight Σ_p v_pᵀ (∂f̃/∂x) v_p`` (``(B,)``)."""
    n_probes, batch = probes.shape[0], x.shape[0]
    event = x.shape[1:]
    with torch.enable_grad():
        stacked = x.detach().unsqueeze(0).expand(n_probes, *x.shape)  # (P, B, ...)
        stacked = stacked.reshape(n_probes * batch, *event).requires_grad_(True)  # (P·B, ...)
        times = torch.full((n_probes * batch,), t, dtype=x.dtype, device=x.device)
        drift = probability_flow_drift(score_fn, noise, stacked, times)
        if not drift.requires_grad:
            raise TapecastError("log_likelihood needs a score_fn differentiable in x "
                                "(do not run it under torch.no_grad)")
        flat_probes = probes.reshape(n_probes * batch, *event)  # (P·B, ...)
        (vjp,) = torch.autograd.grad(drift, stacked, grad_outputs=flat_probes)
    quad = (vjp * flat_probes).reshape(n_probes, batch, -1).sum(-1)  # (P, B)
    first = drift.detach().reshape(n_probes, batch, *event)[0]  # (B, ...)
    return first, weight * quad.sum(0)


def _rk4(
    rhs: Callable[[torch.Tensor, float], tuple[torch.Tensor, torch.Tensor]],
    x: torch.Tensor,
    t0: float,
    t1: float,
    steps: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Classical fourth-order Runge–Kutta on ``(x, Δ)`` with ``steps`` equal steps."""
    h = (t1 - t0) / steps
    delta = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    for k in range(steps):
        t = t0 + k * h
        k1x, k1d = rhs(x, t)
        k2x, k2d = rhs(x + 0.5 * h * k1x, t + 0.5 * h)
        k3x, k3d = rhs(x + 0.5 * h * k2x, t + 0.5 * h)
        k4x, k4d = rhs(x + h * k3x, t + h)
        x = x + (h / 6.0) * (k1x + 2.0 * k2x + 2.0 * k3x + k4x)
        delta = delta + (h / 6.0) * (k1d + 2.0 * k2d + 2.0 * k3d + k4d)
    return x, delta


def _scipy(
    rhs: Callable[[torch.Tensor, float], tuple[torch.Tensor, torch.Tensor]],
    x: torch.Tensor,
    t0: float,
    t1: float,
    rtol: float,
    atol: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Adaptive RK45 (``scipy.integrate.solve_ivp``) on the flattened ``(x, Δ)`` in float64."""
    shape, n_x = x.shape, x.numel()

    def fun(t: float, y: np.ndarray) -> np.ndarray:
        state = torch.from_numpy(y[:n_x]).reshape(shape).to(dtype=x.dtype, device=x.device)
        dx, dd = rhs(state, float(t))
        return np.concatenate([dx.detach().cpu().double().numpy().ravel(),
                               dd.detach().cpu().double().numpy()])

    y0 = np.concatenate([x.detach().cpu().double().numpy().ravel(), np.zeros(shape[0])])
    solution = solve_ivp(fun, (t0, t1), y0, method="RK45", rtol=rtol, atol=atol)
    if not solution.success:
        raise TapecastError(f"probability-flow ODE solve failed: {solution.message}")
    end = torch.from_numpy(solution.y[:, -1].copy()).to(dtype=x.dtype, device=x.device)
    return end[:n_x].reshape(shape), end[n_x:]


def log_likelihood(
    score_fn: ScoreFn,
    x: torch.Tensor,
    noise: SDENoise,
    *,
    method: Method = "rk4",
    steps: int = 100,
    divergence: Divergence = "auto",
    n_probes: int = 1,
    generator: torch.Generator | None = None,
    t_start: float = 0.0,
    t_end: float = 1.0,
    rtol: float = 1e-6,
    atol: float = 1e-6,
    prior_logp: PriorLogp | None = None,
) -> torch.Tensor:
    """``log p_{t_start}(x)`` in nats, by the probability-flow ODE (score SDE App. D.2).

    Parameters
    ----------
    score_fn : callable
        ``score_fn(x, t) -> ∇log p_t(x)``: ``x`` of shape ``(N, ...)``, ``t`` of shape ``(N,)``
        (dtype of ``x``); returns the shape of ``x``. For a trained VE model,
        ``lambda x, t: noise.score(net(x, noise.model_time(t), cond), t)``.
    x : torch.Tensor
        Points, shape ``(B, ...)`` (``D`` = product of the trailing dimensions).
    noise : SDENoise
        Gives ``sde(x, t) -> (f, g)`` and the default terminal density ``prior_logp``.
    method : {"rk4", "solve_ivp"}
        Fixed-step RK4 with ``steps`` steps, or adaptive RK45 with ``rtol``/``atol``.
    steps : int
        RK4 steps over ``[t_start, t_end]``.
    divergence : {"auto", "exact", "hutchinson"}
        ``auto``: exact for ``D <= 32``, Hutchinson above.
    n_probes : int
        Rademacher probes per example for Hutchinson (averaged).
    generator : torch.Generator, optional
        Source of the probes.
    t_start, t_end : float
        Integration interval (VE: ``t = 0`` is σ_min, ``t = 1`` is σ_max).
    rtol, atol : float
        Tolerances of ``solve_ivp``.
    prior_logp : callable, optional
        ``log p_{t_end}`` of the ODE's end point ``(B, ...) -> (B,)``; default
        ``noise.prior_logp``.

    Returns
    -------
    torch.Tensor
        ``log p_{t_start}(x)``, shape ``(B,)``, dtype of ``x``.
    """
    if method not in ("rk4", "solve_ivp"):
        raise TapecastError(f"unknown ODE method {method!r}; expected rk4 or solve_ivp")
    if divergence not in ("auto", "exact", "hutchinson"):
        raise TapecastError(f"unknown divergence {divergence!r}; expected auto, exact or "
                            "hutchinson")
    if steps < 1 or n_probes < 1 or not t_end > t_start:
        raise TapecastError("log_likelihood needs steps >= 1, n_probes >= 1, t_end > t_start")
    if x.dim() < 2:
        raise TapecastError(f"log_likelihood needs points of shape (B, ...), got {tuple(x.shape)}")
    dim = math.prod(x.shape[1:])
    kind: Literal["exact", "hutchinson"] = (
        "exact" if divergence == "exact" or (divergence == "auto" and dim <= EXACT_MAX_DIM)
        else "hutchinson"
    )
    probes, weight = _probes(kind, x, n_probes, generator)

    def rhs(state: torch.Tensor, t: float) -> tuple[torch.Tensor, torch.Tensor]:
        return _drift_and_divergence(score_fn, noise, state, t, probes, weight)

    x = x.detach()
    if method == "rk4":
        x_end, delta = _rk4(rhs, x, t_start, t_end, steps)
    else:
        x_end, delta = _scipy(rhs, x, t_start, t_end, rtol, atol)
    terminal = (prior_logp or noise.prior_logp)(x_end)
    return (terminal + delta).detach()
