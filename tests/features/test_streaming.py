"""Parity of the streaming calculator with the batch pipeline (features/streaming.py)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from tests.conftest import shared_file
from tests.features.test_orderflow import make_trades

from tapecast.core.errors import TapecastError
from tapecast.data import read, sign_trades
from tapecast.features.filters import print_mask
from tapecast.features.orderflow import (
    CHANNELS,
    WINDOWS_SCHEMA,
    OrderFlowConfig,
    OrderFlowResult,
    orderflow_windows,
)
from tapecast.features.streaming import StreamingOrderFlow, WindowRow

DAY_NS = 86_400 * 10**9
START_NS = 1_710_115_200 * 10**9  # 2024-03-11 00:00 UTC, a Monday; DST began the day before


def synthetic_tape(n: int = 6000, seed: int = 7) -> pl.DataFrame:
    """Three and a half days of trades at all hours: runs of equal prices (windows without a
    price change), ~10 % unsigned trades, whole and fractional sizes."""
    rng = np.random.default_rng(seed)
    ts = START_NS + np.sort(rng.integers(0, 3 * DAY_NS + DAY_NS // 2, size=n))
    ticks = np.cumsum(rng.choice([-1, 0, 0, 0, 1], size=n))
    ticks[1000:1200] = ticks[1000]  # a long flat stretch: several windows with no change
    price = 100.0 + 0.01 * ticks
    size = np.where(rng.random(n) < 0.8, rng.integers(1, 500, size=n).astype(float),
                    rng.random(n) * 3.0 + 0.001)
    side = rng.choice([-1, 0, 1], p=[0.45, 0.1, 0.45], size=n)
    frame = make_trades(price.tolist(), size.tolist(), side.tolist(), ts=[0] * n)  # type: ignore[list-item]
    return frame.with_columns(pl.Series("ts", ts).cast(pl.Datetime("ns", "UTC")))


def stream(trades: pl.DataFrame, config: OrderFlowConfig, tick: float) -> tuple[
        pl.DataFrame, StreamingOrderFlow]:
    """Feed the trades the batch filters keep, one at a time; the rows as a windows table."""
    keep, _ = print_mask(trades, drop_suspicious=config.drop_suspicious,
                         condition_codes=config.condition_codes)
    kept = trades.filter(pl.Series(keep))
    flow = StreamingOrderFlow(config, kept["instrument"][0], tick_size=tick)
    rows: list[WindowRow] = []
    for ts, price, size, side in zip(kept["ts"].to_physical(), kept["price"], kept["size"],
                                     kept["side"], strict=True):
        rows.extend(flow.update(ts, price, size, side))
    data = [r.as_dict() for r in rows]
    frame = pl.DataFrame(data, schema={**WINDOWS_SCHEMA, "window_start_ts": pl.Int64,
                                       "window_end_ts": pl.Int64}, orient="row")
    frame = frame.with_columns(pl.col("window_start_ts", "window_end_ts")
                               .cast(pl.Datetime("ns", "UTC")))
    return frame, flow


def assert_parity(batch: OrderFlowResult, trades: pl.DataFrame) -> StreamingOrderFlow:
    tick = batch.summary["tick_sizes"][trades["instrument"][0]]
    streamed, flow = stream(trades, batch.config, tick)
    assert batch.windows.height > 0
    assert_frame_equal(streamed, batch.windows, check_exact=True)  # every channel, bit for bit
    return flow


@pytest.mark.parametrize("config", [
    OrderFlowConfig(window_trades=37),
    OrderFlowConfig(window_trades=50, session="us-equity-rth"),
    OrderFlowConfig(window_trades=25, session="cme-globex"),
    OrderFlowConfig(window_trades=40, session="calendar", time_zone="Asia/Tokyo"),
    OrderFlowConfig(window_trades=None, window_volume=4000.0, tick_size=0.01),
    OrderFlowConfig(window_trades=30, regular_hours_only=True, tick_size=0.005),
])
def test_streaming_when_synthetic_tape_then_every_channel_equals_batch(
        config: OrderFlowConfig) -> None:
    trades = synthetic_tape()
    batch = orderflow_windows(trades, config)
    flow = assert_parity(batch, trades)
    flow.end_session()
    assert flow.dropped_partial_windows == batch.summary["dropped_partial_windows"]["X"]
    assert flow.partial_window_trades == batch.summary["partial_window_trades"]["X"]
    dropped = batch.summary["dropped_prints"]
    assert flow.dropped_prints["outside_session"] == dropped["outside_session"]
    assert flow.dropped_prints["outside_regular_hours"] == dropped.get("outside_regular_hours", 0)


def test_streaming_when_synthetic_tape_then_covers_the_edge_cases() -> None:
    """The parity tape has what it is meant to have (so the parity test can fail)."""
    windows = orderflow_windows(synthetic_tape(), OrderFlowConfig(window_trades=37)).windows
    floor = np.log(np.log1p(0.01 / windows["last_price"].to_numpy()) ** 2)
    assert (windows["log_realized_var"].to_numpy() == floor).sum() >= 3  # flat windows
    assert (windows["n_unsigned"] > 0).mean() > 0.9
    assert windows["session_date"].n_unique() == 4


def test_streaming_when_spy_slice_tick_rule_signed_then_equals_batch() -> None:
    trades = read(shared_file("lean/equity/usa/tick/spy/20131009_trade.zip")).trades
    trades = sign_trades(trades.slice(150_000, 40_000))
    for config in (OrderFlowConfig(session="us-equity-rth"),
                   OrderFlowConfig(window_trades=None, window_volume=100_000.0)):
        batch = orderflow_windows(trades, config)
        assert batch.windows.height >= 70
        assert batch.summary["dropped_prints"]["non_market_condition"] > 0
        assert_parity(batch, trades)


def test_streaming_when_imbalances_undefined_then_none_like_batch_nulls() -> None:
    trades = make_trades([10.0, 10.1, 10.0, 10.0], [5.0] * 4, [0, 0, 0, 1])
    flow = StreamingOrderFlow(OrderFlowConfig(window_trades=2), "X", tick_size=0.1)
    rows = [r for t, p, s, e in zip(trades["ts"].to_physical(), trades["price"], trades["size"],
                                    trades["side"], strict=True) for r in flow.update(t, p, s, e)]
    assert rows[0].channels[:5] == (None,) * 5
    assert rows[1].channels[:5] == (1.0,) * 5
    assert list(rows[1].as_dict())[-8:] == list(CHANNELS)


def test_streaming_when_end_session_then_partial_window_dropped_and_counted() -> None:
    flow = StreamingOrderFlow(OrderFlowConfig(window_trades=3), "X", tick_size=0.01)
    t = START_NS + 3600 * 10**9
    assert flow.update(t, 10.0, 1.0, 1) == [] and flow.update(t + 1, 10.0, 1.0, 1) == []
    flow.end_session()
    assert flow.dropped_partial_windows == 1 and flow.partial_window_trades == 2
    rows = [r for k in range(3) for r in flow.update(t + 10 + k, 11.0, 1.0, -1)]
    assert len(rows) == 1 and rows[0].window == 0 and rows[0].first_price == 11.0


def test_streaming_when_no_tick_or_min_trades_then_tapecast_error() -> None:
    with pytest.raises(TapecastError, match="tick size"):
        StreamingOrderFlow(OrderFlowConfig())
    with pytest.raises(TapecastError, match="min_trades"):
        StreamingOrderFlow(OrderFlowConfig(min_trades=5), tick_size=0.01)
