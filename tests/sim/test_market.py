"""Tests of the built-in synthetic market (tapecast.sim.market and its parts)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from tapecast.core.errors import TapecastError
from tapecast.data import sign_trades
from tapecast.data.schemas import QUOTES, TRADES
from tapecast.data.tables import Tables
from tapecast.evaluate.stylized import acf, excess_kurtosis, hill_tail_index
from tapecast.features.orderflow import OrderFlowConfig, orderflow_windows
from tapecast.sim import SyntheticMarketConfig, generate_market

SMALL = SyntheticMarketConfig(n_sessions=2, trades_per_session=20_000)
NY = "America/New_York"


@pytest.fixture(scope="module")
def small() -> Tables:
    return generate_market(SMALL, seed=3)


@pytest.fixture(scope="module")
def long_tape() -> Tables:
    """One session of ~200k trades with Lillo-Mike-Farmer's α = 1.5: the sign ACF at lag 100."""
    return generate_market(SyntheticMarketConfig(n_sessions=1, trades_per_session=200_000,
                                                 session_activity_sd=0.0, metaorder_alpha=1.5),
                           seed=11)


def test_generate_market_when_small_config_returns_canonical_tables(small: Tables) -> None:
    assert small.format == "synthetic"
    assert small.trades is not None and small.quotes is not None
    assert small.trades.schema == TRADES
    assert small.quotes.schema == QUOTES
    assert small.trades.height == small.quotes.height == small.counters["rows"]
    assert small.trades["ts"].is_sorted() and small.quotes["ts"].is_sorted()
    assert small.trades["ts"].n_unique() == small.trades.height
    assert set(small.trades["side"].unique().to_list()) == {-1, 1}
    assert small.trades["side_source"].cast(pl.String).unique().to_list() == ["synthetic"]
    assert not small.trades["suspicious"].any()


def test_generate_market_when_same_seed_then_identical_tables(small: Tables) -> None:
    again = generate_market(SMALL, seed=3)
    assert again.trades is not None and again.quotes is not None
    assert again.trades.equals(small.trades)
    assert again.quotes.equals(small.quotes)


def test_generate_market_when_other_seed_then_different_tape(small: Tables) -> None:
    other = generate_market(SMALL, seed=4)
    assert other.trades is not None and small.trades is not None
    n = min(other.trades.height, small.trades.height)
    assert not np.array_equal(other.trades["side"][:n].to_numpy(),
                              small.trades["side"][:n].to_numpy())


def test_generate_market_when_generated_then_all_inside_regular_hours(small: Tables) -> None:
    assert small.trades is not None
    local = small.trades["ts"].dt.convert_time_zone(NY)
    minutes = (local.dt.hour().cast(pl.Int64) * 60 + local.dt.minute().cast(pl.Int64)).to_numpy()
    assert minutes.min() >= 9 * 60 + 30 and minutes.max() < 16 * 60
    days = sorted(set(local.dt.date().to_list()))
    assert days == [dt.date(2024, 1, 8), dt.date(2024, 1, 9)]


def test_generate_market_when_generated_then_open_and_close_busier_than_midday(
        small: Tables) -> None:
    assert small.trades is not None
    local = small.trades["ts"].dt.convert_time_zone(NY)
    minute = (local.dt.hour().cast(pl.Int64) * 60 + local.dt.minute().cast(pl.Int64)
              - 570).to_numpy()
    per_half_hour = np.bincount(minute // 30, minlength=13)  # (13,) 09:30 ... 15:30
    midday = per_half_hour[5:8].mean()
    assert per_half_hour[0] > 1.5 * midday
    assert per_half_hour[12] > 1.5 * midday


def test_generate_market_when_generated_then_prices_on_tick_grid_and_at_touch(
        small: Tables) -> None:
    assert small.trades is not None and small.quotes is not None
    price = small.trades["price"].to_numpy()
    bid, ask = small.quotes["bid_px"].to_numpy(), small.quotes["ask_px"].to_numpy()
    for px in (price, bid, ask):
        assert np.max(np.abs(px / 0.01 - np.round(px / 0.01))) < 1e-6
    spread = np.round((ask - bid) / 0.01)
    assert set(np.unique(spread).tolist()) <= {1.0, 2.0}
    side = small.trades["side"].to_numpy()
    np.testing.assert_array_equal(price[side > 0], ask[side > 0])
    np.testing.assert_array_equal(price[side < 0], bid[side < 0])
    assert (small.quotes["ts"] < small.trades["ts"]).all()


def test_generate_market_when_signed_by_lee_ready_then_true_sides_recovered(
        small: Tables) -> None:
    assert small.trades is not None
    unsigned = small.trades.with_columns(pl.lit(0, dtype=pl.Int8).alias("side"),
                                         pl.lit(None, dtype=TRADES["side_source"])
                                         .alias("side_source"))
    signed = sign_trades(unsigned, small.quotes)
    assert (signed["side"] == small.trades["side"]).all()


def test_generate_market_when_long_tape_then_sign_acf_positive_and_slow(
        long_tape: Tables) -> None:
    assert long_tape.trades is not None
    rho = acf(long_tape.trades["side"].to_numpy().astype(np.float64), 100)  # (100,)
    assert rho[0] > rho[9] > rho[99] > 0.01
    # power law, not exponential: from lag 10 to 100 the ACF falls by far less than 100x
    assert rho[99] > rho[9] / 20


def test_generate_market_when_generated_then_sizes_heavy_tailed_round_lots(
        long_tape: Tables) -> None:
    assert long_tape.trades is not None
    size = long_tape.trades["size"].to_numpy()
    assert np.all(size % 100 == 0) and size.min() == 100
    assert 1.2 < hill_tail_index(size, 0.01) < 2.2


def test_generate_market_when_generated_then_returns_heavy_tailed(long_tape: Tables) -> None:
    assert long_tape.trades is not None
    ret = np.diff(np.log(long_tape.trades["price"].to_numpy()))  # (n - 1,) trade to trade
    assert excess_kurtosis(ret) > 1.0


def test_orderflow_windows_when_synthetic_tape_then_windows_for_every_session(
        small: Tables) -> None:
    assert small.trades is not None
    config = OrderFlowConfig(session="us-equity-rth", regular_hours_only=True)
    result = orderflow_windows(small.trades, config)
    per_session = result.summary["windows_per_session"]["SYN"]
    assert sorted(per_session) == ["2024-01-08", "2024-01-09"]
    assert all(count >= 10 for count in per_session.values())
    assert sum(result.summary["dropped_prints"].values()) == 0
    assert result.windows["n_unsigned"].sum() == 0
    assert result.summary["tick_sizes"]["SYN"] == pytest.approx(0.01)


@pytest.mark.parametrize(("changes", "field"), [
    ({"n_sessions": 0}, "n_sessions"),
    ({"trades_per_session": 10}, "trades_per_session"),
    ({"metaorder_alpha": -1.0}, "metaorder_alpha"),
    ({"noise_fraction": 1.5}, "noise_fraction"),
    ({"tick_size": float("nan")}, "tick_size"),
    ({"n_metaorders": 2.5}, "n_metaorders"),
    ({"instrument": ""}, "instrument"),
    ({"start_date": "2024-01-08"}, "start_date"),
    ({"no_such_field": 1}, "no_such_field"),
])
def test_replace_when_bad_value_then_one_line_error_naming_field(changes: dict[str, object],
                                                                field: str) -> None:
    with pytest.raises(TapecastError, match=field) as info:
        SyntheticMarketConfig().replace(**changes)
    assert "\n" not in str(info.value)


def test_replace_when_valid_change_then_new_config_and_original_untouched() -> None:
    base = SyntheticMarketConfig()
    changed = base.replace(n_sessions=2, trades_per_session=5_000)
    assert (changed.n_sessions, changed.trades_per_session) == (2, 5_000)
    assert base.n_sessions == 5
    assert changed.to_dict()["start_date"] == "2024-01-08"


def test_generate_market_when_negative_seed_then_error() -> None:
    with pytest.raises(TapecastError, match="seed"):
        generate_market(SMALL, seed=-1)


def test_generate_market_when_default_config_then_signs_persist(small: Tables) -> None:
    assert small.trades is not None
    rho = acf(small.trades["side"].to_numpy().astype(np.float64), 10)  # (10,)
    assert rho[0] > 0.5  # several prints per aggressive order
    assert rho[9] > 0.02  # metaorders


def test_generate_market_when_progress_shown_then_same_tables(small: Tables) -> None:
    shown = generate_market(SMALL, seed=3, progress=True)
    assert shown.trades is not None
    assert shown.trades.equals(small.trades)


def test_generate_market_when_price_would_reach_zero_then_error_names_start_price() -> None:
    config = SMALL.replace(start_price=0.05, overnight_gap_ticks=500.0)
    with pytest.raises(TapecastError, match="start_price"):
        generate_market(config, seed=0)
