"""1-second bars of the synthetic market (sim/bars.py) and the price grid on them."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from tapecast.core.errors import TapecastError
from tapecast.data.schemas import BARS, QUOTE_BARS
from tapecast.data.tables import Tables
from tapecast.features.price import PriceGridConfig, price_grid
from tapecast.features.price_windows import price_windows
from tapecast.sim import SyntheticMarketConfig, generate_market
from tapecast.sim.bars import market_bars


@pytest.fixture(scope="module")
def market() -> Tables:
    return generate_market(SyntheticMarketConfig(n_sessions=2, trades_per_session=20_000), seed=1)


def test_market_bars_are_canonical_and_add_up(market: Tables) -> None:
    out = market_bars(market)
    assert out.bars is not None and out.quote_bars is not None
    assert out.bars.schema == BARS and out.quote_bars.schema == QUOTE_BARS
    trades = market.trades
    assert trades is not None
    assert out.bars["n_trades"].sum() == trades.height
    assert out.bars["volume"].sum() == pytest.approx(trades["size"].sum())
    second = trades.with_columns(pl.col("ts").dt.truncate("1s"))
    first = second.filter(pl.col("ts") == out.bars["ts"][5])
    bar = out.bars.row(5, named=True)
    assert (bar["open"], bar["close"]) == (first["price"][0], first["price"][-1])
    assert (bar["high"], bar["low"]) == (first["price"].max(), first["price"].min())
    assert (out.bars["ts"].dt.nanosecond() == 0).all()
    quotes = market.quotes
    assert quotes is not None
    last = quotes.with_columns(pl.col("ts").dt.truncate("1s")).group_by("ts").agg(
        pl.col("bid_px").last(), pl.col("ask_sz").last()).sort("ts")
    np.testing.assert_array_equal(out.quote_bars["bid_close"], last["bid_px"])
    np.testing.assert_array_equal(out.quote_bars["ask_size"], last["ask_sz"])


def test_price_grid_runs_on_the_synthetic_market(market: Tables) -> None:
    out = market_bars(market)
    config = PriceGridConfig()
    grid, summary = price_grid(out.bars, out.quote_bars, config)
    assert summary["instruments"]["SYN"]["sessions"] == 2
    assert grid.height == 2 * 23_400
    windows, wsummary = price_windows(grid, config)
    assert windows.height > 40_000
    assert wsummary["SYN"]["by_source"]["mid"]["valid"] == windows.height


def test_market_bars_without_trades_raises() -> None:
    with pytest.raises(TapecastError, match="no trades"):
        market_bars(Tables(source="empty", format="synthetic"))
