"""ScoreMatching: the NCSN score model of states, its objectives, sampling and density.

The reference law is a 2-D Gaussian mixture with unequal weights,
``0.3 N((-1.5, -0.5), 0.5² I) + 0.7 N((1.5, 1.0), 0.5² I)``, whose blurred density and score are
known at every σ: the analytic score plugged into the model's functions checks the sampler and
the density, a network trained on its samples checks the learning.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from tapecast.core.errors import TapecastError
from tapecast.diffusion import VENoise, diffusion_loss
from tapecast.models.score_matching import ScoreMatching, score_matching_config
from tapecast.models.score_matching_ops import (
    estimate_sigma_max,
    sample_states,
    sliced_score_loss,
    state_log_density,
)
from tapecast.models.score_reference import TWO_COMPONENTS
from tapecast.nets.score_mlp import ScoreMLP, ScoreMLPConfig

LAW = TWO_COMPONENTS
WEIGHTS, MEANS, SPREAD = LAW.weights, LAW.means, LAW.spread
SIGMA_MIN = 0.01
mixture, mixture_moments, component_share = LAW.sample, LAW.moments, LAW.component_share


def mixture_logp(x: Tensor, var: float) -> Tensor:
    return LAW.log_prob(x, var)


def AnalyticScore() -> nn.Module:
    return LAW.analytic_net()


@pytest.fixture(scope="module")
def analytic_noise() -> VENoise:
    """The noise a fit on 4,000 mixture draws would use (σ_max = 2 x the largest distance)."""
    scale = score_matching_config("small").sigma_max_scale
    sigma_max = scale * estimate_sigma_max(mixture(4000, 0).numpy(), 1000, 0)
    return VENoise(SIGMA_MIN, sigma_max, time_input="log_sigma")


@pytest.fixture(scope="module")
def trained() -> ScoreMatching:
    """A small DSM network fitted on 8,192 mixture draws (~12 s on one thread)."""
    cfg = score_matching_config("small")
    cfg = cfg.replace(net=cfg.net.replace(width=48, depth=2)).with_train(
        max_steps=3000, batch_size=128, lr=3e-3, eval_every=3000, log_every=3000)
    return ScoreMatching(cfg).fit(mixture(8192, 0).float(), progress=False)


def tiny_model(steps: int = 10, objective: str = "dsm") -> ScoreMatching:
    cfg = score_matching_config("tiny").replace(objective=objective)
    return ScoreMatching(cfg.with_train(max_steps=steps, eval_every=steps)).fit(
        mixture(256, 3).float(), mixture(64, 4).float(), progress=False,
        feature_names=["a", "b"])


# -- the analytic score --------------------------------------------------------------------------

def test_log_density_when_the_analytic_score_is_plugged_in_is_within_1e_3_nats(
        analytic_noise: VENoise) -> None:
    points = mixture(200, 1)
    mean, cov = mixture_moments()
    ll = state_log_density(AnalyticScore(), analytic_noise, points, steps=50,
                           prior_mean=mean, prior_cov=cov)
    exact = mixture_logp(points, SPREAD**2 + SIGMA_MIN**2)
    assert float((ll - exact).abs().mean()) <= 1e-3  # 3.4e-4 measured


def test_langevin_when_the_analytic_score_is_plugged_in_recovers_the_weights(
        analytic_noise: VENoise) -> None:
    x = sample_states(AnalyticScore(), analytic_noise, 4000, 2, n_levels=20,
                      steps_per_level=50, epsilon=2e-5, seed=0)
    assert x.shape == (4000, 2) and bool(torch.isfinite(x).all())
    assert abs(component_share(x) - 0.7) <= 0.05  # 0.700 measured
    heavy = x[x[:, 0] > 0].double()
    torch.testing.assert_close(heavy.mean(0), MEANS[1], atol=0.05, rtol=0)
    assert bool(((heavy.std(0) > 0.9 * SPREAD) & (heavy.std(0) < 1.1 * SPREAD)).all())


def test_inpainting_when_x_is_known_draws_y_from_the_conditional(
        analytic_noise: VENoise) -> None:
    known = torch.tensor([[1.5, 0.0], [-1.5, 0.0]])
    mask = torch.tensor([True, False])
    x = sample_states(AnalyticScore(), analytic_noise, 2000, 2, n_levels=10,
                      steps_per_level=100, epsilon=2e-5, seed=1, known=known, known_mask=mask)
    assert x.shape == (2, 2000, 2)
    assert bool((x[:, :, 0] == known[:, None, 0]).all())
    for row, x1 in enumerate((1.5, -1.5)):
        # p(y | x1): the components reweighted by their density at x1, each N(μ_y, s²)
        logits = torch.log(WEIGHTS) - (x1 - MEANS[:, 0]) ** 2 / (2 * SPREAD**2)
        expected = float((torch.softmax(logits, 0) * MEANS[:, 1]).sum())
        assert abs(float(x[row, :, 1].mean()) - expected) < 0.06


def _line_integral(field: Callable[[Tensor], Tensor], corners: list[tuple[float, float]],
                   n: int = 4000) -> float:
    """∫ field · dx along the polyline through ``corners`` (midpoint rule, float64)."""
    total = 0.0
    for a, b in itertools.pairwise(corners):
        start, end = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
        u = (torch.arange(n, dtype=torch.float64) + 0.5) / n
        points = start + u[:, None] * (end - start)  # (n, 2)
        total += float((field(points) @ (end - start)).sum() / n)
    return total


def test_path_integral_of_a_non_conservative_score_depends_on_the_path() -> None:
    """Why the seed's straight-line density is not offered: with a rotational part added (as a
    learned score may carry), two paths between the same points give different 'log p'."""
    sigma = 0.05
    log_sigma = torch.tensor([math.log(sigma)])

    def exact(x: Tensor) -> Tensor:
        out: Tensor = AnalyticScore()(x, log_sigma.expand(len(x)))
        return out / sigma  # ∇log p_σ

    def rotated(x: Tensor) -> Tensor:
        return exact(x) + 0.3 * torch.stack([-x[:, 1], x[:, 0]], dim=1)  # + a curl

    x0, x1 = (-1.5, -0.5), (1.5, 1.0)
    straight, corner = [x0, x1], [x0, (x1[0], x0[1]), x1]
    truth = float(mixture_logp(torch.tensor([x1]), SPREAD**2 + sigma**2)[0]
                  - mixture_logp(torch.tensor([x0]), SPREAD**2 + sigma**2)[0])
    assert _line_integral(exact, straight) == pytest.approx(truth, abs=1e-4)
    assert _line_integral(exact, corner) == pytest.approx(truth, abs=1e-4)
    gap = _line_integral(rotated, corner) - _line_integral(rotated, straight)
    # Stokes: the curl 2·0.3 times the triangle's area ½·3·1.5
    assert gap == pytest.approx(2 * 0.3 * 0.5 * 3.0 * 1.5, abs=1e-3)


# -- objectives ----------------------------------------------------------------------------------

def test_sliced_score_loss_when_averaged_equals_the_denoising_loss() -> None:
    """Stein's identity: the reported SSM-VR value has the DSM loss's expectation."""
    torch.manual_seed(0)
    net = ScoreMLP(ScoreMLPConfig(dim=2, width=16, depth=1, sigma_dim=8))
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, 0.3)
    noise = VENoise(SIGMA_MIN, 10.0, time_input="log_sigma")
    batch = {"target": mixture(20000, 2).float()}
    dsm = diffusion_loss(net, noise, batch, torch.Generator().manual_seed(1))
    ssm = sliced_score_loss(net, noise, batch, torch.Generator().manual_seed(1))
    assert float(ssm.detach()) == pytest.approx(float(dsm.detach()), rel=0.05)


def test_estimate_sigma_max_when_subsample_covers_all_is_the_largest_distance() -> None:
    x = mixture(50, 5).numpy()
    brute = max(float(np.linalg.norm(a - b)) for a in x for b in x)
    assert estimate_sigma_max(x, 100, 0) == pytest.approx(brute, rel=1e-9)


# -- a trained network ---------------------------------------------------------------------------

def test_trained_dsm_network_gets_the_log_density_within_0_05_nats_per_dimension(
        trained: ScoreMatching) -> None:
    points = mixture(200, 1)
    ll = trained.log_prob(points)
    exact = mixture_logp(points, SPREAD**2 + SIGMA_MIN**2)
    assert ll.shape == (200,) and ll.dtype == torch.float64
    assert float((ll - exact).abs().mean()) / 2 <= 0.05  # 0.037 measured


def test_trained_dsm_network_langevin_recovers_the_weights(trained: ScoreMatching) -> None:
    x = trained.sample(2000, n_levels=20, steps_per_level=50, seed=0)
    assert x.shape == (2000, 2)
    assert abs(component_share(x) - 0.7) <= 0.05  # 0.680 measured


def test_hutchinson_and_exact_traces_agree_within_3_standard_errors(
        trained: ScoreMatching) -> None:
    points = mixture(4, 9)
    exact = trained.log_prob(points, steps=40)
    copies = points.repeat_interleave(64, 0)  # (4·64, 2): one probe per copy
    hutch = trained.log_prob(copies, divergence="hutchinson", steps=40, seed=3).reshape(4, 64)
    se = hutch.std(1) / math.sqrt(64)
    assert bool(((hutch.mean(1) - exact).abs() <= 3 * se).all())
    assert bool((se > 0).all())


def test_ssm_vr_objective_when_fitted_gives_a_finite_density() -> None:
    model = tiny_model(steps=20, objective="ssm-vr")
    assert model.training["steps"] == 20
    assert bool(torch.isfinite(model.log_prob(mixture(5, 6))).all())


# -- persistence and bad input -------------------------------------------------------------------

def test_save_and_load_when_round_tripped_give_the_same_density_and_samples(
        tmp_path: Path) -> None:
    model = tiny_model()
    model.save(tmp_path / "m")
    loaded = ScoreMatching.load(tmp_path / "m")
    points = mixture(5, 6)
    torch.testing.assert_close(loaded.log_prob(points), model.log_prob(points))
    torch.testing.assert_close(loaded.sample(8, seed=2), model.sample(8, seed=2))
    assert loaded.feature_names == ["a", "b"] and loaded.config == model.config
    assert (tmp_path / "m" / "model.safetensors").exists()


def test_fit_with_run_dir_when_finished_leaves_a_loadable_folder(tmp_path: Path) -> None:
    cfg = score_matching_config("tiny")
    ScoreMatching(cfg.with_train(max_steps=5, eval_every=5)).fit(
        mixture(128, 3).float(), run_dir=tmp_path / "run", progress=False)
    assert ScoreMatching.load(tmp_path / "run").dim == 2


@pytest.mark.parametrize("states, words", [
    (np.zeros((3, 3)), "dimension 3"),
    (np.array([[0.0, float("nan")]]), "row 0, field 1 is nan"),
    (np.array([[0.0, float("inf")]]), "row 0, field 1 is inf"),
])
def test_model_when_given_bad_states_raises_one_line(states: np.ndarray, words: str) -> None:
    model = tiny_model(steps=2)
    for call in (model.log_prob, lambda s: model.score(s, 0.1)):
        with pytest.raises(TapecastError, match=words) as info:
            call(states)
        assert "\n" not in str(info.value)


def test_model_when_not_fitted_or_a_folder_is_missing_raises_one_line(tmp_path: Path) -> None:
    with pytest.raises(TapecastError, match="fitted or loaded first"):
        ScoreMatching("tiny").sample(4)
    with pytest.raises(TapecastError, match="no such score-matching model folder"):
        ScoreMatching.load(tmp_path / "absent")
    with pytest.raises(TapecastError, match="all equal"):
        ScoreMatching("tiny").fit(np.zeros((10, 2)), progress=False)


def test_model_inpainting_when_unknown_fields_are_nan_keeps_the_known_ones() -> None:
    model = tiny_model(steps=2)
    x = model.sample(4, known=[0.7, float("nan")], known_mask=[True, False], seed=0)
    assert x.shape == (1, 4, 2) and bool(torch.isfinite(x).all())
    assert bool((x[0, :, 0] == torch.tensor(0.7)).all())


def test_fit_when_resumed_in_a_folder_of_another_run_refuses(tmp_path: Path) -> None:
    cfg = score_matching_config("tiny").with_train(max_steps=3, eval_every=3)
    ScoreMatching(cfg).fit(mixture(128, 3).float(), run_dir=tmp_path, progress=False)
    with pytest.raises(TapecastError, match="training states"):
        ScoreMatching(cfg).fit(mixture(128, 4).float(), run_dir=tmp_path, progress=False)


def test_inpainting_when_the_mask_does_not_fit_raises_one_line() -> None:
    model = tiny_model(steps=2)
    with pytest.raises(TapecastError, match="known_mask must have shape"):
        model.sample(4, known=np.zeros(2), known_mask=np.ones(3, dtype=bool))
    with pytest.raises(TapecastError, match="both known and known_mask"):
        model.sample(4, known=np.zeros(2))
