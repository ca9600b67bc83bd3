"""The price lattice: snapped returns land on P_t + k·δ, exact zeros included."""

from __future__ import annotations

import numpy as np
import pytest

from tapecast.core.errors import TapecastError
from tapecast.features.price_lattice import lattice_step, snap_returns


def test_lattice_step_when_mid_is_half_a_tick_and_trade_a_tick() -> None:
    np.testing.assert_array_equal(lattice_step(["mid", "trade"], 0.01), [0.005, 0.01])
    with pytest.raises(TapecastError, match="'mid' or 'trade'"):
        lattice_step(["quote"], 0.01)


def test_snap_returns_when_sampled_lands_on_the_nearest_lattice_price() -> None:
    rng = np.random.default_rng(0)
    price = np.array([14.005, 171.23])
    step = np.array([0.005, 0.005])
    r = rng.normal(0, 3e-4, size=(2, 1000))
    snapped = snap_returns(r, price, step)
    moved = np.exp(snapped) * price[:, None] - price[:, None]  # k·δ
    k = moved / step[:, None]
    np.testing.assert_allclose(k, np.rint(k), atol=1e-6)
    # the nearest: never more than half a step from the continuous price
    assert np.all(np.abs(np.expm1(r) * price[:, None] - moved) <= step[:, None] / 2 + 1e-9)
    assert (snapped[0] == 0).mean() > (snapped[1] == 0).mean() > 0  # cheaper stock: more zeros


def test_snap_returns_when_nan_or_below_zero_price_stays_defined() -> None:
    out = snap_returns(np.array([[np.nan, -50.0]]), np.array([1.0]), np.array([0.01]))
    assert np.isnan(out[0, 0]) and np.isclose(np.exp(out[0, 1]), 0.01)
    with pytest.raises(TapecastError, match="one per origin"):
        snap_returns(np.zeros((2, 3)), np.ones(3), np.ones(3))
