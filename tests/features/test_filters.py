"""Tests of the print filters (features/filters.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest
from tests.conftest import shared_file

from tapecast.core.errors import TapecastError
from tapecast.data import read
from tapecast.data.schemas import TRADES
from tapecast.features.filters import (
    LEAN_TRADE_FLAGS,
    NON_MARKET_MASK,
    _decode_unique,
    condition_distance_table,
    decode_lean_conditions,
    filter_prints,
    lean_flags,
    print_mask,
    small_session_mask,
)


def trades_with(conditions: list[str | None], suspicious: list[bool | None] | None = None,
                hours: list[int] | None = None) -> pl.DataFrame:
    """A trades table, one print per condition, on 2024-03-11 at the given UTC hours."""
    n = len(conditions)
    hours = hours if hours is not None else [15] * n
    return pl.DataFrame({
        "ts": [datetime(2024, 3, 11, h, 0, i, tzinfo=UTC) for i, h in enumerate(hours)],
        "instrument": ["SPY"] * n, "price": [100.0] * n, "size": [100.0] * n, "side": [1] * n,
        "side_source": [None] * n, "exchange": ["P"] * n, "sale_condition": conditions,
        "suspicious": suspicious if suspicious is not None else [False] * n,
    }, schema=TRADES)


def test_decode_lean_conditions_when_hex_then_qc_flag_bits() -> None:
    values = pl.Series(["1", "20000020", None, "100000", "4800", "fFfFfFfF"])
    flags, non_market, first_invalid = decode_lean_conditions(values)
    assert first_invalid == -1
    assert flags.tolist() == [1, (1 << 29) | (1 << 5), 0, 1 << LEAN_TRADE_FLAGS["AveragePrice"],
                              (1 << 14) | (1 << 11), 0xFFFFFFFF]
    assert non_market.tolist() == [False, False, False, True, True, True]


def test_decode_lean_conditions_when_not_hex_then_first_invalid_index() -> None:
    for values, bad in ((["1", "visible", "2"], 1), (["1", "20", "123456789"], 2),
                        (["a", "abcdefabcdefabcdef"], 1), (["", "1"], 0)):
        assert decode_lean_conditions(pl.Series(values))[2] == bad


def test_decode_lean_conditions_when_sliced_series_then_offset_respected() -> None:
    values = pl.Series(["zz", "1", "20", None, "2000"]).slice(1, 4)
    flags, _, first_invalid = decode_lean_conditions(values)
    assert first_invalid == -1 and flags.tolist() == [1, 0x20, 0, 0x2000]


def test_decode_lean_conditions_when_many_distinct_codes_then_same_as_unique_path() -> None:
    rng = np.random.default_rng(3)
    codes = [f"{v:x}" for v in rng.integers(0, 2**32, size=600)]  # > cache slots: collisions
    values = pl.Series([codes[k] for k in rng.integers(0, 600, size=20_000)])
    flags, hit, first_invalid = decode_lean_conditions(values, mask=0xF0)
    reference, _ = _decode_unique(values)
    assert first_invalid == -1
    np.testing.assert_array_equal(flags, reference)
    np.testing.assert_array_equal(flags, [int(c, 16) for c in values.to_list()])
    np.testing.assert_array_equal(hit, (reference & 0xF0) != 0)


def test_lean_flags_when_invalid_value_then_error_names_row() -> None:
    assert lean_flags(pl.Series(["1", None])).to_list() == [1, None]
    with pytest.raises(TapecastError, match="row 1, field 'sale_condition'"):
        lean_flags(pl.Series(["1", "hidden"]))


def test_print_mask_when_lean_codes_then_non_market_prints_dropped() -> None:
    trades = trades_with(["1", "20000020", "100000", "20100200", "2000", "4800", "1000000",
                          "20000040", None])
    keep, dropped = print_mask(trades)
    # regular, ISO+TTE, extended hours, opening prints and a null condition are market prints
    assert keep.tolist() == [True, True, False, False, True, False, False, True, True]
    assert dropped == {"suspicious": 0, "non_market_condition": 4}


def test_print_mask_when_suspicious_and_non_market_then_counted_once_under_suspicious() -> None:
    trades = trades_with(["100000", "100000", "1"], suspicious=[True, False, True])
    keep, dropped = print_mask(trades)
    assert keep.tolist() == [False, False, False]
    assert dropped == {"suspicious": 2, "non_market_condition": 1}
    kept = filter_prints(trades, drop_suspicious=False)
    assert kept.trades.height == 1 and kept.dropped["non_market_condition"] == 2


def test_print_mask_when_other_condition_encoding_then_no_condition_filter() -> None:
    trades = trades_with(["hidden", "visible", "100000"])
    keep, dropped = print_mask(trades)
    assert keep.all() and dropped["non_market_condition"] == 0
    with pytest.raises(TapecastError, match="LEAN hex"):
        print_mask(trades, condition_codes="lean")
    assert not print_mask(trades_with(["100000"]), condition_codes="lean")[0].any()
    assert print_mask(trades_with(["100000"]), condition_codes="none")[0].all()


def test_print_mask_when_regular_hours_only_then_outside_prints_counted() -> None:
    # 2024-03-11 is EDT: regular hours are 13:30-20:00 UTC
    trades = trades_with(["1"] * 4, hours=[13, 14, 19, 20])
    keep, dropped = print_mask(trades, regular_hours_only=True)
    assert keep.tolist() == [False, True, True, False]
    assert dropped["outside_regular_hours"] == 2


def test_small_session_mask_when_min_trades_then_small_groups_flagged() -> None:
    group = np.array([0, 0, 0, -1, 1, 1, 2, 2, 2, 2], dtype=np.int64)
    assert small_session_mask(group, 3).tolist() == [False] * 4 + [True, True] + [False] * 4
    assert not small_session_mask(group, 0).any()


def test_non_market_mask_when_built_then_holds_the_documented_flags() -> None:
    for name in ("AveragePrice", "DerivativelyPriced", "OutOfSequence", "PriorReferencePrice",
                 "Sold", "Cash", "NextDay", "Seller", "StockOption", "OfficialClose",
                 "OfficialOpen", "PriceVariation"):
        assert NON_MARKET_MASK & (1 << LEAN_TRADE_FLAGS[name])
    for name in ("Regular", "IntermarketSweep", "TradeThroughExempt", "ExtendedHours",
                 "OpeningPrints", "ClosingPrints", "Cross", "OddLot"):
        assert not NON_MARKET_MASK & (1 << LEAN_TRADE_FLAGS[name])


def test_condition_distance_table_when_spy_day_then_average_price_far_from_market() -> None:
    trades = read(shared_file("lean/equity/usa/tick/spy/20131010_trade.zip")).trades
    table = condition_distance_table(trades)
    rows = {row["flag"]: row for row in table.iter_rows(named=True)}
    assert rows["Regular"]["prints"] > 100_000
    assert rows["AveragePrice"]["non_market"] and not rows["Regular"]["non_market"]
    assert rows["AveragePrice"]["max_bp"] > 100  # the 165.59 prints ~2 % below the market
    assert rows["AveragePrice"]["share_over_10bp"] > 100 * rows["Regular"]["share_over_10bp"]


def test_print_mask_when_spy_day_then_suspicious_and_non_market_counted() -> None:
    trades = read(shared_file("lean/equity/usa/tick/spy/20131010_trade.zip")).trades
    keep, dropped = print_mask(trades)
    assert dropped["suspicious"] == int(trades["suspicious"].sum()) > 0
    assert 0 < dropped["non_market_condition"] < 0.01 * trades.height
    assert int(np.count_nonzero(~keep)) == sum(dropped.values())
