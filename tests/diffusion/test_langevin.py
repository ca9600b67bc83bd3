"""Annealed Langevin dynamics (Song & Ermon 2019, Alg. 1): the level grid, the step, and an oracle
run with the exact score of Gaussian data under VE noise."""

from __future__ import annotations

import math

import pytest
import torch

from tapecast.core.errors import TapecastError
from tapecast.diffusion import (
    AnnealedLangevinSampler,
    GaussianNoise,
    JumpLaplaceNoise,
    VENoise,
    get_sampler,
    samplers_for,
)
from tests.diffusion.oracles import ve_model_output


def _run(sampler: AnnealedLangevinSampler, mu: float, s: float, n_levels: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    sampler.set_timesteps(n_levels)
    x = sampler.init_noise((20_000, 1), gen, dtype=torch.float64)
    for i, t in enumerate(sampler.timesteps):
        x = sampler.step(ve_model_output(sampler.noise, x, t, mu, s), i, x, generator=gen)
    return x


def test_langevin_when_levels_set_repeats_each_level_and_ends_with_denoising() -> None:
    noise = VENoise(sigma_min=0.01, sigma_max=10.0)
    sampler = AnnealedLangevinSampler(noise, steps_per_level=3)
    sampler.set_timesteps(4)
    times = sampler.timesteps
    assert times.dtype == torch.float64 and times.shape == (4 * 3 + 1,)
    assert bool((times[1:] <= times[:-1]).all())
    assert times[:3].tolist() == [1.0, 1.0, 1.0] and times[-4:].tolist() == [0.0] * 4
    assert sampler.levels.tolist() == pytest.approx([1.0, 2 / 3, 1 / 3, 0.0])
    assert float(sampler.previous_time(0)) == 1.0  # a Langevin step stays at its level
    assert float(sampler.previous_time(11)) == 0.0
    assert float(sampler.previous_time(12)) == -1.0  # denoised: clean data
    without = AnnealedLangevinSampler(noise, steps_per_level=3, denoise=False)
    without.set_timesteps(4)
    assert without.timesteps.shape == (12,) and float(without.previous_time(11)) == 0.0


def test_langevin_when_one_level_uses_sigma_min() -> None:
    sampler = AnnealedLangevinSampler(VENoise(), steps_per_level=2)
    sampler.set_timesteps(1)
    assert sampler.timesteps.tolist() == [0.0, 0.0, 0.0]


def test_langevin_step_size_when_level_i_is_eps_sigma_i2_over_sigma_l2() -> None:
    noise = VENoise(sigma_min=0.01, sigma_max=1.0)
    sampler = AnnealedLangevinSampler(noise, steps_per_level=2, epsilon=2e-5)
    sampler.set_timesteps(3)  # σ = 1, 0.1, 0.01
    assert sampler.step_size(0) == pytest.approx(2e-5 * 1e4)
    assert sampler.step_size(2) == pytest.approx(2e-5 * 1e2)
    assert sampler.step_size(5) == pytest.approx(2e-5)


def test_langevin_step_when_seeded_is_alg1_line6_and_last_step_is_tweedie() -> None:
    noise = VENoise(sigma_min=0.1, sigma_max=10.0)
    sampler = AnnealedLangevinSampler(noise, steps_per_level=1, epsilon=0.01)
    sampler.set_timesteps(2)  # σ = 10, 0.1, then the denoising visit at 0.1
    x = torch.randn(5, 2, dtype=torch.float64)
    out = torch.randn(5, 2, dtype=torch.float64)  # σ · score
    z = torch.randn(5, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    alpha = 0.01 * (10.0 / 0.1) ** 2
    expected = x + 0.5 * alpha * out / 10.0 + math.sqrt(alpha) * z
    stepped = sampler.step(out, 0, x, generator=torch.Generator().manual_seed(4))
    assert torch.allclose(stepped, expected)
    # x + σ_L² s(x, σ_L): for data N(mu, s²) this is E[x0 | x] = mu + s²(x - mu)/(s² + σ²)
    exact = ve_model_output(noise, x, 0.0, 1.0, 0.5)
    denoised = sampler.step(exact, 2, x)
    assert torch.allclose(denoised, 1.0 + 0.25 * (x - 1.0) / (0.25 + 0.01))


def test_langevin_when_exact_score_recovers_gaussian_data() -> None:
    """Relative step ``ε/σ_L² = 0.5`` (NCSN: 0.2); 20 levels, σ = 10 to 0.01, 100 steps each."""
    sampler = AnnealedLangevinSampler(VENoise(0.01, 10.0), steps_per_level=100, epsilon=5e-5)
    out = _run(sampler, mu=1.0, s=0.5, n_levels=20)
    assert float(out.mean()) == pytest.approx(1.0, abs=0.02)
    assert float(out.std()) == pytest.approx(0.5, rel=0.04)  # measured 0.505


def test_langevin_when_few_steps_per_level_keeps_excess_spread_of_earlier_levels() -> None:
    """At levels σ ≪ s the chain barely moves (α_i/s² is tiny), so the spread it had where
    σ ≈ s is carried to the end: ~8 % too wide with 50 steps per level and ε/σ_L² = 0.1."""
    sampler = AnnealedLangevinSampler(VENoise(0.01, 10.0), steps_per_level=50, epsilon=1e-5)
    out = _run(sampler, mu=1.0, s=0.5, n_levels=20)
    assert float(out.mean()) == pytest.approx(1.0, abs=0.02)
    assert 0.5 < float(out.std()) < 0.58  # measured 0.538


@pytest.mark.parametrize("noise", [GaussianNoise.from_schedule("linear", 10), JumpLaplaceNoise()])
def test_get_sampler_when_langevin_asked_for_other_noise_raises(
    noise: GaussianNoise | JumpLaplaceNoise,
) -> None:
    with pytest.raises(TapecastError, match="sampler 'langevin' needs a ve-noise model"):
        get_sampler("langevin", noise)
    with pytest.raises(TapecastError, match="needs VENoise"):
        AnnealedLangevinSampler(noise)  # type: ignore[arg-type]


def test_get_sampler_when_langevin_options_given_passes_them_on() -> None:
    sampler = get_sampler("langevin", VENoise(), steps_per_level=7, epsilon=1e-4, denoise=False)
    assert isinstance(sampler, AnnealedLangevinSampler)
    assert (sampler.steps_per_level, sampler.epsilon, sampler.denoise) == (7, 1e-4, False)
    assert "langevin" in samplers_for("ve")


@pytest.mark.parametrize("options", [{"steps_per_level": 0}, {"epsilon": 0.0}])
def test_langevin_when_options_invalid_raises(options: dict[str, float]) -> None:
    with pytest.raises(TapecastError):
        AnnealedLangevinSampler(VENoise(), **options)  # type: ignore[arg-type]


def test_langevin_when_step_before_set_timesteps_raises() -> None:
    with pytest.raises(TapecastError, match="set_timesteps"):
        AnnealedLangevinSampler(VENoise()).step(torch.zeros(2), 0, torch.zeros(2))
