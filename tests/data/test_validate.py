from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from tapecast.core.errors import InputError
from tapecast.data.schemas import TRADES
from tapecast.data.validate import finalize


def _trades(prices: list[float], sizes: list[float], seconds: list[int]) -> pl.DataFrame:
    ts = [datetime(2024, 1, 2, 15, 0, s, tzinfo=UTC) for s in seconds]
    return pl.DataFrame({"ts": ts, "instrument": "X", "price": prices, "size": sizes,
                         "side": [0] * len(ts), "_row": list(range(10, 10 + len(ts)))})


def test_finalize_when_valid_returns_canonical_schema_without_helper_columns() -> None:
    out = finalize(_trades([1.0, 2.0], [3.0, 4.0], [0, 1]), "trades", "t.csv", ordered_by="ts")
    assert out.schema == TRADES
    assert out["suspicious"].null_count() == 2


@pytest.mark.parametrize(
    ("prices", "sizes", "seconds", "match"),
    [
        ([1.0, 0.0], [1.0, 1.0], [0, 1], r"t\.csv, row 11, field 'price': expected a positive"),
        ([1.0, float("nan")], [1.0, 1.0], [0, 1], r"row 11, field 'price': expected a finite"),
        ([1.0, 1.0], [1.0, -2.0], [0, 1], r"row 11, field 'size': expected a positive"),
        ([1.0, 1.0], [1.0, 1.0], [5, 1], r"row 11, field 'ts': expected ts not decreasing"),
    ],
)
def test_finalize_when_bad_value_names_source_row_and_field(
    prices: list[float], sizes: list[float], seconds: list[int], match: str
) -> None:
    with pytest.raises(InputError, match=match):
        finalize(_trades(prices, sizes, seconds), "trades", "t.csv", ordered_by="ts")


def test_finalize_when_empty_raises_input_error() -> None:
    with pytest.raises(InputError, match="file is empty"):
        finalize(_trades([], [], []), "trades", "t.csv")


def test_finalize_when_event_is_clear_allows_null_price_but_not_zero_price_on_add() -> None:
    ts = datetime(2024, 1, 2, tzinfo=UTC)
    frame = pl.DataFrame({"ts_event": [ts, ts], "action": ["clear", "add"],
                          "side": ["none", "bid"], "price": [None, 0.0], "size": [0, 1]})
    frame = frame.with_columns(pl.col("action").cast(pl.Enum(["add", "cancel", "modify", "trade",
                                                              "fill", "clear"])))
    with pytest.raises(InputError, match=r"row 2, field 'price': expected a positive"):
        finalize(frame, "events", "e.csv")


def test_finalize_when_bar_high_below_low_names_row_and_field() -> None:
    ts = [datetime(2024, 1, 2, 15, m, tzinfo=UTC) for m in range(2)]
    bars = pl.DataFrame({"ts": ts, "open": [10.0, 100.0], "high": [11.0, 90.0],
                         "low": [9.0, 110.0], "close": [10.5, 100.0], "volume": [1.0, 1.0]})
    with pytest.raises(InputError, match=r"b\.csv, row 2, field 'high': expected a high >="):
        finalize(bars, "bars", "b.csv")


def test_finalize_when_bar_has_no_open_checks_the_rest() -> None:
    ts = [datetime(2024, 1, 2, 15, 0, tzinfo=UTC)]
    bars = pl.DataFrame({"ts": ts, "open": [None], "high": [11.0], "low": [9.0],
                         "close": [12.0]}, schema_overrides={"open": pl.Float64})
    with pytest.raises(InputError, match=r"row 1, field 'high'"):
        finalize(bars, "bars", "b.csv")


def test_finalize_when_unsorted_by_nanoseconds_shows_both_times_in_full() -> None:
    frame = pl.DataFrame({"ts": [5, 4], "price": [1.0, 1.0], "size": [1.0, 1.0]}).with_columns(
        pl.col("ts").cast(pl.Datetime("ns", "UTC")))
    with pytest.raises(InputError) as info:
        finalize(frame, "trades", "t.csv", ordered_by="ts")
    assert "the row before has 1970-01-01T00:00:00.000000005, got '1970-01-01T00:00:00." \
           "000000004'" in str(info.value)
