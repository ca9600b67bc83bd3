"""How well an L3 replay of a LOBSTER message file reproduces LOBSTER's own orderbook file.

A LOBSTER depth-N message file holds only the messages that change the top N levels at the
time. Orders entered before the window or while beyond depth N are never added, and orders
pushed beyond depth N and cancelled or executed there are never removed, so no replay of the
message file alone can be exact (see ``docs/lobster.md``). These functions measure it:

* :func:`lobster_match_rates` replays the events from ``book_seed`` with
  :func:`tapecast.data.book.replay_tables` (by default with the file's depth-N window, which
  forgets what the file will not report) and compares every level row by row, splitting the
  mismatches into classes;
* :func:`lobster_step_check` checks the message -> event mapping itself, one message at a time,
  against LOBSTER's book before and after it;
* :func:`lobster_order_accounting` counts, from the events alone, the orders the file adds but
  never removes and the events on orders the file never added.
"""

from __future__ import annotations

from typing import Literal

import polars as pl

from tapecast.core.errors import TapecastError
from tapecast.data.book import replay_tables
from tapecast.data.tables import Tables

PRICE_DECIMALS = 6  # LOBSTER prices are whole multiples of 1e-4 dollars


def _n_levels(levels: pl.DataFrame) -> int:
    return sum(1 for c in levels.columns if c.startswith("ask_px_"))


def lobster_match_rates(
    tables: Tables,
    *,
    depth_window: int | Literal["source"] | None = "source",
    forgotten: Literal["drop", "recall"] = "recall",
    uncross: bool = True,
) -> pl.DataFrame:
    """Replay ``tables`` (a LOBSTER read) and compare every level with LOBSTER's orderbook file.

    Parameters
    ----------
    tables : Tables
        The result of :func:`tapecast.data.readers.lobster.read_lobster` for one file pair
        (``events``, ``levels`` and ``book_seed`` present).
    depth_window, forgotten, uncross
        The replay's options (:func:`tapecast.data.book.replay_tables`); the default forgets
        what lies beyond the file's own depth N and recalls forgotten orders a message names.

    Returns
    -------
    pl.DataFrame
        One row per (level, side): ``level`` (1..N), ``side`` ("ask"/"bid"), ``rows``,
        ``price_match`` and ``size_match`` (share of rows equal, an empty level equal to an empty
        level), ``both_match``, and mismatch counts by class: ``stale`` (our price is better
        than LOBSTER's, or LOBSTER's level is empty: liquidity the file stopped reporting),
        ``missing`` (LOBSTER's price is better, or ours is empty: liquidity the file never
        showed us), ``size_only`` (same price, other size).
    """
    if tables.events is None or tables.levels is None:
        raise TapecastError(f"{tables.source}: a LOBSTER read with events and levels is needed")
    n = _n_levels(tables.levels)
    ours = replay_tables(tables, n, depth_window=depth_window, forgotten=forgotten,
                         uncross=uncross).levels
    ref = tables.levels
    rows = []
    for i in range(1, n + 1):
        for side, sign in (("ask", 1.0), ("bid", -1.0)):
            px, sz = f"{side}_px_{i}", f"{side}_sz_{i}"
            # the book carries prices as integer ticks of 1e-9: compare at LOBSTER's 1e-4 grid
            cmp = pl.DataFrame({"o": (ours[px] * sign).round(PRICE_DECIMALS),
                                "r": (ref[px] * sign).round(PRICE_DECIMALS),
                                "os": ours[sz], "rs": ref[sz]})
            price_eq = pl.col("o").eq_missing(pl.col("r"))
            size_eq = pl.col("os").eq_missing(pl.col("rs"))
            o, r = pl.col("o"), pl.col("r")
            stale = (o < r) | (r.is_null() & o.is_not_null())
            missing = (o > r) | (o.is_null() & r.is_not_null())
            stats = cmp.select(
                price_match=price_eq.mean(), size_match=size_eq.mean(),
                both_match=(price_eq & size_eq).mean(),
                stale=stale.fill_null(False).sum(), missing=missing.fill_null(False).sum(),
                size_only=(price_eq & ~size_eq).sum(),
            ).row(0, named=True)
            rows.append({"level": i, "side": side, "rows": ref.height, **stats})
    return pl.DataFrame(rows)


def _size_at(levels: pl.DataFrame, n: int) -> pl.Expr:
    """Per row: the size LOBSTER shows at the event's ``price`` on its ``side`` (0 if none)."""
    terms = [pl.when(pl.col("side") == side).then(
        pl.when(pl.col(f"{side}_px_{i}") == pl.col("price")).then(pl.col(f"{side}_sz_{i}"))
        .otherwise(0)).otherwise(0) for side in ("ask", "bid") for i in range(1, n + 1)]
    return pl.sum_horizontal(terms)


def lobster_step_check(tables: Tables) -> dict[str, int]:
    """Check each book-changing event against LOBSTER's book just before and just after it.

    For an ``add`` the size LOBSTER shows at the event's price and side must grow by the
    event's size; for a ``cancel`` or ``fill`` it must shrink by it. This tests the reader's
    message -> event mapping (sides, sizes, prices) independently of any replay state.

    Returns
    -------
    dict of str to int
        ``checked`` (add/cancel/fill events after the first), ``consistent``, and
        ``beyond_depth`` (of the inconsistent: the price is not among LOBSTER's N levels before
        or after the event, so the orderbook file cannot show the change).
    """
    if tables.events is None or tables.levels is None:
        raise TapecastError(f"{tables.source}: a LOBSTER read with events and levels is needed")
    n = _n_levels(tables.levels)
    ev = tables.events.select(pl.col("action").cast(pl.String), pl.col("side").cast(pl.String),
                              "price", "size")
    after = pl.concat([ev, tables.levels.drop("ts", "instrument")], how="horizontal")
    before = pl.concat([ev, tables.levels.drop("ts", "instrument").shift(1)], how="horizontal")
    frame = pl.DataFrame({
        "action": ev["action"],
        "before": before.select(_size_at(before, n)).to_series(),
        "after": after.select(_size_at(after, n)).to_series(),
        "size": ev["size"],
    }).slice(1)
    sign = (pl.when(pl.col("action") == "add").then(1)
            .when(pl.col("action").is_in(["cancel", "fill"])).then(-1).otherwise(0))
    book = frame.filter(sign != 0)
    ok = (pl.col("after") - pl.col("before")) == sign * pl.col("size")
    unseen = (pl.col("after") == 0) & (pl.col("before") == 0)
    out = book.select(checked=pl.len(), consistent=ok.sum(), beyond_depth=(~ok & unseen).sum())
    return {k: int(v) for k, v in out.row(0, named=True).items()}


def lobster_order_accounting(tables: Tables) -> dict[str, int]:
    """Count what a LOBSTER message file cannot account for, from its events alone.

    Returns
    -------
    dict of str to int
        ``orders_added``; ``orders_never_removed`` (added in the file, with size left at the end:
        removed beyond depth, or still resting at the close); ``events_on_unseen_orders``
        (cancels and fills of order ids the file never added before them: entered before the
        window or while beyond depth).
    """
    if tables.events is None:
        raise TapecastError(f"{tables.source}: a LOBSTER read with events is needed")
    ev = tables.events.filter(pl.col("order_id").is_not_null()).with_row_index("i")
    adds = ev.filter(pl.col("action") == "add").group_by("order_id").agg(
        first_add=pl.col("i").min(), added=pl.col("size").sum())
    removals = ev.filter(pl.col("action").is_in(["cancel", "fill"]))
    joined = removals.join(adds, on="order_id", how="left")
    unseen = joined.filter(pl.col("first_add").is_null() | (pl.col("first_add") > pl.col("i")))
    removed = removals.group_by("order_id").agg(removed=pl.col("size").sum())
    left = adds.join(removed, on="order_id", how="left").with_columns(
        pl.col("removed").fill_null(0))
    return {
        "orders_added": adds.height,
        "orders_never_removed": left.filter(pl.col("added") > pl.col("removed")).height,
        "events_on_unseen_orders": unseen.height,
    }
