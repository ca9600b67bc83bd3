"""L3 order-book replay: canonical ``events`` -> the top-N book after every event.

Event semantics follow Databento's MBO schema
(https://databento.com/docs/schemas-and-data-formats/mbo and its "limit order book" example):

* ``add``     a new resting order (order_id, side, price, size);
* ``cancel``  reduce the order by ``size`` (removed at 0);
* ``modify``  the order takes the new price and size (a modify of an unknown order in a
  mid-stream replay is treated as an add, as Databento's own book does);
* ``fill``    Databento sends a ``cancel``/``modify`` after each fill to update the resting
  order, so a Databento fill has no book effect; a source without that follow-up (LOBSTER's
  type 4 visible execution) needs ``fills_reduce=True``, which reduces the resting order by
  ``size`` (the default picks this from the data: see :func:`replay_book`);
* ``trade``   an aggressor print: no book effect;
* ``clear``   empty the book (Databento ``R``); snapshot records (flags & 0x20) are adds.

A replay that starts from a full state (the events open with a clear or snapshot records) is
exact, and an impossible event raises :class:`~tapecast.core.errors.ReplayError`. A mid-stream
replay (LOBSTER, snapshot-less files) counts such events instead; a ``seed`` gives it anonymous
liquidity per price level that unknown-order cancels and fills at that price consume.

A source that reports only the top N levels (a LOBSTER depth-N file) needs ``depth_window=N``:
after every event the replay forgets what lies beyond depth N on each side, since the source
never reports its later cancels or executions (``docs/book.md``, ``docs/lobster.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa

from tapecast.core.errors import TapecastError
from tapecast.data import book_core as core
from tapecast.data.book_state import ASK, BID, BookState, new_state, reserve, seed_level
from tapecast.data.schemas import conform, levels_schema
from tapecast.data.tables import Tables

PRICE_SCALE = 1_000_000_000  # prices travel through the loop as integer ticks of 1e-9


@dataclass
class BookResult:
    """The replayed book and what the replay counted.

    Attributes
    ----------
    levels : pl.DataFrame
        ``levels_schema(n_levels)``: one row per input event, in input order; ``ts`` is the
        event's ``ts_event``; an empty level is null.
    counters : dict of str to int
        ``events``; ``unknown_order`` (events naming an order not resting, mid-stream only);
        ``seed_absorbed`` (of those, absorbed by seeded liquidity); ``duplicate_add``;
        ``negative_size_clamped``; ``sideless_book_event``; ``snapshot_records``; ``clears``;
        ``crossed_book`` / ``locked_book`` (best bid > / == best ask at packet ends: events with
        F_LAST, flags & 0x80, or every event where the source has no flags); with a depth
        window, ``window_trims`` (events after which levels beyond the window were forgotten),
        ``forgotten_order`` (cancels/fills/modifies of an order whose level was forgotten) and
        ``forgotten_recalled`` (of those, orders put back with the size left after the event).
    """

    levels: pl.DataFrame
    counters: dict[str, int]


def replay_book(
    events: pl.DataFrame,
    n_levels: int = 10,
    *,
    full_state: bool | None = None,
    seed: pl.DataFrame | None = None,
    source: str = "events",
    fills_reduce: bool | None = None,
    depth_window: int | None = None,
    forgotten: Literal["drop", "recall"] = "recall",
    uncross: bool = True,
) -> BookResult:
    """Replay canonical ``events`` (one instrument) and emit the top ``n_levels`` after each.

    Parameters
    ----------
    events : pl.DataFrame
        The canonical ``events`` table (:data:`tapecast.data.schemas.EVENTS`), in venue order;
        several instruments are replayed one by one (each with its own full-state decision),
        their rows kept in input order.
    n_levels : int
        Book depth to emit (>= 1).
    full_state : bool or None
        Whether the events carry the whole book from their first row. ``None``: True when the
        first event is a ``clear`` or a snapshot record (flags & 0x20). A full-state replay raises
        ``ReplayError`` on an add of a live order id, a cancel/modify/fill of an unknown order and
        a reduction bigger than the resting size; otherwise these are counted.
    seed : pl.DataFrame or None
        One-row ``levels`` frame: the book before the first event, as anonymous size per level.
    source : str
        The file name used in error messages.
    fills_reduce : bool or None
        Whether a ``fill`` reduces the resting order. ``None``: False when the events carry
        Databento flags (the venue follows each fill with a cancel/modify), True otherwise.
    depth_window : int or None
        ``None`` (default): keep every level. ``N``: after each event, forget every level beyond
        the best N on each side (orders and seeded size), for a source that reports only the top
        N levels; levels past N of the output are then empty.
    forgotten : {"recall", "drop"}
        With a depth window, what a later cancel/fill of a forgotten order does. ``"recall"``
        (default): the size the order has left after the event is put back at its price (the
        source reports only events inside the top N, so the order is there again). ``"drop"``:
        the event is treated as one on an unknown order (it only consumes seeded size).
    uncross : bool
        With a depth window: when an event leaves the book locked or crossed, forget the
        opposite side's levels at or through the price the event set (they were cancelled
        unseen beyond the source's depth: a continuous book cannot stay crossed).

    Returns
    -------
    BookResult
        ``levels`` with ``events.height`` rows, ``counters``.
    """
    if n_levels < 1:
        raise ValueError(f"n_levels must be >= 1, got {n_levels}")
    if depth_window is not None and depth_window < 1:
        raise ValueError(f"depth_window must be >= 1 or None, got {depth_window}")
    if forgotten not in ("recall", "drop"):
        raise ValueError(f"forgotten must be 'recall' or 'drop', got {forgotten!r}")
    if events["instrument"].n_unique() > 1:
        if seed is not None:
            raise TapecastError(f"{source}: a book seed applies to one instrument, and the "
                                "events hold several; split the events by instrument first")
        return _replay_each_instrument(events, n_levels, full_state, source, fills_reduce,
                                       depth_window, forgotten, uncross)
    cols = _columns(events)
    if full_state is None:
        full_state = len(cols.action) > 0 and (
            cols.action[0] == core.CLEAR or bool(cols.flags[0] & core.F_SNAPSHOT)
        )
    if fills_reduce is None:
        fills_reduce = events.height == 0 or events["flags"].null_count() == events.height
    state = new_state(order_capacity=min(events.height, 1 << 16))
    if seed is not None:
        state = seeded(state, seed)
    cfg = core.LoopConfig(n_levels, full_state, fills_reduce, source, depth_window, forgotten,
                          uncross)
    loop = core.run_loop(cols, state, cfg)
    levels = _levels_frame(events, loop, n_levels)
    counters = loop.counters
    counters["events"] = events.height
    counters.update(_crossings(levels, events))
    return BookResult(levels=levels, counters=counters)


def replay_tables(
    tables: Tables,
    n_levels: int = 10,
    *,
    depth_window: int | Literal["source"] | None = "source",
    forgotten: Literal["drop", "recall"] = "recall",
    uncross: bool = True,
) -> BookResult:
    """Replay ``tables.events``, seeded from ``tables.book_seed`` when present.

    Parameters
    ----------
    tables : Tables
        A reader's result with an ``events`` table.
    n_levels : int
        Book depth to emit.
    depth_window : int, "source" or None
        See :func:`replay_book`. ``"source"`` (default): the depth of the source's own
        orderbook file for a LOBSTER read (the number of levels in ``tables.levels``, the N of
        its ``..._message_N.csv``), else None.
    forgotten : {"recall", "drop"}
        See :func:`replay_book`.
    uncross : bool
        See :func:`replay_book`.

    Raises
    ------
    TapecastError
        When ``tables`` has no events table.
    """
    if tables.events is None or tables.events.height == 0:
        raise TapecastError(f"{tables.source}: expected an events (order-book) source to replay; "
                            f"this {tables.format} source has "
                            f"{', '.join(tables.row_counts()) or 'no'} tables")
    if depth_window == "source":
        depth_window = source_depth(tables)
    return replay_book(tables.events, n_levels, seed=tables.book_seed, source=tables.source,
                       depth_window=depth_window, forgotten=forgotten, uncross=uncross)


def source_depth(tables: Tables) -> int | None:
    """The depth N a depth-limited source reports (LOBSTER: its levels file's), else None."""
    if tables.format != "lobster" or tables.levels is None:
        return None
    return sum(1 for c in tables.levels.columns if c.startswith("ask_px_"))


def _replay_each_instrument(
    events: pl.DataFrame, n_levels: int, full_state: bool | None, source: str,
    fills_reduce: bool | None, depth_window: int | None,
    forgotten: Literal["drop", "recall"], uncross: bool,
) -> BookResult:
    """One replay per instrument, rows put back in input order, counters summed."""
    indexed = events.with_row_index("_pos")
    parts: list[pl.DataFrame] = []
    counters: dict[str, int] = {}
    for _, group in indexed.group_by("instrument", maintain_order=True):
        result = replay_book(group.drop("_pos"), n_levels, full_state=full_state,
                             source=source, fills_reduce=fills_reduce,
                             depth_window=depth_window, forgotten=forgotten,
                             uncross=uncross)
        parts.append(result.levels.with_columns(group["_pos"]))
        for name, count in result.counters.items():
            counters[name] = counters.get(name, 0) + count
    levels = pl.concat(parts).sort("_pos").drop("_pos")
    return BookResult(levels=levels, counters=counters)


def top_of_book(levels: pl.DataFrame) -> pl.DataFrame:
    """The canonical ``quotes`` table of a levels frame's first level (one row per levels row).

    Returns
    -------
    pl.DataFrame
        :data:`tapecast.data.schemas.QUOTES` columns; an empty side is null.
    """
    return conform(levels.select(
        "ts", "instrument",
        pl.col("bid_px_1").alias("bid_px"), pl.col("bid_sz_1").alias("bid_sz"),
        pl.col("ask_px_1").alias("ask_px"), pl.col("ask_sz_1").alias("ask_sz"),
    ), "quotes")


def _ticks(series: pl.Series) -> npt.NDArray[np.int64]:
    """Float prices -> integer ticks of 1e-9 (null -> 0)."""
    ticks = (series.cast(pl.Float64) * PRICE_SCALE).round().cast(pl.Int64).fill_null(0)
    return ticks.to_numpy().astype(np.int64, copy=False)


def _columns(events: pl.DataFrame) -> core.EventColumns:
    """The integer columns of ``events`` the loop reads."""
    def ints(name: str, null: int) -> npt.NDArray[np.int64]:
        col = events[name]
        if isinstance(col.dtype, pl.Enum):
            col = col.to_physical()
        return col.cast(pl.Int64).fill_null(null).to_numpy().astype(np.int64, copy=False)

    return core.EventColumns(
        action=ints("action", core.TRADE),
        side=ints("side", core.NONE),
        price=_ticks(events["price"]),
        size=ints("size", 0),
        order_id=ints("order_id", 0),
        flags=ints("flags", core.F_LAST),
    )


def seeded(state: BookState, seed: pl.DataFrame, *, tick_size: float | None = None
           ) -> BookState:
    """``state`` with a one-row levels frame's levels added as anonymous liquidity.

    Prices become ticks of 1e-9 (the replay's, ``PRICE_SCALE``) or, with ``tick_size``, ticks
    of that size (a matching engine on a venue's tick).
    """
    if seed.height != 1:
        raise ValueError(f"a book seed is a one-row levels frame, got {seed.height} rows")
    row = seed.row(0, named=True)
    n = sum(1 for c in seed.columns if c.startswith("ask_px_"))
    for i in range(1, n + 1):
        for side, name in ((ASK, "ask"), (BID, "bid")):
            px, sz = row[f"{name}_px_{i}"], row[f"{name}_sz_{i}"]
            if px is not None and sz is not None and sz > 0:
                state = reserve(state)
                ticks = round(px * PRICE_SCALE) if tick_size is None else round(px / tick_size)
                seed_level(state, side, ticks, int(sz))
    return state


def _levels_frame(events: pl.DataFrame, loop: core.LoopResult, n_levels: int) -> pl.DataFrame:
    """Assemble the ``levels_schema(n_levels)`` frame from the loop's (2, N, E) top-N arrays."""
    cols: dict[str, pa.Array] = {}
    for j in range(n_levels):
        for name, side in (("ask", ASK), ("bid", BID)):
            sizes = loop.sizes[side, j]  # (E,)
            empty = sizes == 0
            cols[f"{name}_px_{j + 1}"] = pa.array(loop.prices[side, j] * (1 / PRICE_SCALE),
                                                  mask=empty)
            cols[f"{name}_sz_{j + 1}"] = pa.array(sizes, mask=empty)
    frame = pl.from_arrow(pa.table(cols))
    assert isinstance(frame, pl.DataFrame)
    frame = frame.with_columns(ts=events["ts_event"], instrument=events["instrument"])
    return frame.select([pl.col(c).cast(t) for c, t in levels_schema(n_levels).items()])


def _crossings(levels: pl.DataFrame, events: pl.DataFrame) -> dict[str, int]:
    """Count crossed (bid > ask) and locked (bid == ask) books at packet ends."""
    at_end = (events["flags"].fill_null(core.F_LAST) & core.F_LAST) != 0
    bid, ask = levels["bid_px_1"], levels["ask_px_1"]
    crossed = (bid > ask).fill_null(False) & at_end
    locked = (bid == ask).fill_null(False) & at_end
    return {"crossed_book": int(crossed.sum()), "locked_book": int(locked.sum())}
