"""Variance-exploding noise: the σ curve, the forward law, the score target and the prior."""

from __future__ import annotations

import math

import pytest
import scipy.stats
import torch

from tapecast.core.errors import TapecastError
from tapecast.diffusion import VENoise, get_noise


def test_ve_sigma_when_t_at_ends_is_sigma_min_and_sigma_max() -> None:
    noise = VENoise(sigma_min=0.02, sigma_max=30.0)
    assert float(noise.sigma(0.0)) == pytest.approx(0.02, rel=1e-12)
    assert float(noise.sigma(1.0)) == pytest.approx(30.0, rel=1e-12)
    assert float(noise.sigma(0.5)) == pytest.approx(math.sqrt(0.02 * 30.0), rel=1e-12)
    assert float(noise.sigma(-1.0)) == 0.0  # the clean-data marker
    assert torch.equal(noise.marginal_std(torch.tensor([0.3])), noise.sigma(torch.tensor([0.3])))


def test_ve_log_sigma_when_t_varies_is_affine_and_continuous() -> None:
    noise = VENoise(sigma_min=0.01, sigma_max=50.0)
    t = torch.linspace(0.0, 1.0, 1001, dtype=torch.float64)
    log_sigma = torch.log(noise.sigma(t))
    steps = log_sigma[1:] - log_sigma[:-1]
    assert torch.allclose(steps, torch.full_like(steps, noise.log_ratio / 1000), atol=1e-12)


def test_ve_sde_when_asked_has_zero_drift_and_g2_the_derivative_of_sigma2() -> None:
    noise = VENoise(sigma_min=0.05, sigma_max=20.0)
    x = torch.randn(4, 3, dtype=torch.float64)
    t, h = 0.37, 1e-6
    f, g = noise.sde(x, torch.tensor(t))
    numeric = (float(noise.sigma(t + h)) ** 2 - float(noise.sigma(t - h)) ** 2) / (2 * h)
    assert torch.equal(f, torch.zeros_like(x))
    assert float(g) ** 2 == pytest.approx(numeric, rel=1e-6)
    assert float(g) ** 2 == pytest.approx(2 * float(noise.sigma(t)) ** 2 * noise.log_ratio)


def test_ve_add_noise_when_x0_constant_has_mean_x0_and_variance_sigma2() -> None:
    noise = VENoise(sigma_min=0.01, sigma_max=10.0)
    gen = torch.Generator().manual_seed(0)
    x0 = torch.full((200_000, 1), 2.0, dtype=torch.float64)
    t = torch.full((200_000,), 0.6, dtype=torch.float64)
    x_t, target = noise.add_noise(x0, t, generator=gen)
    sigma = float(noise.sigma(0.6))
    assert float(x_t.mean()) == pytest.approx(2.0, abs=3 * 4 * sigma / math.sqrt(200_000))
    assert float(x_t.var()) == pytest.approx(sigma**2, rel=0.01)
    # the target is σ ∇log N(x_t; x0, σ²) = -z, and score() turns it into ∇log p(x_t | x0)
    assert torch.allclose(target, -(x_t - x0) / sigma)
    assert torch.allclose(noise.score(target, t), -(x_t - x0) / sigma**2)
    assert float(target.var()) == pytest.approx(1.0, rel=0.01)


def test_ve_add_noise_when_time_outside_unit_interval_raises() -> None:
    with pytest.raises(TapecastError, match=r"\[0, 1\]"):
        VENoise().add_noise(torch.zeros(2, 3), torch.tensor([0.5, 1.5]))


def test_ve_sample_timesteps_when_seeded_is_continuous_uniform_and_reproducible() -> None:
    noise = VENoise()
    a = noise.sample_timesteps(20_000, generator=torch.Generator().manual_seed(3))
    b = noise.sample_timesteps(20_000, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.dtype == torch.float64
    assert float(a.min()) >= 0.0 and float(a.max()) < 1.0
    assert len(set(a.tolist())) == a.numel()
    assert scipy.stats.kstest(a.numpy(), "uniform").pvalue > 1e-3


def test_ve_prior_logp_when_compared_with_scipy_matches() -> None:
    noise = VENoise(sigma_min=0.01, sigma_max=7.0)
    z = noise.init_noise((6, 2, 3), torch.Generator().manual_seed(1), dtype=torch.float64)
    expected = scipy.stats.norm(0.0, 7.0).logpdf(z.reshape(6, -1).numpy()).sum(1)
    assert torch.allclose(noise.prior_logp(z), torch.as_tensor(expected), rtol=1e-12)


def test_ve_init_noise_when_many_draws_has_std_sigma_max() -> None:
    z = VENoise(sigma_max=12.0).init_noise((100_000,), torch.Generator().manual_seed(2))
    assert z.dtype == torch.float32
    assert float(z.std()) == pytest.approx(12.0, rel=0.01)


def test_ve_moment_transfer_when_t_given_is_unit_gain_and_gaussian_moments() -> None:
    noise = VENoise(sigma_min=0.1, sigma_max=10.0)
    c, v2, v4 = noise.moment_transfer(torch.tensor([0.5, -1.0]))
    assert c.tolist() == [1.0, 1.0]
    assert v2.tolist() == pytest.approx([1.0, 0.0])
    assert v4.tolist() == pytest.approx([3.0, 0.0])


def test_ve_model_time_when_either_input_is_float32_and_monotone() -> None:
    t = torch.tensor([0.0, 0.25, 1.0], dtype=torch.float64)
    scaled = VENoise(num_train_timesteps=1000).model_time(t)
    assert scaled.dtype == torch.float32 and scaled.tolist() == [0.0, 250.0, 1000.0]
    log_sigma = VENoise(0.01, 50.0, time_input="log_sigma").model_time(t)
    assert log_sigma.dtype == torch.float32
    assert float(log_sigma[1]) == pytest.approx(math.log(0.01) + 0.25 * math.log(5000.0))
    assert float(log_sigma[0]) == pytest.approx(math.log(0.01), rel=1e-6)
    assert float(log_sigma[2]) == pytest.approx(math.log(50.0), rel=1e-6)
    assert VENoise().loss_weight(t).tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize(
    "options",
    [{"sigma_min": 0.0}, {"sigma_min": 5.0, "sigma_max": 1.0}, {"num_train_timesteps": 0},
     {"time_input": "sigma"}],
)
def test_ve_noise_when_options_invalid_raises(options: dict[str, object]) -> None:
    with pytest.raises(TapecastError):
        VENoise(**options)  # type: ignore[arg-type]


def test_get_noise_when_ve_asked_builds_it_with_options() -> None:
    noise = get_noise("ve", sigma_min=0.02, sigma_max=3.0)
    assert isinstance(noise, VENoise) and noise.kind == "ve" and noise.sigma_max == 3.0
