"""Stylized facts of a Level-3 order feed, generated sessions against a real one (TradeFM §9.2).

:func:`feed_facts` reduces one canonical ``events`` table (one instrument) to the samples the
comparison needs; :func:`compare_feeds` compares a list of generated sessions (rollouts) with the
real one and returns a JSON-ready dictionary; :func:`plot_comparison` draws the overlays.

Definitions (used for real and generated alike):

* ``dt``, ``delta_p``, ``size``: the token events of
  :func:`tapecast.features.events.event_features` (adds and cancels; snapshot records are none),
  without each session's first token (its ``dt`` is 0 by definition). ``dt`` in seconds,
  ``delta_p`` relative to the estimator mid p_mid, ``size`` in contracts/shares.
* ``spread``: best ask − best bid in ticks, after each event of
  :func:`tapecast.data.book.replay_book` that ends a packet (flags & 0x80; every event when the
  source sets no such flag), snapshot records excluded, only where both sides are present and the
  book is neither locked nor crossed (those are counted).
* mid: (best bid + best ask) / 2 at the same packet ends; a crossed or one-sided state makes the
  mid undefined until the next valid one.
* returns at interval Δ: on the grid t_k = t_0 + kΔ (t_0 the first valid mid at or after
  ``start``), r_k = log m(t_k) − log m(t_{k−1}), m(t) the last mid at or before t ("log change of
  the last mid in each interval"); a return is dropped when either end's state is undefined.

Metrics (per feature, generated pooled over rollouts vs real):

* K-S: sup_x |F_g(x) − F_r(x)| (two-sample, as ``scipy.stats.ks_2samp``).
* W1 = ∫ |F_g − F_r| dx (``scipy.stats.wasserstein_distance``), and the normalized
  W̃1 = W1 / σ_r, σ_r the real sample's standard deviation. TradeFM (arXiv 2602.23784, §9.2)
  reports a "normalized Wasserstein-1"; its exact normalization could not be retrieved here, so
  this one is our choice: scale-free, 0 for equal samples, c/σ_r for a shift by c.
* Confidence intervals: percentile bootstrap over rollouts (rollouts resampled with replacement,
  the statistic recomputed on the pooled resample). Replicates evaluate the ECDFs on a grid of at
  most ``GRID_POINTS`` sample values (exact when the pooled samples hold fewer distinct values)
  and are shifted by (exact − grid) statistic of the full sample.
* Kurtosis: κ = m_4 / m_2² of the pooled returns per interval (excess κ − 3 reported); the error
  |log(κ_g / κ_r)| uses the Pearson κ (always > 0) so the ratio is defined.
* ACF of returns and of |returns| at lags 1..``lags`` at ``acf_interval``: per rollout
  (:func:`tapecast.evaluate.stylized.acf`), averaged over rollouts (NaN lags skipped), bootstrap
  over rollouts; the real curve comes with the white-noise band 1.96 / sqrt(n_r).

An interval is compared only when the real sample and the pooled generated one each hold at least
``min_returns`` returns; otherwise its entry says why, with the counts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import polars as pl
from numpy.typing import NDArray

from tapecast.core.errors import TapecastError
from tapecast.core.io import atomic_write_bytes
from tapecast.data.book import replay_book
from tapecast.evaluate.plots import _grid, _legend, _png, forecaster_colors
from tapecast.evaluate.stylized import abs_acf, acf, ks_distance, wasserstein1
from tapecast.features.events import event_features

__all__ = ["DISTRIBUTION_FEATURES", "FeedFacts", "FeedFactsError", "bootstrap_distances",
           "compare_feeds", "feed_facts", "grid_returns", "plot_comparison", "pooled_kurtosis",
           "return_name"]

DISTRIBUTION_FEATURES: Final = ("dt", "delta_p", "size", "spread")
DEFAULT_INTERVALS: Final = (1.0, 10.0, 60.0)
DEFAULT_KURTOSIS_INTERVALS: Final = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0)
DEFAULT_LAGS: Final = 50
MIN_RETURNS: Final = 30
GRID_POINTS: Final = 4096
CI_LEVEL: Final = 0.95
F_LAST: Final = 0x80
F_SNAPSHOT: Final = 0x20
_NS: Final = 1_000_000_000


class FeedFactsError(TapecastError):
    """A feed the facts cannot be taken from (one-line message)."""


@dataclass(frozen=True)
class FeedFacts:
    """The samples of one feed (one session, one instrument).

    Attributes
    ----------
    dt, delta_p, size : ndarray of float64, shape (T,)
        Token inter-arrival times (s), relative order price vs p_mid, order size.
    spread : ndarray of float64, shape (S,)
        Best ask − best bid in ticks at valid packet ends.
    returns : dict of float to ndarray of float64, shape (n_Δ,)
        Mid log returns per interval Δ (s), in time order.
    tick : float
        The price tick used for ``spread``.
    duration_s : float
        Seconds from the first valid mid to the last packet end (the return grid's span).
    counts : dict of str to int
        ``tokens``, ``packet_ends``, ``one_sided``, ``locked``, ``crossed`` (packet ends after
        ``start`` by state), ``returns_dropped`` (per-interval returns touching an undefined mid,
        summed over intervals).
    """

    dt: NDArray[np.float64]
    delta_p: NDArray[np.float64]
    size: NDArray[np.float64]
    spread: NDArray[np.float64]
    returns: dict[float, NDArray[np.float64]]
    tick: float
    duration_s: float
    counts: dict[str, int] = field(default_factory=dict)

    def feature(self, name: str) -> NDArray[np.float64]:
        """A distribution feature by name: ``dt``/``delta_p``/``size``/``spread`` or
        ``return_<Δ>s``."""
        if name.startswith("return_"):
            return self.returns[float(name[len("return_"):-1])]
        if name not in DISTRIBUTION_FEATURES:
            raise FeedFactsError(f"unknown feature {name!r}")
        arr: NDArray[np.float64] = getattr(self, name)
        return arr


def return_name(interval: float) -> str:
    """Feature name of the returns at ``interval`` seconds, e.g. ``return_10s``."""
    return f"return_{interval:g}s"


# ---------------------------------------------------------------------------------------------
# Facts of one feed
# ---------------------------------------------------------------------------------------------

def feed_facts(events: pl.DataFrame, *, intervals: Sequence[float] = DEFAULT_INTERVALS,
               kurtosis_intervals: Sequence[float] = DEFAULT_KURTOSIS_INTERVALS,
               tick: float | None = None, start: datetime | None = None,
               seed: pl.DataFrame | None = None, depth_window: int | None = None,
               source: str = "events") -> FeedFacts:
    """Samples of one canonical ``events`` table (see the module docstring for definitions).

    Parameters
    ----------
    events : pl.DataFrame
        Canonical events (:data:`tapecast.data.schemas.EVENTS`) of one instrument, venue order.
    intervals, kurtosis_intervals : sequence of float
        Return intervals in seconds (both sets are computed; the first is meant for the
        distribution metrics, the second for the kurtosis curve).
    tick : float or None
        Price tick; ``None`` infers it as the smallest positive gap between distinct prices.
    start : datetime or None
        Timezone-aware. Facts are taken from this time on (tokens, packet ends, the return
        grid); earlier events only build the book and the estimator state. E.g. the ES open, to
        leave out the pre-open.
    seed, depth_window
        The book seed and a LOBSTER source's depth (``Tables.book_seed`` and
        :func:`tapecast.data.book.source_depth`), passed to the features and the book replay.
    source : str
        Name used in error messages.

    Returns
    -------
    FeedFacts
    """
    if events.height == 0 or events["instrument"].n_unique() != 1:
        raise FeedFactsError(f"{source}: expected events of exactly one instrument, got "
                             f"{events['instrument'].n_unique()} in {events.height} rows")
    for interval in (*intervals, *kurtosis_intervals):
        if not interval > 0:
            raise FeedFactsError(f"{source}: return intervals must be > 0 s, got {interval}")
    if start is not None and start.tzinfo is None:
        raise FeedFactsError(f"{source}: start must be timezone-aware, got {start}")
    start_ns = None if start is None else round(start.timestamp() * _NS)
    tokens = _tokens(events, start_ns, seed, depth_window, source)
    use_tick = tick if tick is not None else _infer_tick(events, source)
    if not use_tick > 0:
        raise FeedFactsError(f"{source}: tick must be > 0, got {use_tick}")
    ts, bid, ask, counts = _packet_ends(events, start_ns, seed, depth_window)
    counts["tokens"] = tokens.height
    valid = np.isfinite(bid) & np.isfinite(ask) & (ask >= bid)
    spread = np.round((ask - bid)[valid & (ask > bid)] / use_tick, 6)  # float noise off
    mid = np.where(valid, (ask + bid) / 2, np.nan)  # (P,) NaN where undefined
    returns: dict[float, NDArray[np.float64]] = {}
    dropped = 0
    for interval in sorted({float(x) for x in (*intervals, *kurtosis_intervals)}):
        returns[interval], n_dropped = grid_returns(ts, mid, interval)
        dropped += n_dropped
    counts["returns_dropped"] = dropped
    first = np.flatnonzero(valid)
    duration = float(ts[-1] - ts[first[0]]) / _NS if first.size else 0.0
    return FeedFacts(
        dt=tokens["dt"].to_numpy().astype(np.float64),
        delta_p=tokens["delta_p"].to_numpy().astype(np.float64),
        size=tokens["size"].to_numpy().astype(np.float64),
        spread=spread, returns=returns, tick=float(use_tick), duration_s=duration,
        counts=counts)


def _tokens(events: pl.DataFrame, start_ns: int | None, seed: pl.DataFrame | None,
            depth_window: int | None, source: str) -> pl.DataFrame:
    """Token rows without each session's first token, from ``start_ns`` on."""
    tokens = event_features(events, seed=seed, depth_window=depth_window, source=source).tokens
    tokens = tokens.filter(pl.int_range(pl.len()).over("instrument", "session_date") > 0)
    if start_ns is not None:
        tokens = tokens.filter(pl.col("ts").dt.epoch("ns") >= start_ns)
    return tokens


def _infer_tick(events: pl.DataFrame, source: str) -> float:
    """Smallest positive gap between distinct order prices (rounded to 1e-9)."""
    prices = events.filter(pl.col("action").is_in(["add", "modify"]))["price"].drop_nulls()
    distinct = np.unique(np.round(prices.to_numpy().astype(np.float64), 9))
    gaps = np.diff(distinct)
    gaps = gaps[gaps > 1e-9]
    if gaps.size == 0:
        raise FeedFactsError(f"{source}: cannot infer the tick from fewer than two distinct "
                             f"prices; pass tick=")
    return float(np.round(gaps.min(), 9))


def _packet_ends(events: pl.DataFrame, start_ns: int | None, seed: pl.DataFrame | None,
                 depth_window: int | None
                 ) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64],
                            dict[str, int]]:
    """Times (ns) and best bid/ask (NaN if empty) after each packet end, with state counts."""
    levels = replay_book(events, n_levels=1, seed=seed, depth_window=depth_window).levels
    flags = events["flags"].fill_null(0).cast(pl.Int64).to_numpy()
    ends = (flags & F_LAST) > 0 if np.any(flags & F_LAST) else np.ones(flags.size, bool)
    keep = ends & ((flags & F_SNAPSHOT) == 0)
    ts = levels["ts"].dt.epoch("ns").to_numpy().astype(np.int64)
    if start_ns is not None:
        keep &= ts >= start_ns
    bid = levels["bid_px_1"].fill_null(np.nan).to_numpy().astype(np.float64)[keep]
    ask = levels["ask_px_1"].fill_null(np.nan).to_numpy().astype(np.float64)[keep]
    both = np.isfinite(bid) & np.isfinite(ask)
    counts = {"packet_ends": int(keep.sum()), "one_sided": int((~both).sum()),
              "locked": int((both & (ask == bid)).sum()),
              "crossed": int((both & (ask < bid)).sum())}
    return ts[keep], bid, ask, counts


def grid_returns(ts: NDArray[np.int64], mid: NDArray[np.float64], interval: float
                 ) -> tuple[NDArray[np.float64], int]:
    """Log change of the last mid in each interval of a regular grid.

    Parameters
    ----------
    ts : ndarray of int64, shape (P,)
        State times in ns, non-decreasing.
    mid : ndarray of float64, shape (P,)
        Mid after each state; NaN where undefined (crossed, one-sided).
    interval : float
        Δ in seconds.

    Returns
    -------
    (returns, dropped)
        ``returns`` float64, shape (n,): r_k = log m(t_k) − log m(t_{k−1}) on t_k = t_0 + kΔ,
        t_0 the first defined mid, m(t) the last state's mid at or before t; ``dropped``: grid
        returns with an undefined end.
    """
    defined = np.flatnonzero(np.isfinite(mid))
    if defined.size == 0:
        return np.empty(0), 0
    t0, step = int(ts[defined[0]]), round(interval * _NS)
    n_steps = (int(ts[-1]) - t0) // step
    if n_steps < 1:
        return np.empty(0), 0
    grid = t0 + step * np.arange(n_steps + 1, dtype=np.int64)  # (K+1,)
    last = np.searchsorted(ts, grid, side="right") - 1  # (K+1,) index of the last state
    log_mid = np.log(mid[last])
    r = np.diff(log_mid)  # (K,)
    ok = np.isfinite(r)
    return r[ok], int((~ok).sum())


# ---------------------------------------------------------------------------------------------
# Pooled distances with a bootstrap over rollouts
# ---------------------------------------------------------------------------------------------

def _estimate(value: float, draws: NDArray[np.float64] | None) -> dict[str, float | None]:
    """{value, low, high}: the statistic and its percentile interval (None where undefined)."""
    low = high = math.nan
    if draws is not None and np.isfinite(draws).any():
        tail = (1 - CI_LEVEL) / 2
        low, high = (float(q) for q in np.nanquantile(draws, [tail, 1 - tail]))
    return {"value": _jf(value), "low": _jf(low), "high": _jf(high)}


def _jf(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _jl(values: NDArray[np.float64]) -> list[float | None]:
    return [_jf(float(v)) for v in values]


def _support(real: NDArray[np.float64], parts: Sequence[NDArray[np.float64]]
             ) -> NDArray[np.float64]:
    """Evaluation points: every distinct value, or ``GRID_POINTS`` quantiles of the pool."""
    pooled = np.concatenate([real, *parts])
    distinct = np.unique(pooled)
    if distinct.size <= GRID_POINTS:
        return distinct
    q = np.linspace(0.0, 1.0, GRID_POINTS)
    return np.unique(np.quantile(pooled, q, method="inverted_cdf"))


def _grid_stats(cdf_g: NDArray[np.float64], cdf_r: NDArray[np.float64],
                widths: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """K-S and W1 from ECDFs on the support, cdf_g (B, Z), cdf_r (Z,), widths (Z - 1,)."""
    gap = np.abs(cdf_g - cdf_r)  # (B, Z)
    return gap.max(axis=1), gap[:, :-1] @ widths


def bootstrap_distances(real: NDArray[np.float64], parts: Sequence[NDArray[np.float64]], *,
                        n_boot: int, rng: np.random.Generator) -> dict[str, Any]:
    """K-S, W1 and W1 / σ_r of the pooled generated sample vs the real one, with CIs.

    Parameters
    ----------
    real : ndarray of float64, shape (n_r,)
    parts : sequence of ndarray of float64, each shape (n_i,)
        One sample per rollout; pooled for the statistic, resampled as units for the CI.
    n_boot : int
        Bootstrap replicates (0: no interval).
    rng : numpy Generator

    Returns
    -------
    dict
        n_real, n_generated, scale (σ_r), ks, w1, w1_normalized (each {value, low, high}).
    """
    real = real[np.isfinite(real)]
    parts = [p[np.isfinite(p)] for p in parts]
    pooled = np.concatenate(parts) if parts else np.empty(0)
    scale = float(real.std()) if real.size > 1 else math.nan
    ks, _ = ks_distance(pooled, real)
    w1 = wasserstein1(pooled, real)
    ks_draws = w1_draws = None
    if n_boot > 0 and real.size and pooled.size:
        ks_draws, w1_draws = _replicates(real, parts, (ks, w1), n_boot, rng)
    inv = 1.0 / scale if scale > 0 else math.nan
    return {"n_real": int(real.size), "n_generated": int(pooled.size), "scale": _jf(scale),
            "ks": _estimate(ks, ks_draws), "w1": _estimate(w1, w1_draws),
            "w1_normalized": _estimate(w1 * inv, None if w1_draws is None else w1_draws * inv)}


def _grid_tables(real: NDArray[np.float64], parts: Sequence[NDArray[np.float64]],
                 z: NDArray[np.float64]
                 ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Counts at or below each support point per rollout (R, Z), rollout sizes (R,) and the
    real ECDF on the support (Z,)."""
    below = np.stack([np.searchsorted(np.sort(p), z, side="right") for p in parts])  # (R, Z)
    sizes = np.array([p.size for p in parts], dtype=np.float64)  # (R,)
    cdf_r = np.searchsorted(np.sort(real), z, side="right") / real.size  # (Z,)
    return below.astype(np.float64), sizes, cdf_r


def _pooled_grid(tables: tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]],
                 z: NDArray[np.float64], weights: NDArray[np.float64]
                 ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """K-S and W1 on the support z for rollout multiplicities ``weights`` (B, R) -> (B,), (B,)."""
    below, sizes, cdf_r = tables
    total = weights @ sizes  # (B,)
    cdf_g = (weights @ below) / np.maximum(total, 1)[:, None]  # (B, Z)
    ks, w1 = _grid_stats(cdf_g, cdf_r, np.diff(z))
    empty = total == 0
    ks[empty], w1[empty] = np.nan, np.nan
    return ks, w1


def _replicates(real: NDArray[np.float64], parts: Sequence[NDArray[np.float64]],
                exact: tuple[float, float], n_boot: int, rng: np.random.Generator
                ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Grid K-S and W1 of ``n_boot`` resamples of the rollouts (chunks of 256), shifted by the
    (exact - grid) statistic of the full sample; ``exact`` = (K-S, W1) of the full sample."""
    n_parts = len(parts)
    weights = rng.multinomial(n_parts, np.full(n_parts, 1 / n_parts), size=n_boot)  # (B, R)
    z = _support(real, parts)
    tables = _grid_tables(real, parts, z)
    ks_parts, w1_parts = [], []
    for lo in range(0, n_boot, 256):
        ks, w1 = _pooled_grid(tables, z, weights[lo:lo + 256].astype(np.float64))
        ks_parts.append(ks)
        w1_parts.append(w1)
    full_ks, full_w1 = _pooled_grid(tables, z, np.ones((1, n_parts)))
    shift_ks, shift_w1 = exact[0] - float(full_ks[0]), exact[1] - float(full_w1[0])
    # both distances are >= 0: a shift larger than a replicate (a grid far off on a heavy
    # tail) must not produce a negative bound
    return (np.maximum(np.concatenate(ks_parts) + shift_ks, 0.0),
            np.maximum(np.concatenate(w1_parts) + shift_w1, 0.0))


# ---------------------------------------------------------------------------------------------
# Kurtosis and ACF over rollouts
# ---------------------------------------------------------------------------------------------

def _power_sums(parts: Sequence[NDArray[np.float64]], center: float) -> NDArray[np.float64]:
    """Per rollout [n, Σy, Σy², Σy³, Σy⁴] of y = x − center, shape (R, 5)."""
    rows = []
    for p in parts:
        y = p[np.isfinite(p)] - center
        rows.append([y.size, y.sum(), (y**2).sum(), (y**3).sum(), (y**4).sum()])
    return np.asarray(rows, dtype=np.float64).reshape(len(parts), 5)


def _kurtosis_from_sums(sums: NDArray[np.float64]) -> NDArray[np.float64]:
    """Pearson κ = m_4 / m_2² of pooled samples from summed power sums, sums (B, 5) -> (B,)."""
    n = sums[:, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        mu = sums[:, 1] / n
        m2 = sums[:, 2] / n - mu**2
        m4 = (sums[:, 4] - 4 * mu * sums[:, 3] + 6 * mu**2 * sums[:, 2]
              - 3 * mu**4 * n) / n
        kurt = m4 / m2**2
    return np.where((n >= 4) & (m2 > 0), kurt, np.nan)


def pooled_kurtosis(parts: Sequence[NDArray[np.float64]], weights: NDArray[np.float64]
                    ) -> NDArray[np.float64]:
    """Pearson kurtosis of pooled rollouts for multiplicities ``weights`` (B, R) -> (B,)."""
    finite = [p[np.isfinite(p)] for p in parts]
    pooled = np.concatenate(finite) if finite else np.empty(0)
    center = float(pooled.mean()) if pooled.size else 0.0
    return _kurtosis_from_sums(weights @ _power_sums(finite, center))


def _pearson_kurtosis(x: NDArray[np.float64]) -> float:
    return float(pooled_kurtosis([x], np.ones((1, 1)))[0])


def _kurtosis_curve(real: FeedFacts, generated: Sequence[FeedFacts],
                    intervals: Sequence[float], weights: NDArray[np.float64],
                    min_returns: int) -> dict[str, Any]:
    """Excess kurtosis vs interval (real, generated with CI), counts, and the error at 1 s."""
    out: dict[str, Any] = {"intervals": list(intervals), "real": [], "generated": [],
                           "n_real": [], "n_generated": []}
    for interval in intervals:
        r = real.returns.get(interval, np.empty(0))
        parts = [g.returns.get(interval, np.empty(0)) for g in generated]
        n_gen = int(sum(p.size for p in parts))
        enough = r.size >= min_returns and n_gen >= min_returns
        k_r = _pearson_kurtosis(r) if enough else math.nan
        k_g = float(pooled_kurtosis(parts, np.ones((1, len(parts))))[0]) if enough else math.nan
        draws = pooled_kurtosis(parts, weights) if enough and weights.size else None
        out["real"].append(_jf(k_r - 3))
        out["generated"].append(_estimate(k_g - 3, None if draws is None else draws - 3))
        out["n_real"].append(int(r.size))
        out["n_generated"].append(n_gen)
        if interval == 1.0:
            err = abs(math.log(k_g / k_r)) if enough and k_g > 0 and k_r > 0 else math.nan
            err_draws = None if draws is None else np.abs(np.log(draws / k_r))
            out["error_1s"] = _estimate(err, err_draws)
    return out


def _acf_block(real: NDArray[np.float64], parts: Sequence[NDArray[np.float64]], lags: int,
               weights: NDArray[np.float64], absolute: bool) -> dict[str, Any]:
    """ACF (or |x| ACF) of the real series vs the rollout mean, with CIs over rollouts."""
    fn = abs_acf if absolute else acf
    curves = np.stack([fn(p, lags) for p in parts]) if parts else np.full((0, lags), np.nan)
    has = np.isfinite(curves)  # (R, L)
    filled = np.where(has, curves, 0.0)

    def mean_curve(w: NDArray[np.float64]) -> NDArray[np.float64]:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray((w @ filled) / (w @ has), dtype=np.float64)  # (B, L)

    value = mean_curve(np.ones((1, len(parts))))[0]
    draws = mean_curve(weights) if weights.size else np.full((0, lags), np.nan)
    tail = (1 - CI_LEVEL) / 2
    if draws.shape[0]:
        with np.errstate(all="ignore"):
            low, high = np.nanquantile(draws, [tail, 1 - tail], axis=0)
    else:
        low = high = np.full(lags, np.nan)
    real_curve = fn(real, lags)
    both = np.isfinite(real_curve) & np.isfinite(value)
    mae = float(np.mean(np.abs(real_curve - value)[both])) if both.any() else math.nan
    return {"real": _jl(real_curve),
            "band": _jf(1.96 / math.sqrt(real.size)) if real.size else None,
            "generated": {"value": _jl(value), "low": _jl(low), "high": _jl(high)},
            "acf1": {"real": _jf(float(real_curve[0])),
                     "generated": _estimate(float(value[0]), draws[:, 0] if draws.size else None)},
            "mae": _jf(mae)}


# ---------------------------------------------------------------------------------------------
# The comparison
# ---------------------------------------------------------------------------------------------

def compare_feeds(real: FeedFacts, generated: Sequence[FeedFacts], *,
                  intervals: Sequence[float] = DEFAULT_INTERVALS,
                  kurtosis_intervals: Sequence[float] = DEFAULT_KURTOSIS_INTERVALS,
                  acf_interval: float = 1.0, lags: int = DEFAULT_LAGS,
                  min_returns: int = MIN_RETURNS, n_boot: int = 1000,
                  seed: int = 0) -> dict[str, Any]:
    """Generated rollouts against a real feed: distances, kurtosis curve, ACFs (JSON-ready).

    Parameters
    ----------
    real : FeedFacts
    generated : sequence of FeedFacts
        The rollouts of one generator (R >= 1); they are the bootstrap's units.
    intervals : sequence of float
        Return intervals (s) whose distributions are compared (must be in the facts).
    kurtosis_intervals : sequence of float
        Intervals of the kurtosis curve (missing ones count as empty).
    acf_interval : float
        Interval (s) of the returns whose ACFs are compared.
    lags : int
    min_returns : int
        An interval is compared only when real and pooled generated hold this many returns.
    n_boot : int
        Bootstrap replicates over rollouts (0: no intervals).
    seed : int

    Returns
    -------
    dict
        ``n_rollouts``; ``definitions`` (the units and rules, as text); ``distributions``:
        {feature: {n_real, n_generated, scale, ks, w1, w1_normalized}} for dt, delta_p, size,
        spread and ``return_<Δ>s`` (a skipped interval: {skipped, n_real, n_generated}), each
        statistic {value, low, high}; ``kurtosis``: {intervals, real (excess), generated
        ([{value, low, high}] excess), n_real, n_generated, error_1s}; ``acf`` and ``abs_acf``:
        {interval, real (lags 1..L), band, generated {value, low, high}, acf1 {real, generated},
        mae}. NaN becomes None.
    """
    if not generated:
        raise FeedFactsError("compare_feeds: expected at least one generated rollout")
    rng = np.random.default_rng(seed)
    n_parts = len(generated)
    distributions: dict[str, Any] = {}
    for name in (*DISTRIBUTION_FEATURES, *[return_name(i) for i in intervals]):
        ref = real.feature(name) if _has(real, name) else np.empty(0)
        parts = [g.feature(name) if _has(g, name) else np.empty(0) for g in generated]
        n_gen = int(sum(p.size for p in parts))
        if name.startswith("return_") and min(ref.size, n_gen) < min_returns:
            distributions[name] = {"skipped": f"fewer than {min_returns} returns",
                                   "n_real": int(ref.size), "n_generated": n_gen}
            continue
        distributions[name] = bootstrap_distances(ref, parts, n_boot=n_boot, rng=rng)
    weights = rng.multinomial(n_parts, np.full(n_parts, 1 / n_parts), size=n_boot
                              ).astype(np.float64)  # (B, R)
    out: dict[str, Any] = {"n_rollouts": n_parts, "definitions": DEFINITIONS,
                           "distributions": distributions,
                           "kurtosis": _kurtosis_curve(real, generated, kurtosis_intervals,
                                                       weights, min_returns)}
    r = real.returns.get(float(acf_interval), np.empty(0))
    parts = [g.returns.get(float(acf_interval), np.empty(0)) for g in generated]
    for key, absolute in (("acf", False), ("abs_acf", True)):
        out[key] = {"interval": float(acf_interval),
                    **_acf_block(r, parts, lags, weights, absolute)}
    return out


def _has(facts: FeedFacts, name: str) -> bool:
    return not name.startswith("return_") or float(name[7:-1]) in facts.returns


DEFINITIONS: Final = {
    "dt": "seconds between consecutive token events (adds/cancels) of a session, first dropped",
    "delta_p": "(order price - p_mid) / p_mid, p_mid the EW-VWAP estimator (features.events)",
    "size": "order size of each token event",
    "spread": "best ask - best bid in ticks at packet ends, locked/crossed/one-sided excluded",
    "returns": "log change of the last mid (book mid at packet ends) in each interval of a "
               "regular grid from the first valid mid",
    "w1_normalized": "Wasserstein-1 / standard deviation of the real sample (our choice; "
                     "TradeFM §9.2's exact normalization not retrieved)",
    "kurtosis": "excess kurtosis of pooled returns; error_1s = |log(k_gen / k_real)| with the "
                "Pearson kurtosis m4/m2^2",
    "ci": "95 % percentile bootstrap over rollouts (rollouts resampled with replacement)",
}


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------

_LOG_X: Final = ("dt", "size")


def plot_comparison(real: FeedFacts, generated_by_name: Mapping[str, Sequence[FeedFacts]],
                    path: str | Path, *, intervals: Sequence[float] = DEFAULT_INTERVALS,
                    acf_interval: float = 1.0, lags: int = DEFAULT_LAGS) -> Path:
    """One PNG: distribution overlays (dt, δp, size, spread, returns per interval), the ACF of
    returns and of |returns|, and excess kurtosis against the interval; written atomically.

    ``dt`` and ``size`` use log-spaced bins on a log x axis (``dt`` > 0 only, the share of zero
    gaps in the title); every density uses a log y axis. Generated rollouts are pooled.
    """
    names = ["real", *generated_by_name]
    colors = forecaster_colors(names)
    features = [*DISTRIBUTION_FEATURES, *[return_name(i) for i in intervals]]
    fig, axes = _grid(len(features) + 3, title="Stylized facts: generated vs real")
    sources: dict[str, Sequence[FeedFacts]] = {"real": [real], **generated_by_name}
    for ax, name in zip(axes, features, strict=False):
        _overlay(ax, name, sources, colors)
    ax_acf, ax_abs, ax_kurt = axes[len(features):]
    kurt_intervals = sorted(real.returns)
    for name, facts in sources.items():
        parts = [f.returns.get(float(acf_interval), np.empty(0)) for f in facts]
        for ax, fn in ((ax_acf, acf), (ax_abs, abs_acf)):
            with np.errstate(all="ignore"):
                curve = np.nanmean(np.stack([fn(p, lags) for p in parts]), axis=0)
            ax.plot(np.arange(1, lags + 1), curve, color=colors[name], label=name)
        kurt = [float(pooled_kurtosis([f.returns.get(i, np.empty(0)) for f in facts],
                                      np.ones((1, len(facts))))[0]) - 3
                for i in kurt_intervals]
        ax_kurt.plot(kurt_intervals, kurt, marker="o", color=colors[name], label=name)
    ax_acf.set_title(f"ACF of {acf_interval:g}-s returns")
    ax_abs.set_title(f"ACF of |{acf_interval:g}-s returns|")
    ax_kurt.set_title("excess kurtosis vs interval")
    ax_kurt.set_xscale("log")
    ax_kurt.set_xlabel("interval (s)")
    for ax in (ax_acf, ax_abs):
        ax.axhline(0.0, color="grey", lw=0.5)
        ax.set_xlabel("lag")
    _legend(fig, axes, len(names))
    out = Path(path)
    atomic_write_bytes(out, _png(fig))
    return out


def _overlay(ax: Any, name: str, sources: Mapping[str, Sequence[FeedFacts]],
             colors: Mapping[str, Any]) -> None:
    """Step-histogram densities of one feature per source on shared bins."""
    samples = {s: np.concatenate([f.feature(name) for f in facts if _has(f, name)] or
                                 [np.empty(0)]) for s, facts in sources.items()}
    samples = {s: x[np.isfinite(x)] for s, x in samples.items()}
    title = name
    if name in _LOG_X:
        zero_share = {s: float(np.mean(x <= 0)) if x.size else math.nan
                      for s, x in samples.items()}
        samples = {s: x[x > 0] for s, x in samples.items()}
        if name == "dt":
            title += f" (zero share real {zero_share['real']:.2f})"
    pooled = np.concatenate(list(samples.values()))
    if pooled.size == 0:
        ax.set_title(f"{title}: no data")
        return
    log_x = name in _LOG_X
    lo, hi = np.quantile(pooled, [0.0, 1.0] if log_x else [0.001, 0.999])  # clip far outliers
    bins = (np.geomspace(lo, hi * 1.0001, 60) if log_x and hi > lo
            else np.linspace(lo, hi + 1e-12, 60))
    for source, x in samples.items():
        if x.size:
            ax.hist(x, bins=bins, density=True, histtype="step", color=colors[source],
                    label=source)
    if log_x:
        ax.set_xscale("log")
    else:
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 3))
    ax.set_yscale("log")
    ax.set_title(title)
