"""Beta schedules: shapes, ranges, closed forms and the tanh6-1 curve of Li et al. 2024."""

from __future__ import annotations

import math

import pytest
import torch

from tapecast.core.errors import TapecastError
from tapecast.diffusion.schedules import (
    SCHEDULES,
    alphas_cumprod,
    cosine_betas,
    linear_betas,
    make_betas,
    quad_betas,
    rescale_zero_terminal_snr,
    tanh_betas,
)


@pytest.mark.parametrize("name", SCHEDULES)
def test_make_betas_when_any_schedule_returns_float64_in_unit_interval(name: str) -> None:
    betas = make_betas(name, 800)
    assert betas.dtype == torch.float64
    assert betas.shape == (800,)
    assert bool((betas > 0).all()) and bool((betas < 1).all())
    abar = alphas_cumprod(betas)
    assert bool((abar[1:] < abar[:-1]).all())


def test_tanh6_1_when_800_steps_has_monotone_alpha_bar_and_clipped_last_beta() -> None:
    betas = tanh_betas(800)
    abar = alphas_cumprod(betas)
    assert betas.shape == (800,)
    assert float(betas.max()) <= 0.999
    assert float(betas[-1]) == pytest.approx(0.999)  # ᾱ(1) = 0 would make the last beta 1
    assert bool((abar[1:] < abar[:-1]).all())
    assert float(abar[-1]) < 1e-5


def test_tanh6_1_when_compared_with_its_curve_matches_normalised_alpha_bar() -> None:
    abar = alphas_cumprod(tanh_betas(800))
    for i in (0, 100, 400, 700, 760, 790):
        t = (i + 1) / 800
        curve = (math.tanh(1.0) - math.tanh(7.0 * t - 6.0)) / (math.tanh(1.0) + math.tanh(6.0))
        assert float(abar[i]) == pytest.approx(curve, rel=1e-9)


def test_quad_when_csdi_defaults_matches_squared_linspace_of_roots() -> None:
    betas = quad_betas(50)
    assert float(betas[0]) == pytest.approx(1e-4)
    assert float(betas[-1]) == pytest.approx(0.5)
    roots = betas.sqrt()
    assert torch.allclose(roots[1:] - roots[:-1], roots[1:2] - roots[0:1], atol=1e-12)


def test_linear_when_ho_defaults_spans_1e4_to_002() -> None:
    betas = linear_betas(1000)
    assert float(betas[0]) == pytest.approx(1e-4)
    assert float(betas[-1]) == pytest.approx(0.02)


def test_cosine_when_compared_with_nichol_dhariwal_curve_matches() -> None:
    abar = alphas_cumprod(cosine_betas(1000))
    s = 0.008
    f0 = math.cos(s / (1 + s) * math.pi / 2) ** 2
    t = 500 / 1000
    expected = math.cos((t + s) / (1 + s) * math.pi / 2) ** 2 / f0
    assert float(abar[499]) == pytest.approx(expected, rel=1e-9)


def test_make_betas_when_name_unknown_raises_tapecast_error() -> None:
    with pytest.raises(TapecastError, match="unknown beta schedule 'sigmoid'"):
        make_betas("sigmoid", 10)


def test_make_betas_when_parameter_wrong_raises_tapecast_error() -> None:
    with pytest.raises(TapecastError, match="schedule 'linear'"):
        make_betas("linear", 10, s=0.1)
    with pytest.raises(TapecastError, match="beta_start <= beta_end"):
        make_betas("quad", 10, beta_start=0.5, beta_end=0.1)


# -- zero terminal SNR (Lin et al. 2024, Algorithm 1) -----------------------------------------


@pytest.mark.parametrize("name", SCHEDULES)
def test_rescale_zero_terminal_snr_when_applied_ends_at_zero_keeps_first_and_is_monotone(
    name: str,
) -> None:
    betas = make_betas(name, 50 if name == "quad" else 800)
    rescaled = rescale_zero_terminal_snr(betas)
    abar, before = alphas_cumprod(rescaled), alphas_cumprod(betas)
    assert rescaled.dtype == torch.float64 and rescaled.shape == betas.shape
    assert float(abar[-1]) == 0.0 and float(rescaled[-1]) == 1.0
    assert float(abar[0]) == pytest.approx(float(before[0]), rel=1e-12)
    assert bool((abar[1:] < abar[:-1]).all())
    assert bool(((rescaled[:-1] > 0) & (rescaled[:-1] < 1)).all())


def test_rescale_zero_terminal_snr_when_compared_with_lin_algorithm_1_matches() -> None:
    root = alphas_cumprod(linear_betas(1000)).sqrt()
    expected = root[0] * (root - root[-1]) / (root[0] - root[-1])  # Lin et al. 2024, Alg. 1
    rescaled = alphas_cumprod(rescale_zero_terminal_snr(linear_betas(1000))).sqrt()
    assert torch.allclose(rescaled, expected, rtol=1e-10, atol=1e-12)


def test_rescale_zero_terminal_snr_when_one_step_raises_tapecast_error() -> None:
    with pytest.raises(TapecastError, match="zero-terminal-SNR"):
        rescale_zero_terminal_snr(torch.tensor([0.5], dtype=torch.float64))
