"""Hand-made canonical event frames for the book and aggressor tests."""

from __future__ import annotations

from typing import Any

import polars as pl

from tapecast.data.schemas import EVENTS

F_LAST = 0x80
F_SNAPSHOT = 0x20
CLEAR = ("clear", "none", None, 0, 0)  # a clear record, as an events() row

# (action, side, price, size, order_id[, flags])
Row = tuple[Any, ...]


def events(rows: list[Row], *, flags: int | None = F_LAST, instrument: str = "X") -> pl.DataFrame:
    """A canonical events frame, one row per tuple, 1 ns apart; ``flags`` for rows without."""
    data: dict[str, list[Any]] = {c: [] for c in EVENTS}
    for i, row in enumerate(rows):
        action, side, price, size, order_id = row[:5]
        data["ts_event"].append(1_700_000_000_000_000_000 + i)
        data["ts_recv"].append(1_700_000_000_000_000_000 + i)
        data["instrument"].append(instrument)
        data["action"].append(action)
        data["side"].append(side)
        data["price"].append(price)
        data["size"].append(size)
        data["order_id"].append(order_id)
        data["flags"].append(row[5] if len(row) > 5 else flags)
        data["sequence"].append(i + 1)
    frame = pl.DataFrame(data, schema_overrides={"flags": pl.Int64, "ts_event": pl.Int64,
                                                 "ts_recv": pl.Int64})
    return frame.select(
        [pl.col(c).cast(pl.Int64).cast(t) if c.startswith("ts_") else pl.col(c).cast(t)
         for c, t in EVENTS.items()]
    )


def top(levels: pl.DataFrame, row: int, side: str, depth: int = 2) -> list[tuple[Any, Any]]:
    """[(price, size), ...] of ``side``'s first ``depth`` levels after event ``row`` (0-based)."""
    r = levels.row(row, named=True)
    return [(r[f"{side}_px_{i}"], r[f"{side}_sz_{i}"]) for i in range(1, depth + 1)]
