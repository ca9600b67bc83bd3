"""Generic CSV / Parquet L3 (order-by-order) feeds -> the canonical ``events`` table.

Called by :func:`tapecast.data.readers.generic.read_generic` for ``table="events"``, or when a
file has order-id, action and side columns (an events file is never mistaken for trades).

Columns (canonical -> header names tried, case-insensitive; ``mapping=`` overrides):
``ts`` (the event time, ``ts_event``), ``ts_recv`` (optional), ``instrument``, ``action``
(action, event, event_type, msg_type, message_type, update_type), ``side``, ``price``,
``size``, ``order_id`` (order_id, orderid, order_ref, order_no, oid), ``sequence`` (optional).

Actions
    Each value (case-insensitive, trimmed) maps to a canonical action through
    :data:`DEFAULT_ACTIONS` (``add``/``new``/``created``/``insert``/``submit`` -> add,
    ``modify``/``amend``/``changed``/``replace``/``update`` -> modify,
    ``cancel``/``delete``/``deleted``/``remove`` -> cancel, ``fill``/``execute``/``executed`` ->
    fill (a resting order executed), ``trade``/``match`` -> trade (an aggressor print),
    ``clear``/``reset`` -> clear, and Databento's letters ``A C M T F R``) updated by
    ``action_mapping`` (source value -> ``add``, ``cancel``, ``modify``, ``trade``, ``fill``,
    ``clear`` or ``skip``: a skipped row makes no event and is counted in
    ``counters["skipped_records"]``). Any other value raises.
Sides
    ``bid``/``b``/``buy``/``1`` -> bid, ``ask``/``a``/``s``/``sell``/``offer``/``-1`` -> ask,
    empty/``n``/``none``/``0`` -> none. As in the Databento and LOBSTER readers, a ``trade``
    row's side is the aggressor's and every other row's the resting order's.
Sizes (``size_kind``)
    ``"delta"`` (default): sizes already mean what the canonical table means (Databento MBO):
    an add's size is the order's size, a cancel's or a fill's the quantity removed, a modify's
    the order's new size. ``"remaining"``: every add, modify, cancel and fill reports the
    order's size *left after* the event; per (instrument, order_id), between clears, with
    ``r_prev`` the order's remaining size before the event and ``r`` the reported one:

    * add -> add of ``r``;
    * modify -> modify to ``r`` (the canonical modify carries the new size, see
      :func:`tapecast.data.book.replay_book`); a modify to ``r = 0`` -> cancel of ``r_prev``;
    * cancel -> cancel of ``r_prev - r`` (a delete reports ``r = 0``: cancel of all of it);
    * fill -> fill of ``r_prev - r``;
    * trade -> unchanged (its size is the traded quantity; it names no resting order).

    A cancel, modify or fill of an order not resting (no earlier add, or already at 0), or a
    cancel or fill that does not reduce the order (``r >= r_prev``), raises: without the size
    before, the change cannot be known.

Order ids are unsigned integers; a column holding any other text (UUIDs) is renumbered 1, 2,
... by first appearance and counted in ``counters["order_ids_renumbered"]``. ``flags`` is
null, so :func:`~tapecast.data.book.replay_book` lets a ``fill`` reduce the resting order: a
feed that also sends a cancel or modify after each fill must map its fills to ``trade``.
Alongside ``events`` the reader yields ``trades``: the ``trade`` rows (side +1 bid / -1 ask,
the aggressor's), or where the feed has none, the ``fill`` rows with the aggressor opposite the
resting side. Time (``ts_recv`` where given, else ``ts``) must not decrease within an
instrument. Every bad field raises :class:`InputError` with the file, the 1-based data row and
the source column.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Final, Literal

import polars as pl

from tapecast.core.errors import InputError
from tapecast.data.readers._columns import (
    TsUnit,
    check_ordered,
    parse_timestamps,
    raise_first,
    to_float,
)
from tapecast.data.schemas import ACTIONS, TS, empty
from tapecast.data.tables import Tables
from tapecast.data.validate import ROW, finalize

SizeKind = Literal["delta", "remaining"]

EVENT_ALIASES: Final[dict[str, tuple[str, ...]]] = {
    "ts_recv": ("ts_recv", "recv_ts", "receive_time", "ts_local"),
    "action": ("action", "event", "event_type", "msg_type", "message_type", "update_type"),
    "order_id": ("order_id", "orderid", "order_ref", "order_no", "oid"),
    "sequence": ("sequence", "seq", "seq_num", "sequence_number"),
}
EVENT_COLUMNS: Final = ("ts", "ts_recv", "instrument", "action", "side", "price", "size",
                        "order_id", "sequence")
DEFAULT_ACTIONS: Final[dict[str, str]] = {
    **dict.fromkeys(("add", "a", "new", "created", "create", "insert", "inserted", "submit",
                     "open"), "add"),
    **dict.fromkeys(("modify", "m", "modified", "amend", "amended", "change", "changed",
                     "replace", "replaced", "update", "updated"), "modify"),
    **dict.fromkeys(("cancel", "c", "cancelled", "canceled", "delete", "deleted", "remove",
                     "removed"), "cancel"),
    **dict.fromkeys(("fill", "f", "filled", "execute", "executed", "execution", "exec"),
                    "fill"),
    **dict.fromkeys(("trade", "t", "match", "matched"), "trade"),
    **dict.fromkeys(("clear", "r", "reset"), "clear"),
}
_SIDES: Final[dict[str, str]] = {
    **dict.fromkeys(("bid", "b", "buy", "1", "+1", "1.0"), "bid"),
    **dict.fromkeys(("ask", "a", "s", "sell", "offer", "-1", "-1.0"), "ask"),
    **dict.fromkeys(("", "n", "none", "0", "0.0"), "none"),
}
_ON_ORDER: Final = ("add", "modify", "cancel", "fill")  # actions that name a resting order
_SKIP: Final = "skip"


def read_events(
    source: pl.DataFrame,
    resolved: dict[str, str],
    path: Path,
    *,
    instrument: str,
    override: bool,
    timezone: str,
    ts_unit: TsUnit | None,
    ts_format: str | None,
    action_mapping: Mapping[str, str] | str | None,
    size_kind: str,
    fmt: str,
) -> Tables:
    """Canonical ``events`` (and ``trades``) from a loaded source (see the module docstring).

    Parameters
    ----------
    source : pl.DataFrame
        The file's columns plus ``_row`` (1-based data row), as ``read_generic`` loads it.
    resolved : dict of str to str
        Canonical column -> source column.
    path : Path
        The file, for error messages.
    instrument : str
        The instrument where the file has no instrument column, or ``override`` is set.
    override : bool
        Whether ``instrument`` replaces an instrument column.
    timezone, ts_unit, ts_format
        As :func:`tapecast.data.readers._columns.parse_timestamps`.
    action_mapping : mapping of str to str, str or None
        Source action value -> canonical action (or ``"skip"``), on top of
        :data:`DEFAULT_ACTIONS`; a string ``"created=add,deleted=cancel"`` is the same (the
        form ``-O action_mapping=...`` passes on the command line).
    size_kind : {"delta", "remaining"}
        What ``size`` reports (see the module docstring).
    fmt : str
        The format name of the result (``"csv"`` or ``"parquet"``).

    Returns
    -------
    Tables
        ``events``, n_rows - n_skipped rows in file order, and ``trades`` (possibly empty).
    """
    if size_kind not in ("delta", "remaining"):
        raise InputError(path, None, "size_kind", "delta or remaining", size_kind)
    actions = _action_table(action_mapping, path)
    for canonical in ("ts", "action", "side", "size", "order_id"):
        if canonical not in resolved:
            raise InputError(path, None, canonical, f"a column for {canonical} in an events "
                             f"file (pass mapping={{'{canonical}': <column>}})",
                             ",".join(c for c in source.columns if c != ROW))
    frame = _parse(source, resolved, path, actions, instrument=instrument, override=override,
                   timezone=timezone, ts_unit=ts_unit, ts_format=ts_format)
    skipped = int((frame["action"] == _SKIP).sum())
    frame = frame.filter(pl.col("action") != _SKIP)
    _check_rows(frame, resolved, path)
    if size_kind == "remaining":
        frame = from_remaining(frame, path, resolved["size"], resolved["order_id"])
    clock = "ts_recv" if "ts_recv" in resolved else "ts_event"
    by = "instrument" if frame["instrument"].n_unique() > 1 else None
    check_ordered(frame, clock, path, by=by, field=resolved["ts_recv" if "ts_recv" in resolved
                                                          else "ts"])
    counters = {"records": source.height}
    counters.update({k: v for k, v in {"skipped_records": skipped,
                                       "order_ids_renumbered": int(frame["_renumbered"][0])
                                       if frame.height else 0}.items() if v})
    out = Tables(source=str(path), format=fmt, counters=counters)
    out.events = finalize(frame, "events", path)
    out.trades = _trades(frame, path)
    return out


def _action_table(action_mapping: Mapping[str, str] | str | None, path: Path) -> dict[str, str]:
    """Lower-cased source value -> canonical action (or ``skip``)."""
    extra: dict[str, str] = {}
    if isinstance(action_mapping, str):
        for item in filter(None, (p.strip() for p in action_mapping.split(","))):
            key, sep, value = item.partition("=")
            if not sep:
                raise InputError(path, None, "action_mapping", "VALUE=ACTION pairs separated "
                                 "by commas", item)
            extra[key] = value
    else:
        extra = dict(action_mapping or {})
    table = dict(DEFAULT_ACTIONS)
    for key, value in extra.items():
        canonical = str(value).strip().lower()
        if canonical not in (*ACTIONS, _SKIP):
            raise InputError(path, None, "action_mapping", f"a canonical action for {key!r} "
                             f"(one of {', '.join(ACTIONS)}, skip)", value)
        table[str(key).strip().lower()] = canonical
    return table


def _codes(source: pl.DataFrame, column: str, codes: Mapping[str, str], path: Path,
           expected: str) -> pl.Series:
    """``column`` (trimmed, lower-cased, empty -> "") through ``codes``; unknown values raise."""
    text = source[column].cast(pl.String).str.strip_chars().str.to_lowercase().fill_null("")
    work = source.select(ROW).with_columns(text.alias("_s"))
    work = work.with_columns(pl.col("_s").replace_strict(dict(codes), default=None,
                                                         return_dtype=pl.String).alias("_v"))
    raise_first(work, pl.col("_v").is_null(), path, column, expected, value="_s")
    return work["_v"]


def _integers(source: pl.DataFrame, column: str, path: Path, expected: str) -> pl.Series:
    """A whole-number column as Int64 (empty -> null); anything else raises."""
    number = to_float(source, column, path)
    work = source.select(ROW).with_columns(number.alias("_f"))
    raise_first(work, (pl.col("_f") != pl.col("_f").round(0)) | pl.col("_f").is_infinite(),
                path, column, expected, value="_f")
    return number.cast(pl.Int64)


def _order_ids(source: pl.DataFrame, column: str) -> tuple[pl.Series, bool]:
    """Order ids as UInt64 (empty -> null), renumbered by first appearance unless all integers."""
    text = source[column].cast(pl.String).str.strip_chars()
    text = pl.select(pl.when(text == "").then(None).otherwise(text)).to_series()
    ids = text.cast(pl.UInt64, strict=False)
    if ids.null_count() == text.null_count():
        return ids, False
    seen = text.drop_nulls().unique(maintain_order=True)
    numbers = pl.Series(range(1, seen.len() + 1), dtype=pl.UInt64)
    return text.replace_strict(seen, numbers, default=None, return_dtype=pl.UInt64), True


def _parse(source: pl.DataFrame, resolved: dict[str, str], path: Path,
           actions: Mapping[str, str], *, instrument: str, override: bool, timezone: str,
           ts_unit: TsUnit | None, ts_format: str | None) -> pl.DataFrame:
    """One row per source row: the canonical columns (action may be ``skip``) plus ``_row``."""
    def stamps(canonical: str) -> pl.Series:
        if canonical not in resolved:
            return pl.Series([None] * source.height, dtype=TS)
        return parse_timestamps(source, resolved[canonical], path, unit=ts_unit,
                                timezone=timezone, ts_format=ts_format)

    values = sorted(set(actions))
    ids, renumbered = _order_ids(source, resolved["order_id"])
    cols: dict[str, pl.Series] = {
        ROW: source[ROW],
        "ts_event": stamps("ts"),
        "ts_recv": stamps("ts_recv"),
        "action": _codes(source, resolved["action"], actions, path,
                         f"an action ({', '.join(values)}; or pass action_mapping=)"),
        "side": _codes(source, resolved["side"], _SIDES, path,
                       "a side: bid/b/buy/1, ask/a/s/sell/offer/-1, or empty/n/none/0"),
        "price": (to_float(source, resolved["price"], path) if "price" in resolved
                  else pl.Series([None] * source.height, dtype=pl.Float64)),
        "size": _integers(source, resolved["size"], path, "a whole-number size"),
        "order_id": ids,
        "sequence": (_integers(source, resolved["sequence"], path, "an integer sequence")
                     if "sequence" in resolved else pl.Series([None] * source.height,
                                                               dtype=pl.Int64)),
        "_renumbered": pl.Series([renumbered] * source.height, dtype=pl.Boolean),
    }
    frame = pl.DataFrame(cols)
    if "instrument" in resolved and not override:
        frame = frame.with_columns(source[resolved["instrument"]].cast(pl.String)
                                   .alias("instrument"))
        raise_first(frame, pl.col("instrument").is_null(), path, resolved["instrument"],
                    "an instrument (the field is required)")
    else:
        frame = frame.with_columns(pl.lit(instrument).alias("instrument"))
    return frame


def _check_rows(frame: pl.DataFrame, resolved: dict[str, str], path: Path) -> None:
    """Per-row rules the canonical table needs, named by source column."""
    action = pl.col("action")
    raise_first(frame, pl.col("ts_event").is_null(), path, resolved["ts"],
                "a timestamp (the field is required)")
    raise_first(frame, action.is_in(_ON_ORDER) & pl.col("order_id").is_null(), path,
                resolved["order_id"], "an order id on an add, modify, cancel or fill")
    raise_first(frame, (action != "clear") & pl.col("size").is_null(), path, resolved["size"],
                "a size (the field is required)")
    raise_first(frame, pl.col("size") < 0, path, resolved["size"], "a non-negative size",
                value="size")
    price = resolved.get("price", "price")
    raise_first(frame, action.is_in(["add", "modify"]) & pl.col("price").is_null(), path, price,
                "a price on an add or a modify (got none)")
    raise_first(frame, (action != "clear") & ((pl.col("price") <= 0) | pl.col("price").is_nan()),
                path, price, "a positive price", value="price")
    raise_first(frame, (action == "add") & (pl.col("side") == "none"), path, resolved["side"],
                "a bid or ask side on an add")


def from_remaining(frame: pl.DataFrame, path: Path, size_field: str,
                   id_field: str) -> pl.DataFrame:
    """Convert remaining-size events to canonical (delta) sizes; see the module docstring.

    Parameters
    ----------
    frame : pl.DataFrame
        Events in file order with ``_row``, ``instrument``, ``action`` (canonical names),
        ``order_id`` and ``size`` (Int64, the order's remaining size after each event).
    path, size_field, id_field
        The file and source column names, for error messages.

    Returns
    -------
    pl.DataFrame
        ``frame`` with canonical ``size`` and ``action`` (a modify to 0 becomes a cancel), same
        rows and order.
    """
    on_order = pl.col("action").is_in(_ON_ORDER)
    epoch = (pl.col("action") == "clear").cum_sum().over("instrument")
    key = pl.when(on_order).then(pl.col("order_id"))  # other rows share one null key
    work = frame.with_columns(epoch.alias("_epoch"), key.alias("_key"))
    work = work.with_columns(pl.col("size").shift(1).over("instrument", "_epoch", "_key")
                             .fill_null(0).alias("_prev"))
    action, size, before = pl.col("action"), pl.col("size"), pl.col("_prev")
    raise_first(work, on_order & (action != "add") & (before <= 0), path, id_field,
                "an order resting before its change (remaining-size mode: a cancel, modify or "
                "fill needs the order's add first)", value="order_id")
    reduces = action.is_in(["cancel", "fill"])
    raise_first(work, reduces & (size >= before), path, size_field,
                "a remaining size below the order's size before the event", value="size")
    gone = (action == "modify") & (size == 0)
    return work.with_columns(
        pl.when(gone).then(pl.lit("cancel")).otherwise(action).alias("action"),
        pl.when(reduces).then(before - size).when(gone).then(before).otherwise(size)
        .alias("size"),
    ).drop("_prev", "_epoch", "_key")


def _trades(frame: pl.DataFrame, path: Path) -> pl.DataFrame:
    """``trade`` rows (aggressor = their side), else ``fill`` rows (aggressor opposite)."""
    trades = frame.filter(pl.col("action") == "trade")
    sign = {"bid": 1, "ask": -1, "none": 0}
    if trades.height == 0:
        trades = frame.filter(pl.col("action") == "fill")
        sign = {"bid": -1, "ask": 1, "none": 0}
    if trades.height == 0:
        return empty("trades")
    side = pl.col("side").replace_strict(sign, return_dtype=pl.Int8)
    out = trades.with_columns(pl.col("ts_event").alias("ts"), side.alias("side"),
                              pl.when(side != 0).then(pl.lit("exchange")).alias("side_source"),
                              pl.col("size").cast(pl.Float64))
    return finalize(out, "trades", path)
