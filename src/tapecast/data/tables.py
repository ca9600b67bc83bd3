"""The :class:`Tables` bundle a reader returns: canonical tables plus what the reader counted."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import polars as pl

from tapecast.data.schemas import TABLE_NAMES


@dataclass
class Tables:
    """Canonical tables read from one source (see :mod:`tapecast.data.schemas`).

    Attributes
    ----------
    source : str
        The file (or files) read.
    format : str
        The reader's format name (``"dbn"``, ``"lobster"``, ...).
    events, trades, quotes, bars, quote_bars, levels : pl.DataFrame or None
        The tables this source yields; ``None`` where it yields none.
    book_seed : pl.DataFrame or None
        One-row ``levels`` frame: the book as it stood *before* the first event, where the source
        gives it (LOBSTER); an order-book replay starts from it.
    counters : dict of str to int
        What the reader counted and did not raise on: ``rows_rejected`` (always 0: bad rows raise),
        dropped records by kind, replay anomalies (``crossed_book``, ``unknown_order``), ...
    """

    source: str
    format: str
    events: pl.DataFrame | None = None
    trades: pl.DataFrame | None = None
    quotes: pl.DataFrame | None = None
    bars: pl.DataFrame | None = None
    quote_bars: pl.DataFrame | None = None
    levels: pl.DataFrame | None = None
    book_seed: pl.DataFrame | None = None
    counters: dict[str, int] = field(default_factory=dict)

    def items(self) -> Iterator[tuple[str, pl.DataFrame]]:
        """Yield ``(table_name, frame)`` for each table present, in canonical order."""
        for name in TABLE_NAMES:
            frame = getattr(self, name)
            if frame is not None:
                yield name, frame

    def __getitem__(self, name: str) -> pl.DataFrame:
        if name not in TABLE_NAMES:
            raise KeyError(f"unknown table {name!r}; tables are {', '.join(TABLE_NAMES)}")
        frame = getattr(self, name)
        if frame is None:
            raise KeyError(f"{self.source} has no {name} table")
        return frame  # type: ignore[no-any-return]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in TABLE_NAMES and getattr(self, name) is not None

    def row_counts(self) -> dict[str, int]:
        """Rows per table present."""
        return {name: frame.height for name, frame in self.items()}


def concat_tables(parts: list[Tables], source: str | None = None) -> Tables:
    """Concatenate several sources' tables (same tables stacked; counters summed)."""
    if not parts:
        raise ValueError("nothing to concatenate")
    out = Tables(
        source=source or ", ".join(p.source for p in parts),
        format=parts[0].format if len({p.format for p in parts}) == 1 else "mixed",
    )
    counters: Counter[str] = Counter()
    for name in TABLE_NAMES:
        frames = [getattr(p, name) for p in parts if getattr(p, name) is not None]
        if frames:
            setattr(out, name, pl.concat(frames, how="vertical"))
    for p in parts:
        counters.update(p.counters)
    out.counters = dict(counters)
    return out
