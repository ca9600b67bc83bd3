"""Synthetic order-flow windows tables in the layout of issue 3 (for tests of splits, datasets,
normalization and feature sets; the window computation itself is tested on real trades)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from tapecast.features.channels import CHANNELS

FIRST_SESSION = dt.date(2024, 1, 2)


def session_dates(n: int, start: dt.date = FIRST_SESSION) -> list[dt.date]:
    """``n`` weekday dates from ``start`` on."""
    days: list[dt.date] = []
    day = start
    while len(days) < n:
        if day.weekday() < 5:
            days.append(day)
        day += dt.timedelta(days=1)
    return days


def _one_instrument(instrument: str, counts: Sequence[int], dates: Sequence[dt.date],
                    rng: np.random.Generator, window_trades: int,
                    zero_signed_share: float) -> pl.DataFrame:
    n = int(sum(counts))
    session = np.repeat(np.asarray(dates, dtype="datetime64[D]"), counts)
    within = np.concatenate([np.arange(c) for c in counts]) if n else np.zeros(0, np.int64)
    start = session.astype("datetime64[ns]") + np.timedelta64(14 * 3600 + 1800, "s") \
        + within * np.timedelta64(60, "s")
    n_trades = np.full(n, window_trades, dtype=np.int64)
    n_unsigned = rng.binomial(window_trades, 0.05, size=n).astype(np.int64)
    n_unsigned[rng.random(n) < zero_signed_share] = window_trades
    n_signed = n_trades - n_unsigned
    root_t = np.sqrt(np.maximum(n_signed, 1))
    imb = np.clip(rng.normal(0.0, 1.0, size=(n, 5)) / root_t[:, None], -1.0, 1.0)
    imb[n_signed == 0] = np.nan
    log_ret = rng.normal(0.0, 1e-3, size=n)
    first = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 1e-3, size=n)))
    data: dict[str, object] = {
        "instrument": [instrument] * n,
        "session_date": session.astype("datetime64[D]"),
        "window": np.arange(n, dtype=np.int64),
        "window_start_ts": start,
        "window_end_ts": start + np.timedelta64(59, "s"),
        "n_trades": n_trades, "n_unsigned": n_unsigned, "n_signed": n_signed,
        "first_price": first, "last_price": first * np.exp(log_ret),
        "tick_size": np.full(n, 0.01),
    }
    values = np.column_stack([imb, log_ret, rng.normal(-12.0, 1.0, size=n),
                              rng.normal(10.0, 0.5, size=n)])
    for k, name in enumerate(CHANNELS):
        data[name] = values[:, k]
    return pl.DataFrame(data)


def make_windows(windows_per_session: Sequence[int] = (30, 30, 30, 30, 30),
                 instruments: Sequence[str] = ("AAA",), seed: int = 0,
                 window_trades: int = 500, zero_signed_share: float = 0.02,
                 per_instrument: Mapping[str, Sequence[int]] | None = None) -> pl.DataFrame:
    """A windows table: every instrument trades on the same weekday sessions.

    Parameters
    ----------
    windows_per_session : sequence of int
        Windows of each session (0 = the instrument did not trade that day).
    instruments : sequence of str
        Instrument names.
    seed : int
        Seed of the random channel values.
    window_trades : int
        Trades per window (``n_trades``).
    zero_signed_share : float
        Share of windows with no signed trade (their imbalances are null).
    per_instrument : mapping instrument -> sequence of int, optional
        Per-instrument override of ``windows_per_session`` (same number of sessions).

    Returns
    -------
    polars.DataFrame
        Sorted by instrument, window; channels null where undefined.
    """
    rng = np.random.default_rng(seed)
    dates = session_dates(len(windows_per_session))
    frames = [_one_instrument(name, (per_instrument or {}).get(name, windows_per_session), dates,
                              rng, window_trades, zero_signed_share) for name in instruments]
    frame = pl.concat(frames).with_columns(
        pl.col("window_start_ts", "window_end_ts").cast(pl.Datetime("ns", "UTC")),
        pl.col("session_date").cast(pl.Date),
        pl.col("instrument").cast(pl.String),
    )
    return frame.with_columns(pl.col(c).fill_nan(None) for c in CHANNELS)
