"""Tests of the order-flow windows and channels (features/orderflow.py)."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from tests.conftest import shared_file

from tapecast.core.errors import TapecastError
from tapecast.data import read, sign_trades
from tapecast.data.schemas import TRADES
from tapecast.features.orderflow import (
    CHANNELS,
    WINDOWS_SCHEMA,
    OrderFlowConfig,
    infer_tick_size,
    orderflow_windows,
)

T0 = datetime(2024, 3, 11, 14, 0, tzinfo=UTC)  # a Monday, inside US regular hours


def make_trades(price: list[float], size: list[float], side: list[int],
                ts: list[datetime] | None = None, instrument: str | list[str] = "X",
                sale_condition: list[str | None] | None = None) -> pl.DataFrame:
    """A canonical trades table (one second apart from ``T0`` unless ``ts`` is given)."""
    n = len(price)
    return pl.DataFrame({
        "ts": ts if ts is not None else [T0 + timedelta(seconds=i) for i in range(n)],
        "instrument": instrument if isinstance(instrument, list) else [instrument] * n,
        "price": price, "size": size, "side": side,
        "side_source": ["exchange" if s else None for s in side], "exchange": [None] * n,
        "sale_condition": sale_condition if sale_condition is not None else [None] * n,
        "suspicious": [False] * n,
    }, schema=TRADES)


HAND = make_trades(price=[100.0, 101.0, 101.0, 100.0, 102.0, 102.0],
                   size=[1.0, 16.0, 81.0, 4.0, 1.0, 256.0], side=[1, -1, 0, 1, 1, -1])


def row(frame: pl.DataFrame, k: int) -> dict[str, object]:
    return frame.row(k, named=True)


def test_orderflow_windows_when_six_trades_window_three_then_hand_computed_channels() -> None:
    result = orderflow_windows(HAND, OrderFlowConfig(window_trades=3, tick_size=0.01))
    w0, w1 = row(result.windows, 0), row(result.windows, 1)
    r2 = math.sqrt(2)
    # window 0: signed trades (+1, v=1), (-1, v=16); v^a = 1, 16^a; the third trade is unsigned
    assert w0["imb_a0"] == 0.0
    for name, root in (("imb_a025", 2.0), ("imb_a05", 4.0), ("imb_a075", 8.0), ("imb_a1", 16.0)):
        assert w0[name] == pytest.approx((1 - root) / (1 + root), rel=1e-15)
    assert w0["log_ret"] == pytest.approx(math.log(101 / 100), rel=1e-15)  # own first price
    assert w0["log_realized_var"] == pytest.approx(math.log(math.log(1.01) ** 2), rel=1e-14)
    assert w0["log_tot_vol"] == pytest.approx(math.log(98.0), rel=1e-15)
    # window 1: (+1, 4), (+1, 1), (-1, 256)
    assert w1["imb_a0"] == pytest.approx(1 / 3, rel=1e-15)
    assert w1["imb_a025"] == pytest.approx((r2 + 1 - 4) / (r2 + 1 + 4), rel=1e-14)
    assert w1["imb_a05"] == pytest.approx(-13 / 19, rel=1e-15)
    assert w1["imb_a075"] == pytest.approx((2 * r2 + 1 - 64) / (2 * r2 + 65), rel=1e-14)
    assert w1["imb_a1"] == pytest.approx(-251 / 261, rel=1e-15)
    assert w1["log_ret"] == pytest.approx(math.log(102 / 101), rel=1e-14)  # previous window
    # returns inside the window only: 100 -> 102 -> 102 (the 101 -> 100 step lies between windows)
    assert w1["log_realized_var"] == pytest.approx(math.log(math.log(102 / 100) ** 2), rel=1e-14)
    assert w1["log_tot_vol"] == pytest.approx(math.log(261.0), rel=1e-15)


def test_orderflow_windows_when_six_trades_then_counts_prices_and_times() -> None:
    frame = orderflow_windows(HAND, OrderFlowConfig(window_trades=3, tick_size=0.01)).windows
    assert frame.schema == WINDOWS_SCHEMA
    assert frame["window"].to_list() == [0, 1]
    assert frame["n_trades"].to_list() == [3, 3]
    assert frame["n_unsigned"].to_list() == [1, 0]
    assert frame["n_signed"].to_list() == [2, 3]
    assert frame["first_price"].to_list() == [100.0, 100.0]
    assert frame["last_price"].to_list() == [101.0, 102.0]
    assert frame["window_start_ts"].to_list() == [T0, T0 + timedelta(seconds=3)]
    assert frame["window_end_ts"].to_list() == [T0 + timedelta(seconds=2),
                                                T0 + timedelta(seconds=5)]
    assert frame["session_date"].to_list() == [date(2024, 3, 11)] * 2
    assert frame["tick_size"].to_list() == [0.01, 0.01]


def test_orderflow_windows_when_no_price_change_then_realized_var_at_one_tick_floor() -> None:
    trades = make_trades([50.0] * 4, [1.0, 2.0, 3.0, 4.0], [1, 1, -1, 1])
    for tick in (0.01, 0.05):
        w = row(orderflow_windows(trades, OrderFlowConfig(window_trades=4, tick_size=tick))
                .windows, 0)
        assert w["log_realized_var"] == math.log(math.log1p(tick / 50.0) ** 2)
        assert w["log_ret"] == 0.0
    # a real move smaller than the floor is lifted to it; a larger one is kept
    tiny = make_trades([50.0, 50.001, 50.001], [1.0] * 3, [1] * 3)
    w = row(orderflow_windows(tiny, OrderFlowConfig(window_trades=3, tick_size=0.01)).windows, 0)
    assert w["log_realized_var"] == math.log(math.log1p(0.01 / 50.001) ** 2)


def test_orderflow_windows_when_no_signed_trade_then_imbalances_null() -> None:
    trades = make_trades([10.0, 10.1, 10.0], [5.0, 5.0, 5.0], [0, 0, 0])
    w = row(orderflow_windows(trades, OrderFlowConfig(window_trades=3, tick_size=0.1)).windows, 0)
    assert all(w[name] is None for name in CHANNELS[:5])
    assert w["n_unsigned"] == 3 and w["n_signed"] == 0
    assert w["log_tot_vol"] == pytest.approx(math.log(15.0))


def test_orderflow_windows_when_volume_windows_then_close_at_trade_reaching_volume() -> None:
    trades = make_trades([1.0] * 7, [3.0, 3.0, 5.0, 1.0, 1.0, 10.0, 2.0], [1] * 7)
    config = OrderFlowConfig(window_trades=None, window_volume=6.0, tick_size=0.01)
    result = orderflow_windows(trades, config)
    # 3+3 = 6 closes; 5+1 = 6 closes; 1+10 = 11 closes; the last trade (2) is a partial window
    assert result.windows["n_trades"].to_list() == [2, 2, 2]
    assert result.windows["log_tot_vol"].to_list() == [math.log(6.0), math.log(6.0),
                                                        math.log(11.0)]
    assert result.summary["dropped_partial_windows"] == {"X": 1}
    assert result.summary["partial_window_trades"] == {"X": 1}


def test_orderflow_windows_when_two_sessions_then_windows_never_span_and_partials_dropped() -> None:
    day1 = [datetime(2024, 3, 11, 23, 59, s, tzinfo=UTC) for s in range(5)]
    day2 = [datetime(2024, 3, 12, 0, 0, s, tzinfo=UTC) for s in range(4)]
    price = [10.0, 10.1, 10.2, 10.3, 10.4, 20.0, 20.2, 20.4, 20.6]
    trades = make_trades(price, [1.0] * 9, [1] * 9, ts=day1 + day2)
    result = orderflow_windows(trades, OrderFlowConfig(window_trades=2, tick_size=0.1))
    frame = result.windows
    assert frame["session_date"].to_list() == [date(2024, 3, 11)] * 2 + [date(2024, 3, 12)] * 2
    assert frame["window"].to_list() == [0, 1, 2, 3]  # consecutive across sessions
    assert frame["first_price"].to_list() == [10.0, 10.2, 20.0, 20.4]
    # first window of the second session: over its own first price, not the overnight move
    assert frame["log_ret"][2] == math.log(20.2 / 20.0)
    assert frame["log_ret"][3] == math.log(20.6 / 20.2)
    assert result.summary["dropped_partial_windows"] == {"X": 1}  # day 1's fifth trade
    assert result.summary["windows_per_session"] == {"X": {"2024-03-11": 2, "2024-03-12": 2}}


def test_orderflow_windows_when_trades_outside_session_then_dropped_and_counted() -> None:
    ts = [datetime(2024, 3, 11, 13, 29, tzinfo=UTC)] + [
        datetime(2024, 3, 11, 13, 30, s, tzinfo=UTC) for s in range(4)]
    trades = make_trades([10.0] * 5, [1.0] * 5, [1] * 5, ts=ts)
    result = orderflow_windows(trades, OrderFlowConfig(window_trades=2, session="us-equity-rth",
                                                       tick_size=0.01))
    assert result.windows.height == 2
    assert result.summary["dropped_prints"]["outside_session"] == 1


def test_orderflow_windows_when_min_trades_then_small_sessions_dropped() -> None:
    ts = ([datetime(2024, 3, 11, 12, 0, s, tzinfo=UTC) for s in range(6)]
          + [datetime(2024, 3, 12, 12, 0, s, tzinfo=UTC) for s in range(3)])
    trades = make_trades([10.0] * 9, [1.0] * 9, [1] * 9, ts=ts)
    result = orderflow_windows(trades, OrderFlowConfig(window_trades=3, min_trades=4,
                                                       tick_size=0.01))
    assert result.windows["session_date"].to_list() == [date(2024, 3, 11)] * 2
    assert result.summary["dropped_prints"]["small_session"] == 3


def test_orderflow_windows_when_lean_conditions_then_non_market_prints_skipped() -> None:
    trades = make_trades([10.0, 10.0, 9.0, 10.0], [1.0] * 4, [1] * 4,
                         sale_condition=["1", "1", "100000", "1"])
    result = orderflow_windows(trades, OrderFlowConfig(window_trades=3, tick_size=0.01))
    assert result.windows["n_trades"].to_list() == [3]
    assert result.windows["log_realized_var"][0] == math.log(math.log1p(0.01 / 10) ** 2)
    assert result.summary["dropped_prints"]["non_market_condition"] == 1


def test_orderflow_windows_when_interleaved_instruments_then_windows_per_instrument() -> None:
    names = ["B", "A", "B", "A", "B", "A", "A"]
    trades = make_trades([5.0, 1.0, 5.5, 1.5, 6.0, 2.0, 2.5], [1.0] * 7, [1] * 7,
                         instrument=names)
    result = orderflow_windows(trades, OrderFlowConfig(window_trades=2))
    frame = result.windows
    assert frame["instrument"].to_list() == ["A", "A", "B"]
    assert frame["window"].to_list() == [0, 1, 0]
    assert frame["first_price"].to_list() == [1.0, 2.0, 5.0]
    assert result.summary["tick_sizes"] == {"A": 0.5, "B": 0.5}
    assert result.summary["windows"] == {"A": 2, "B": 1}


def test_orderflow_windows_when_unsorted_within_instrument_then_tapecast_error() -> None:
    ts = [T0, T0 + timedelta(seconds=2), T0 + timedelta(seconds=1)]
    with pytest.raises(TapecastError, match=r"not sorted by ts within instrument 'X': row 2"):
        orderflow_windows(make_trades([1.0] * 3, [1.0] * 3, [1] * 3, ts=ts))
    # interleaved instruments, each sorted: fine; one going back in time: named
    mixed = make_trades([1.0] * 4, [1.0] * 4, [1] * 4, instrument=["A", "B", "A", "B"],
                        ts=[T0, T0 + timedelta(seconds=5), T0 + timedelta(seconds=1), T0])
    with pytest.raises(TapecastError, match=r"instrument 'B': row 3"):
        orderflow_windows(mixed)


def test_orderflow_windows_when_column_missing_then_tapecast_error() -> None:
    with pytest.raises(TapecastError, match=r"lacks column\(s\) \['side'\]"):
        orderflow_windows(HAND.drop("side"))


def test_orderflow_windows_when_empty_then_empty_frame_with_schema() -> None:
    result = orderflow_windows(HAND.head(0))
    assert result.windows.height == 0 and result.windows.schema == WINDOWS_SCHEMA


@pytest.mark.parametrize("fields, message", [
    ({"window_trades": None}, "exactly one"),
    ({"window_volume": 10.0}, "exactly one"),
    ({"window_trades": 0}, r"OrderFlowConfig\.window_trades: must be >= 1, got 0"),
    ({"window_trades": 2.5}, r"window_trades: must be an integer or None, got 2\.5"),
    ({"window_trades": None, "window_volume": -1.0}, r"window_volume: must be > 0"),
    ({"tick_size": 0.0}, r"tick_size: must be > 0"),
    ({"tick_size": float("inf")}, r"tick_size: must be a finite number"),
    ({"session": "lunar"}, r"session: must be one of 'calendar'"),
    ({"time_zone": "Nowhere/Town"}, r"time_zone: unknown time zone"),
    ({"condition_codes": "cta"}, r"condition_codes: must be one of"),
    ({"min_trades": -1}, r"min_trades: must be >= 0"),
])
def test_orderflow_config_when_invalid_then_tapecast_error(fields: dict[str, object],
                                                           message: str) -> None:
    with pytest.raises(TapecastError, match=message):
        OrderFlowConfig(**fields)  # type: ignore[arg-type]


def test_orderflow_config_when_round_tripped_through_json_then_equal() -> None:
    config = OrderFlowConfig(window_trades=None, window_volume=2500.0, session="cme-globex",
                             min_trades=10, tick_size=0.25)
    assert OrderFlowConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(TapecastError, match=r"OrderFlowConfig: unknown key 'window'"):
        OrderFlowConfig.from_dict({"window": 3})


def test_infer_tick_size_when_grids_then_tick() -> None:
    rng = np.random.default_rng(0)
    for tick, start in ((0.01, 167.41), (0.25, 4800.25), (0.5, 31.0), (1e-4, 1.2345)):
        prices = start + tick * np.cumsum(rng.integers(-2, 3, size=2000))
        assert infer_tick_size(prices) == tick
    # rare off-grid prints (1 %) do not shrink the tick
    prices = 100 + 0.01 * np.cumsum(rng.integers(-1, 2, size=5000))
    prices[::100] += 0.005
    assert infer_tick_size(prices) == 0.01
    assert infer_tick_size(np.array([100.5, 100.5, 100.5])) == 0.1  # no change: decimals
    assert infer_tick_size(np.array([7.0])) == 1.0


def test_infer_tick_size_when_es_mbo_trades_then_quarter_point() -> None:
    trades = read(shared_file("nautilus/databento/esh4-glbx-mdp3-20231225.mbo.dbn.zst")).trades
    assert infer_tick_size(trades["price"].to_numpy()) == 0.25


def test_orderflow_windows_when_spy_day_then_about_one_window_per_500_trades() -> None:
    trades = sign_trades(read(shared_file("lean/equity/usa/tick/spy/20131008_trade.zip")).trades)
    for session in ("us-equity-rth", "calendar"):
        result = orderflow_windows(trades, OrderFlowConfig(session=session))
        s = result.summary
        frame = result.windows
        kept = s["trades_in"] - sum(s["dropped_prints"].values())
        assert frame.height * 500 + s["partial_window_trades"]["SPY"] == kept
        assert 800 <= frame.height <= 910  # 451,545 prints, most in regular hours
        assert frame.select(pl.col(CHANNELS[:5]).abs().max()).row(0)[0] <= 1.0
        assert frame["log_realized_var"].is_finite().all()
        assert s["tick_sizes"] == {"SPY": 0.01}
        assert (frame["window_end_ts"] >= frame["window_start_ts"]).all()
        assert (frame["window_start_ts"].diff().drop_nulls() > timedelta(0)).all()


def test_orderflow_windows_when_non_canonical_dtypes_then_same_windows() -> None:
    config = OrderFlowConfig(window_trades=3, tick_size=0.01)
    loose = HAND.with_columns(pl.col("ts").dt.cast_time_unit("us").dt.replace_time_zone(None),
                              pl.col("size").cast(pl.Int64),
                              pl.Series("side", [1, -1, None, 1, 1, -1], dtype=pl.Int64))
    expected = orderflow_windows(HAND, config).windows
    assert_frame_equal(orderflow_windows(loose, config).windows, expected)
    with pytest.raises(TapecastError, match="'ts' must be a Datetime"):
        orderflow_windows(HAND.with_columns(pl.col("ts").dt.epoch("ns")), config)
