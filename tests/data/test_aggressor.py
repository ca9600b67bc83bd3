"""Tests of trade signing (tapecast.data.aggressor) on hand-made frames with known answers."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from tapecast.data.aggressor import sign_trades, tick_rule
from tapecast.data.schemas import QUOTES, TRADES

T0 = 1_700_000_000_000_000_000


def _frame(schema: pl.Schema, rows: list[dict[str, Any]]) -> pl.DataFrame:
    frame = pl.DataFrame(rows)
    return frame.select(
        [(pl.col(c).cast(pl.Int64).cast(t) if c == "ts" else pl.col(c).cast(t))
         if c in frame.columns else pl.lit(None, dtype=t).alias(c) for c, t in schema.items()]
    )


def trades(prices: list[float], sides: list[int] | None = None, ts: list[int] | None = None,
           instrument: list[str] | None = None) -> pl.DataFrame:
    n = len(prices)
    rows = [{"ts": T0 + (ts[i] if ts else i * 1000), "instrument": (instrument or ["X"] * n)[i],
             "price": prices[i], "size": 1.0, "side": (sides or [0] * n)[i]} for i in range(n)]
    return _frame(TRADES, rows)


def quotes(rows: list[tuple[int, float, float]]) -> pl.DataFrame:
    return _frame(QUOTES, [{"ts": T0 + t, "instrument": "X", "bid_px": b, "ask_px": a,
                            "bid_sz": 1.0, "ask_sz": 1.0} for t, b, a in rows])


def test_tick_rule_when_zero_ticks_repeats_last_nonzero_sign_first_is_zero() -> None:
    frame = pl.DataFrame({"price": [10.0, 10.0, 10.5, 10.5, 10.25, 10.25, 10.5],
                          "instrument": ["X"] * 7})
    signs = frame.select(tick_rule(pl.col("price")).alias("s"))["s"].to_list()
    assert signs == [0, 0, 1, 1, -1, -1, 1]


def test_tick_rule_when_two_instruments_ticks_do_not_cross_between_them() -> None:
    frame = pl.DataFrame({"price": [10.0, 50.0, 11.0, 49.0], "instrument": ["A", "B", "A", "B"]})
    assert frame.select(tick_rule(pl.col("price")).alias("s"))["s"].to_list() == [0, 0, 1, -1]


def test_sign_trades_when_venue_side_known_keeps_it_as_exchange() -> None:
    out = sign_trades(trades([10.0, 9.0], sides=[1, -1]))
    assert out["side"].to_list() == [1, -1]
    assert out["side_source"].cast(pl.String).to_list() == ["exchange", "exchange"]
    assert out.columns == list(TRADES)


def test_sign_trades_when_no_quotes_uses_tick_rule_and_leaves_first_unsigned() -> None:
    out = sign_trades(trades([10.0, 10.5, 10.5, 10.0]))
    assert out["side"].to_list() == [0, 1, 1, -1]
    assert out["side_source"].cast(pl.String).to_list() == [None, "tick_rule", "tick_rule",
                                                            "tick_rule"]


def test_sign_trades_when_quotes_given_lee_ready_against_midpoint() -> None:
    q = quotes([(0, 10.0, 11.0)])
    out = sign_trades(trades([10.75, 10.25, 10.5, 10.5], ts=[10, 20, 30, 40]), q)
    # above mid: buy; below: sell; at mid: tick rule (down-tick from 10.25? no: 10.25 -> 10.5 up)
    assert out["side"].to_list() == [1, -1, 1, 1]
    assert out["side_source"].cast(pl.String).to_list() == ["lee_ready", "lee_ready",
                                                            "lee_ready", "lee_ready"]


def test_sign_trades_when_at_mid_and_no_tick_falls_back_unsigned() -> None:
    out = sign_trades(trades([10.5], ts=[10]), quotes([(0, 10.0, 11.0)]))
    assert out["side"].to_list() == [0]
    assert out["side_source"].to_list() == [None]


@pytest.mark.parametrize(("rule", "expected"), [("exclude", 1), ("include", -1)])
def test_sign_trades_when_quote_shares_trade_timestamp_tie_rule_decides(
    rule: str, expected: int
) -> None:
    # a buy takes the whole ask at 11.0; the quote stamped with the trade shows the book after
    # it (ask 11.5), whose midpoint 11.125 lies above the trade price
    q = quotes([(0, 10.0, 11.0), (50, 10.75, 11.5)])
    out = sign_trades(trades([11.0], ts=[50]), q, same_timestamp_quotes=rule)  # type: ignore[arg-type]
    assert out["side"].to_list() == [expected]


def test_sign_trades_when_quote_crossed_or_absent_uses_tick_rule() -> None:
    q = quotes([(15, 11.0, 10.0)])  # crossed: unusable
    out = sign_trades(trades([10.0, 10.25], ts=[10, 20]), q)
    assert out["side"].to_list() == [0, 1]
    assert out["side_source"].cast(pl.String).to_list() == [None, "tick_rule"]


def test_sign_trades_when_rows_unsorted_by_instrument_keeps_input_order() -> None:
    tr = trades([10.75, 50.0, 10.25], ts=[10, 10, 20], instrument=["X", "Y", "X"])
    q = quotes([(0, 10.0, 11.0)])
    out = sign_trades(tr, q)
    assert out["instrument"].to_list() == ["X", "Y", "X"]
    assert out["side"].to_list() == [1, 0, -1]


@pytest.mark.slow
def test_sign_trades_when_es_book_quotes_lee_ready_agrees_with_venue_on_every_trade() -> None:
    from tapecast.data import read
    from tapecast.data.book import replay_tables, top_of_book
    from tests.conftest import shared_file

    tables = read(shared_file("nautilus/databento/esh4-glbx-mdp3-20231225.mbo.dbn.zst"))
    assert tables.trades is not None
    venue = tables.trades
    quotes_es = top_of_book(replay_tables(tables, 1).levels)
    signed = sign_trades(venue.with_columns(side=pl.lit(0, pl.Int8), side_source=None),
                         quotes_es)
    both = pl.DataFrame({"venue": venue["side"], "ours": signed["side"]}).filter(
        pl.col("venue") != 0)
    assert both.height > 2900
    assert (both["venue"] == both["ours"]).all()
    ticks = venue.select(tick_rule(pl.col("price")).alias("t"), "side").filter(
        pl.col("side") != 0)
    agree = (ticks["t"] == ticks["side"]).mean()
    assert agree is not None and 0.5 < float(agree) < 1.0  # the tick rule is a weaker guess
