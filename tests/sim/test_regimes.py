"""Injected regimes at unchanged volatility (sim/regimes.py)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from tapecast.core.errors import TapecastError
from tapecast.sim.regimes import Regime, inject_regimes, minute_bars, random_regimes


@pytest.fixture(scope="module")
def bars() -> pl.DataFrame:
    return minute_bars(n_sessions=12, trades_per_session=20_000, seed=0)


def _returns(frame: pl.DataFrame) -> np.ndarray:
    close = frame["close"].to_numpy()
    return close[1:] / close[:-1] - 1.0


def test_minute_bars_are_one_instrument_in_time_order(bars: pl.DataFrame) -> None:
    assert bars["instrument"].n_unique() == 1 and bars["ts"].is_sorted()
    assert bars.height > 12 * 300
    assert (bars["high"] >= bars["close"]).all() and (bars["low"] <= bars["close"]).all()


def test_autocorrelation_regime_changes_the_acf_not_the_volatility(bars: pl.DataFrame) -> None:
    regimes = random_regimes(bars.height, kind="autocorrelation", strength=0.8, first=100,
                             count=8, length=200, seed=1)
    out = inject_regimes(bars, regimes)
    r_old, r_new = _returns(bars), _returns(out.bars)
    inside = out.labels[1:]

    def acf1(r: np.ndarray) -> float:
        return float(np.mean([np.corrcoef(r[g.start:g.start + g.length - 1][1:],
                                          r[g.start:g.start + g.length - 1][:-1])[0, 1]
                              for g in regimes]))

    # closes are trade prices: the bid-ask bounce makes 1-minute returns revert a little
    assert -0.4 < acf1(r_old) < 0.0 and acf1(r_new) > 0.5
    # the marginal spread of the bar returns is kept (within sampling error of 1,600 bars)
    assert r_new[inside].std() / r_old[inside].std() == pytest.approx(1.0, abs=0.2)
    # outside the segments, returns are untouched; the labels cover the segments exactly
    np.testing.assert_allclose(r_new[~inside], r_old[~inside], rtol=1e-9, atol=1e-15)
    assert out.labels.sum() == 8 * 200
    # high/low keep their ratio to the close
    ratio = (out.bars["high"] / out.bars["close"]).to_numpy()
    np.testing.assert_allclose(ratio, (bars["high"] / bars["close"]).to_numpy(), rtol=1e-12)


def test_coupling_regime_permutes_volume_toward_up_bars(bars: pl.DataFrame) -> None:
    regimes = [Regime("coupling", 0.9, start=500, length=300)]
    out = inject_regimes(bars, regimes)
    seg = slice(500, 800)
    old_v, new_v = bars["volume"].to_numpy()[seg], out.bars["volume"].to_numpy()[seg]
    np.testing.assert_array_equal(np.sort(old_v), np.sort(new_v))
    r = np.concatenate([[0.0], _returns(bars)])[seg]
    rank = np.argsort(np.argsort(r))
    corr_new = np.corrcoef(rank, np.argsort(np.argsort(new_v)))[0, 1]
    assert corr_new > 0.8
    np.testing.assert_array_equal(out.bars["close"].to_numpy(), bars["close"].to_numpy())
    anti = inject_regimes(bars, [Regime("coupling", -0.9, start=500, length=300)])
    corr_anti = np.corrcoef(rank, np.argsort(np.argsort(anti.bars["volume"].to_numpy()[seg])))
    assert corr_anti[0, 1] < -0.8


@pytest.mark.parametrize(("regime", "words"), [
    (Regime("trend", 0.5, 10, 20), "kind must be one of"),
    (Regime("coupling", 1.0, 10, 20), "strength must be in"),
    (Regime("coupling", 0.5, 0, 20), "must have >= 2 bars"),
])
def test_bad_regime_raises_one_line(bars: pl.DataFrame, regime: Regime, words: str) -> None:
    with pytest.raises(TapecastError, match=words):
        inject_regimes(bars, [regime])


def test_overlapping_or_unfitting_segments_are_refused(bars: pl.DataFrame) -> None:
    with pytest.raises(TapecastError, match="overlap"):
        inject_regimes(bars, [Regime("coupling", 0.5, 10, 20), Regime("coupling", 0.5, 20, 20)])
    with pytest.raises(TapecastError, match="do not fit"):
        random_regimes(100, kind="coupling", strength=0.5, first=0, count=5, length=20)
