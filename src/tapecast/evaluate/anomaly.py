"""How well an anomaly score separates labelled states: AUROC with a paired block-bootstrap
test, detection delay of known segments, and the false-alarm rate at a training threshold.

- AUROC is :func:`sklearn.metrics.roc_auc_score` (ties count one half): the probability that a
  labelled state scores above an unlabelled one.
- :func:`auroc_difference` tests AUROC(a) > AUROC(b) on the same states with
  :func:`tapecast.evaluate.resample.paired_bootstrap` (stationary blocks: anomaly scores and
  labels are serially dependent), scores and labels resampled together.
- :func:`detection_delays`: for each labelled segment, the bars from its first bar to the first
  bar whose score exceeds the threshold (None when it never does within the segment).
- :func:`false_alarm_rate`: the share of states above the threshold, meant for unlabelled
  periods (a validation period next to training, where no anomaly is injected).
- :func:`trailing_mean`: a per-state score averaged over the trailing ``window`` states (fewer
  at the start): the windowed detector of a regime that no single state shows, at the price of
  a delay.

Legend: s the score (higher = more anomalous), y the 0/1 labels, τ the threshold.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from tapecast.core.errors import TapecastError
from tapecast.evaluate.resample import BootstrapResult, paired_bootstrap

__all__ = ["auroc", "auroc_difference", "delay_summary", "detection_delays", "false_alarm_rate",
           "segments", "trailing_mean"]


def _pair(scores: ArrayLike, labels: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    if s.ndim != 1 or s.shape != y.shape:
        raise TapecastError(f"scores {s.shape} and labels {y.shape} must be 1-D of equal length")
    if not np.isfinite(s).all():
        raise TapecastError("anomaly scores must be finite")
    return s, y


def auroc(scores: ArrayLike, labels: ArrayLike) -> float:
    """Area under the ROC curve of ``scores`` (n,) for ``labels`` (n,) bool; NaN with one class."""
    from sklearn.metrics import roc_auc_score

    s, y = _pair(scores, labels)
    if y.all() or not y.any():
        return math.nan
    return float(roc_auc_score(y, s))


def auroc_difference(a: ArrayLike, b: ArrayLike, labels: ArrayLike, *, n_boot: int = 1000,
                     seed: int = 0, block: float | None = None) -> BootstrapResult:
    """AUROC(a) − AUROC(b) on the same states with its paired block-bootstrap interval and the
    one-sided p-value of "a is not better" (module docstring)."""
    sa, y = _pair(a, labels)
    sb, _ = _pair(b, labels)
    if len(sa) != len(sb):
        raise TapecastError(f"scores of {len(sa)} and {len(sb)} states")

    def diff(x: NDArray[np.float64], z: NDArray[np.float64], lab: NDArray[np.float64]) -> float:
        return auroc(x, lab) - auroc(z, lab)

    return paired_bootstrap(diff, sa, sb, y.astype(np.float64), n_boot=n_boot, seed=seed,
                            block=block)


def segments(labels: ArrayLike) -> list[tuple[int, int]]:
    """The runs of True in ``labels`` (n,): [(start, stop), ...], stop exclusive."""
    y = np.asarray(labels).astype(np.int8)
    edges = np.diff(np.concatenate([[0], y, [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(),
                    strict=True))


def detection_delays(scores: ArrayLike, labels: ArrayLike, threshold: float
                     ) -> list[int | None]:
    """Per labelled segment, bars from its start to the first score > ``threshold`` inside it
    (None: not detected)."""
    s, y = _pair(scores, labels)
    out: list[int | None] = []
    for start, stop in segments(y):
        hits = np.flatnonzero(s[start:stop] > threshold)
        out.append(int(hits[0]) if hits.size else None)
    return out


def false_alarm_rate(scores: ArrayLike, threshold: float) -> float:
    """Share of ``scores`` (n,) above ``threshold``."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1 or not s.size or not np.isfinite(s).all():
        raise TapecastError("false_alarm_rate: scores must be a non-empty finite 1-D array")
    return float(np.mean(s > threshold))


def delay_summary(delays: list[int | None]) -> dict[str, Any]:
    """Segments, detected share, median and 90th-percentile delay (bars) of the detected."""
    found = np.array([d for d in delays if d is not None], dtype=np.float64)
    return {"segments": len(delays), "detected": float(found.size / max(len(delays), 1)),
            "median_delay": float(np.median(found)) if found.size else None,
            "p90_delay": float(np.quantile(found, 0.9)) if found.size else None}


def trailing_mean(values: ArrayLike, window: int) -> NDArray[np.float64]:
    """Mean of ``values`` (n,) over the trailing ``window`` entries, t−window+1..t (from 0 at
    the start): (n,)."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or window < 1:
        raise TapecastError(f"trailing_mean: 1-D values and window >= 1, got {v.shape}, {window}")
    csum = np.concatenate([[0.0], np.cumsum(v)])
    idx = np.arange(1, len(v) + 1)
    lo = np.maximum(0, idx - window)
    out: NDArray[np.float64] = (csum[idx] - csum[lo]) / (idx - lo)
    return out
