"""Noise processes: the Gaussian VP forward law and the Jump-Laplace law and generalized score.

The Jump-Laplace checks are numerical and independent of the closed forms they test:
the transition law against an exact path simulation of the OU + compound-Poisson process, the
Kolmogorov–Feller equation and ``ΔV`` = jump generator by finite differences and quadrature, the
closed-form conditional score against a numerical ``∇V / p``, and the regression identity
``E[target | x_t] = ∇V(x_t)/p(x_t)`` by Monte Carlo.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.special
import torch

from tapecast.core.errors import TapecastError
from tapecast.diffusion import GaussianNoise, JumpLaplaceNoise
from tapecast.diffusion.noise_jump_laplace import bessel_k_ratio
from tests.diffusion.oracles import jl_score, laplace_gauss_terms

# -- Gaussian VP ------------------------------------------------------------------------------


def test_gaussian_add_noise_when_x0_constant_has_eq4_mean_and_variance() -> None:
    noise = GaussianNoise.from_schedule("linear", 1000)
    gen = torch.Generator().manual_seed(0)
    x0 = torch.full((200_000, 1), 2.0, dtype=torch.float64)
    t = torch.full((200_000,), 300)
    x_t, eps = noise.add_noise(x0, t, generator=gen)
    abar = float(noise.alpha_bar(300))
    assert float(x_t.mean()) == pytest.approx(2.0 * math.sqrt(abar), abs=0.01)
    assert float(x_t.var()) == pytest.approx(1.0 - abar, rel=0.01)
    assert torch.allclose(x_t, noise.noisy(x0, t, eps))
    assert torch.allclose(noise.predict_x0(x_t, eps, t), x0)


def test_gaussian_alpha_bar_when_step_minus_one_is_clean() -> None:
    noise = GaussianNoise.from_schedule("tanh6-1", 800)
    assert float(noise.alpha_bar(-1)) == 1.0
    c, v2, v4 = noise.moment_transfer(-1)
    assert (float(c), float(v2), float(v4)) == (1.0, 0.0, 0.0)


def test_gaussian_add_noise_when_times_have_wrong_shape_raises() -> None:
    noise = GaussianNoise.from_schedule("linear", 100)
    with pytest.raises(TapecastError, match="diffusion times"):
        noise.add_noise(torch.zeros(4, 3), torch.zeros(3, dtype=torch.long))


def test_gaussian_sample_timesteps_when_seeded_is_reproducible_and_in_range() -> None:
    noise = GaussianNoise.from_schedule("linear", 50)
    a = noise.sample_timesteps(1000, generator=torch.Generator().manual_seed(3))
    b = noise.sample_timesteps(1000, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and int(a.min()) >= 0 and int(a.max()) <= 49


@pytest.mark.parametrize("prediction", ["epsilon", "v"])
def test_gaussian_add_noise_when_prediction_set_returns_its_target_and_inverts_it(
    prediction: str,
) -> None:
    noise = GaussianNoise.from_schedule("cosine", 200, prediction=prediction)  # type: ignore[arg-type]
    assert noise.prediction == prediction
    gen = torch.Generator().manual_seed(4)
    x0 = torch.randn(64, 3, generator=gen, dtype=torch.float64)
    t = torch.randint(0, 200, (64,), generator=gen)
    x_t, target = noise.add_noise(x0, t, generator=torch.Generator().manual_seed(5))
    _, eps = GaussianNoise(noise.betas).add_noise(x0, t, generator=torch.Generator().manual_seed(5))
    abar = noise.alpha_bar(t)[:, None]
    v = abar.sqrt() * eps - (1.0 - abar).sqrt() * x0  # Salimans & Ho 2022, Sec. 4
    assert torch.allclose(target, eps if prediction == "epsilon" else v)
    assert torch.allclose(noise.predict_x0(x_t, target, t), x0, atol=1e-9)
    assert torch.allclose(noise.predict_eps(x_t, target, t), eps, atol=1e-9)
    one = int(t[0])  # a single step takes the samplers' scalar path
    assert torch.allclose(noise.predict_x0(x_t[:1], target[:1], one), x0[:1], atol=1e-9)
    assert torch.allclose(noise.predict_eps(x_t[:1], target[:1], one), eps[:1], atol=1e-9)


def test_gaussian_v_when_terminal_snr_is_zero_gives_x0_as_minus_v_and_eps_as_x_t() -> None:
    noise = GaussianNoise.from_schedule("linear", 100, prediction="v", zero_terminal_snr=True)
    assert noise.zero_terminal_snr and float(noise.alpha_bar(99)) == 0.0
    x0 = torch.randn(10, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x_t, v = noise.add_noise(x0, torch.full((10,), 99), generator=torch.Generator().manual_seed(1))
    assert torch.equal(v, -x0)  # v = 0 * eps - 1 * x0
    assert torch.equal(noise.predict_x0(x_t, v, 99), x0)
    assert torch.equal(noise.predict_eps(x_t, v, 99), x_t)


def test_gaussian_noise_when_zero_terminal_snr_with_eps_prediction_raises() -> None:
    with pytest.raises(TapecastError, match="needs prediction='v'"):
        GaussianNoise.from_schedule("tanh6-1", 800, zero_terminal_snr=True)
    assert not GaussianNoise.from_schedule("tanh6-1", 800).zero_terminal_snr


def test_gaussian_noise_when_prediction_or_betas_invalid_raises() -> None:
    with pytest.raises(TapecastError, match="unknown Gaussian prediction 'x0'"):
        GaussianNoise.from_schedule("linear", 10, prediction="x0")  # type: ignore[arg-type]
    with pytest.raises(TapecastError, match="only the last may be 1"):
        GaussianNoise(torch.tensor([0.1, 1.0, 0.5]), prediction="v")


# -- Jump-Laplace: law of x_t ----------------------------------------------------------------


def test_jump_laplace_add_noise_when_compared_with_path_simulation_has_same_law() -> None:
    noise = JumpLaplaceNoise()
    gen = torch.Generator().manual_seed(1)
    n, t, x0 = 200_000, 0.7, 1.5
    mixture, _ = noise.add_noise(
        torch.full((n,), x0, dtype=torch.float64),
        torch.tensor(t, dtype=torch.float64),
        generator=gen,
    )
    # exact path: x_t = c x0 + sum_j e^{-θ(t - τ_j)} A_j, N ~ Poisson(λ t), τ_j ~ U(0, t)
    path = math.exp(-noise.ou_rate * t) * x0 + noise.sample_compound_poisson(
        (n,), t, noise.jump_rate, -noise.ou_rate, gen, dtype=torch.float64
    )
    mean = math.exp(-noise.ou_rate * t) * x0
    no_jump = math.exp(-noise.jump_rate * t)
    assert float(((mixture - mean).abs() < 1e-12).double().mean()) == pytest.approx(
        no_jump, abs=0.003
    )
    assert float(((path - mean).abs() < 1e-12).double().mean()) == pytest.approx(no_jump, abs=0.003)
    points = torch.linspace(-3.0, 5.0, 33, dtype=torch.float64)
    cdf_mixture = (mixture[:, None] <= points).double().mean(0)
    cdf_path = (path[:, None] <= points).double().mean(0)
    assert float((cdf_mixture - cdf_path).abs().max()) < 0.006  # ~4 standard errors


def test_jump_laplace_moment_transfer_when_compared_with_samples_matches() -> None:
    noise = JumpLaplaceNoise(laplace_scale=0.8)
    gen = torch.Generator().manual_seed(2)
    x0 = 0.5 + 0.3 * torch.randn(200_000, generator=gen, dtype=torch.float64)
    x_t, _ = noise.add_noise(x0, torch.tensor(1.1, dtype=torch.float64), generator=gen)
    c, v2, v4 = (float(v) for v in noise.moment_transfer(1.1))
    d0, dt = x0 - x0.mean(), x_t - x_t.mean()
    assert float(dt.pow(2).mean()) == pytest.approx(c**2 * 0.09 + v2, rel=0.01)
    m4 = c**4 * float(d0.pow(4).mean()) + 6 * c**2 * 0.09 * v2 + v4
    assert float(dt.pow(4).mean()) == pytest.approx(m4, rel=0.04)


def test_jump_laplace_add_noise_when_time_not_positive_raises() -> None:
    with pytest.raises(TapecastError, match="times > 0"):
        JumpLaplaceNoise().add_noise(torch.zeros(3), torch.tensor(0.0))


# -- Jump-Laplace: Kolmogorov–Feller equation and the generalized score (1-D, numerical) -------

B, LAM, THETA = 1.0, 1.0, 0.5  # the defaults: b = 1, λ = 2θ = 1
GRID = np.linspace(-40.0, 40.0, 160_001)


def _laplace(u: np.ndarray) -> np.ndarray:
    return np.exp(-np.abs(u) / B) / (2.0 * B)


def _laplace_conv_laplace(u: np.ndarray) -> np.ndarray:
    """(ρ * ρ)(u) by quadrature on a fine grid (independent of any closed form)."""
    dy = GRID[1] - GRID[0]
    return np.array([np.sum(_laplace(x - GRID) * _laplace(GRID)) * dy for x in np.atleast_1d(u)])


def _continuous_density(x: np.ndarray, t: float, x0: float) -> np.ndarray:
    """The absolutely continuous part (1 - a) ρ(x - c x0) of the claimed transition law."""
    return (1.0 - math.exp(-LAM * t)) * _laplace(x - math.exp(-THETA * t) * x0)


def _potential(x: np.ndarray, t: float, x0: float) -> np.ndarray:
    """V = λ b² (ρ * p), atom included: λ b² [a ρ(u) + (1 - a) (ρ*ρ)(u)], u = x - c x0."""
    a, u = math.exp(-LAM * t), x - math.exp(-THETA * t) * x0
    return LAM * B**2 * (a * _laplace(u) + (1.0 - a) * _laplace_conv_laplace(u))


POINTS = np.array([-2.3, -0.9, 0.35, 1.7, 3.1])


def test_jump_laplace_law_when_differentiated_solves_kolmogorov_feller_equation() -> None:
    t, x0, h = 0.8, 0.6, 1e-4
    lhs = (_continuous_density(POINTS, t + h, x0) - _continuous_density(POINTS, t - h, x0)) / (
        2 * h
    )
    drift = (
        (POINTS + h) * _continuous_density(POINTS + h, t, x0)
        - (POINTS - h) * _continuous_density(POINTS - h, t, x0)
    ) / (2 * h)
    a, u = math.exp(-LAM * t), POINTS - math.exp(-THETA * t) * x0
    # jump generator λ ∫ [p(x - y) - p(x)] ρ(y) dy, with the atom a δ(x - c x0) in p
    jumps = LAM * (
        a * _laplace(u) + (1 - a) * _laplace_conv_laplace(u) - _continuous_density(POINTS, t, x0)
    )
    np.testing.assert_allclose(lhs, THETA * drift + jumps, rtol=2e-4, atol=1e-6)


def test_jump_laplace_potential_when_differentiated_twice_equals_jump_generator() -> None:
    t, x0, h = 0.8, 0.6, 1e-3
    second = (
        _potential(POINTS + h, t, x0)
        - 2 * _potential(POINTS, t, x0)
        + _potential(POINTS - h, t, x0)
    ) / h**2
    a, u = math.exp(-LAM * t), POINTS - math.exp(-THETA * t) * x0
    jumps = LAM * (
        a * _laplace(u) + (1 - a) * _laplace_conv_laplace(u) - _continuous_density(POINTS, t, x0)
    )
    np.testing.assert_allclose(second, jumps, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("t", [0.05, 0.8, 4.0])
def test_jump_laplace_conditional_score_when_compared_with_numerical_grad_v_over_p_matches(
    t: float,
) -> None:
    noise = JumpLaplaceNoise()
    x0, h = 0.6, 1e-4
    numerical = (_potential(POINTS + h, t, x0) - _potential(POINTS - h, t, x0)) / (2 * h)
    numerical /= _continuous_density(POINTS, t, x0)
    u = torch.as_tensor(POINTS - math.exp(-THETA * t) * x0)
    closed = noise.conditional_score(u, t).numpy()
    np.testing.assert_allclose(closed, numerical, rtol=1e-4, atol=1e-4)


def test_jump_laplace_add_noise_when_targets_averaged_given_x_t_match_marginal_score() -> None:
    noise = JumpLaplaceNoise()
    gen = torch.Generator().manual_seed(4)
    mu, s, n = 0.5, 0.7, 300_000
    for t in (0.3, 1.5):
        x0 = mu + s * torch.randn(n, generator=gen, dtype=torch.float64)
        x_t, target = noise.add_noise(x0, torch.tensor(t), generator=gen)
        score = noise.output_to_score(target, t)
        edges = torch.linspace(-1.0, 1.6, 9, dtype=torch.float64)
        for lo, hi in itertools.pairwise(edges):
            inside = (x_t > lo) & (x_t <= hi)
            mean_target = score[inside].mean()
            se = score[inside].std() / math.sqrt(int(inside.sum()))
            exact = jl_score(noise, x_t[inside], t, mu, s).mean()
            assert abs(float(mean_target - exact)) < 4.5 * float(se) + 1e-3, (t, float(lo))


def test_laplace_gauss_oracle_when_compared_with_quadrature_matches() -> None:
    z = torch.tensor([-2.0, -0.3, 0.0, 0.4, 2.5], dtype=torch.float64)
    sig = torch.tensor(0.45, dtype=torch.float64)
    density, signed, first = laplace_gauss_terms(z, sig.expand_as(z), 1.0)
    u = np.linspace(-30, 30, 600_001)
    du = u[1] - u[0]
    for i, zi in enumerate(z.tolist()):
        kernel = (
            _laplace(u) * np.exp(-((zi - u) ** 2) / (2 * 0.45**2)) / (0.45 * math.sqrt(2 * math.pi))
        )
        assert float(density[i]) == pytest.approx(np.sum(kernel) * du, rel=1e-6)
        assert float(signed[i]) == pytest.approx(np.sum(np.sign(u) * kernel) * du, abs=1e-7)
        assert float(first[i]) == pytest.approx(np.sum(u * kernel) * du, abs=1e-7)


# -- Jump-Laplace: isotropic events --------------------------------------------------------------


@pytest.mark.parametrize("dim", [1, 2, 3, 5, 8, 80])
def test_bessel_k_ratio_when_compared_with_scipy_matches(dim: int) -> None:
    z = np.array([0.05, 0.4, 1.0, 3.0, 12.0, 60.0])
    expected = scipy.special.kve(dim / 2, z) / scipy.special.kve(dim / 2 - 1, z)
    got = bessel_k_ratio(dim, torch.as_tensor(z)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_jump_laplace_conditional_score_when_3d_event_matches_elementary_form() -> None:
    noise = JumpLaplaceNoise(laplace_scale=0.7, event_ndim=1)
    u = torch.tensor([[0.3, -0.4, 1.2], [2.0, 0.1, -0.5]], dtype=torch.float64)
    t = torch.tensor([0.4, 2.0], dtype=torch.float64)
    b, lam = 0.7, noise.jump_rate
    r = u.norm(dim=1, keepdim=True)
    odds = (torch.exp(-lam * t) / (1 - torch.exp(-lam * t)))[:, None]
    # in 3-D, ρ(u) ∝ e^{-r/b} / r, so ∇ log ρ = -(1/b + 1/r) û
    expected = -lam * b * odds * (1 + b / r) * u / r - 0.5 * lam * u
    assert torch.allclose(noise.conditional_score(u, t), expected, rtol=1e-12)


def test_jump_laplace_add_noise_when_isotropic_event_jumps_whole_event() -> None:
    noise = JumpLaplaceNoise(event_ndim=2)
    gen = torch.Generator().manual_seed(5)
    x0 = torch.zeros(20_000, 3, 4, dtype=torch.float64)
    x_t, target = noise.add_noise(x0, torch.tensor(0.5), generator=gen)
    moved = x_t.abs().flatten(1) > 0
    assert bool((moved.all(1) | (~moved).all(1)).all())  # events jump as a whole
    assert float((~moved.any(1)).double().mean()) == pytest.approx(math.exp(-0.5), abs=0.01)
    assert bool((target[~moved.any(1)] == 0).all())
    assert float(x_t.var()) == pytest.approx(2.0 * (1 - math.exp(-0.5)), rel=0.03)


def test_jump_laplace_parametrizations_when_compared_give_the_same_score() -> None:
    scaled, plain = JumpLaplaceNoise(), JumpLaplaceNoise(parametrization="score")
    x0 = torch.randn(5, 2, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0.1, 0.5, 1.0, 3.0, 6.0])
    xs, ts = scaled.add_noise(x0, t, generator=torch.Generator().manual_seed(1))
    xp, tp = plain.add_noise(x0, t, generator=torch.Generator().manual_seed(1))
    assert torch.equal(xs, xp)
    assert torch.allclose(scaled.output_to_score(ts, t), tp, rtol=1e-5)
    weight = plain.loss_weight(t)[:, None]
    assert torch.allclose(weight * tp.double() ** 2, ts.double() ** 2, rtol=1e-5)
