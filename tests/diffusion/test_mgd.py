"""Moment-guided correction: the analytic Gauss–Newton step, target propagation, and its effect
on samples (cross-channel covariance restored, per-window targets followed, no collapse)."""

from __future__ import annotations

import math

import pytest
import torch
from torch.func import jacrev

from tapecast.core.errors import TapecastError
from tapecast.diffusion import (
    DDPMSampler,
    GaussianNoise,
    JumpLaplaceNoise,
    JumpLaplaceSDESampler,
    MomentGuided,
    MomentTargets,
    Sampler,
    ensemble_moments,
    trajectory_from_data,
)
from tapecast.diffusion.mgd import gauss_newton_step, moment_residual
from tests.diffusion.oracles import gaussian_eps, jl_model_output

ORDERS = (2, 3, 4)


def _gaussian_targets(var: torch.Tensor, corr: torch.Tensor | None = None) -> MomentTargets:
    """Targets of a Gaussian law with per-window channel variances ``var`` (B, K)."""
    central = torch.stack([var, torch.zeros_like(var), 3 * var**2], dim=-1)
    sd = var.sqrt()
    corr = torch.eye(var.shape[1]) if corr is None else corr
    return MomentTargets(central, sd[:, :, None] * corr * sd[:, None, :])


def test_gauss_newton_step_when_compared_with_autograd_jacobian_matches() -> None:
    gen = torch.Generator().manual_seed(0)
    windows = torch.randn(2, 6, 3, 4, generator=gen, dtype=torch.float64)
    targets = _gaussian_targets(
        torch.tensor([[1.0, 0.5, 2.0], [0.8, 1.2, 0.3]], dtype=torch.float64)
    )
    central, cov = targets.central, targets.covariance
    for b, covariance in ((0, True), (1, False)):  # one window per mode keeps autograd cheap
        got = gauss_newton_step(windows, central, cov, ORDERS, covariance, 0.7, 1e-3)

        def residual(w: torch.Tensor, b: int = b, c: bool = covariance) -> torch.Tensor:
            return moment_residual(w[None], central[b : b + 1], cov[b : b + 1], ORDERS, c)[0]

        jac = jacrev(residual)(windows[b]).reshape(-1, windows[b].numel())  # (P, N)
        gram = jac @ jac.T
        damp = 1e-3 * gram.diagonal().mean() * torch.eye(gram.shape[0], dtype=gram.dtype)
        eta = torch.linalg.solve(gram + damp, 0.7 * residual(windows[b]))
        expected = -(jac.T @ eta).reshape(windows[b].shape)
        assert torch.allclose(got[b], expected, rtol=1e-8, atol=1e-10)


def test_gauss_newton_step_when_taken_shrinks_the_moment_gap_by_strength() -> None:
    gen = torch.Generator().manual_seed(1)
    windows = 0.9 * torch.randn(3, 64, 4, 5, generator=gen, dtype=torch.float64)
    targets = _gaussian_targets(torch.ones(3, 4, dtype=torch.float64))
    before = moment_residual(windows, targets.central, targets.covariance, ORDERS, True)
    delta = gauss_newton_step(windows, targets.central, targets.covariance, ORDERS, True, 0.5, 1e-6)
    after = moment_residual(windows + delta, targets.central, targets.covariance, ORDERS, True)
    ratio = after.norm(dim=1) / before.norm(dim=1)
    assert bool((ratio < 0.6).all()) and bool((ratio > 0.3).all())  # linearized: 0.5


@pytest.mark.parametrize("noise", [GaussianNoise.from_schedule("tanh6-1", 800), JumpLaplaceNoise()])
def test_moment_targets_when_propagated_match_noised_data(
    noise: GaussianNoise | JumpLaplaceNoise,
) -> None:
    gen = torch.Generator().manual_seed(2)
    n = 200_000
    base = torch.randn(n, 2, 3, generator=gen, dtype=torch.float64)
    x0 = torch.stack(
        [base[:, 0], 0.6 * base[:, 0] + 0.8 * base[:, 1] ** 2], dim=1
    )  # skewed, correlated
    data = MomentTargets.from_samples(x0[None])
    time = (
        torch.tensor(700)
        if isinstance(noise, GaussianNoise)
        else torch.tensor(0.9, dtype=torch.float64)
    )
    x_t, _ = noise.add_noise(x0, time.expand(n), generator=gen)
    measured = MomentTargets.from_samples(x_t[None])
    predicted = data.at(noise, time)
    assert torch.allclose(predicted.central, measured.central, rtol=0.05, atol=0.1)
    assert torch.allclose(predicted.covariance, measured.covariance, atol=0.02)


def _run_windows(
    sampler: Sampler, model: object, shape: tuple[int, ...], n_steps: int, seed: int = 0
) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    sampler.set_timesteps(n_steps)
    x = sampler.init_noise(shape, gen, dtype=torch.float64)
    for i, t in enumerate(sampler.timesteps):
        x = sampler.step(model(x, t), i, x, generator=gen)  # type: ignore[operator]
    return x


N_WIN, N_SAMP, K, H = 4, 64, 3, 5


def test_mgd_when_model_misses_covariance_restores_it_without_collapse() -> None:
    noise = GaussianNoise.from_schedule("tanh6-1", 800)
    rho, s = 0.7, 0.6
    corr = torch.eye(K)
    corr[0, 1] = corr[1, 0] = rho
    targets = _gaussian_targets(torch.full((N_WIN, K), s**2), corr)

    def independent_model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return gaussian_eps(noise, x, t, 0.0, s)  # exact marginals, no cross-channel coupling

    shape = (N_WIN * N_SAMP, K, H)
    plain = _run_windows(DDPMSampler(noise), independent_model, shape, 50)
    guided = _run_windows(
        MomentGuided(DDPMSampler(noise), N_SAMP, targets), independent_model, shape, 50
    )
    for samples, low, high in ((plain, -0.2, 0.2), (guided, 0.6, 0.8)):
        central, cov = ensemble_moments(samples.reshape(N_WIN, N_SAMP, K, H))
        corr01 = cov[:, 0, 1] / (cov[:, 0, 0] * cov[:, 1, 1]).sqrt()
        assert bool((corr01 > low).all()) and bool((corr01 < high).all())
    central, _ = ensemble_moments(guided.reshape(N_WIN, N_SAMP, K, H))
    std = central[..., 0].sqrt()
    assert bool((std > s / 1.25).all()) and bool((std < s * 1.25).all())


def test_mgd_when_windows_have_own_targets_follows_each_and_never_collapses() -> None:
    noise = JumpLaplaceNoise()
    wanted = torch.tensor([0.4, 0.7, 1.0, 1.3])  # per-window target std (conditional targets)
    targets = _gaussian_targets(wanted[:, None].expand(N_WIN, K) ** 2)

    def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return jl_model_output(noise, x, t, 0.0, 0.7)  # the model believes std 0.7 everywhere

    sampler = MomentGuided(JumpLaplaceSDESampler(noise), N_SAMP, targets)  # strength 1
    out = _run_windows(sampler, model, (N_WIN * N_SAMP, K, H), 50)
    central, _ = ensemble_moments(out.reshape(N_WIN, N_SAMP, K, H))
    std = central[..., 0].sqrt().mean(dim=1)  # (B,)
    plain = _run_windows(JumpLaplaceSDESampler(noise), model, (N_WIN * N_SAMP, K, H), 50)
    plain_std = ensemble_moments(plain.reshape(N_WIN, N_SAMP, K, H))[0][..., 0].sqrt().mean(dim=1)
    assert bool(((std - wanted).abs() < (plain_std - wanted).abs()).all())
    # measured 0.49, 0.70, 1.01, 1.32: the 0.4 window keeps some late-jump outliers (kurtosis ~6)
    assert torch.allclose(std, wanted.double(), rtol=0.25)


def test_mgd_when_trajectory_from_data_given_keeps_data_moments() -> None:
    noise = GaussianNoise.from_schedule("tanh6-1", 800)
    gen = torch.Generator().manual_seed(3)
    data = 0.5 * torch.randn(4000, K, H, generator=gen, dtype=torch.float64)
    sampler = MomentGuided(DDPMSampler(noise), N_SAMP)
    sampler.set_timesteps(50)
    trajectory = trajectory_from_data(data, sampler, generator=gen)
    assert trajectory.central.shape == (50, 1, K, 3)
    last = trajectory.at_step(49)  # clean data moments
    assert torch.allclose(
        last.central[0, :, 0], torch.full((K,), 0.25, dtype=torch.float64), rtol=0.08
    )
    sampler.set_targets(trajectory)

    def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return gaussian_eps(noise, x, t, 0.0, 0.5)

    out = _run_windows(sampler, model, (2 * N_SAMP, K, H), 50)
    std = ensemble_moments(out.reshape(2, N_SAMP, K, H))[0][..., 0].sqrt()
    assert bool((std > 0.4).all()) and bool((std < 0.6).all())


def test_mgd_when_guide_fraction_half_leaves_early_steps_to_the_base_sampler() -> None:
    noise = GaussianNoise.from_schedule("linear", 100)
    targets = _gaussian_targets(torch.full((1, K), 4.0))
    guided = MomentGuided(DDPMSampler(noise), 4, targets, guide_fraction=0.5)
    plain = DDPMSampler(noise)
    guided.set_timesteps(10)
    plain.set_timesteps(10)
    x = torch.randn(8, K, H, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for i in range(len(plain.timesteps)):
        out = 0.1 * x
        a = guided.step(out, i, x, generator=torch.Generator().manual_seed(i))
        b = plain.step(out, i, x, generator=torch.Generator().manual_seed(i))
        assert torch.equal(a, b) == (i < 5)
        x = b


def test_mgd_when_misused_raises_tapecast_errors() -> None:
    noise = JumpLaplaceNoise()
    sampler = MomentGuided(JumpLaplaceSDESampler(noise), 4)
    sampler.set_timesteps(5)
    with pytest.raises(TapecastError, match="set_targets"):
        sampler.step(torch.zeros(8, K, H), 0, torch.zeros(8, K, H))
    sampler.set_targets(_gaussian_targets(torch.ones(1, K)))
    with pytest.raises(TapecastError, match=r"\(B \* 4, K, \.\.\.\)"):
        sampler.step(torch.zeros(6, K, H), 0, torch.zeros(6, K, H))
    with pytest.raises(TapecastError, match="targets have 3 channels"):
        sampler.step(torch.zeros(8, 2, H), 0, torch.zeros(8, 2, H))
    with pytest.raises(TapecastError, match="orders"):
        MomentGuided(JumpLaplaceSDESampler(noise), 4, orders=(2, 5))
    with pytest.raises(TapecastError, match="central"):
        MomentTargets(torch.zeros(1, K, 2), torch.zeros(1, K, K))


def test_ensemble_moments_when_gaussian_samples_gives_variance_and_kurtosis() -> None:
    gen = torch.Generator().manual_seed(4)
    x = 2.0 * torch.randn(1, 100_000, 2, 3, generator=gen, dtype=torch.float64)
    central, cov = ensemble_moments(x)
    assert torch.allclose(central[0, :, 0], torch.full((2,), 4.0, dtype=torch.float64), rtol=0.02)
    assert torch.allclose(central[0, :, 2], torch.full((2,), 48.0, dtype=torch.float64), rtol=0.05)
    assert abs(float(cov[0, 0, 1])) < 0.05
    assert math.isclose(float(cov[0, 0, 0]), float(central[0, 0, 0]))
