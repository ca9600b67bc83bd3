"""v-prediction (Salimans & Ho 2022) through every Gaussian sampler.

With the exact outputs of both parametrizations for the same data, an ε model and a v model
describe the same ``x0_hat`` and ``eps_hat``, so every sampler must produce the same samples from
the same seed (up to rounding).
"""

from __future__ import annotations

import pytest
import torch

from tapecast.diffusion import GaussianNoise, MomentGuided, MomentTargets, Sampler, get_sampler
from tests.diffusion.oracles import gaussian_model_output

MU, S = 1.0, 0.8


def _sample(sampler: Sampler, noise: GaussianNoise, seed: int, n_steps: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    sampler.set_timesteps(n_steps)
    x = sampler.init_noise((8, 3, 5), gen, dtype=torch.float64)
    for i, t in enumerate(sampler.timesteps):
        x = sampler.step(gaussian_model_output(noise, x, t, MU, S), i, x, generator=gen)
    return x


@pytest.mark.parametrize(
    ("name", "options"),
    [("ddpm", {}), ("ddpm", {"variance": "fixed_large"}), ("ddim", {}), ("ddim", {"eta": 1.0}),
     ("ddim", {"clip_x0": 1.5}), ("dpm-solver++", {})],
)
def test_gaussian_sampler_when_v_model_replaces_eps_model_gives_the_same_samples(
    name: str, options: dict[str, object]
) -> None:
    eps_noise = GaussianNoise.from_schedule("cosine", 800)
    v_noise = GaussianNoise.from_schedule("cosine", 800, prediction="v")
    with_eps = _sample(get_sampler(name, eps_noise, **options), eps_noise, 7, 15)
    with_v = _sample(get_sampler(name, v_noise, **options), v_noise, 7, 15)
    assert torch.allclose(with_eps, with_v, rtol=1e-9, atol=1e-9)


def test_mgd_when_wrapping_ddim_with_v_model_gives_the_same_samples_as_eps() -> None:
    central = torch.tensor([[S**2, 0.0, 3 * S**4]]).repeat(3, 1)[None]  # (1, K, 3)
    targets = MomentTargets(central, torch.eye(3)[None] * S**2)
    out = []
    for prediction in ("epsilon", "v"):
        noise = GaussianNoise.from_schedule("cosine", 800, prediction=prediction)
        wrapped = MomentGuided(get_sampler("ddim", noise, eta=0.5), 4, targets)
        out.append(_sample(wrapped, noise, 3, 10))
    assert torch.allclose(out[0], out[1], rtol=1e-9, atol=1e-9)
