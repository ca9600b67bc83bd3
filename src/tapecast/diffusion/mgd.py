"""Moment-guided correction of a reverse diffusion (after Lempereur et al. 2026, MGD).

MGD (arXiv 2602.17211) steers an ensemble of particles so that chosen moments ``E[φ(X_t)]`` follow
a prescribed trajectory, with a drift of the form ``∇φ(x)ᵀ η_t`` whose coefficients ``η_t`` come
from a P×P linear system estimated on the ensemble. Here the same idea is a sampling-time
correction wrapped around any sampler: after each base step, the ``S`` samples of ONE window
(the ``n_samples`` axis) are moved by

    Δx = -Jᵀ η,    (J Jᵀ + ρ I) η = strength · r(x)

a damped Gauss–Newton step on the normalized moment mismatch ``r`` (``J = ∂r/∂x``): the smallest
move, within the span of the moment gradients, that closes ``strength`` of the linearized gap.
The move is capped per channel at ``max_step`` times the channel's ensemble standard deviation.

What is matched at each step, per window, for each channel ``k`` (deviations ``d = x - mean_S x``
taken over samples at each remaining position, e.g. each horizon step, then averaged over samples
and positions):

* centered moments ``M_p[k] = mean(d_k^p)`` for ``p`` in ``orders`` (⊆ {2, 3, 4});
* cross-channel covariances ``C[k, j] = mean(d_k d_j)``, ``k < j`` (``covariance=True``).

Residuals are normalized by the target variance: ``(M_p - M*_p) / (M*_2)^{p/2}`` and
``(C - C*) / sqrt(M*_2[k] M*_2[j])``. Targets at the noise level of each step come either from

* :class:`MomentTargets` — data-space (t = 0) moments, per window (conditional: e.g. estimated
  from the window's context by the caller) or shared (shape 1), pushed through the forward process
  in closed form with :meth:`moment_transfer` (``x_t = c x_0 + n``, ``n`` independent)::

      M2_t = c² M2 + v2,   M3_t = c³ M3,   M4_t = c⁴ M4 + 6 c² M2 v2 + v4,   C_t = c² C + v2 I

* :class:`MomentTrajectory` — an explicit per-step trajectory (unconditional: e.g. training data
  pushed through the forward process by :func:`trajectory_from_data`).

Diversity: the variance moment is matched to its target, so the correction widens an
under-dispersed ensemble as readily as it narrows an over-dispersed one; it never shrinks the
ensemble toward its mean unless the target says so (see the tests).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from tapecast.core.errors import TapecastError

if TYPE_CHECKING:
    from tapecast.diffusion.protocols import NoiseKind, NoiseProcess, Sampler

ALL_ORDERS = (2, 3, 4)


def ensemble_moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centered moments of orders 2-4 and the covariance across the sample axis.

    Parameters
    ----------
    x : torch.Tensor
        Shape ``(B, S, K, *rest)``: windows, samples, channels, positions.

    Returns
    -------
    (torch.Tensor, torch.Tensor)
        ``central`` of shape ``(B, K, 3)`` (orders 2, 3, 4) and ``covariance`` ``(B, K, K)``.
    """
    flat = x.reshape(x.shape[0], x.shape[1], x.shape[2], -1)  # (B, S, K, R)
    dev = flat - flat.mean(dim=1, keepdim=True)
    central = torch.stack([(dev**p).mean(dim=(1, 3)) for p in ALL_ORDERS], dim=-1)
    count = dev.shape[1] * dev.shape[3]
    covariance = torch.einsum("bskr,bsjr->bkj", dev, dev) / count
    return central, covariance


@dataclass(frozen=True)
class MomentTargets:
    """Data-space (t = 0) target moments, per window (B) or shared (1).

    Attributes
    ----------
    central : torch.Tensor
        ``(B or 1, K, 3)``: centered moments of orders 2, 3, 4 per channel.
    covariance : torch.Tensor
        ``(B or 1, K, K)``: cross-channel covariance.
    """

    central: torch.Tensor
    covariance: torch.Tensor

    def __post_init__(self) -> None:
        c, v = self.central, self.covariance
        if c.dim() != 3 or c.shape[-1] != 3 or v.shape != (c.shape[0], c.shape[1], c.shape[1]):
            raise TapecastError(
                f"moment targets need central (B, K, 3) and covariance (B, K, K), "
                f"got {tuple(c.shape)} and {tuple(v.shape)}"
            )

    @classmethod
    def from_samples(cls, x: torch.Tensor) -> MomentTargets:
        """Targets measured on draws ``x`` ``(B, N, K, *rest)`` (see :func:`ensemble_moments`)."""
        central, covariance = ensemble_moments(x.to(torch.float64))
        return cls(central, covariance)

    def at(self, noise: NoiseProcess, time: torch.Tensor) -> MomentTargets:
        """The targets pushed through the forward process to ``time`` (closed form, module doc)."""
        c, v2, v4 = (float(v) for v in noise.moment_transfer(time))
        m2, m3, m4 = self.central.unbind(-1)
        central = torch.stack(
            [c**2 * m2 + v2, c**3 * m3, c**4 * m4 + 6.0 * c**2 * m2 * v2 + v4], dim=-1
        )
        eye = torch.eye(self.covariance.shape[-1], dtype=self.covariance.dtype)
        return MomentTargets(central, c**2 * self.covariance + v2 * eye.to(self.covariance.device))


@dataclass(frozen=True)
class MomentTrajectory:
    """Per-step targets: entry ``i`` belongs to the sample returned at the ``i``-th sampler step.

    Attributes
    ----------
    central : torch.Tensor
        ``(n_steps, B or 1, K, 3)``.
    covariance : torch.Tensor
        ``(n_steps, B or 1, K, K)``.
    """

    central: torch.Tensor
    covariance: torch.Tensor

    def at_step(self, index: int) -> MomentTargets:
        """Targets for step ``index`` (0 = the first, noisiest step)."""
        if not 0 <= index < self.central.shape[0]:
            raise TapecastError(
                f"moment trajectory has {self.central.shape[0]} steps; asked for {index}"
            )
        return MomentTargets(self.central[index], self.covariance[index])


def trajectory_from_data(
    x0: torch.Tensor, sampler: Sampler, *, generator: torch.Generator | None = None
) -> MomentTrajectory:
    """Unconditional trajectory: data ``x0`` ``(N, K, *rest)`` noised to each step's output time.

    The sampler must have its timesteps set; entry ``i`` holds the moments of
    ``add_noise(x0, previous_time(i))`` (``x0`` itself at the clean end).

    Returns
    -------
    MomentTrajectory
        Shared targets (batch dimension 1).
    """
    central, covariance = [], []
    for i in range(int(sampler.timesteps.numel())):
        prev = sampler.previous_time(i)
        _, noise_var, _ = sampler.noise.moment_transfer(prev)
        if float(noise_var) <= 0.0:
            x_prev = x0
        else:
            stamp = prev.expand(x0.shape[0])
            x_prev, _ = sampler.noise.add_noise(x0, stamp, generator=generator)
        targets = MomentTargets.from_samples(x_prev.unsqueeze(0))
        central.append(targets.central)
        covariance.append(targets.covariance)
    return MomentTrajectory(torch.stack(central), torch.stack(covariance))


def moment_residual(
    windows: torch.Tensor,
    central: torch.Tensor,
    cov: torch.Tensor,
    orders: tuple[int, ...],
    covariance: bool,
) -> torch.Tensor:
    """Normalized moment mismatch ``r`` per window (the rows of the module docstring).

    Parameters
    ----------
    windows : torch.Tensor
        ``(B, S, K, R)`` samples.
    central, cov : torch.Tensor
        Targets ``(B, K, 3)`` and ``(B, K, K)``.
    orders : tuple of int
        Centered orders matched.
    covariance : bool
        Whether covariance rows are included.

    Returns
    -------
    torch.Tensor
        ``(B, P)`` with ``P = len(orders) K + covariance K (K - 1) / 2``: the central rows
        order-major, then the upper-triangle covariance rows.
    """
    dev = windows - windows.mean(dim=1, keepdim=True)
    sigma = central[..., 0].clamp_min(1e-12).sqrt()  # (B, K)
    parts = [((dev**p).mean(dim=(1, 3)) - central[..., p - 2]) / sigma**p for p in orders]
    n_channels = windows.shape[2]
    if covariance and n_channels > 1:
        current = torch.einsum("bskr,bsjr->bkj", dev, dev) / (dev.shape[1] * dev.shape[3])
        upper = torch.triu_indices(n_channels, n_channels, offset=1, device=windows.device)
        scale = sigma[:, :, None] * sigma[:, None, :]
        parts.append(((current - cov) / scale)[:, upper[0], upper[1]])
    return torch.cat(parts, dim=1)


def _same(i: torch.Tensor, j: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Indicator matrix ``[i_v == j_w]``."""
    return (i[:, None] == j[None, :]).to(dtype)


def _central_rows(dev: torch.Tensor, sigma: torch.Tensor, orders: tuple[int, ...]) -> torch.Tensor:
    """Jacobian rows of ``M_p[k] / σ_k^p``: ``p w (d^{p-1} - mean_S d^{p-1}) / σ_k^p`` on channel k.

    Returns ``(B, O, S, K, R)``; row ``(p, k)`` is the slice ``[:, p, :, k, :]`` (zero elsewhere).
    """
    weight = 1.0 / (dev.shape[1] * dev.shape[3])
    rows = []
    for p in orders:
        power = dev ** (p - 1)
        centred = power - power.mean(dim=1, keepdim=True)
        rows.append(p * weight * centred / sigma[:, None, :, None] ** p)
    return torch.stack(rows, dim=1)


def _gram(
    h: torch.Tensor, dev: torch.Tensor, sigma: torch.Tensor, use_cov: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``J Jᵀ`` from per-channel inner products, and the covariance rows' scale ``w/(σ_a σ_b)``.

    Central rows live on one channel each; the row of ``C[a, b]`` is ``w d_b/(σ_a σ_b)`` on
    channel ``a`` plus ``w d_a/(σ_a σ_b)`` on channel ``b``.
    """
    n_win, n_ord, _, n_ch, n_pos = h.shape
    hh = torch.einsum("boskr,bqskr->bokq", h, h)  # (B, O, K, O), same channel only
    eye_k = torch.eye(n_ch, dtype=h.dtype, device=h.device)
    g_cc = (hh[:, :, :, :, None] * eye_k[None, None, :, None, :]).reshape(n_win, n_ord * n_ch, -1)
    if not use_cov:
        return g_cc, None
    a, b = torch.triu_indices(n_ch, n_ch, offset=1, device=h.device)
    pair = (1.0 / (dev.shape[1] * n_pos)) / (sigma[:, a] * sigma[:, b])  # (B, V)
    hd = torch.einsum("boskr,bsjr->bokj", h, dev)  # (B, O, K, K)
    channel = torch.arange(n_ch, device=h.device)
    g_cv = hd[:, :, :, b] * _same(channel, a, h.dtype) + hd[:, :, :, a] * _same(channel, b, h.dtype)
    g_cv = (g_cv * pair[:, None, None, :]).reshape(n_win, n_ord * n_ch, -1)  # (B, O K, V)
    dd = torch.einsum("bskr,bsjr->bkj", dev, dev)  # (B, K, K)
    g_vv = (
        _same(a, a, h.dtype) * dd[:, b][:, :, b]
        + _same(a, b, h.dtype) * dd[:, b][:, :, a]
        + _same(b, a, h.dtype) * dd[:, a][:, :, b]
        + _same(b, b, h.dtype) * dd[:, a][:, :, a]
    ) * (pair[:, :, None] * pair[:, None, :])
    top = torch.cat([g_cc, g_cv], dim=2)
    bottom = torch.cat([g_cv.transpose(1, 2), g_vv], dim=2)
    return torch.cat([top, bottom], dim=1), pair


def gauss_newton_step(
    windows: torch.Tensor,
    central: torch.Tensor,
    cov: torch.Tensor,
    orders: tuple[int, ...],
    covariance: bool,
    strength: float,
    ridge: float,
) -> torch.Tensor:
    """``Δx = -Jᵀ (J Jᵀ + ρ I)⁻¹ strength r`` with the Jacobian written out analytically.

    With ``d = x - mean_S x`` and ``w = 1/(S R)``, the row of ``M_p[k]`` is
    ``h_p = p w (d^{p-1} - mean_S d^{p-1}) / σ_k^p`` on channel ``k`` (zero elsewhere) and the row
    of ``C[a, b]`` is ``w d_b / (σ_a σ_b)`` on channel ``a`` plus ``w d_a / (σ_a σ_b)`` on ``b``.
    All entries of ``J Jᵀ`` are inner products of these per-channel arrays, so nothing of size
    ``P × S K R`` is formed (``tests/diffusion/test_mgd.py`` checks it against autograd).

    Returns
    -------
    torch.Tensor
        ``(B, S, K, R)``.
    """
    n_win, _, n_ch, _ = windows.shape
    dev = windows - windows.mean(dim=1, keepdim=True)  # (B, S, K, R)
    sigma = central[..., 0].clamp_min(1e-12).sqrt()  # (B, K)
    h = _central_rows(dev, sigma, orders)  # (B, O, S, K, R)
    use_cov = covariance and n_ch > 1
    gram, pair = _gram(h, dev, sigma, use_cov)  # (B, P, P)
    r = moment_residual(windows, central, cov, orders, covariance)
    damp = ridge * gram.diagonal(dim1=1, dim2=2).mean(-1).clamp_min(1e-30)
    eye = torch.eye(gram.shape[1], dtype=gram.dtype, device=gram.device)
    system = (gram + damp[:, None, None] * eye).to(torch.float64)  # solve in float64
    eta = torch.linalg.solve(system, strength * r.to(torch.float64).unsqueeze(-1))[..., 0]
    eta = eta.to(windows.dtype)
    n_central = len(orders) * n_ch
    delta = -torch.einsum("bok,boskr->bskr", eta[:, :n_central].reshape(n_win, -1, n_ch), h)
    if pair is not None:
        a, b = torch.triu_indices(n_ch, n_ch, offset=1, device=windows.device)
        coupling = torch.zeros(n_win, n_ch, n_ch, dtype=windows.dtype, device=windows.device)
        coupling[:, a, b] = eta[:, n_central:] * pair
        coupling = coupling + coupling.transpose(1, 2)  # (B, K, K), symmetric
        delta = delta - torch.einsum("bkj,bsjr->bskr", coupling, dev)
    return delta


class MomentGuided:
    """Wrap a sampler so every step ends with a moment-guided correction (same contract).

    Parameters
    ----------
    sampler : Sampler
        The base sampler (``ddpm``, ``ddim``, ``sde``, ...).
    n_samples : int
        ``S``: the batch the base sampler sees is ``(B * S, K, *rest)`` with the samples of one
        window contiguous (window-major).
    targets : MomentTargets or MomentTrajectory, optional
        Targets; can also be given later with :meth:`set_targets`.
    strength : float
        Fraction of the linearized moment gap closed per step, in ``(0, 1]``. 1 (default) makes
        the moments follow the target trajectory, as MGD's drift does; smaller values soften the
        guidance when targets are noisy estimates.
    orders : sequence of int
        Centered moment orders to match, a subset of (2, 3, 4).
    covariance : bool
        Whether to match cross-channel covariances.
    guide_fraction : float
        Guide only the last ``guide_fraction`` of the steps (1.0: all).
    max_step : float
        Per-channel cap of the move's RMS, in units of the channel's ensemble std.
    ridge : float
        Tikhonov damping ρ relative to the mean diagonal of ``J Jᵀ``.
    """

    def __init__(
        self,
        sampler: Sampler,
        n_samples: int,
        targets: MomentTargets | MomentTrajectory | None = None,
        *,
        strength: float = 1.0,
        orders: Sequence[int] = ALL_ORDERS,
        covariance: bool = True,
        guide_fraction: float = 1.0,
        max_step: float = 0.5,
        ridge: float = 1e-3,
    ) -> None:
        if n_samples < 2:
            raise TapecastError(f"moment guidance needs n_samples >= 2, got {n_samples}")
        if not 0 < strength <= 1 or not 0 < guide_fraction <= 1 or max_step <= 0 or ridge <= 0:
            raise TapecastError(
                "MGD needs 0 < strength <= 1, 0 < guide_fraction <= 1, max_step, ridge > 0"
            )
        if not orders or not set(orders) <= set(ALL_ORDERS):
            raise TapecastError(
                f"MGD orders must be a non-empty subset of {ALL_ORDERS}, got {orders}"
            )
        self.base = sampler
        self.n_samples = int(n_samples)
        self.targets = targets
        self.strength, self.max_step, self.ridge = float(strength), float(max_step), float(ridge)
        self.orders = tuple(sorted(set(orders)))
        self.covariance = bool(covariance)
        self.guide_fraction = float(guide_fraction)

    # -- the sampler contract, delegated ---------------------------------------------------------
    @property
    def noise_kind(self) -> NoiseKind:
        return self.base.noise_kind

    @property
    def noise(self) -> NoiseProcess:
        return self.base.noise

    @property
    def timesteps(self) -> torch.Tensor:
        return self.base.timesteps

    def set_timesteps(self, n_steps: int) -> None:
        """Set the base sampler's grid."""
        self.base.set_timesteps(n_steps)

    def set_targets(self, targets: MomentTargets | MomentTrajectory) -> None:
        """Set (or replace) the targets, e.g. per batch of windows before sampling it."""
        self.targets = targets

    def previous_time(self, index: int) -> torch.Tensor:
        return self.base.previous_time(index)

    def model_time(self, t: torch.Tensor) -> torch.Tensor:
        return self.base.model_time(t)

    def init_noise(
        self,
        shape: Sequence[int],
        generator: torch.Generator | None = None,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        return self.base.init_noise(shape, generator, dtype=dtype, device=device)

    def step(
        self,
        model_output: torch.Tensor,
        index: int,
        x: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Base step ``index``, then the moment correction of every window toward the step's
        targets.

        Returns
        -------
        torch.Tensor
            Shape and dtype of ``x`` (``(B * S, K, *rest)``).
        """
        x_prev = self.base.step(model_output, index, x, generator=generator)
        n_steps = int(self.timesteps.numel())
        if index < n_steps - max(1, round(self.guide_fraction * n_steps)):
            return x_prev
        return self.correct(x_prev, self._targets_for(index))

    # -- internals -------------------------------------------------------------------------------
    def _targets_for(self, index: int) -> MomentTargets:
        if self.targets is None:
            raise TapecastError(
                "sde-mgd needs target moments: call set_targets(...) before sampling"
            )
        if isinstance(self.targets, MomentTrajectory):
            return self.targets.at_step(index)
        return self.targets.at(self.noise, self.previous_time(index))

    def correct(self, x: torch.Tensor, targets: MomentTargets) -> torch.Tensor:
        """Move the samples of each window toward ``targets`` (one damped Gauss–Newton step).

        Parameters
        ----------
        x : torch.Tensor
            ``(B * S, K, *rest)``, window-major.
        targets : MomentTargets
            Targets at this step's noise level, batch ``B`` or 1.

        Returns
        -------
        torch.Tensor
            Corrected samples, shape and dtype of ``x``.
        """
        if x.dim() < 2 or x.shape[0] % self.n_samples:
            raise TapecastError(
                f"MGD expects (B * {self.n_samples}, K, ...) samples, got shape {tuple(x.shape)}"
            )
        n_windows = x.shape[0] // self.n_samples
        windows = x.reshape(n_windows, self.n_samples, x.shape[1], -1)  # (B, S, K, R)
        central = targets.central.to(windows).expand(n_windows, -1, -1)
        cov = targets.covariance.to(windows).expand(n_windows, -1, -1)
        if central.shape[1] != windows.shape[2]:
            raise TapecastError(
                f"targets have {central.shape[1]} channels, samples {windows.shape[2]}"
            )
        delta = gauss_newton_step(
            windows, central, cov, self.orders, self.covariance, self.strength, self.ridge
        )
        delta = self._cap(delta, windows)
        return (windows + delta).reshape(x.shape)

    def _cap(self, delta: torch.Tensor, windows: torch.Tensor) -> torch.Tensor:
        """Scale each (window, channel) move to RMS <= max_step * ensemble std of that channel."""
        rms = delta.pow(2).mean(dim=(1, 3), keepdim=True).sqrt()  # (B, 1, K, 1)
        spread = (windows - windows.mean(dim=1, keepdim=True)).pow(2).mean(dim=(1, 3), keepdim=True)
        limit = self.max_step * spread.sqrt()
        return delta * torch.clamp(limit / rms.clamp_min(1e-30), max=1.0)
