"""Synthetic ForecastBatches for the forecaster tests (built directly, no dataset needed)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from tapecast.core.batch import ForecastBatch

CHANNELS = ("imb_a0", "imb_a025", "imb_a05", "imb_a075", "imb_a1",
            "log_ret", "log_realized_var", "log_tot_vol")
T0 = np.datetime64("2013-10-07T13:30:00", "ns")


def synthetic_windows(rng: np.random.Generator, n: int) -> NDArray[np.float64]:
    """``n`` windows of 8 order-flow-like channels, shape (n, 8): an AR(1) driver per group."""
    latent = np.zeros((n, 3))
    shocks = rng.standard_normal((n, 3))
    for t in range(1, n):
        latent[t] = 0.8 * latent[t - 1] + shocks[t]
    imb = np.tanh(0.4 * latent[:, :1] + 0.1 * rng.standard_normal((n, 5)))  # correlated
    log_ret = 1e-4 * rng.standard_t(5, size=(n, 1))
    log_rv = -18.0 + 0.5 * latent[:, 1:2]
    log_vol = 10.0 + 0.3 * latent[:, 2:3] + 0.2 * log_rv + 3.6
    return np.hstack([imb, log_ret, log_rv, log_vol])


def batch_from_series(series: NDArray[np.float64], context: int, horizon: int, *,
                      stride: int = 1, instrument: str = "SPY", first_id: int = 0,
                      channels: tuple[str, ...] | None = None) -> ForecastBatch:
    """Origins over one window series (N, K) with the given stride, ids from ``first_id``."""
    n, k = series.shape
    length = context + horizon
    starts = np.arange(0, n - length + 1, stride)
    idx = starts[:, None] + np.arange(length)  # (B, C+H)
    seq = series[idx].transpose(0, 2, 1)  # (B, K, C+H)
    b = starts.size
    ids = (first_id + idx).astype(np.int64)
    regimes = np.array(["low", "mid", "high"])[np.arange(b) % 3]
    # trade counts that vary by window (seeded by the window id), so a test notices counts put
    # at the wrong positions
    n_trades = 30 + (ids * 7919) % 21  # (B, C+H), 30..50
    n_signed = n_trades - (ids * 104729) % 5  # 0..4 unsigned trades
    return ForecastBatch(channels or CHANNELS[:k], seq[:, :, :context], seq[:, :, context:],
                         ids, T0 + ids * np.timedelta64(1, "s"), np.full(b, instrument),
                         regimes, {"n_trades": n_trades.astype(np.int64),
                                   "n_signed": n_signed.astype(np.int64)})


def concat(*batches: ForecastBatch) -> ForecastBatch:
    """Origins of several batches together (same channels and lengths)."""
    return ForecastBatch.concat(list(batches))


def sessions_batch(sessions: list[NDArray[np.float64]], context: int, horizon: int
                   ) -> ForecastBatch:
    """Stride-1 origins over consecutive sessions, as the dataset builds them.

    Window ids run on across sessions; a context may reach back into earlier sessions, but
    every horizon lies in one session.
    """
    whole = batch_from_series(np.concatenate(sessions), context, horizon)
    session_of = np.repeat(np.arange(len(sessions)), [len(s) for s in sessions])
    horizon_ids = whole.window_ids[:, context:]  # (B, H)
    keep = session_of[horizon_ids[:, 0]] == session_of[horizon_ids[:, -1]]
    return whole.select(np.flatnonzero(keep))
