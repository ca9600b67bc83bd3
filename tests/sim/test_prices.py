"""Tests of tapecast.sim.prices: volatility factor, propagator mid, quotes."""

from __future__ import annotations

import numpy as np

from tapecast.sim.prices import mid_path, propagator_kernel, quotes_around, volatility_factor


def test_propagator_kernel_when_beta_positive_then_starts_at_gamma0_and_decays() -> None:
    g = propagator_kernel(1_000, 0.5, 20.0, 0.25)
    assert g[0] == 0.5
    assert np.all(np.diff(g) < 0)
    np.testing.assert_allclose(g[99], 0.5 * (21.0 / 120.0) ** 0.25)


def test_mid_path_when_single_trade_then_response_is_the_kernel() -> None:
    n = 50
    signs = np.zeros(n, dtype=np.int8)
    signs[0] = 1
    sizes = np.ones(n)
    mid = mid_path(signs, sizes, np.ones(n), np.zeros(n), impact=0.3, l0=5.0, beta=0.4,
                   size_exponent=0.5)  # (n,)
    # m_t for t >= 1 is G(t) times the first trade's drive ε (v / v̄)^δ σ = 1 here
    expected = propagator_kernel(n - 1, 0.3, 5.0, 0.4)
    assert mid[0] == 0.0
    np.testing.assert_allclose(mid[1:], expected, rtol=1e-9, atol=1e-12)


def test_quotes_around_when_one_or_two_ticks_then_mid_inside() -> None:
    mid = np.array([100.2, 100.7, 100.2, 100.7])
    spread = np.array([1, 1, 2, 2], dtype=np.int64)
    bid, ask = quotes_around(mid, spread)
    np.testing.assert_array_equal(bid, [100, 100, 99, 100])
    np.testing.assert_array_equal(ask - bid, spread)
    assert np.all((bid <= mid) & (mid <= ask))


def test_volatility_factor_when_sd_positive_then_stationary_mean_one() -> None:
    # each draw starts in the stationary law, so σ_0 over many seeds has mean 1
    first = np.array([volatility_factor(np.random.default_rng(s), 4, 0.3)[0]
                      for s in range(4_000)])  # (4000,)
    assert abs(first.mean() - 1.0) < 0.03
    assert abs(np.log(first).std() - 0.3) < 0.03


def test_volatility_factor_when_sd_positive_then_persistent() -> None:
    log_sigma = np.log(volatility_factor(np.random.default_rng(0), 400_000, 0.3))
    assert np.corrcoef(log_sigma[:-1000], log_sigma[1000:])[0, 1] > 0.5
