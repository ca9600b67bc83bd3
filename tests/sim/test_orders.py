"""Tests of tapecast.sim.orders: metaorder signs and trade sizes."""

from __future__ import annotations

import numpy as np

from tapecast.evaluate.stylized import acf, hill_tail_index
from tapecast.sim.orders import metaorder_signs, trade_sizes


def test_metaorder_signs_when_alpha_larger_then_memory_shorter() -> None:
    rhos = []
    for alpha in (1.3, 3.0):
        signs, _, _ = metaorder_signs(np.random.default_rng(5), 200_000, n_active=8, alpha=alpha,
                                      max_length=10_000, noise=0.0, burst=0.0)
        rhos.append(acf(signs.astype(np.float64), 50)[49])
    assert rhos[0] > 2 * rhos[1]


def test_metaorder_signs_when_all_noise_then_uncorrelated_and_no_bursts() -> None:
    signs, is_burst, _ = metaorder_signs(np.random.default_rng(1), 100_000, n_active=4,
                                         alpha=1.5, max_length=1_000, noise=1.0, burst=0.0)
    assert not is_burst.any()
    assert abs(acf(signs.astype(np.float64), 1)[0]) < 0.02
    assert set(np.unique(signs).tolist()) == {-1, 1}


def test_metaorder_signs_when_bursts_then_burst_trades_repeat_previous_sign() -> None:
    signs, is_burst, _ = metaorder_signs(np.random.default_rng(2), 50_000, n_active=4,
                                         alpha=1.5, max_length=1_000, noise=0.5,
                                         burst=np.full(50_000, 0.6))
    assert 0.55 < is_burst.mean() < 0.65
    idx = np.flatnonzero(is_burst)
    np.testing.assert_array_equal(signs[idx], signs[idx - 1])


def test_trade_sizes_when_pareto_then_whole_lots_and_tail_index_near_a() -> None:
    sizes = trade_sizes(np.random.default_rng(3), 200_000, lot=100, tail_index=1.8,
                        scale=np.full(200_000, 1.0))
    assert np.all(sizes % 100 == 0) and sizes.min() == 100
    # the discrete floor bends the tail; at the top 1 % the Hill estimate sits near a
    assert 1.5 < hill_tail_index(sizes, 0.01) < 2.1
