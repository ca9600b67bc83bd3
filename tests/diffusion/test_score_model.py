"""A tiny VE score network trains, samples with annealed Langevin and gets a probability-flow
log-likelihood, through :mod:`tapecast.diffusion` with no edit there.

Data: a two-component mixture in 2-D, ``0.5 N((-2, 0), 0.5² I) + 0.5 N((2, 0), 0.5² I)``. The
network (an unconditional MLP: ``condition`` returns :class:`Unconditional`) learns σ·∇log p_σ
with :func:`tapecast.diffusion.denoising_loss` and :func:`tapecast.train.fit`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pytest
import torch
from torch import Tensor, nn

from tapecast.diffusion import (
    Unconditional,
    VENoise,
    denoising_loss,
    draw_samples,
    get_sampler,
    log_likelihood,
)
from tapecast.train import TensorDictDataset, TrainConfig, fit

CENTRE, SPREAD = 2.0, 0.5


class ScoreMLP(nn.Module):
    """σ·score of a 2-D state: an MLP of (x, t / N)."""

    def __init__(self, width: int = 128) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(3, width), nn.SiLU(), nn.Linear(width, width),
                                  nn.SiLU(), nn.Linear(width, width), nn.SiLU(),
                                  nn.Linear(width, 2))

    def condition(self, batch: Mapping[str, Tensor]) -> Unconditional:
        return Unconditional()

    def forward(self, x: Tensor, t: Tensor, cond: Unconditional) -> Tensor:
        out: Tensor = self.body(torch.cat([x, (t.float() / 1000.0)[:, None]], dim=1))
        return out


def _mixture(n: int, seed: int) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    side = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    centre = torch.stack([CENTRE * side, torch.zeros(n)], dim=1)  # (n, 2)
    return centre + SPREAD * torch.randn(n, 2, generator=gen)


def _mixture_logp(x: Tensor, var: float) -> Tensor:
    """Exact log density of the mixture blurred to variance ``var`` per coordinate, (n,)."""
    parts = [math.log(0.5) - ((x - torch.tensor([c, 0.0], dtype=x.dtype)) ** 2).sum(1) / (2 * var)
             - math.log(2 * math.pi * var) for c in (-CENTRE, CENTRE)]
    return torch.logsumexp(torch.stack(parts), dim=0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[ScoreMLP, VENoise]:
    noise = VENoise(sigma_min=0.01, sigma_max=6.0)
    torch.manual_seed(0)
    net = ScoreMLP()
    config = TrainConfig(lr=2e-3, batch_size=256, max_epochs=None, max_steps=1500,
                         eval_every=1500, log_every=500, seed=0, num_threads=1)
    fit(net, denoising_loss(noise, draws=4), TensorDictDataset({"target": _mixture(8192, 1)}),
        None, config, run_dir=tmp_path_factory.mktemp("score"), progress=False)
    net.eval()
    return net, noise


def test_score_mlp_when_trained_samples_both_modes_with_annealed_langevin(
        trained: tuple[ScoreMLP, VENoise]) -> None:
    net, noise = trained
    sampler = get_sampler("langevin", noise, steps_per_level=40, epsilon=2e-5)
    sampler.set_timesteps(20)
    x = draw_samples(net, sampler, {}, 1000, (2,), seed=0, rows=1)[0]  # (1000, 2)
    right = x[:, 0] > 0
    assert 0.4 < float(right.float().mean()) < 0.6
    for mode, centre in ((x[right], CENTRE), (x[~right], -CENTRE)):
        torch.testing.assert_close(mode.mean(0), torch.tensor([centre, 0.0]), atol=0.2, rtol=0)
        assert bool(((mode.std(0) > 0.7 * SPREAD) & (mode.std(0) < 1.4 * SPREAD)).all())


def test_score_mlp_when_trained_gets_a_probability_flow_log_likelihood_near_the_truth(
        trained: tuple[ScoreMLP, VENoise]) -> None:
    net, noise = trained

    def score(x: Tensor, t: Tensor) -> Tensor:
        return noise.score(net(x.float(), noise.model_time(t), Unconditional()).double(), t)

    points = _mixture(50, 7).double()
    ll = log_likelihood(score, points, noise, steps=100)
    exact = _mixture_logp(points, SPREAD**2 + noise.sigma_min**2)
    assert ll.shape == (50,) and bool(torch.isfinite(ll).all())
    assert float((ll - exact).abs().mean()) < 0.5
    assert abs(float(ll.mean() - exact.mean())) < 0.2
    far = torch.tensor([[0.0, 3.0]], dtype=torch.float64)  # between and off the modes
    assert float(log_likelihood(score, far, noise, steps=100)[0]) < float(ll.min())

