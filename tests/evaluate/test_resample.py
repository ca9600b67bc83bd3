"""The paired stationary block bootstrap (evaluate/resample.py)."""

from __future__ import annotations

import numpy as np
import pytest

from tapecast.core.errors import TapecastError
from tapecast.evaluate.resample import paired_bootstrap


def _ar1(rng: np.random.Generator, n: int, phi: float) -> np.ndarray:
    x = np.zeros(n)
    e = rng.normal(size=n)
    for t in range(1, n):
        x[t] = phi * x[t - 1] + e[t]
    return x


def test_p_value_small_for_a_real_difference_and_uniformish_under_the_null() -> None:
    rng = np.random.default_rng(0)
    a = _ar1(rng, 2000, 0.5) + 0.3
    b = _ar1(rng, 2000, 0.5)
    res = paired_bootstrap(lambda x, y: x.mean() - y.mean(), a, b, n_boot=500, seed=1)
    assert res.p_value < 0.01 and res.low < res.estimate < res.high
    assert res.n_boot == res.n_valid == 500
    assert res.block > 1.0  # serial dependence found by the Politis-White estimate
    # under H0 (equal means) the one-sided p-value is not systematically small
    ps = [paired_bootstrap(lambda x, y: x.mean() - y.mean(), _ar1(rng, 500, 0.5),
                           _ar1(rng, 500, 0.5), n_boot=200, seed=s).p_value for s in range(40)]
    assert 0.3 < float(np.mean(ps)) < 0.7
    assert np.mean(np.array(ps) < 0.05) < 0.2


def test_block_bootstrap_interval_is_wider_than_iid_for_dependent_data() -> None:
    rng = np.random.default_rng(3)
    a = _ar1(rng, 3000, 0.8)
    iid = paired_bootstrap(np.mean, a, block=1.0, n_boot=400, seed=0)
    blocked = paired_bootstrap(np.mean, a, n_boot=400, seed=0)
    assert (blocked.high - blocked.low) > 1.8 * (iid.high - iid.low)


def test_pairing_is_kept() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=300)
    res = paired_bootstrap(lambda x, y: float(np.max(np.abs(x - y))), a, a.copy(), n_boot=50)
    assert res.low == res.high == 0.0


def test_bad_input() -> None:
    with pytest.raises(TapecastError, match="equal length"):
        paired_bootstrap(np.mean, np.zeros(5), np.zeros(4))
    with pytest.raises(TapecastError, match="at least one"):
        paired_bootstrap(np.mean)
