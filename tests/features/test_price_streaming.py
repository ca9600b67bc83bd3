"""Streaming == batch for the price grid (features/price_streaming.py), bit for bit."""

from __future__ import annotations

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from tests.features.test_price import NS, OPEN_NS, lean_bars, synthetic_bars

from tapecast.core.errors import TapecastError
from tapecast.features.price import PriceGridConfig, grid_schema, price_grid
from tapecast.features.price_streaming import GridRow, StreamingPriceGrid


def stream(bars: pl.DataFrame, quotes: pl.DataFrame | None, config: PriceGridConfig,
           instrument: str) -> pl.DataFrame:
    """Feed one instrument's bars and quote bars in time order; the rows as a grid table."""
    grid = StreamingPriceGrid(config, instrument)
    events = [(ts, 0, row) for ts, row in zip(
        bars["ts"].dt.epoch("ns"), bars.select("close", "volume").rows(), strict=True)]
    if quotes is not None:
        events += [(ts, 1, row) for ts, row in zip(
            quotes["ts"].dt.epoch("ns"),
            quotes.select("bid_close", "bid_size", "ask_close", "ask_size").rows(), strict=True)]
    events.sort(key=lambda e: (e[0], e[1]))
    rows: list[GridRow] = []
    for ts, kind, values in events:
        rows += grid.update_bar(ts, *values) if kind == 0 else grid.update_quote_bar(ts, *values)
    rows += grid.finish()
    return as_frame(rows, config)


def as_frame(rows: list[GridRow], config: PriceGridConfig) -> pl.DataFrame:
    schema = grid_schema(config)
    frame = pl.DataFrame([r.as_dict(config) for r in rows],
                         schema={**schema, "ts": pl.Int64(), "price_source": pl.String()},
                         orient="row")
    return frame.with_columns(pl.col("ts").cast(schema["ts"]),
                              pl.col("price_source").cast(schema["price_source"]))


@pytest.mark.parametrize("price", ["auto", "trade"])
def test_streaming_equals_batch_on_synthetic_bars(price: str) -> None:
    bars, quotes = synthetic_bars(days=3, quote_days=(0, 2))
    config = PriceGridConfig(price=price, realized_spans=(3, 10, 60))  # type: ignore[arg-type]
    grid, _ = price_grid(bars, quotes, config)
    assert_frame_equal(stream(bars, quotes, config, "X"), grid, check_exact=True)


def test_streaming_equals_batch_on_extended_hours() -> None:
    bars, quotes = synthetic_bars(days=1)
    config = PriceGridConfig(session="us-equity-extended")
    grid, _ = price_grid(bars, quotes, config)
    assert_frame_equal(stream(bars, quotes, config, "X"), grid, check_exact=True)


@pytest.mark.parametrize("symbol", ["spy", "aig"])
def test_streaming_equals_batch_on_lean_second_bars(symbol: str) -> None:
    bars, quotes = lean_bars((symbol,), "2013100[47]")  # AIG 10-04 has no quote bars
    config = PriceGridConfig()
    grid, _ = price_grid(bars, quotes, config)
    assert_frame_equal(stream(bars, quotes, config, symbol.upper()), grid, check_exact=True)


def test_streaming_emits_a_row_only_after_its_second_ends() -> None:
    grid = StreamingPriceGrid(PriceGridConfig(), "X")
    assert grid.update_bar(OPEN_NS, 100.0, 10.0) == []  # row 0 waits for the second to end
    rows = grid.advance(OPEN_NS + NS)
    assert [r.ts for r in rows] == [OPEN_NS + NS] and rows[0].price == 100.0
    rows = grid.update_bar(OPEN_NS + 5 * NS, 100.5, 10.0)
    assert [r.staleness_s for r in rows] == [1, 2, 3, 4]
    with pytest.raises(TapecastError, match="already emitted"):
        grid.update_quote_bar(OPEN_NS + 2 * NS, 99.0, 1.0, 101.0, 1.0)
    with pytest.raises(TapecastError, match="bars: X on 2024-01-08: a timestamp duplicated"):
        grid.update_bar(OPEN_NS + 5 * NS, 100.5, 10.0)
    assert len(grid.finish()) == 23_400 - 5


def test_streaming_when_mid_asked_and_session_has_no_quote_bars_raises() -> None:
    grid = StreamingPriceGrid(PriceGridConfig(price="mid"), "X")
    grid.update_bar(OPEN_NS, 100.0, 10.0)
    with pytest.raises(TapecastError, match="price='mid': X 2024-01-08 has trade bars but no "
                                            "quote bars"):
        grid.finish()


def test_streaming_when_a_late_bar_belongs_to_a_closed_session_raises() -> None:
    grid = StreamingPriceGrid(PriceGridConfig(), "X")
    grid.update_bar(OPEN_NS, 100.0, 10.0)
    assert len(grid.advance(OPEN_NS + 24 * 3600 * NS)) == 23_400  # the session closed
    with pytest.raises(TapecastError, match="a session already closed"):
        grid.update_quote_bar(OPEN_NS + 23_399 * NS, 99.0, 1.0, 101.0, 1.0)


def test_streaming_when_a_price_is_not_positive_raises_as_the_batch_grid() -> None:
    grid = StreamingPriceGrid(PriceGridConfig(), "X")
    with pytest.raises(TapecastError, match=r"bars: X on 2024-01-08: non-positive close 0.0"):
        grid.update_bar(OPEN_NS, 0.0, 10.0)
    with pytest.raises(TapecastError, match=r"non-positive ask_close -1\.0"):
        grid.update_quote_bar(OPEN_NS, 99.0, 1.0, -1.0, 1.0)
