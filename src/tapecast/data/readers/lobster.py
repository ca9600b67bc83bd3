"""LOBSTER message + orderbook files -> canonical events, trades, levels, quotes and a book seed.

Format: LOBSTER's ``LOBSTER_SampleFiles_ReadMe.txt`` (01 Sept 2013, shipped inside every sample
zip) and the LOBSTER data-structure page (https://lobsterdata.com/info/DataStructure.php).

* Files come in pairs named ``TICKER_YYYY-MM-DD_START_END_message_LEVEL.csv`` and
  ``..._orderbook_LEVEL.csv`` (START/END in ms after midnight), header-less, one orderbook row
  per message row.
* Message columns: ``Time`` (seconds after midnight of the file's date, America/New_York, up to
  ns decimals), ``Type`` (1 submit, 2 partial cancel, 3 delete, 4 visible execution, 5 hidden
  execution, 6 cross trade, 7 trading halt), ``OrderID``, ``Size``, ``Price`` (dollars x 10000),
  ``Direction`` (+1 buy / -1 sell limit order: the side of the *resting* order).
* Orderbook columns: ``AskPrice_i, AskSize_i, BidPrice_i, BidSize_i`` for i = 1..LEVEL; an empty
  level holds the dummy prices 9999999999 (ask) / -9999999999 (bid) with size 0.

Mapping (see ``docs/lobster.md``): 1 -> add; 2 -> cancel of the cancelled part; 3 -> cancel of
the remaining size; 4 -> fill on the resting side; 5 (hidden) and 6 (cross) -> trade with no
book effect; 7 -> no event, counted in ``counters["halts"]``.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import polars as pl

from tapecast.core.errors import InputError, UnsupportedFormatError
from tapecast.data.readers._headerless import divide_exact, read_headerless
from tapecast.data.schemas import TS, conform, levels_schema
from tapecast.data.tables import Tables, concat_tables
from tapecast.data.validate import ROW, finalize

PRICE_SCALE: Final = 10_000
DUMMY_PRICE: Final = 9_999_999_999
TIMEZONE: Final = "America/New_York"
NAME_RE: Final = re.compile(
    r"^(?P<ticker>.+?)_(?P<date>\d{4}-\d{2}-\d{2})_(?P<start>\d+)_(?P<end>\d+)_"
    r"(?P<kind>message|orderbook)_(?P<levels>\d+)\.csv$", re.IGNORECASE)
MESSAGE_COLUMNS: Final[dict[str, pl.DataType]] = {
    "Time": pl.String(), "Type": pl.Int64(), "OrderID": pl.Int64(), "Size": pl.Int64(),
    "Price": pl.Int64(), "Direction": pl.Int64(),
}
ACTION_OF_TYPE: Final = {1: "add", 2: "cancel", 3: "cancel", 4: "fill", 5: "trade", 6: "trade"}
EXECUTION_TYPES: Final = (4, 5, 6)
HALT: Final = 7


@dataclass(frozen=True)
class LobsterName:
    """The parts of a LOBSTER file name (``TICKER_DATE_START_END_KIND_LEVEL.csv``)."""

    ticker: str
    date: str
    start: str
    end: str
    levels: int

    def file(self, kind: str) -> str:
        """The file name of this pair's ``kind`` ("message" or "orderbook") file."""
        return f"{self.ticker}_{self.date}_{self.start}_{self.end}_{kind}_{self.levels}.csv"


def parse_name(name: str) -> tuple[LobsterName, str] | None:
    """Split a LOBSTER file name into its parts and kind; None when it is not one."""
    m = NAME_RE.match(Path(name).name)
    if m is None:
        return None
    parts = LobsterName(m["ticker"], m["date"], m["start"], m["end"], int(m["levels"]))
    return parts, m["kind"].lower()


@dataclass(frozen=True)
class _Pair:
    name: LobsterName
    message: bytes
    message_label: str
    orderbook: bytes
    orderbook_label: str


def read_lobster(path: Path, **options: Any) -> Tables:
    """Read a LOBSTER zip, or a message/orderbook CSV pair given either file's path.

    Parameters
    ----------
    path : Path
        A LOBSTER zip (one or more message/orderbook pairs inside), or the message or the
        orderbook CSV (its partner is found beside it by LOBSTER's file naming).
    **options
        None are used; accepted for the common reader signature.

    Returns
    -------
    Tables
        ``events`` (n_messages - n_halts rows, ``sequence`` = 1-based message row), ``trades``
        (types 4, 5, 6), ``levels`` (one row per event, in event order, from LOBSTER's
        orderbook file), ``quotes`` (level-1 changes), ``book_seed`` (one-row levels frame: the
        book before the first message; set when the source holds a single pair) and counters
        ``messages``, ``halts``, ``hidden_executions``, ``crosses``.

    Raises
    ------
    InputError
        Bad rows (naming file -- for a zip ``archive.zip:inner.csv`` --, row and field), a
        missing partner file, or files whose row counts differ.
    """
    del options
    pairs = _pairs(Path(path))
    parts = [_read_pair(p) for p in pairs]
    if len(parts) == 1:
        return parts[0]
    out = concat_tables(parts, source=str(path))
    out.book_seed = None  # one seed per pair: replay each pair on its own
    return out


def _pairs(path: Path) -> list[_Pair]:
    if zipfile.is_zipfile(path):
        return _zip_pairs(path)
    parsed = parse_name(path.name)
    if parsed is None:
        raise UnsupportedFormatError(
            f"{path}: not a LOBSTER file name (expected TICKER_YYYY-MM-DD_START_END_"
            "message_LEVEL.csv or ..._orderbook_LEVEL.csv, or a LOBSTER zip)")
    name, _ = parsed
    files = {kind: path.with_name(name.file(kind)) for kind in ("message", "orderbook")}
    for kind, file in files.items():
        if not file.exists():
            raise InputError(file, None, None, f"the {kind} file beside {path.name} "
                             "(LOBSTER files come in message/orderbook pairs)")
    return [_Pair(name, files["message"].read_bytes(), str(files["message"]),
                  files["orderbook"].read_bytes(), str(files["orderbook"]))]


def _zip_pairs(path: Path) -> list[_Pair]:
    try:
        with zipfile.ZipFile(path) as zf:
            members = {n: parse_name(n) for n in zf.namelist()}
            found = {(p[0], p[1]): n for n, p in members.items() if p is not None}
            names = sorted({name for name, _ in found}, key=lambda n: n.file("message"))
            pairs = []
            for name in names:
                inner = {k: found.get((name, k)) for k in ("message", "orderbook")}
                missing = [k for k, v in inner.items() if v is None]
                if missing:
                    raise InputError(f"{path}:{name.file(missing[0])}", None, None,
                                     f"the {missing[0]} file of the pair inside the zip")
                msg, book = str(inner["message"]), str(inner["orderbook"])
                pairs.append(_Pair(name, zf.read(msg), f"{path}:{msg}", zf.read(book),
                                   f"{path}:{book}"))
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(path, None, None, f"a readable zip archive ({exc})") from None
    if not pairs:
        raise InputError(path, None, None, "LOBSTER message/orderbook CSVs inside the zip")
    return pairs


def _read_pair(pair: _Pair) -> Tables:
    msg = _messages(pair)
    book = _orderbook(pair, msg)
    is_event = pl.col("Type") != HALT
    events = _events(msg.filter(is_event), pair)
    levels = book.filter(msg["Type"] != HALT)
    type_counts = msg["Type"].value_counts()
    count = dict(zip(type_counts["Type"].to_list(), type_counts["count"].to_list(), strict=True))
    return Tables(
        source=f"{pair.message_label}, {pair.orderbook_label}",
        format="lobster",
        events=events,
        trades=_trades(msg, pair),
        quotes=_quotes(levels),
        levels=levels,
        book_seed=_seed(book.head(1), msg.row(0, named=True), pair.name.levels),
        counters={"messages": msg.height, "halts": count.get(HALT, 0),
                  "hidden_executions": count.get(5, 0), "crosses": count.get(6, 0),
                  "rows_rejected": 0},
    )


def _raise_first(frame: pl.DataFrame, bad: pl.Expr, file: str, field: str,
                 expected: str) -> None:
    hit = frame.filter(bad.fill_null(False)).head(1)
    if hit.height:
        raise InputError(file, int(hit[ROW][0]), field, expected, hit[field][0])


def _messages(pair: _Pair) -> pl.DataFrame:
    """Parse and check the message file; adds ``ts`` (UTC ns)."""
    file = pair.message_label
    msg = read_headerless(pair.message, MESSAGE_COLUMNS, file, required=list(MESSAGE_COLUMNS))
    trading = pl.col("Type") != HALT
    _raise_first(msg, ~pl.col("Time").str.contains(r"^\s*\d+(\.\d+)?\s*$"), file, "Time",
                 "seconds after midnight as a decimal number")
    _raise_first(msg, ~pl.col("Type").is_between(1, 7), file, "Type", "a message type 1..7")
    _raise_first(msg, trading & ~pl.col("Direction").is_in([1, -1]), file, "Direction",
                 "+1 (buy) or -1 (sell)")
    _raise_first(msg, trading & (pl.col("Size") <= 0), file, "Size", "a positive size")
    _raise_first(msg, trading & (pl.col("Price") <= 0), file, "Price", "a positive price")
    _raise_first(msg, (pl.col("Type") <= 4) & (pl.col("OrderID") <= 0), file, "OrderID",
                 "a positive order id for types 1-4")
    msg = msg.with_columns(_timestamp(pair.name.date).alias("ts"))
    _raise_first(msg, pl.col("ts") < pl.col("ts").shift(1), file, "Time",
                 "times not decreasing (the message file is in time order)")
    return msg


def _timestamp(date: str) -> pl.Expr:
    """``Time`` (decimal seconds after NY midnight of ``date``) -> UTC ns, rounded to the ns.

    Parsed from the decimal text, not a float: LOBSTER writes up to 9 decimals (some files
    carry float artefacts such as ``43002.632812672004``, rounded half-up to the ns here).
    """
    parts = pl.col("Time").str.strip_chars().str.split_exact(".", 1)
    seconds = parts.struct.field("field_0").cast(pl.Int64)
    tenths_of_ns = (parts.struct.field("field_1").fill_null("").str.slice(0, 10)
                    .str.pad_end(10, "0").cast(pl.Int64))
    ns = seconds * 1_000_000_000 + (tenths_of_ns + 5) // 10
    midnight = pl.lit(date).str.to_datetime("%Y-%m-%d", time_unit="ns")
    return ((midnight + pl.duration(nanoseconds=ns))
            .dt.replace_time_zone(TIMEZONE, ambiguous="earliest").dt.convert_time_zone("UTC"))


def _orderbook(pair: _Pair, msg: pl.DataFrame) -> pl.DataFrame:
    """Parse the orderbook file into a ``levels`` frame (dummies -> null), ts from messages."""
    n = pair.name.levels
    file = pair.orderbook_label
    cols: dict[str, pl.DataType] = {}
    for i in range(1, n + 1):
        for name in (f"AskPrice{i}", f"AskSize{i}", f"BidPrice{i}", f"BidSize{i}"):
            cols[name] = pl.Int64()
    raw = read_headerless(pair.orderbook, cols, file, required=list(cols))
    if raw.height != msg.height:
        raise InputError(f"{pair.message_label} and {file}", None, None,
                         "the same number of rows in the message and orderbook files",
                         f"{msg.height} and {raw.height}")
    out = [msg["ts"].alias("ts"), pl.lit(pair.name.ticker).alias("instrument")]
    for i in range(1, n + 1):
        for side, dummy in (("Ask", DUMMY_PRICE), ("Bid", -DUMMY_PRICE)):
            px, sz = pl.col(f"{side}Price{i}"), pl.col(f"{side}Size{i}")
            empty = (px == dummy) | (sz == 0)
            _raise_first(raw, ~empty & (px <= 0), file, f"{side}Price{i}", "a positive price")
            _raise_first(raw, sz < 0, file, f"{side}Size{i}", "a non-negative size")
            lower = side.lower()
            out.append(pl.when(empty).then(None).otherwise(divide_exact(px, PRICE_SCALE))
                       .alias(f"{lower}_px_{i}"))
            out.append(pl.when(empty).then(None).otherwise(sz).alias(f"{lower}_sz_{i}"))
    return raw.select(out).cast(levels_schema(n))


def _book_side(direction: pl.Expr) -> pl.Expr:
    return pl.when(direction == 1).then(pl.lit("bid")).otherwise(pl.lit("ask"))


def _events(msg: pl.DataFrame, pair: _Pair) -> pl.DataFrame:
    """Canonical events: the action per type; side = resting side, except trades (aggressor)."""
    kind = pl.col("Type")
    is_trade = kind.is_in([5, 6])
    side = (pl.when(kind == 6).then(pl.lit("none"))
            .when(is_trade).then(_book_side(-pl.col("Direction")))
            .otherwise(_book_side(pl.col("Direction"))))
    frame = msg.select(
        pl.col("ts").alias("ts_event"),
        pl.lit(None, dtype=TS).alias("ts_recv"),
        pl.lit(pair.name.ticker).alias("instrument"),
        kind.replace_strict(ACTION_OF_TYPE, return_dtype=pl.String).alias("action"),
        side.alias("side"),
        divide_exact(pl.col("Price"), PRICE_SCALE).alias("price"),
        pl.col("Size").alias("size"),
        pl.when(pl.col("OrderID") > 0).then(pl.col("OrderID")).alias("order_id"),
        pl.col(ROW).cast(pl.Int64).alias("sequence"),
        pl.col(ROW),
    )
    return finalize(frame, "events", pair.message_label, ordered_by="ts_event")


def _trades(msg: pl.DataFrame, pair: _Pair) -> pl.DataFrame:
    """Executions: aggressor = -Direction (types 4, 5); crosses (6) unsigned."""
    execs = msg.filter(pl.col("Type").is_in(EXECUTION_TYPES))
    cross = pl.col("Type") == 6
    frame = execs.select(
        pl.col("ts"),
        pl.lit(pair.name.ticker).alias("instrument"),
        divide_exact(pl.col("Price"), PRICE_SCALE).alias("price"),
        pl.col("Size").cast(pl.Float64).alias("size"),
        pl.when(cross).then(0).otherwise(-pl.col("Direction")).cast(pl.Int8).alias("side"),
        pl.when(cross).then(None).otherwise(pl.lit("exchange")).alias("side_source"),
        pl.when(cross).then(pl.lit("cross")).when(pl.col("Type") == 5)
        .then(pl.lit("hidden")).otherwise(pl.lit("visible")).alias("sale_condition"),
        pl.col(ROW),
    )
    if frame.height == 0:
        return conform(frame, "trades")
    return finalize(frame, "trades", pair.message_label, ordered_by="ts")


def _quotes(levels: pl.DataFrame) -> pl.DataFrame:
    """Level-1 states, one row each time the top of book changes (the first row included)."""
    top = ["bid_px_1", "bid_sz_1", "ask_px_1", "ask_sz_1"]
    frame = levels.select(
        "ts", "instrument",
        *[pl.col(c).alias(c.removesuffix("_1")).cast(pl.Float64) for c in top])
    cols = [c.removesuffix("_1") for c in top]
    changed = pl.any_horizontal([pl.col(c).ne_missing(pl.col(c).shift(1)) for c in cols])
    return frame.filter(changed | (pl.int_range(pl.len()) == 0))


def _seed(first_row: pl.DataFrame, message: dict[str, Any], n_levels: int) -> pl.DataFrame:
    """The book before the first message: LOBSTER's first orderbook row with that message undone.

    An add is taken out of its level (an emptied level leaves the deepest level unknown ->
    null); a cancel, delete or visible execution is put back at its price (a new level pushes
    the deepest one out). Hidden executions, crosses and halts leave the visible book as is.
    """
    kind = int(message["Type"])
    if kind not in (1, 2, 3, 4):
        return first_row
    side = "bid" if message["Direction"] == 1 else "ask"
    price = message["Price"] / PRICE_SCALE  # Python division: correctly rounded
    delta = -int(message["Size"]) if kind == 1 else int(message["Size"])
    row = first_row.row(0, named=True)
    book = [(row[f"{side}_px_{i}"], row[f"{side}_sz_{i}"]) for i in range(1, n_levels + 1)]
    depth = {px: sz for px, sz in book if px is not None}
    depth[price] = depth.get(price, 0) + delta
    ordered = sorted((p for p, s in depth.items() if s > 0), reverse=side == "bid")
    ordered = ordered[:n_levels] + [None] * max(0, n_levels - len(ordered))
    for i, px in enumerate(ordered, start=1):
        row[f"{side}_px_{i}"] = px
        row[f"{side}_sz_{i}"] = None if px is None else depth[px]
    return pl.DataFrame([row], schema=first_row.schema)
