"""The price family (features/price.py): 1-second bars -> grid -> windows -> context arrays."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from tests.conftest import SHARED_DATA

from tapecast.core.config import ConfigError
from tapecast.core.errors import TapecastError
from tapecast.data import read
from tapecast.data.schemas import BARS, QUOTE_BARS
from tapecast.features.price import PriceGridConfig, price_grid
from tapecast.features.price_windows import (
    PriceArrays,
    context_features,
    gather_windows,
    price_windows,
)

NS = 10**9
OPEN_NS = 1_704_724_200 * NS  # 2024-01-08 09:30 New York (14:30 UTC), a Monday
DAY_NS = 86_400 * NS
LEAN_SECOND = SHARED_DATA / "lean" / "equity" / "usa" / "second"


def synthetic_bars(days: int = 2, seed: int = 3, *, quote_days: tuple[int, ...] | None = None,
                   trade_share: float = 0.3, quote_share: float = 0.8, instrument: str = "X",
                   ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Trade and quote bars over ``days`` sessions, 08:00-17:00 New York (extended hours on both
    sides): a half-tick lattice mid, one-sided quote bars, a 90-second hole mid-morning, and quote
    bars only on ``quote_days`` (default: every day)."""
    rng = np.random.default_rng(seed)
    trade_parts, quote_parts = [], []
    for d in range(days):
        start = OPEN_NS + d * DAY_NS - 5_400 * NS  # 08:00
        seconds = np.arange(9 * 3600, dtype=np.int64)
        mid_ticks = 20_000 + np.cumsum(rng.choice([-1, 0, 0, 0, 1], seconds.size))  # (S,)
        hole = (seconds >= 7_200) & (seconds < 7_290)  # 10:00:00-10:01:30: nothing at all
        traded = (rng.random(seconds.size) < trade_share) & ~hole
        quoted = (rng.random(seconds.size) < quote_share) & ~hole
        ts = start + seconds * NS
        close = (mid_ticks + rng.choice([-1, 1], seconds.size)) * 0.005
        trade_parts.append(pl.DataFrame({
            "ts": ts[traded], "instrument": instrument, "open": close[traded],
            "high": close[traded], "low": close[traded], "close": close[traded],
            "volume": rng.integers(1, 30, seconds.size)[traded] * 100.0}))
        if quote_days is not None and d not in quote_days:
            continue
        bid = (mid_ticks - 1) * 0.005
        ask = (mid_ticks + 1) * 0.005
        one_sided = rng.random(seconds.size) < 0.05
        quote_parts.append(pl.DataFrame({
            "ts": ts[quoted], "instrument": instrument,
            "bid_close": np.where(one_sided, np.nan, bid)[quoted], "ask_close": ask[quoted],
            "bid_size": rng.integers(1, 20, seconds.size)[quoted] * 100.0,
            "ask_size": rng.integers(1, 20, seconds.size)[quoted] * 100.0}))
    bars = _canonical(pl.concat(trade_parts), BARS)
    quotes = _canonical(pl.concat(quote_parts).with_columns(
        pl.col("bid_close").fill_nan(None)).with_columns(
        *[pl.col(f"{s}_close").alias(f"{s}_{k}") for s in ("bid", "ask")
          for k in ("open", "high", "low")]), QUOTE_BARS) if quote_parts else None
    return bars, quotes  # type: ignore[return-value]


def _canonical(frame: pl.DataFrame, schema: pl.Schema) -> pl.DataFrame:
    frame = frame.with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC")),
                               pl.lit(NS, dtype=pl.Duration("ns")).alias("bar_length"))
    return frame.select([pl.col(c) if c in frame.columns else pl.lit(None).alias(c)
                         for c in schema]).cast(dict(schema))  # type: ignore[arg-type]


def lean_bars(symbols: tuple[str, ...] = ("spy", "aig"), days: str = "*"
              ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The staged LEAN second bars (skip when absent)."""
    if not LEAN_SECOND.is_dir():
        pytest.skip(f"real data not present: {LEAN_SECOND}")
    bars, quotes = [], []
    for symbol in symbols:
        for path in sorted((LEAN_SECOND / symbol).glob(f"{days}_*.zip")):
            tables = read(Path(path))
            bars += [tables.bars] if tables.bars is not None else []
            quotes += [tables.quote_bars] if tables.quote_bars is not None else []
    return pl.concat(bars), pl.concat(quotes)


def synthetic_grid(days: int = 1) -> tuple[pl.DataFrame, pl.DataFrame, PriceGridConfig]:
    """Grid, valid windows and config of :func:`synthetic_bars` (the price tests' fixture)."""
    bars, quotes = synthetic_bars(days=days)
    config = PriceGridConfig()
    grid, _ = price_grid(bars, quotes, config)
    windows, _ = price_windows(grid, config)
    return grid, windows, config


# --- config -------------------------------------------------------------------------------------
def test_config_when_context_not_allowed_raises() -> None:
    with pytest.raises(ConfigError, match="context_s"):
        PriceGridConfig(context_s=90)
    with pytest.raises(ConfigError, match="realized_spans: must increase"):
        PriceGridConfig(realized_spans=(30, 10))
    assert PriceGridConfig.from_dict(PriceGridConfig().to_dict()) == PriceGridConfig()


# --- the grid -----------------------------------------------------------------------------------
def test_price_grid_when_bar_starts_at_open_lands_on_row_stamped_one_second_later() -> None:
    bars, quotes = synthetic_bars(days=1)
    grid, summary = price_grid(bars, quotes)
    assert grid.height == 23_400
    assert grid["ts"][0] == pl.Series([OPEN_NS + NS]).cast(pl.Datetime("ns", "UTC"))[0]
    first = bars.filter(pl.col("ts").dt.epoch("ns") >= OPEN_NS).row(0, named=True)
    row = (first["ts"].timestamp() * NS - OPEN_NS) // NS
    assert grid["has_trade_bar"][int(row)] and grid["close"][int(row)] == first["close"]
    assert summary["instruments"]["X"]["seconds"] == 23_400
    assert summary["bars_outside_sessions"]["bars"] > 0  # 08:00-09:30 and 16:00-17:00


def test_price_grid_when_extended_hours_covers_04_to_20() -> None:
    bars, quotes = synthetic_bars(days=1)
    grid, _ = price_grid(bars, quotes, PriceGridConfig(session="us-equity-extended"))
    assert grid.height == 16 * 3600
    # the 08:00:00 bar is known at 08:00:01: row 4 * 3600; nothing before it
    assert grid["price"][: 4 * 3600].null_count() == 4 * 3600
    assert grid["price"][4 * 3600 + 10:].null_count() == 0


def test_price_grid_forward_fills_with_staleness_and_zero_volume() -> None:
    bars, quotes = synthetic_bars(days=1)
    grid, summary = price_grid(bars, quotes)
    hole = grid.filter(pl.col("second").is_between(1_800 + 1, 1_800 + 90))  # 10:00:01..10:01:30
    assert hole["staleness_s"].to_list() == list(range(1, 91))
    assert (hole["volume"] == 0).all() and hole["price"].n_unique() == 1
    assert summary["instruments"]["X"]["gaps_over_max"] == 1
    assert summary["instruments"]["X"]["longest_gap_s"] == 90
    with_bar = grid.filter(pl.col("has_quote_bar"))
    assert (with_bar["staleness_s"] == 0).all()
    mid = (grid["bid"] + grid["ask"]) / 2
    assert_frame_equal(grid.select(pl.col("price").alias("p")), mid.to_frame("p"))
    assert ((grid["imbalance"].abs() <= 1) | grid["imbalance"].is_null()).all()


def test_price_grid_when_a_day_lacks_quote_bars_prices_it_by_trades_and_reports_it() -> None:
    bars, quotes = synthetic_bars(days=2, quote_days=(1,))
    grid, summary = price_grid(bars, quotes)
    first_day = grid.filter(pl.col("session_date") == date(2024, 1, 8))
    assert set(first_day["price_source"].drop_nulls().to_list()) == {"trade"}
    assert first_day["spread"].null_count() == first_day.height
    assert summary["sessions_without_quote_bars"] == [["X", "2024-01-08"]]
    windows, wsummary = price_windows(grid)
    assert set(windows["price_source"].unique().to_list()) == {"mid", "trade"}
    assert wsummary["X"]["by_source"]["trade"]["valid"] > 0


def test_price_grid_when_mid_asked_and_quote_bars_missing_names_symbol_and_date() -> None:
    bars, quotes = synthetic_bars(days=2, quote_days=(1,))
    with pytest.raises(TapecastError, match=r"price='mid': X 2024-01-08 has [\d,]+ trade bars"):
        price_grid(bars, quotes, PriceGridConfig(price="mid"))
    with pytest.raises(TapecastError, match="price='mid': X 2024-01-08"):
        price_grid(bars, None, PriceGridConfig(price="mid"))


def test_price_grid_when_timestamps_duplicated_or_unsorted_raises_with_count() -> None:
    bars, quotes = synthetic_bars(days=1)
    doubled = pl.concat([bars.head(3), bars.slice(2, 1), bars.slice(3)])
    with pytest.raises(TapecastError, match=r"bars: 1 timestamp.* of X duplicated, first on "
                                            r"2024-01-08"):
        price_grid(doubled, quotes)
    swapped = pl.concat([bars.slice(1, 1), bars.head(1), bars.slice(2)])
    with pytest.raises(TapecastError, match=r"1 timestamp.* of X earlier than the row before"):
        price_grid(swapped, quotes)


def test_price_grid_when_a_price_is_not_positive_raises_naming_row_and_field() -> None:
    bars, quotes = synthetic_bars(days=1)
    zeroed = bars.with_columns(pl.when(pl.int_range(pl.len()) == 5).then(0.0)
                               .otherwise(pl.col("close")).alias("close"))
    with pytest.raises(TapecastError, match=r"bars: 1 non-positive close value\(s\), first 0.0 "
                                            r"for X at row 5"):
        price_grid(zeroed, quotes)
    negative = quotes.with_columns(-pl.col("bid_close"))
    with pytest.raises(TapecastError, match=r"quote_bars: [\d,]+ non-positive bid_close"):
        price_grid(bars, negative)


def test_price_grid_when_a_day_has_no_regular_hours_data_raises() -> None:
    bars, _ = synthetic_bars(days=1)
    evening = bars.with_columns(pl.col("ts") + pl.duration(hours=-7)).filter(
        pl.col("ts").dt.convert_time_zone("America/New_York").dt.hour() < 9)
    with pytest.raises(TapecastError, match=r"X 2024-01-08: [\d,]+ bar\(s\), none inside the "
                                            "us-equity-rth session"):
        price_grid(evening, None)


def test_price_grid_when_bars_are_not_one_second_raises() -> None:
    bars, quotes = synthetic_bars(days=1)
    minute = bars.with_columns(pl.lit(60 * NS, dtype=pl.Duration("ns")).alias("bar_length"))
    with pytest.raises(TapecastError, match="not 1-second bars"):
        price_grid(minute, quotes)


def test_price_grid_features_are_causal_when_later_bars_change() -> None:
    bars, quotes = synthetic_bars(days=1, seed=11)
    cut = OPEN_NS + 3_000 * NS
    grid, _ = price_grid(bars, quotes)
    later = pl.col("ts").dt.epoch("ns") >= cut
    bars2 = bars.with_columns(pl.when(later).then(pl.col("close") * 1.01).otherwise("close")
                              .alias("close"), pl.when(later).then(pl.col("volume") * 7)
                              .otherwise("volume").alias("volume"))
    quotes2 = quotes.filter(~later | (pl.col("ts").dt.epoch("ns") % (3 * NS) == 0))
    grid2, _ = price_grid(bars2, quotes2)
    known = pl.col("ts").dt.epoch("ns") <= cut  # rows stamped by the cut used bars before it
    assert_frame_equal(grid.filter(known), grid2.filter(known))
    assert not grid.filter(~known).equals(grid2.filter(~known))
    config = PriceGridConfig()
    rows = np.arange(400, 3_000 - 1)
    ctx, _ = gather_windows(grid, rows, config)
    ctx2, _ = gather_windows(grid2, rows, config)
    np.testing.assert_array_equal(ctx, ctx2)


# --- windows ------------------------------------------------------------------------------------
def test_price_windows_mark_gap_session_edges_and_targets() -> None:
    bars, quotes = synthetic_bars(days=1)
    config = PriceGridConfig(max_gap_s=60)
    grid, _ = price_grid(bars, quotes, config)
    every, summary = price_windows(grid, config, valid_only=False)
    assert every.height == grid.height
    invalid = summary["X"]["invalid"]
    assert invalid["session_start"] == config.warmup_s
    assert invalid["session_end"] == config.horizon_s
    # the 90-second hole: staleness 61..90 at seconds 1861..1890 spoils the origins whose context
    # holds one of those rows (a stale horizon is not known at the origin and is kept)
    assert invalid["stale"] == (1_890 + config.context_s - 1) - 1_861 + 1
    first_stale = int(grid["staleness_s"].to_numpy().argmax()) - 29  # row of staleness 61
    horizon_only = every.filter((pl.col("row") >= first_stale - config.horizon_s)
                                & (pl.col("row") < first_stale))
    assert horizon_only["valid"].all()
    valid = every.filter(pl.col("valid"))
    price = grid["price"].to_numpy()
    rows = valid["row"].to_numpy()
    np.testing.assert_array_equal(valid["target"].to_numpy(),
                                  np.log(price[rows + 30] / price[rows]))
    assert 0 < summary["X"]["zero_return_share"] < 1


def test_price_windows_when_too_few_bars_raises_naming_the_day() -> None:
    bars, _ = synthetic_bars(days=1)
    few = bars.filter(pl.col("ts").dt.epoch("ns") < OPEN_NS + 200 * NS)
    grid, _ = price_grid(few, None, PriceGridConfig(max_gap_s=30))
    with pytest.raises(TapecastError, match=r"too few bars for one window \(X 2024-01-08: "
                                            r"[\d,]+ of 23,400 seconds with a bar\)"):
        price_windows(grid, PriceGridConfig(max_gap_s=30))


def test_gather_windows_shapes_and_last_column_is_the_origin_row() -> None:
    bars, quotes = synthetic_bars(days=1)
    config = PriceGridConfig(context_s=60, realized_spans=(5, 20))
    grid, _ = price_grid(bars, quotes, config)
    windows, _ = price_windows(grid, config)
    rows = windows["row"].to_numpy()[::500]
    arrays = PriceArrays.from_grid(grid, config)
    context, target = arrays.context(rows), arrays.target(rows)
    names = context_features(config)
    assert context.shape == (rows.size, len(names), 60) and target.shape == (rows.size, 30)
    at = grid[rows]
    np.testing.assert_array_equal(context[:, names.index("log_ret"), -1], at["log_ret"])
    np.testing.assert_array_equal(context[:, names.index("rv_20s"), -1], at["rv_20s"])
    np.testing.assert_array_equal(context[:, names.index("log1p_volume"), -1],
                                  np.log1p(at["volume"].to_numpy()))
    np.testing.assert_array_equal(context[:, names.index("log_ret"), 0],
                                  grid["log_ret"].to_numpy()[rows - 59])
    np.testing.assert_array_equal(target[:, -1], windows["target"].to_numpy()[::500])
    assert np.isfinite(context[:, names.index("log_ret")]).all()
    assert np.isfinite(target).all()


def test_realized_variance_is_the_sum_of_squared_returns() -> None:
    bars, quotes = synthetic_bars(days=1)
    config = PriceGridConfig(realized_spans=(10, 30))
    grid, _ = price_grid(bars, quotes, config)
    r = grid["log_ret"].to_numpy()
    for j in (500, 4_000, 20_000):
        assert grid["rv_30s"][j] == pytest.approx(float(np.sum(r[j - 29:j + 1] ** 2)), rel=1e-12)
    assert grid["rv_10s"][:10].null_count() == 10 and grid["rv_10s"][10] is not None


# --- real data ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lean_grid() -> tuple[pl.DataFrame, dict[str, object], pl.DataFrame, dict[str, object]]:
    bars, quotes = lean_bars()
    grid, summary = price_grid(bars, quotes)
    windows, wsummary = price_windows(grid)
    return grid, summary, windows, wsummary


def test_lean_second_bars_counts_and_quote_less_days(
        lean_grid: tuple[pl.DataFrame, dict, pl.DataFrame, dict]) -> None:  # type: ignore[type-arg]
    _, summary, _, _ = lean_grid
    assert sorted(summary["sessions_without_quote_bars"]) == [["AIG", "2013-10-04"],
                                                              ["SPY", "2014-06-05"]]
    aig, spy = summary["instruments"]["AIG"], summary["instruments"]["SPY"]
    assert aig["sessions"] == spy["sessions"] == 6 and aig["seconds"] == 6 * 23_400
    # measured: AIG trades in 23 % of regular-hours seconds, quotes in 84 % of its quoted days'
    assert 0.18 < aig["trade_bar_share"] < 0.28
    assert 0.80 < aig["quote_bar_seconds"] / (5 * 23_400) < 0.88
    assert spy["trade_bar_share"] > 0.65 and spy["quote_bar_seconds"] / (5 * 23_400) > 0.95
    assert aig["trade"] >= 23_399 and spy["trade"] == 23_400  # the quote-less days


def test_lean_second_bars_zero_return_shares(
        lean_grid: tuple[pl.DataFrame, dict, pl.DataFrame, dict]) -> None:  # type: ignore[type-arg]
    _, _, windows, wsummary = lean_grid
    spy_days = [d["zero_return_share"] for day, d in wsummary["SPY"]["by_session"].items()
                if day != "2014-06-05"]
    aig_days = [d["zero_return_share"] for day, d in wsummary["AIG"]["by_session"].items()
                if day != "2013-10-04"]
    # the issue: 11-23 % of SPY's and 19-33 % of AIG's 30-s mid returns are exactly zero
    assert 0.10 < min(spy_days) and max(spy_days) < 0.24
    assert 0.18 < min(aig_days) and max(aig_days) < 0.34
    assert windows.height > 270_000


def test_lean_second_bars_causal_when_later_bars_change() -> None:
    bars, quotes = lean_bars(("aig",), "20131008")
    cut = pl.datetime(2013, 10, 8, 17, 0, time_zone="UTC")  # 13:00 New York
    grid, _ = price_grid(bars, quotes)
    grid2, _ = price_grid(bars.filter(pl.col("ts") < cut), quotes.filter(pl.col("ts") < cut))
    known = pl.col("ts") <= cut
    assert_frame_equal(grid.filter(known), grid2.filter(known))


def test_price_arrays_when_rows_leave_the_grid_raises_instead_of_wrapping() -> None:
    bars, quotes = synthetic_bars(days=1)
    config = PriceGridConfig()
    grid, _ = price_grid(bars, quotes, config)
    arrays = PriceArrays.from_grid(grid, config)
    with pytest.raises(TapecastError, match="origin rows must lie in"):
        arrays.context(np.array([config.context_s - 2]))  # would wrap to the grid's end
    with pytest.raises(TapecastError, match="origin rows must lie in"):
        arrays.target(np.array([grid.height - 1]))
