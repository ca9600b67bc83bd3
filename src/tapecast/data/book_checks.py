"""Checks of a replayed book: invariants that must hold, and agreement with a vendor's MBP-10.

All functions are vectorized over the ``events`` table and the replay's ``levels`` (one row per
event, aligned by position) and return frames or counts, so tests and reports share them.

Invariants (checked on Databento's ESH4 MBO day, see ``docs/book.md``):

* :func:`negative_sizes` - no level ever holds a negative (or zero) size;
* :func:`crossed_at_packet_ends` - best bid >= best ask at the end of a venue packet (F_LAST);
* :func:`trades_inside_touch` - an aggressor trade must be at or through the touch as it stood
  before its packet (a buy at or above the best ask, a sell at or below the best bid).

Reference check: :func:`compare_mbp10` joins the replay to an MBP-10 file (Databento's layout,
``bid_px_00`` .. ``ask_ct_09``) on the event's identity and compares the ten levels.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from tapecast.data.book_core import F_LAST

_ACTION_CODE = {"add": "A", "cancel": "C", "modify": "M", "trade": "T", "fill": "F", "clear": "R"}
_SIDE_CODE = {"bid": "B", "ask": "A", "none": "N"}


def _n_levels(levels: pl.DataFrame) -> int:
    return sum(1 for c in levels.columns if c.startswith("ask_px_"))


def _packet_end(events: pl.DataFrame) -> pl.Series:
    """True where an event ends its packet (F_LAST; every event when the source has no flags)."""
    return ((events["flags"].fill_null(F_LAST).cast(pl.Int64) & F_LAST) != 0).alias("packet_end")


def negative_sizes(levels: pl.DataFrame) -> int:
    """Number of (row, level, side) cells whose size is <= 0 (a valid book has none)."""
    size_cols = [c for c in levels.columns if "_sz_" in c]
    return int(levels.select(pl.sum_horizontal([(pl.col(c) <= 0).fill_null(False)
                                                for c in size_cols]).sum()).item())


def crossed_at_packet_ends(
    events: pl.DataFrame, levels: pl.DataFrame, *, include_locked: bool = True
) -> pl.DataFrame:
    """Rows where the book is crossed (or locked) at the end of a packet.

    Returns
    -------
    pl.DataFrame
        Columns ``row`` (1-based event row), ``ts``, ``bid_px_1``, ``ask_px_1``; one row per
        packet end where best bid > best ask (>= with ``include_locked``).
    """
    bad = (pl.col("bid_px_1") >= pl.col("ask_px_1")) if include_locked else (
        pl.col("bid_px_1") > pl.col("ask_px_1"))
    return (
        levels.select("ts", "bid_px_1", "ask_px_1")
        .with_columns(_packet_end(events), pl.int_range(1, pl.len() + 1).alias("row"))
        .filter(pl.col("packet_end") & bad.fill_null(False))
        .select("row", "ts", "bid_px_1", "ask_px_1")
    )


def touch_before_packet(events: pl.DataFrame, levels: pl.DataFrame) -> pl.DataFrame:
    """The best bid and ask as they stood at the end of the packet before each event's packet.

    Returns
    -------
    pl.DataFrame
        ``events.height`` rows: ``bid_before``, ``ask_before`` (null before the first packet end).
    """
    ends = _packet_end(events)
    # the last packet end strictly before row i closes the previous packet
    prev_end = (
        pl.DataFrame({"end": ends})
        .select(pl.when(pl.col("end")).then(pl.int_range(pl.len())).shift(1)
                .forward_fill().alias("prev"))["prev"]
    )
    top = levels.select("bid_px_1", "ask_px_1")
    return pl.DataFrame({
        "bid_before": top["bid_px_1"].gather(prev_end.fill_null(0)),
        "ask_before": top["ask_px_1"].gather(prev_end.fill_null(0)),
    }).with_columns(
        pl.when(prev_end.is_not_null()).then(pl.col(c)).alias(c)
        for c in ("bid_before", "ask_before")
    )


def trades_inside_touch(events: pl.DataFrame, levels: pl.DataFrame) -> pl.DataFrame:
    """Aggressor trades priced inside the touch that stood before their packet (violations).

    A ``trade`` with side ``bid`` (buyer-initiated) must print at or above the best ask before
    its packet, one with side ``ask`` at or below the best bid. Trades with side ``none``
    (auction uncrosses) and trades against an empty side are not judged.

    Returns
    -------
    pl.DataFrame
        Columns ``row`` (1-based), ``ts_event``, ``side``, ``price``, ``bid_before``,
        ``ask_before``; one row per violation.
    """
    touch = touch_before_packet(events, levels)
    frame = pl.concat(
        [events.select("ts_event", "action", "side", "price")
         .with_columns(pl.int_range(1, pl.len() + 1).alias("row")), touch],
        how="horizontal",
    )
    buy_inside = (pl.col("side") == "bid") & (pl.col("price") < pl.col("ask_before"))
    sell_inside = (pl.col("side") == "ask") & (pl.col("price") > pl.col("bid_before"))
    return frame.filter(
        (pl.col("action") == "trade") & (buy_inside | sell_inside).fill_null(False)
    ).select("row", "ts_event", "side", "price", "bid_before", "ask_before")


def judged_trades(events: pl.DataFrame, levels: pl.DataFrame) -> int:
    """How many trades :func:`trades_inside_touch` judges (aggressor known, that touch present)."""
    touch = touch_before_packet(events, levels)
    ev = pl.concat([events.select("action", "side"), touch], how="horizontal")
    buy = (pl.col("side") == "bid") & pl.col("ask_before").is_not_null()
    sell = (pl.col("side") == "ask") & pl.col("bid_before").is_not_null()
    return ev.filter((pl.col("action") == "trade") & (buy | sell)).height


@dataclass
class Mbp10Match:
    """Agreement of a replay with an MBP-10 reference on its add and cancel rows.

    Attributes
    ----------
    reference_rows : int
        Reference rows with action add or cancel (the rows the comparison covers).
    joined_rows : int
        Of those, rows that found their event in ``events``.
    matching_rows : int
        Of the joined rows, rows whose ten levels (price and size, both sides) all agree.
    mismatches : pl.DataFrame
        The joined rows that disagree: ``row`` (1-based event row), ``ts_event``, ``sequence``.
    """

    reference_rows: int
    joined_rows: int
    matching_rows: int
    mismatches: pl.DataFrame

    @property
    def match_rate(self) -> float:
        """``matching_rows / reference_rows`` (1.0 when there is nothing to compare)."""
        return self.matching_rows / self.reference_rows if self.reference_rows else 1.0


def compare_mbp10(
    events: pl.DataFrame, levels: pl.DataFrame, reference: pl.DataFrame, depth: int = 10
) -> Mbp10Match:
    """Compare a replay with an MBP-10 reference on every reference add/cancel row.

    Parameters
    ----------
    events, levels : pl.DataFrame
        The canonical events and the replay's levels (aligned by row, ``depth`` levels or more).
    reference : pl.DataFrame
        Databento MBP-10 layout: ``ts_event`` (datetime), ``sequence``, ``action`` and ``side``
        as Databento's one-letter codes, ``price``, ``size``, ``bid_px_00`` .. ``ask_sz_09``
        (an empty level has a null price; its size may be 0).
    depth : int
        Levels compared.
    """
    key = ["ts_event", "sequence", "action", "side", "price", "size"]
    ours = pl.concat([
        events.select(
            pl.col("ts_event"), pl.col("sequence"),
            pl.col("action").cast(pl.String).replace_strict(_ACTION_CODE),
            pl.col("side").cast(pl.String).replace_strict(_SIDE_CODE),
            pl.col("price"), pl.col("size"),
        ).with_columns(pl.int_range(1, pl.len() + 1).alias("row")),
        levels.select([f"{s}_{f}_{i}" for i in range(1, depth + 1) for s in ("bid", "ask")
                       for f in ("px", "sz")]),
    ], how="horizontal")
    ref = reference.filter(pl.col("action").is_in(["A", "C"])).select(
        pl.col("ts_event").cast(ours.schema["ts_event"]),
        pl.col("sequence").cast(pl.Int64), pl.col("action"), pl.col("side"),
        pl.col("price").cast(pl.Float64), pl.col("size").cast(pl.Int64),
        *[pl.col(f"{s}_{f}_{i:02d}").alias(f"ref_{s}_{f}_{i + 1}")
          for i in range(depth) for s in ("bid", "ask") for f in ("px", "sz")],
    )
    joined = ref.join(ours.unique(subset=key, keep="last"), on=key, how="inner")
    ok = pl.all_horizontal(*[_same_level(s, i) for i in range(1, depth + 1)
                             for s in ("bid", "ask")])
    joined = joined.with_columns(ok.alias("ok"))
    return Mbp10Match(
        reference_rows=ref.height,
        joined_rows=joined.height,
        matching_rows=int(joined["ok"].sum()),
        mismatches=joined.filter(~pl.col("ok")).select("row", "ts_event", "sequence"),
    )


def _same_level(side: str, i: int) -> pl.Expr:
    """Our level i equals the reference's (an empty reference level: null price, size 0)."""
    px, sz = pl.col(f"{side}_px_{i}"), pl.col(f"{side}_sz_{i}").fill_null(0)
    ref_px, ref_sz = pl.col(f"ref_{side}_px_{i}"), pl.col(f"ref_{side}_sz_{i}").fill_null(0)
    same_px = ((px - ref_px).abs() < 1e-9) | (px.is_null() & ref_px.is_null())
    return same_px.fill_null(False) & (sz == ref_sz)
