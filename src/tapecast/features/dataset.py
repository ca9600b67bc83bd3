"""Forecasting samples over order-flow windows: origins, raw batches and the JL-CSDI card inputs.

A *sample* is ``C`` context windows followed by ``H`` horizon windows of one instrument, with
consecutive window ids. Its context may reach back over the overnight gap into earlier sessions,
but its whole horizon lies in one session, and every one of its ``C + H`` windows carries the
requested split label (so no sample crosses a split boundary or uses an embargoed window). Its
*origin* is the last context window: the forecast is made at that window's end.

Origins are taken every ``stride`` windows within each run of consecutive valid origins
(default: 1 for ``train``, ``H`` for ``val``/``test``, so scored horizons never overlap).

Each sample is tagged with its volatility regime: the mean ``log_realized_var`` over its context
windows, cut at two thresholds (the terciles over the training samples, see
:func:`fit_regime_thresholds`) into ``low`` / ``mid`` / ``high``.

The card contract (``../shared/seeds/jl-csdi-esc1-model-card.txt``, CSDI of Tashiro et al. 2021)::

    observed_data (B, L, K)  normalized values, 0 where undefined       L = C + H
    observed_mask (B, L, K)  1 where the value is defined
    gt_mask       (B, L, K)  observed_mask over the context, 0 over the horizon
    timepoints    (B, L)     0 .. L-1
    feature_id    (B, K)     0 .. K-1
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import ArrayLike, NDArray

from tapecast.core.batch import ForecastBatch
from tapecast.core.errors import TapecastError
from tapecast.features.channels import CHANNELS, REGIME_CHANNEL
from tapecast.features.normalize import OrderFlowNormalizer
from tapecast.features.splits import SPLITS

REGIME_LABELS = ("low", "mid", "high")
UNKNOWN_REGIME = "unknown"
_NEEDED = ("instrument", "session_date", "window", "window_end_ts", "n_trades", "n_signed")


def _split_mask(windows: pl.DataFrame, split: str | None,
                split_labels: pl.Series | str | None) -> NDArray[np.bool_]:
    """True where a window may be used by a ``split`` sample (every window when split is None)."""
    if split is None:
        return np.ones(windows.height, dtype=bool)
    if isinstance(split_labels, pl.Series):
        labels = split_labels
    else:
        column = split_labels or "split"
        if column not in windows.columns:
            raise TapecastError(f"the windows have no '{column}' column; assign splits first "
                                "(features.splits.assign_splits) or pass split_labels")
        labels = windows[column]
    if labels.len() != windows.height:
        raise TapecastError(f"{labels.len()} split labels for {windows.height} windows")
    return np.asarray((labels == split).fill_null(False).to_numpy(), dtype=bool)


def _utc_ns(column: pl.Series) -> NDArray[np.datetime64]:
    dtype = column.dtype
    if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
        column = column.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    return np.asarray(column.cast(pl.Datetime("ns")).to_numpy(), dtype="datetime64[ns]")


def _is_sorted(windows: pl.DataFrame) -> bool:
    """Whether rows are ordered by instrument, then strictly increasing window id."""
    prev_inst, prev_win = pl.col("instrument").shift(1), pl.col("window").shift(1)
    in_order = (pl.col("instrument") > prev_inst) \
        | ((pl.col("instrument") == prev_inst) & (pl.col("window") > prev_win))
    return bool(windows.select(in_order.fill_null(True).all()).item())


def _valid_starts(ok: NDArray[np.bool_], linked: NDArray[np.bool_], session: NDArray[np.int32],
                  context: int, horizon: int) -> NDArray[np.int64]:
    """Rows ``r`` (sorted by instrument, window) where rows ``r .. r+L-1`` form a valid sample.

    ``ok``: the row carries the split label; ``linked[i]``: row ``i`` directly follows row
    ``i-1`` (same instrument, window id + 1). The horizon rows must share one session.
    """
    n, length = ok.size, context + horizon
    if n < length:
        return np.zeros(0, dtype=np.int64)
    bad = np.concatenate([[0], np.cumsum(~ok)])  # bad[j] = not-ok rows before j
    cut = np.concatenate([[0], np.cumsum(~linked)])  # cut[j] = breaks at rows < j
    r = np.arange(n - length + 1)
    valid = (bad[r + length] == bad[r]) & (cut[r + length] == cut[r + 1]) \
        & (session[r + context] == session[r + length - 1])
    return np.flatnonzero(valid).astype(np.int64)


def _every_stride(starts: NDArray[np.int64], stride: int) -> NDArray[np.int64]:
    """Keep the first start of each run of consecutive starts and every ``stride``-th after."""
    if starts.size == 0 or stride == 1:
        return starts
    new_run = np.ones(starts.size, dtype=bool)
    new_run[1:] = np.diff(starts) != 1
    run_first = starts[new_run][np.cumsum(new_run) - 1]
    kept: NDArray[np.int64] = starts[(starts - run_first) % stride == 0]
    return kept


def _context_means(values: NDArray[np.float64], starts: NDArray[np.int64],
                   context: int) -> NDArray[np.float64]:
    """NaN-aware mean of ``values[r : r + context]`` for every ``r`` in ``starts``."""
    defined = np.isfinite(values)
    total = np.concatenate([[0.0], np.cumsum(np.where(defined, values, 0.0))])
    count = np.concatenate([[0], np.cumsum(defined)])
    n = count[starts + context] - count[starts]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (total[starts + context] - total[starts]) / n, np.nan)


def _regime_codes(values: NDArray[np.float64],
                  thresholds: tuple[float, float] | None) -> NDArray[np.int8]:
    """0 low, 1 mid, 2 high, 3 unknown (NaN value or no thresholds)."""
    if thresholds is None:
        return np.full(values.shape, 3, dtype=np.int8)
    codes = (values >= thresholds[0]).astype(np.int8) + (values >= thresholds[1])
    return np.where(np.isfinite(values), codes, 3).astype(np.int8)


def regime_labels(values: ArrayLike,
                  thresholds: tuple[float, float] | None) -> NDArray[np.str_]:
    """``low`` below the first threshold, ``high`` at or above the second, ``mid`` between;
    ``unknown`` for NaN values or when no thresholds are given."""
    codes = _regime_codes(np.asarray(values, dtype=np.float64), thresholds)
    return np.asarray((*REGIME_LABELS, UNKNOWN_REGIME))[codes]


class ForecastDataset:
    """The forecast origins of one split of a windows table, and their batches.

    Parameters
    ----------
    windows : polars.DataFrame
        Windows table (issue 3 layout: ``instrument``, ``session_date``, ``window``,
        ``window_end_ts``, ``n_trades``, ``n_signed`` and the channels), any row order.
    split : str or None
        Split label every window of a sample must carry (``train``/``val``/``test``); None
        uses every window.
    context, horizon : int
        ``C`` and ``H`` in windows.
    stride : int, optional
        Origin spacing within a run of valid origins; default 1 for ``train``, ``H`` otherwise.
    regime_thresholds : (float, float), optional
        Tercile cut points of the context-mean ``log_realized_var`` (from the training samples).
    split_labels : polars.Series or str, optional
        Labels per window row, or the name of the label column (default ``split``).
    channels : sequence of str
        Channels in axis order.
    window_trades : int, optional
        Current trades per window; only used to suggest a size when there are too few samples.
    min_samples : int
        Fewer origins than this is a :class:`TapecastError` (default 1: no empty dataset).
    """

    def __init__(self, windows: pl.DataFrame, split: str | None = "train", context: int = 100,
                 horizon: int = 10, stride: int | None = None,
                 regime_thresholds: tuple[float, float] | None = None,
                 split_labels: pl.Series | str | None = None,
                 channels: Sequence[str] = CHANNELS, window_trades: int | None = None,
                 min_samples: int = 1) -> None:
        if context < 1 or horizon < 1:
            raise TapecastError(f"context and horizon must be at least 1, got {context}, {horizon}")
        missing = [c for c in (*_NEEDED, *channels) if c not in windows.columns]
        if missing:
            raise TapecastError(f"the windows table lacks column(s) {missing}")
        if split is not None and split not in SPLITS:
            raise TapecastError(f"unknown split {split!r}; expected one of {list(SPLITS)}")
        self.split, self.context, self.horizon = split, context, horizon
        self.stride = stride if stride is not None else (1 if split == "train" else horizon)
        if self.stride < 1:
            raise TapecastError(f"stride must be at least 1, got {self.stride}")
        self.channels = tuple(channels)
        self.regime_thresholds = regime_thresholds
        ok = _split_mask(windows, split, split_labels)
        frame = windows.with_columns(pl.Series("_ok", ok))
        if not _is_sorted(frame):
            frame = frame.sort("instrument", "window")
        self.windows = frame.drop("_ok")
        self._load_arrays(frame)
        starts = _valid_starts(self._ok, self._linked, self._session, context, horizon)
        self._start = _every_stride(starts, self.stride)
        self._regime_value = _context_means(self._x[:, self._regime_k()], self._start, context)
        if self._start.size < min_samples:
            raise TapecastError(self._too_few_message(min_samples, window_trades))
        self.origins = self._origins_frame()

    # construction helpers --------------------------------------------------------------------
    def _load_arrays(self, frame: pl.DataFrame) -> None:
        self._x = frame.select(pl.col(c).cast(pl.Float64) for c in self.channels) \
            .to_numpy().astype(np.float64)  # (N, K), NaN where null
        self._ok = frame["_ok"].to_numpy().astype(bool)
        self._n_trades = frame["n_trades"].cast(pl.Int64).to_numpy()
        self._n_signed = frame["n_signed"].cast(pl.Int64).to_numpy()
        self._window = frame["window"].cast(pl.Int64).to_numpy()
        self._end_ts = _utc_ns(frame["window_end_ts"])
        self._session = frame["session_date"].cast(pl.Int32).to_numpy()
        new_instrument = frame.select((pl.col("instrument") != pl.col("instrument").shift(1))
                                      .fill_null(True))["instrument"].to_numpy()
        self._instrument_code = np.cumsum(new_instrument) - 1  # (N,) index into the names
        self._instrument_names = np.asarray(frame["instrument"].filter(new_instrument)
                                            .cast(pl.String).to_list(), dtype=str)
        step = np.zeros(frame.height, dtype=bool)
        step[1:] = np.diff(self._window) == 1
        self._linked = ~new_instrument & step

    def _regime_k(self) -> int:
        if REGIME_CHANNEL not in self.channels:
            raise TapecastError(f"regimes need the '{REGIME_CHANNEL}' channel")
        return self.channels.index(REGIME_CHANNEL)

    def _origins_frame(self) -> pl.DataFrame:
        s, c, length = self._start, self.context, self.context + self.horizon
        names = pl.Series(self._instrument_names.tolist(), dtype=pl.String)
        codes = _regime_codes(self._regime_value, self.regime_thresholds)
        regimes = pl.Series(codes).replace_strict(
            [0, 1, 2, 3], [*REGIME_LABELS, UNKNOWN_REGIME], return_dtype=pl.String)
        return pl.DataFrame({
            "instrument": names.gather(self._instrument_code[s]),
            "origin": self._window[s + c - 1],
            "first_window": self._window[s],
            "last_window": self._window[s + length - 1],
            "session_date": self._session[s + length - 1],
            "origin_ts": self._end_ts[s + c - 1],
            "regime_value": self._regime_value,
            "regime": regimes,
        }).with_columns(
            pl.col("session_date").cast(pl.Date),
            pl.col("origin_ts").cast(pl.Datetime("ns")).dt.replace_time_zone("UTC"))

    def _too_few_message(self, min_samples: int, window_trades: int | None) -> str:
        length = self.context + self.horizon
        what = f"'{self.split}'" if self.split is not None else "any"
        head = (f"too few windows for {what} forecasting samples: {self._start.size} sample(s) "
                f"of {length} windows ({self.context} context + {self.horizon} horizon, stride "
                f"{self.stride}) where at least {min_samples} are needed")
        if not self._ok.any():
            return f"{head}; no window carries the label '{self.split}'"
        return (f"{head}; the longest run of consecutive {what} windows is "
                f"{self.longest_run}, {what} windows per session: "
                f"{sessions_text(self._session_counts())}; "
                f"{size_hint(self.size_factor(min_samples), window_trades)}")

    @property
    def longest_run(self) -> int:
        """Longest stretch of consecutive windows of one instrument carrying the split label."""
        return _longest_run(self._ok, self._linked)

    def size_factor(self, min_samples: int = 1) -> float:
        """How many times smaller the windows should be for ``min_samples`` samples (>= 1).

        Windows scale ~ 1/size, so a run of R windows becomes ~ R·f windows when the window size
        is divided by f; a sample needs ``C + H + (min_samples - 1)·stride`` windows in a run and
        ``H`` in one session. ``inf`` when no window carries the split label.
        """
        if not self._ok.any():
            return float("inf")
        need = self.context + self.horizon + (min_samples - 1) * self.stride
        longest_session = max(n for _, _, n in self._session_counts())
        return max(need / self.longest_run, self.horizon / longest_session, 1.0)

    def _session_counts(self) -> list[tuple[str, Any, int]]:
        part = pl.DataFrame({"i": self._instrument_code[self._ok],
                             "d": self._session[self._ok]}) \
            .with_columns(pl.col("d").cast(pl.Date)).group_by("i", "d", maintain_order=True).len()
        return [(str(self._instrument_names[i]), d, int(n)) for i, d, n in part.iter_rows()]

    # access -----------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._start.size)

    def __repr__(self) -> str:
        return (f"ForecastDataset(split={self.split!r}, samples={len(self)}, "
                f"context={self.context}, horizon={self.horizon}, stride={self.stride})")

    @property
    def regime_values(self) -> NDArray[np.float64]:
        """Mean ``log_realized_var`` over each sample's context windows, shape (N,)."""
        return self._regime_value

    def batch(self, index: int | slice | ArrayLike) -> ForecastBatch:
        """Raw-unit batch of the samples at ``index`` (an int, slice, int array or bool mask).

        Returns
        -------
        ForecastBatch
            context (B, K, C), target (B, K, H), window_ids / timestamps (B, C + H),
            instruments and regimes (B,); extras ``n_trades`` and ``n_signed`` (B, C + H).
        """
        sel = np.atleast_1d(np.arange(len(self))[index])  # type: ignore[index]  # (B,)
        rows = self._start[sel][:, None] + np.arange(self.context + self.horizon)  # (B, L)
        values = self._x[rows].transpose(0, 2, 1)  # (B, L, K) -> (B, K, L)
        regimes = regime_labels(self._regime_value[sel], self.regime_thresholds)
        return ForecastBatch(self.channels, values[:, :, :self.context],
                             values[:, :, self.context:], self._window[rows], self._end_ts[rows],
                             self._instrument_names[self._instrument_code[self._start[sel]]],
                             regimes, {"n_trades": self._n_trades[rows],
                                       "n_signed": self._n_signed[rows]})

    def batches(self, batch_size: int, shuffle: bool = False,
                seed: int | None = None) -> Iterator[ForecastBatch]:
        """All samples in batches of ``batch_size`` (shuffled with ``seed`` when asked)."""
        order = np.arange(len(self))
        if shuffle:
            order = np.random.default_rng(seed).permutation(order)
        for i in range(0, order.size, batch_size):
            yield self.batch(order[i:i + batch_size])

    def card_inputs(self, batch: ForecastBatch,
                    normalizer: OrderFlowNormalizer) -> dict[str, NDArray[np.float32]]:
        """The JL-CSDI input dict of ``batch`` (see :func:`card_inputs`)."""
        return card_inputs(batch, normalizer)


def _longest_run(ok: NDArray[np.bool_], linked: NDArray[np.bool_]) -> int:
    """Longest stretch of consecutive (linked) rows that are all ``ok``."""
    brk = ~ok | ~linked
    run_id = np.cumsum(brk)  # a run starts at every break
    ids = run_id[ok]
    return int(np.bincount(ids).max()) if ids.size else 0


def sessions_text(counts: Sequence[tuple[str, Any, int]], limit: int = 12) -> str:
    """``"SPY 2013-10-07: 482, ..."``: the first ``limit`` (instrument, session, windows) rows."""
    shown = ", ".join(f"{i} {d}: {n}" for i, d, n in counts[:limit])
    return shown + (f" and {len(counts) - limit} more" if len(counts) > limit else "")


def size_hint(factor: float, window_trades: int | None) -> str:
    """Words for "windows ``factor`` times smaller would give enough samples"."""
    if not np.isfinite(factor):
        return "no window size helps: the split has no window"
    if window_trades:
        return (f"about {int(window_trades / factor)} trades per window (now {window_trades}; "
                "windows scale ~ 1/size) would give enough")
    return f"windows about {factor:.1f}x smaller would give enough"


def card_inputs(batch: ForecastBatch,
                normalizer: OrderFlowNormalizer) -> dict[str, NDArray[np.float32]]:
    """The card's input contract for ``batch``, normalized with ``normalizer``.

    The horizon is normalized with its own realized counts (training targets); at inference the
    target is NaN, so its mask is 0 there.

    Returns
    -------
    dict of str -> ndarray, float32
        ``observed_data`` (B, L, K) with 0 where undefined, ``observed_mask`` (B, L, K),
        ``gt_mask`` (B, L, K) = observed_mask over the C context windows and 0 over the H
        horizon windows (as in CSDI's forecasting setup), ``timepoints`` (B, L) = 0..L-1,
        ``feature_id`` (B, K) = 0..K-1; L = C + H.
    """
    if tuple(normalizer.channels) != tuple(batch.channels):
        raise TapecastError(f"normalizer channels {list(normalizer.channels)} differ from the "
                            f"batch channels {list(batch.channels)}")
    b, k, c = batch.context.shape
    length = c + batch.horizon
    raw = np.concatenate([batch.context, batch.target], axis=2)  # (B, K, L)
    z = normalizer.transform(raw, batch.extra("n_signed"), batch.extra("n_trades"),
                             axis=1).transpose(0, 2, 1)  # (B, K, L) -> (B, L, K)
    observed = np.isfinite(z)
    in_context = (np.arange(length) < c)[None, :, None]  # (1, L, 1)
    return {
        "observed_data": np.where(observed, z, 0.0).astype(np.float32),
        "observed_mask": observed.astype(np.float32),
        "gt_mask": (observed & in_context).astype(np.float32),
        "timepoints": np.broadcast_to(np.arange(length, dtype=np.float32), (b, length)).copy(),
        "feature_id": np.broadcast_to(np.arange(k, dtype=np.float32), (b, k)).copy(),
    }


def fit_regime_thresholds(train: ForecastDataset) -> tuple[float, float]:
    """Terciles (1/3 and 2/3 quantiles) of the context-mean ``log_realized_var`` over the
    samples of the training dataset ``train``.

    Raises
    ------
    TapecastError
        When ``train`` is not a training dataset or has fewer than 3 defined samples.
    """
    if train.split not in ("train", None):
        raise TapecastError(f"regime thresholds are fitted on training samples, got the "
                            f"'{train.split}' split")
    values = train.regime_values[np.isfinite(train.regime_values)]
    if values.size < 3:
        raise TapecastError(f"regime terciles need at least 3 training samples, got "
                            f"{values.size}")
    low, high = np.quantile(values, [1 / 3, 2 / 3])
    return float(low), float(high)
