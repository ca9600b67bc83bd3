"""Order-flow features: trade-time windows and their 8 channels (the JL-CSDI input).

The tape of each instrument is cut into windows of ``window_trades`` trades (or of
``window_volume`` traded size) inside sessions (:mod:`tapecast.features.sessions`), after the print
filters (:mod:`tapecast.features.filters`). Per window, with ε_i ∈ {+1, -1} the aggressor sign and
v_i the size of the window's *signed* trades, p the prices, r_i = log(p_i / p_{i-1}) between
consecutive trades of the window:

1–5. ``imb_a{a}`` = I_a = Σ ε_i v_i^a / Σ v_i^a, a ∈ {0, 0.25, 0.5, 0.75, 1}: the a-family
     imbalance of Maitrier & Bouchaud (2025), arXiv 2506.07711 (a = 0: sign imbalance; a = 1:
     volume imbalance). Unsigned trades (ε = 0) are left out of both sums; null without signed
     trades.
6.   ``log_ret`` = log(p_last / p_last of the previous window of the same session); the first
     window of a session uses its own first price.
7.   ``log_realized_var`` = log(max(Σ r_i², log(1 + tick / p_last)²)): floored at the squared log
     return of one tick at the window's last price, so a window without a price change sits next
     to the quietest real windows instead of at -inf.
8.   ``log_tot_vol`` = log Σ v over all the window's trades.

The heavy lifting is two fused numba passes (:mod:`tapecast.features.kernels`);
:class:`tapecast.features.streaming.StreamingOrderFlow` gives the same numbers one trade at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import polars as pl
from numpy.typing import NDArray

from tapecast.core.config import ConfigBase
from tapecast.core.errors import TapecastError
from tapecast.features import kernels
from tapecast.features.channels import CHANNELS, IMBALANCE_CHANNELS
from tapecast.features.filters import (
    ConditionCodes,
    print_mask,
    small_session_mask,
)
from tapecast.features.sessions import (
    SessionRule,
    Sessions,
    assign_sessions,
    check_rule,
    session_bounds,
)

# CHANNELS (the fixed order) and IMBALANCE_CHANNELS live in features/channels.py, shared with
# normalization and datasets; re-exported here as the order-flow pipeline's vocabulary
ALPHAS: Final[tuple[float, ...]] = (0.0, 0.25, 0.5, 0.75, 1.0)

__all__ = [
    "ALPHAS", "CHANNELS", "IMBALANCE_CHANNELS", "WINDOWS_SCHEMA", "OrderFlowConfig",
    "OrderFlowResult", "infer_tick_size", "orderflow_windows",
]

_TS: Final = pl.Datetime("ns", "UTC")
WINDOWS_SCHEMA: Final = pl.Schema({
    "instrument": pl.String(), "session_date": pl.Date(), "window": pl.Int64(),
    "window_start_ts": _TS, "window_end_ts": _TS, "n_trades": pl.Int64(),
    "n_unsigned": pl.Int64(), "n_signed": pl.Int64(), "first_price": pl.Float64(),
    "last_price": pl.Float64(), "tick_size": pl.Float64(),
    **{name: pl.Float64() for name in CHANNELS},
})
TICK_SAMPLE: Final = 200_000  # trades per instrument looked at by infer_tick_size
_REQUIRED: Final = ("ts", "instrument", "price", "size", "side")


@dataclass(frozen=True)
class OrderFlowConfig(ConfigBase):
    """How trades become windows.

    Parameters
    ----------
    window_trades : int or None
        Trades per window (default 500). Exactly one of ``window_trades`` and ``window_volume``.
    window_volume : float or None
        Traded size per window: a window closes at the trade that brings its size to ``>= V``.
    session : {"calendar", "us-equity-rth", "cme-globex"}
        Session rule; windows never span a session (:mod:`tapecast.features.sessions`).
    time_zone : str
        IANA zone of the ``calendar`` rule's day (the exchange rules carry their own zone).
    drop_suspicious : bool
        Drop prints flagged suspicious.
    condition_codes : {"auto", "lean", "none"}
        Reading of ``sale_condition`` for the non-market print filter.
    regular_hours_only : bool
        Keep only 09:30–16:00 America/New_York prints.
    min_trades : int
        Drop sessions with fewer kept trades (0: keep all).
    tick_size : float or None
        Price tick for the realized-variance floor; None: inferred per instrument
        (:func:`infer_tick_size`).
    """

    window_trades: int | None = 500
    window_volume: float | None = None
    session: SessionRule = "calendar"
    time_zone: str = "UTC"
    drop_suspicious: bool = True
    condition_codes: ConditionCodes = "auto"
    regular_hours_only: bool = False
    min_trades: int = 0
    tick_size: float | None = None

    def validate(self) -> None:
        """One window clock, positive sizes and tick, a known time zone (types: ConfigBase)."""
        if (self.window_trades is None) == (self.window_volume is None):
            self.fail(None, "set exactly one of window_trades and window_volume "
                            f"(got {self.window_trades!r} and {self.window_volume!r})")
        self.check_range("window_trades", low=1)
        for name in ("window_volume", "tick_size"):
            self.check_range(name, low=0.0, low_inclusive=False)
        self.check_range("min_trades", low=0)
        try:
            check_rule(self.session, self.time_zone)
        except TapecastError as exc:
            self.fail("time_zone", str(exc))


@dataclass(frozen=True, eq=False)
class OrderFlowResult:
    """Windows table and what happened on the way.

    Parameters
    ----------
    windows : pl.DataFrame
        One row per window, columns :data:`WINDOWS_SCHEMA`, sorted by instrument, window.
    summary : dict
        JSON-ready: ``trades_in``, ``trades_in_windows``, ``windows`` (per instrument),
        ``windows_per_session`` (instrument -> ISO date -> count), ``dropped_partial_windows``
        and ``partial_window_trades`` (per instrument), ``unsigned_share`` (per instrument, over
        the trades in windows), ``dropped_prints`` (reason -> count), ``tick_sizes`` and
        ``tick_size_inferred``.
    config : OrderFlowConfig
    """

    windows: pl.DataFrame
    summary: dict[str, Any]
    config: OrderFlowConfig


def infer_tick_size(prices: NDArray[np.float64]) -> float:
    """The price tick of one instrument, from its trade prices.

    The candidates are the non-zero absolute changes between consecutive trades among the first
    :data:`TICK_SAMPLE` trades, rounded to 1e-9 (float noise); the tick is the smallest candidate
    seen at least 10 % as often as the most common one (robust to rare off-grid prints, and right
    when most moves are several ticks), rounded to 6 significant digits. Without any price change
    it is ``10**-d`` with ``d`` the decimals (0–9) needed to write every price. SPY 2013 → 0.01,
    ES → 0.25.

    Parameters
    ----------
    prices : ndarray, float64, shape (N,)
        Trade prices in time order.

    Returns
    -------
    float
    """
    prices = prices[:TICK_SAMPLE]
    steps = np.abs(np.diff(prices))
    steps = np.round(steps[steps > 0], 9)
    if steps.size == 0:
        for decimals in range(10):
            scaled = prices * 10.0**decimals
            if np.all(np.abs(scaled - np.round(scaled)) < 1e-6 * np.maximum(1.0, scaled)):
                return float(10.0**-decimals)
        return 1e-9
    values, counts = np.unique(steps, return_counts=True)
    frequent = values[counts >= 0.1 * counts.max()]
    return float(f"{frequent[0]:.6g}")


@dataclass(frozen=True, eq=False)
class _Tape:
    """The trades as arrays, grouped by instrument (rows ``bounds[k]:bounds[k+1]`` are
    instrument ``names[k]``, in time order)."""

    names: pl.Series
    bounds: NDArray[np.int64]
    ts_ns: NDArray[np.int64]
    price: NDArray[np.float64]
    size: NDArray[np.float64]
    side: NDArray[np.int8]


def _check_columns(trades: pl.DataFrame) -> None:
    missing = [name for name in _REQUIRED if name not in trades.columns]
    if missing:
        raise TapecastError(f"trades table lacks column(s) {missing}; expected the canonical "
                            f"trades table with side set (tapecast.data.sign_trades)")


def _group_by_instrument(trades: pl.DataFrame) -> tuple[pl.DataFrame, _Tape]:
    """Each instrument's rows together (stable sort, instruments in name order) as arrays.

    Raises
    ------
    TapecastError
        ``ts`` decreases within an instrument.
    """
    instrument = trades["instrument"]
    single = trades.height == 0 or bool((instrument == instrument[0]).all())
    if not single:
        trades = trades.with_row_index("_row").sort("instrument", maintain_order=True)
    code = (np.zeros(trades.height, dtype=np.int64) if single
            else trades["instrument"].rle_id().cast(pl.Int64).to_numpy())
    ts = trades["ts"]
    if not isinstance(ts.dtype, pl.Datetime):
        raise TapecastError(f"trades column 'ts' must be a Datetime, got {ts.dtype}")
    if ts.dtype.time_unit != "ns":
        ts = ts.dt.cast_time_unit("ns")
    ts_ns = ts.to_physical().to_numpy()  # UTC nanoseconds (naive times are taken as UTC)
    bad = np.flatnonzero(ts_ns[1:] < ts_ns[:-1])
    if not single and bad.size:
        bad = bad[code[bad + 1] == code[bad]]
    if bad.size:
        i = int(bad[0]) + 1
        row = int(trades["_row"][i]) if "_row" in trades.columns else i
        raise TapecastError(
            f"trades not sorted by ts within instrument {trades['instrument'][i]!r}: row {row} "
            f"(0-based, ts {trades['ts'][i]}) is earlier than the trade before it "
            f"({trades['ts'][i - 1]}); sort the trades by ts first")
    names = (instrument.head(1) if single
             else trades["instrument"].unique(maintain_order=True))
    bounds = np.searchsorted(code, np.arange(names.len() + 1)).astype(np.int64)
    tape = _Tape(names, bounds, ts_ns, _column(trades, "price", pl.Float64),
                 _column(trades, "size", pl.Float64), _column(trades, "side", pl.Int8))
    return trades.drop("_row", strict=False), tape


def _column(trades: pl.DataFrame, name: str, dtype: type[pl.DataType]) -> NDArray[Any]:
    """A column as a NumPy array of ``dtype`` (zero-copy for canonical tables; ``side`` nulls
    become 0, unknown)."""
    column = trades[name]
    if column.dtype != dtype:
        column = column.cast(dtype)
    if name == "side" and column.null_count():
        column = column.fill_null(0)
    return column.to_numpy()


def _session_groups(
    tape: _Tape, keep: NDArray[np.bool_] | None, config: OrderFlowConfig, dropped: dict[str, int],
) -> tuple[NDArray[np.int64], Sessions]:
    """Group code (instrument k, session s) -> ``k * S + s`` per trade; -1 outside every session
    or in a session with fewer than ``min_trades`` kept trades (counted in ``dropped``)."""
    n_instruments = tape.names.len()
    dropped["small_session"] = 0
    if tape.ts_ns.shape[0] == 0:
        return assign_sessions(tape.ts_ns, config.session, config.time_zone)
    first = int(tape.ts_ns[tape.bounds[:-1]].min())
    last = int(tape.ts_ns[tape.bounds[1:] - 1].max())
    sessions = session_bounds(config.session, config.time_zone, first, last)
    if n_instruments == 1:
        group = sessions.assign_sorted(tape.ts_ns)
    else:
        group = np.empty(tape.ts_ns.shape[0], dtype=np.int64)
        for k in range(n_instruments):
            rows = slice(tape.bounds[k], tape.bounds[k + 1])
            session = sessions.assign_sorted(tape.ts_ns[rows])
            group[rows] = np.where(session >= 0, session + k * len(sessions), session)
    if config.min_trades > 1:
        small = small_session_mask(group if keep is None else np.where(keep, group, -1),
                                   config.min_trades)
        dropped["small_session"] = int(np.count_nonzero(small))
        group[small] = -1
    return group, sessions


def _tick_sizes(tape: _Tape, keep: NDArray[np.bool_] | None, config: OrderFlowConfig
                ) -> NDArray[np.float64]:
    """Tick size per instrument: configured, or inferred on its kept prices among its first
    :data:`TICK_SAMPLE` trades."""
    n_instruments = tape.names.len()
    if config.tick_size is not None:
        return np.full(n_instruments, config.tick_size)
    ticks = np.ones(n_instruments)
    for k in range(n_instruments):
        rows = slice(tape.bounds[k], min(tape.bounds[k + 1], tape.bounds[k] + TICK_SAMPLE))
        price = tape.price[rows] if keep is None else tape.price[rows][keep[rows]]
        if price.size:
            ticks[k] = infer_tick_size(price)
    return ticks


def orderflow_windows(trades: pl.DataFrame, config: OrderFlowConfig | None = None
                      ) -> OrderFlowResult:
    """Trade-time windows of the tape and their 8 order-flow channels.

    Parameters
    ----------
    trades : pl.DataFrame
        Canonical trades (``tapecast.data.schemas.TRADES``) with ``side`` already set (the
        caller runs :func:`tapecast.data.sign_trades`), sorted by ``ts`` within instrument.
    config : OrderFlowConfig, optional
        Defaults to ``OrderFlowConfig()`` (500-trade windows, calendar UTC days).

    Returns
    -------
    OrderFlowResult
        ``windows`` with :data:`WINDOWS_SCHEMA` (one row per complete window), and ``summary``.

    Raises
    ------
    TapecastError
        Missing columns, or ``ts`` decreasing within an instrument.
    """
    config = OrderFlowConfig() if config is None else config
    _check_columns(trades)
    grouped, tape = _group_by_instrument(trades)
    mask, dropped = print_mask(grouped, drop_suspicious=config.drop_suspicious,
                               condition_codes=config.condition_codes,
                               regular_hours_only=config.regular_hours_only)
    keep = mask if sum(dropped.values()) else None
    group, sessions = _session_groups(tape, keep, config, dropped)
    n_sessions = max(len(sessions), 1)
    window, n_windows, partial, outside = kernels.assign_windows(
        group, tape.size, config.window_trades, config.window_volume,
        tape.names.len() * n_sessions, keep)
    dropped["outside_session"] = outside - dropped["small_session"]
    sums = kernels.window_sums(tape.ts_ns, tape.price, tape.size, tape.side, window, group,
                               n_windows)
    ticks = _tick_sizes(tape, keep, config)
    instrument = sums.group // n_sessions
    channels = kernels.window_channels(sums, ticks[instrument])
    dates = sessions.dates[sums.group % n_sessions] if len(sessions) else sessions.dates
    frame = _windows_frame(sums, channels, tape.names, instrument, dates, ticks[instrument])
    summary = _summary(trades.height, frame, partial.reshape(-1, n_sessions), tape.names, ticks,
                       dropped, config)
    return OrderFlowResult(frame, summary, config)


def _windows_frame(
    sums: kernels.WindowSums, channels: NDArray[np.float64], names: pl.Series,
    instrument: NDArray[np.int64], dates: NDArray[np.datetime64], tick: NDArray[np.float64],
) -> pl.DataFrame:
    """Assemble the windows table (schema :data:`WINDOWS_SCHEMA`)."""
    first = np.searchsorted(instrument, instrument)  # first window of each row's instrument
    window = np.arange(instrument.shape[0], dtype=np.int64) - first
    columns: dict[str, Any] = {
        "instrument": names.gather(pl.Series(instrument, dtype=pl.Int64)),
        "session_date": pl.Series(dates, dtype=pl.Date),
        "window": window,
        "window_start_ts": pl.Series(sums.start_ns, dtype=pl.Int64).cast(_TS),
        "window_end_ts": pl.Series(sums.end_ns, dtype=pl.Int64).cast(_TS),
        "n_trades": sums.n_trades, "n_unsigned": sums.n_unsigned,
        "n_signed": sums.n_trades - sums.n_unsigned,
        "first_price": sums.first_price, "last_price": sums.last_price, "tick_size": tick,
    }
    for k, name in enumerate(CHANNELS):
        columns[name] = pl.Series(name, channels[:, k], nan_to_null=True)
    return pl.DataFrame(columns, schema=WINDOWS_SCHEMA)


def _summary(
    trades_in: int, frame: pl.DataFrame, partial: NDArray[np.int64], names: pl.Series,
    ticks: NDArray[np.float64], dropped: dict[str, int], config: OrderFlowConfig,
) -> dict[str, Any]:
    """JSON-ready run summary (see :class:`OrderFlowResult`)."""
    per_session = frame.group_by("instrument", "session_date", maintain_order=True).len()
    by_instrument = frame.group_by("instrument", maintain_order=True).agg(
        pl.len().alias("windows"), pl.col("n_trades").sum(), pl.col("n_unsigned").sum())
    summary: dict[str, Any] = {
        "trades_in": trades_in,
        "trades_in_windows": int(frame["n_trades"].sum()),
        "windows": {name: 0 for name in names},
        "windows_per_session": {name: {} for name in names},
        "dropped_partial_windows": {name: int(np.count_nonzero(partial[k]))
                                    for k, name in enumerate(names)},
        "partial_window_trades": {name: int(partial[k].sum()) for k, name in enumerate(names)},
        "unsigned_share": {},
        "dropped_prints": dropped,
        "tick_sizes": {name: float(ticks[k]) for k, name in enumerate(names)},
        "tick_size_inferred": config.tick_size is None,
    }
    for row in by_instrument.iter_rows(named=True):
        summary["windows"][row["instrument"]] = row["windows"]
        summary["unsigned_share"][row["instrument"]] = row["n_unsigned"] / row["n_trades"]
    for inst, day, count in per_session.iter_rows():
        summary["windows_per_session"][inst][day.isoformat()] = count
    return summary
