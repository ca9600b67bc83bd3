"""Price features: 1-second bars -> a regular 1-second grid -> 30-second forecasting windows.

The input is the canonical ``bars`` (trade OHLCV) and ``quote_bars`` (bid/ask OHLC with sizes)
tables of :mod:`tapecast.data.schemas`, any number of instruments and days.

**Timing.** A bar is stamped at its *start* (``ts``; the LEAN reader writes LEAN's ``Time``, the
start of the second) and covers ``[ts, ts + bar_length)``: it is known only at its end. Grid row
``j`` of a session opening at ``open`` is stamped ``open + (j + 1) s`` and holds what is known at
that moment: the bars that ended by then. The bar of ``[09:30:00, 09:30:01)`` is row 0, stamped
09:30:01; a session of L seconds has rows 0..L-1, the last stamped at the close.

**Per row** (everything forward-filled inside the session only; nothing before the first bar of
the session, where the price is null):

- ``close``: the last trade bar's close; ``volume``: the row's traded volume (0 without a bar);
- ``bid``, ``ask``, ``bid_size``, ``ask_size``: each side's last close and size (a quote bar
  with an empty side leaves that side as it was);
- ``price``: the quote mid (bid + ask) / 2 or the last trade close, by ``config.price``:
  ``"auto"`` takes the mid once both sides have been quoted in the session and the trade close
  before that (a day without quote bars is priced by trades throughout, counted in the summary),
  ``"mid"`` the mid only (a session with trade bars but no quote bars is an error), ``"trade"``
  the close only; ``price_source`` names the source per row;
- ``staleness_s``: seconds since the last bar of the row's price source (0: a bar ended now);
- ``spread`` = ask - bid, ``spread_bps`` = spread / mid * 1e4, ``imbalance`` =
  (bid_size - ask_size) / (bid_size + ask_size);
- ``log_ret`` = log(P_j / P_{j-1}), null at the session's first row, where a price is missing or
  where the price source changes;
- ``rv_{m}s`` = Σ_{i=0}^{m-1} log_ret_{j-i}², the realized variance of the last m seconds (null
  until m returns exist), summed newest first;
- ``time_of_day`` = (j + 1) / L.

Every feature of row j uses bars that ended by its stamp only;
:class:`tapecast.features.price_streaming.StreamingPriceGrid` computes the same rows, bit for bit,
one bar at a time.

**Windows**, 30-second origins on this grid and their context arrays, are
:mod:`tapecast.features.price_windows`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
from numpy.typing import NDArray

from tapecast.core.config import ConfigBase
from tapecast.core.errors import TapecastError
from tapecast.features.sessions import (
    Sessions,
    check_rule,
    local_date,
    session_of_date,
    to_ns,
)

PriceSession = Literal["us-equity-rth", "us-equity-extended", "calendar", "cme-globex"]
PriceChoice = Literal["auto", "mid", "trade"]
PRICE_SOURCES: Final = ("mid", "trade")
REASONS: Final = ("session_start", "session_end", "no_price", "stale")
NS: Final = 1_000_000_000
_TS: Final = pl.Datetime("ns", "UTC")
_SOURCE: Final = pl.Enum(list(PRICE_SOURCES))
_NONE, _MID, _TRADE = 0, 1, 2  # price source codes

__all__ = ["PRICE_SOURCES", "REASONS", "PriceGridConfig", "grid_schema", "price_grid",
           "session_window"]


@dataclass(frozen=True)
class PriceGridConfig(ConfigBase):
    """How 1-second bars become a price grid and forecasting windows.

    Parameters
    ----------
    session : {"us-equity-rth", "us-equity-extended", "calendar", "cme-globex"}
        Session rule: regular hours 09:30-16:00 New York (default), extended hours 04:00-20:00
        New York (Monday to Friday), or a rule of :mod:`tapecast.features.sessions`.
    time_zone : str
        IANA zone of the ``calendar`` rule.
    price : {"auto", "mid", "trade"}
        The price: the quote mid where quoted, else the last trade close (``auto``); the mid
        only, a session without quote bars being an error (``mid``); the trade close (``trade``).
    max_gap_s : int
        A window is invalid when a row of its context or horizon is staler than this.
    context_s : {60, 120, 300}
        Seconds of context per window (C).
    horizon_s : int
        Seconds ahead of the target (H).
    realized_spans : tuple of int
        Spans (seconds, increasing) of the realized-variance features.
    tick_size : float
        The instrument's minimum price increment (US equities above $1: one cent). Trade
        prices move in ticks, quote mids in half-ticks: the lattice of
        :mod:`tapecast.features.price_lattice`.
    """

    session: PriceSession = "us-equity-rth"
    time_zone: str = "UTC"
    price: PriceChoice = "auto"
    max_gap_s: int = 60
    context_s: int = 120
    horizon_s: int = 30
    realized_spans: tuple[int, ...] = (10, 30, 60, 120)
    tick_size: float = 0.01

    def validate(self) -> None:
        """Context in {60, 120, 300}, positive horizon and spans, spans increasing."""
        self.check_choice("context_s", (60, 120, 300))
        self.check_range("horizon_s", low=1)
        self.check_range("max_gap_s", low=0)
        if not self.realized_spans:
            self.fail("realized_spans", "must name at least one span")
        for k, span in enumerate(self.realized_spans):
            self.check_range(f"realized_spans[{k}]", low=1, value=span)
        if any(b <= a for a, b in zip(self.realized_spans, self.realized_spans[1:], strict=False)):
            self.fail("realized_spans", f"must increase, got {self.realized_spans}")
        self.check_range("tick_size", low=0.0, low_inclusive=False)
        try:
            session_zone(self.session, self.time_zone)
        except TapecastError as exc:
            self.fail("time_zone", str(exc))

    @property
    def warmup_s(self) -> int:
        """1-s returns a window's context needs: C + max(span) - 1."""
        return self.context_s + self.realized_spans[-1] - 1


def session_zone(rule: PriceSession, time_zone: str) -> ZoneInfo:
    """The zone the rule's clock runs in (raises TapecastError on an unknown zone)."""
    if rule == "us-equity-extended":
        return ZoneInfo("America/New_York")
    return check_rule(rule, time_zone)


def session_window(rule: PriceSession, zone: ZoneInfo, day: date) -> tuple[int, int] | None:
    """``(open_ns, close_ns)`` of the session named ``day``, or None (the batch grid and the
    streaming grid both ask this)."""
    if rule != "us-equity-extended":
        return session_of_date(rule, zone, day)
    if day.weekday() >= 5:
        return None
    return (to_ns(datetime.combine(day, time(4, 0), zone)),
            to_ns(datetime.combine(day, time(20, 0), zone)))


def _sessions(rule: PriceSession, zone: ZoneInfo, first_ns: int, last_ns: int) -> Sessions:
    day = local_date(first_ns, zone) - timedelta(days=1)
    stop = local_date(last_ns, zone) + timedelta(days=1)
    starts, ends, dates = [], [], []
    while day <= stop:
        bounds = session_window(rule, zone, day)
        if bounds is not None:
            starts.append(bounds[0])
            ends.append(bounds[1])
            dates.append(day)
        day += timedelta(days=1)
    return Sessions(np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64),
                    np.asarray(dates, dtype="datetime64[D]"))


def rv_name(span: int) -> str:
    """Column name of the realized variance over ``span`` seconds."""
    return f"rv_{span}s"


def grid_schema(config: PriceGridConfig) -> pl.Schema:
    """Columns of the grid :func:`price_grid` returns."""
    return pl.Schema({
        "instrument": pl.String(), "session_date": pl.Date(), "ts": _TS, "second": pl.Int64(),
        "price": pl.Float64(), "price_source": _SOURCE, "staleness_s": pl.Int64(),
        "close": pl.Float64(), "volume": pl.Float64(), "has_trade_bar": pl.Boolean(),
        "has_quote_bar": pl.Boolean(), "bid": pl.Float64(), "ask": pl.Float64(),
        "bid_size": pl.Float64(), "ask_size": pl.Float64(), "spread": pl.Float64(),
        "spread_bps": pl.Float64(), "imbalance": pl.Float64(), "log_ret": pl.Float64(),
        **{rv_name(m): pl.Float64() for m in config.realized_spans},
        "time_of_day": pl.Float64(),
    })


# --- inputs -------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class _Input:
    """One input table as arrays: instrument code, start ns, the row it lands on, its values."""

    table: str
    code: NDArray[np.int64]
    ts_ns: NDArray[np.int64]
    values: dict[str, NDArray[np.float64]]
    session: NDArray[np.int64]  # session index, -1 outside every session
    row: NDArray[np.int64]  # grid row, -1 outside


_COLUMNS: Final = {"bars": ("close", "volume"),
                   "quote_bars": ("bid_close", "bid_size", "ask_close", "ask_size")}


def _read_input(frame: pl.DataFrame, table: str, names: list[str]) -> _Input:
    missing = [c for c in ("ts", "instrument", *_COLUMNS[table]) if c not in frame.columns]
    if missing:
        raise TapecastError(f"{table} table lacks column(s) {missing}; expected the canonical "
                            f"{table} table (tapecast.data.schemas)")
    ts = frame["ts"]
    if not isinstance(ts.dtype, pl.Datetime):
        raise TapecastError(f"{table} column 'ts' must be a Datetime, got {ts.dtype}")
    ts_ns = ts.dt.cast_time_unit("ns").to_physical().to_numpy().astype(np.int64)
    if "bar_length" in frame.columns:
        length = frame["bar_length"].dt.total_nanoseconds().fill_null(NS)
        if (bad := frame.filter(length != NS)).height:
            raise TapecastError(
                f"{table}: {bad.height:,} bar(s) of {bad['instrument'][0]} are not 1-second bars "
                f"(bar_length {bad['bar_length'][0]}, first at {bad['ts'][0]}); the price grid "
                f"needs 1-second bars")
    code = frame["instrument"].cast(pl.Enum(names)).to_physical().to_numpy().astype(np.int64)
    values = {c: frame[c].cast(pl.Float64).fill_null(np.nan).to_numpy() for c in _COLUMNS[table]}
    for column in _COLUMNS[table]:
        if column.endswith("close") and (nonpositive := values[column] <= 0).any():
            i = int(np.flatnonzero(nonpositive)[0])
            raise TapecastError(
                f"{table}: {int(nonpositive.sum()):,} non-positive {column} value(s), first "
                f"{values[column][i]} for {frame['instrument'][i]} at row {i} (0-based, ts "
                f"{frame['ts'][i]}); a price must be > 0 (a log return is taken of it)")
    empty = np.zeros(0, dtype=np.int64)
    return _Input(table, code, ts_ns, values, empty, empty)


def _check_order(data: _Input, names: list[str], zone: ZoneInfo) -> None:
    """Timestamps strictly increasing within each instrument, else a one-line error."""
    order = np.argsort(data.code, kind="stable")
    code, ts = data.code[order], data.ts_ns[order]
    same = code[1:] == code[:-1]
    for bad, what in ((same & (ts[1:] < ts[:-1]), "earlier than the row before (not sorted)"),
                      (same & (ts[1:] == ts[:-1]), "duplicated")):
        if bad.any():
            i = int(np.flatnonzero(bad)[0]) + 1
            day = local_date(int(ts[i]), zone)
            raise TapecastError(
                f"{data.table}: {int(bad.sum()):,} timestamp(s) of {names[code[i]]} {what}, "
                f"first on {day} at row {int(order[i])} (0-based, ts "
                f"{np.datetime64(int(ts[i]), 'ns')} UTC); sort by ts and drop duplicates")


def _check_days(inputs: list[_Input], names: list[str], zone: ZoneInfo,
                config: PriceGridConfig) -> None:
    """Every (instrument, local date) with bars has some inside a session."""
    frames = [pl.DataFrame({"code": d.code, "ts": d.ts_ns, "inside": d.session >= 0})
              for d in inputs]
    days = (pl.concat(frames).with_columns(
        pl.col("ts").cast(_TS).dt.convert_time_zone(zone.key).dt.date().alias("day"))
        .group_by("code", "day").agg(pl.col("inside").any(), pl.len())
        .filter(~pl.col("inside")).sort("code", "day"))
    if days.height:
        code, day, n = days.row(0)[0], days.row(0)[1], days.row(0)[3]
        raise TapecastError(
            f"{names[code]} {day}: {n:,} bar(s), none inside the {config.session} session; "
            f"{days.height} instrument-day(s) without session data (choose another session rule "
            f"or drop those days)")


@dataclass(frozen=True, eq=False)
class _Groups:
    """The (instrument, session) groups that have data, in instrument then time order."""

    code: NDArray[np.int64]
    session: NDArray[np.int64]
    opens: NDArray[np.int64]
    lengths: NDArray[np.int64]  # seconds
    offsets: NDArray[np.int64]  # (G + 1,) first row of each group
    dates: NDArray[np.datetime64]

    @property
    def n_rows(self) -> int:
        return int(self.offsets[-1])


def _assign(sessions: Sessions, ts_ns: NDArray[np.int64]) -> NDArray[np.int64]:
    """Session of each bar: it starts at or after the open and ends by the close; else -1."""
    k = sessions.assign(ts_ns)
    ends = sessions.ends[np.maximum(k, 0)] if len(sessions) else ts_ns
    return np.where((k >= 0) & (ts_ns + NS <= ends), k, np.int64(-1))


def _place(inputs: list[_Input], sessions: Sessions) -> tuple[list[_Input], _Groups]:
    """Assign each bar its session, the groups with data, and each bar its grid row."""
    n_s = max(len(sessions), 1)
    placed = [_Input(d.table, d.code, d.ts_ns, d.values, _assign(sessions, d.ts_ns), d.row)
              for d in inputs]
    keys = np.unique(np.concatenate([d.code[d.session >= 0] * n_s + d.session[d.session >= 0]
                                     for d in placed]))
    session = keys % n_s
    opens = sessions.starts[session] if len(sessions) else keys
    lengths = ((sessions.ends[session] - opens) // NS) if len(sessions) else keys
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    groups = _Groups(keys // n_s, session, opens, lengths, offsets,
                     sessions.dates[session] if len(sessions) else sessions.dates)
    out = []
    for d in placed:
        row = np.full(d.ts_ns.shape[0], -1, dtype=np.int64)
        inside = d.session >= 0
        g = np.searchsorted(keys, d.code[inside] * n_s + d.session[inside])
        # known at start + 1 s: the first row stamped at or after it is ceil((start - open) / 1 s)
        row[inside] = offsets[g] - ((opens[g] - d.ts_ns[inside]) // NS)
        out.append(_Input(d.table, d.code, d.ts_ns, d.values, d.session, row))
    return out, groups


# --- the grid -----------------------------------------------------------------------------------
def _last_index(has: NDArray[np.bool_], start: NDArray[np.int64]) -> NDArray[np.int64]:
    """Per row, the last row at or before it (in its group) where ``has``; -1 where none."""
    idx = np.where(has, np.arange(has.shape[0], dtype=np.int64), -1)
    idx = np.maximum.accumulate(idx) if idx.size else idx
    return np.where(idx >= start, idx, -1)


def _take(values: NDArray[np.float64], idx: NDArray[np.int64]) -> NDArray[np.float64]:
    return np.where(idx >= 0, values[np.maximum(idx, 0)], np.nan)


def _scatter(n: int, data: _Input, column: str, fill: float) -> NDArray[np.float64]:
    out = np.full(n, fill)
    keep = data.row >= 0
    out[data.row[keep]] = data.values[column][keep]
    return out


def _present(n: int, data: _Input, names: list[str], groups: _Groups) -> NDArray[np.bool_]:
    """Rows that hold a bar of ``data``; two bars on one row is an error."""
    rows = data.row[data.row >= 0]
    counts = np.bincount(rows, minlength=n)
    if (counts > 1).any():
        row = int(np.flatnonzero(counts > 1)[0])
        g = int(np.searchsorted(groups.offsets, row, side="right")) - 1
        raise TapecastError(
            f"{data.table}: {int((counts > 1).sum()):,} second(s) of {names[groups.code[g]]} on "
            f"{groups.dates[g]} hold more than one 1-second bar (duplicated timestamps)")
    return counts > 0


def _choose_price(mid: NDArray[np.float64], close: NDArray[np.float64], choice: PriceChoice
                  ) -> tuple[NDArray[np.float64], NDArray[np.int8]]:
    has_mid, has_close = np.isfinite(mid), np.isfinite(close)
    if choice == "mid":
        source = np.where(has_mid, _MID, _NONE)
    elif choice == "trade":
        source = np.where(has_close, _TRADE, _NONE)
    else:
        source = np.where(has_mid, _MID, np.where(has_close, _TRADE, _NONE))
    price = np.where(source == _MID, mid, np.where(source == _TRADE, close, np.nan))
    return price, source.astype(np.int8)


def _returns(price: NDArray[np.float64], source: NDArray[np.int8], first: NDArray[np.bool_]
             ) -> NDArray[np.float64]:
    """log(P_j / P_{j-1}); NaN at a group's first row, a missing price or a source change."""
    r = np.full(price.shape[0], np.nan)
    if price.shape[0] > 1:
        with np.errstate(invalid="ignore"):
            r[1:] = np.log(price[1:] / price[:-1])
        r[1:][source[1:] != source[:-1]] = np.nan
    r[first] = np.nan
    return r


def _realized(r: NDArray[np.float64], position: NDArray[np.int64], spans: tuple[int, ...]
              ) -> dict[int, NDArray[np.float64]]:
    """Σ_{i<m} r_{j-i}² summed newest first (the streaming order), NaN until m returns exist."""
    r2 = r * r
    acc = np.zeros(r.shape[0])
    out: dict[int, NDArray[np.float64]] = {}
    for i in range(spans[-1]):
        shifted = np.full(r.shape[0], np.nan)
        shifted[i:] = r2[: r.shape[0] - i]
        shifted[position < i] = np.nan
        acc = acc + shifted
        if i + 1 in spans:
            out[i + 1] = acc
    return out


def price_grid(bars: pl.DataFrame | None, quote_bars: pl.DataFrame | None,
               config: PriceGridConfig | None = None) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The regular 1-second grid of every (instrument, session) that has bars.

    Parameters
    ----------
    bars : pl.DataFrame or None
        Canonical 1-second trade bars (``ts`` = bar start), sorted by ``ts`` within instrument.
    quote_bars : pl.DataFrame or None
        Canonical 1-second quote bars, likewise.
    config : PriceGridConfig, optional

    Returns
    -------
    grid : pl.DataFrame
        One row per second of each session with data, columns :func:`grid_schema`, sorted by
        instrument then time (row order is the row index windows point into).
    summary : dict
        JSON-ready counts (see :func:`_grid_summary`).

    Raises
    ------
    TapecastError
        No bars; a table without its columns, or with bars longer than 1 s; timestamps not
        increasing or duplicated within an instrument; an instrument-day with bars but none
        inside a session; ``price="mid"`` and a session with trade bars but no quote bars.
    """
    config = config or PriceGridConfig()
    zone = session_zone(config.session, config.time_zone)
    given = [(f, t) for f, t in ((bars, "bars"), (quote_bars, "quote_bars"))
             if f is not None and f.height]
    if not given:
        raise TapecastError("price grid: no bars and no quote bars given")
    names = sorted(set().union(*(f["instrument"].unique().to_list() for f, _ in given)))
    inputs = [_read_input(f, t, names) for f, t in given]
    for data in inputs:
        _check_order(data, names, zone)
    first = min(int(d.ts_ns.min()) for d in inputs)
    last = max(int(d.ts_ns.max()) for d in inputs)
    sessions = _sessions(config.session, zone, first, last)
    inputs, groups = _place(inputs, sessions)
    _check_days(inputs, names, zone, config)
    by_table = {d.table: d for d in inputs}
    n = groups.n_rows
    start = np.repeat(groups.offsets[:-1], groups.lengths)  # (N,) first row of the row's group
    position = np.arange(n, dtype=np.int64) - start
    cols = _grid_columns(n, by_table, names, groups, start, position, config)
    grid = _grid_frame(cols, names, groups, position, config)
    summary = _grid_summary(grid, groups, names, inputs, config)
    return grid, summary


def _grid_columns(n: int, by_table: dict[str, _Input], names: list[str], groups: _Groups,
                  start: NDArray[np.int64], position: NDArray[np.int64],
                  config: PriceGridConfig) -> dict[str, NDArray[Any]]:
    none = np.zeros(n, dtype=bool)
    cols: dict[str, NDArray[Any]] = {}
    trade = by_table.get("bars")
    has_trade = none if trade is None else _present(n, trade, names, groups)
    t_idx = _last_index(has_trade, start)
    cols["close"] = (np.full(n, np.nan) if trade is None
                     else _take(_scatter(n, trade, "close", np.nan), t_idx))
    cols["volume"] = np.zeros(n) if trade is None else _scatter(n, trade, "volume", 0.0)
    quote = by_table.get("quote_bars")
    has_quote = none if quote is None else _present(n, quote, names, groups)
    q_idx = _last_index(has_quote, start)
    for side in ("bid", "ask"):
        px = np.full(n, np.nan) if quote is None else _scatter(n, quote, f"{side}_close", np.nan)
        size = np.full(n, np.nan) if quote is None else _scatter(n, quote, f"{side}_size", np.nan)
        idx = _last_index(np.isfinite(px), start)
        cols[side], cols[f"{side}_size"] = _take(px, idx), _take(size, idx)
    if config.price == "mid":
        _require_quotes(has_trade, has_quote, names, groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        mid = (cols["bid"] + cols["ask"]) / 2.0
        spread = cols["ask"] - cols["bid"]
        cols["spread"], cols["spread_bps"] = spread, spread / mid * 1e4
        cols["imbalance"] = ((cols["bid_size"] - cols["ask_size"])
                             / (cols["bid_size"] + cols["ask_size"]))
    price, source = _choose_price(mid, cols["close"], config.price)
    last = np.where(source == _MID, q_idx, np.where(source == _TRADE, t_idx, -1))
    cols.update(price=price, price_source=source, has_trade_bar=has_trade,
                has_quote_bar=has_quote, staleness_s=np.arange(n) - last, stale_known=last >= 0)
    cols["log_ret"] = _returns(price, source, position == 0)
    for span, rv in _realized(cols["log_ret"], position, config.realized_spans).items():
        cols[rv_name(span)] = rv
    cols["time_of_day"] = (position + 1) / np.repeat(groups.lengths, groups.lengths)
    return cols


def _require_quotes(has_trade: NDArray[np.bool_], has_quote: NDArray[np.bool_],
                    names: list[str], groups: _Groups) -> None:
    """``price="mid"``: every session with trade bars has quote bars."""
    g_of = np.repeat(np.arange(groups.code.shape[0]), groups.lengths)
    trades = np.bincount(g_of, weights=has_trade, minlength=groups.code.shape[0])
    quotes = np.bincount(g_of, weights=has_quote, minlength=groups.code.shape[0])
    bad = np.flatnonzero((trades > 0) & (quotes == 0))
    if bad.size:
        g = int(bad[0])
        raise TapecastError(
            f"price='mid': {names[groups.code[g]]} {groups.dates[g]} has {int(trades[g]):,} trade "
            f"bars but no quote bars ({bad.size} session(s) without quote bars); give its quote "
            f"bars or use price='auto'")


def _grid_frame(cols: dict[str, NDArray[Any]], names: list[str], groups: _Groups,
                position: NDArray[np.int64], config: PriceGridConfig) -> pl.DataFrame:
    lengths = groups.lengths
    opens = np.repeat(groups.opens, lengths)
    source = cols["price_source"]
    frame = {
        "instrument": pl.Series(np.asarray(names, dtype=object)[np.repeat(groups.code, lengths)]
                                if names else [], dtype=pl.String),
        "session_date": pl.Series(np.repeat(groups.dates, lengths), dtype=pl.Date),
        "ts": pl.Series(opens + (position + 1) * NS, dtype=pl.Int64).cast(_TS),
        "second": position + 1,
        "price_source": pl.Series(np.asarray(("", *PRICE_SOURCES), dtype=object)[source],
                                  dtype=pl.String).replace("", None).cast(_SOURCE),
        "staleness_s": cols["staleness_s"],
        "_known": cols["stale_known"],
    }
    floats = [c for c, t in grid_schema(config).items() if t == pl.Float64()]
    for name in floats:
        frame[name] = pl.Series(name, cols[name], nan_to_null=True)
    for name in ("has_trade_bar", "has_quote_bar"):
        frame[name] = cols[name]
    known = pl.col("_known")
    return (pl.DataFrame(frame)
            .with_columns(pl.when(known).then(pl.col("staleness_s")).alias("staleness_s"))
            .select(list(grid_schema(config))).cast(grid_schema(config)))


def _grid_summary(grid: pl.DataFrame, groups: _Groups, names: list[str], inputs: list[_Input],
                  config: PriceGridConfig) -> dict[str, Any]:
    """JSON-ready counts of the grid.

    ``sessions``: instrument -> ISO date -> ``seconds``, ``trade_bar_seconds``,
    ``quote_bar_seconds``, seconds by price source (``mid``, ``trade``, ``none``: before the
    first price), ``gaps_over_max`` (forward-fill gaps longer than ``max_gap_s``),
    ``longest_gap_s``, ``crossed_seconds`` (bid > ask) and ``locked_seconds`` (bid == ask);
    ``instruments``: the same summed per instrument, with ``trade_bar_share`` and
    ``quote_bar_share`` (of the session seconds); ``sessions_without_quote_bars``: [instrument,
    ISO date] pairs priced by trades; ``bars_outside_sessions``: per table.
    """
    source = pl.col("price_source")
    stats = grid.group_by("instrument", "session_date", maintain_order=True).agg(
        pl.len().alias("seconds"),
        pl.col("has_trade_bar").sum().alias("trade_bar_seconds"),
        pl.col("has_quote_bar").sum().alias("quote_bar_seconds"),
        (source == "mid").sum().alias("mid"), (source == "trade").sum().alias("trade"),
        source.is_null().sum().alias("none"),
        (pl.col("staleness_s") == config.max_gap_s + 1).sum().alias("gaps_over_max"),
        pl.col("staleness_s").max().fill_null(0).alias("longest_gap_s"),
        (pl.col("spread") < 0).sum().alias("crossed_seconds"),
        (pl.col("spread") == 0).sum().alias("locked_seconds"))
    counts = [c for c in stats.columns if c not in ("instrument", "session_date")]
    sessions: dict[str, dict[str, dict[str, int]]] = {name: {} for name in names}
    for row in stats.iter_rows(named=True):
        sessions[row["instrument"]][row["session_date"].isoformat()] = {
            c: int(row[c]) for c in counts}
    instruments: dict[str, dict[str, Any]] = {}
    for name, days in sessions.items():
        total = {c: sum(d[c] for d in days.values()) for c in counts}
        total["longest_gap_s"] = max((d["longest_gap_s"] for d in days.values()), default=0)
        seconds = max(total["seconds"], 1)
        instruments[name] = {"sessions": len(days), **total,
                             "trade_bar_share": total["trade_bar_seconds"] / seconds,
                             "quote_bar_share": total["quote_bar_seconds"] / seconds}
    no_quotes = stats.filter(pl.col("quote_bar_seconds") == 0)
    return {
        "instruments": instruments,
        "sessions": sessions,
        "sessions_without_quote_bars": [[i, d.isoformat()] for i, d in
                                        no_quotes.select("instrument", "session_date").rows()],
        "bars_outside_sessions": {d.table: int((d.row < 0).sum()) for d in inputs},
        "config": config.to_dict(),
    }
