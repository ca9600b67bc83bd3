"""The bins of one tokenizer field: calibration, binning, in-bin sampling, JSON.

Every field stores ``edges``, shape ``(n + 1,)``, strictly increasing: bin ``k`` nominally spans
``[edges[k], edges[k + 1])``; ``edges[0]`` and ``edges[n]`` are the value extents (training
minimum and maximum) used to decode an outlier bin that saw no training data, and the thresholds
that assign a value are ``edges[1:n]``. Values beyond the extents go to the outlier bins.

Three methods (see :mod:`tapecast.features.tokenizer` for why each):

- ``"quantile"`` (δp and the context Δp): a low outlier bin, ``n - 2`` equal-frequency bins
  between the low and high outlier quantiles, a high outlier bin.
- ``"uniform"`` (v = log(1 + size)): ``n - 1`` equal-width bins from the training minimum to
  the high outlier quantile, then a high outlier bin.
- ``"zero-log-uniform"`` (Δt, seconds): bin 0 holds exact zeros only; bins ``1 .. n-2`` are
  equal-width in log Δt from the floor (``edges[1]``) to the high outlier quantile of the
  positive values; bin ``n - 1`` is the high outlier bin. Values in (0, floor) go to bin 1.

Each bin also stores ``quantiles``, shape ``(n, q)``: its training values' quantiles at levels
``linspace(0, 1, q)`` (a bin without training data: ``q`` points evenly spaced between its
edges), and ``counts``, shape ``(n,)``, the training rows per bin.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
import numpy.typing as npt

from tapecast.core.errors import TapecastError

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Method = Literal["quantile", "uniform", "zero-log-uniform"]
METHODS: tuple[str, ...] = get_args(Method)


class TokenizerFileError(TapecastError):
    """A ``tokenizer.json`` that cannot be used: one line naming the file and the field."""

    def __init__(self, file: str, field: str, detail: str) -> None:
        self.file = file
        self.field = field
        super().__init__(f"{file}: field '{field}': {detail}")


def _strictly_increasing(edges: F64) -> F64:
    """``edges`` with ties (a mass point spanning several quantiles) nudged apart by one ulp.

    The tied bins stay empty: a value at the mass point lands in the last of them.
    """
    out = edges.copy()
    for i in range(1, out.size):  # n + 1 edges, not events
        if out[i] <= out[i - 1]:
            out[i] = np.nextafter(out[i - 1], np.inf)
    return out


@dataclass(frozen=True)
class FieldBins:
    """The frozen bins of one field.

    Attributes
    ----------
    method : {"quantile", "uniform", "zero-log-uniform"}
    edges : ndarray, float64, shape (n + 1,)
    quantiles : ndarray, float64, shape (n, q)
    counts : ndarray, int64, shape (n,)
    low_quantile, high_quantile : float or None
        The outlier quantile levels used at calibration (None where the method has no such bin).
    """

    method: Method
    edges: F64
    quantiles: F64
    counts: I64
    low_quantile: float | None
    high_quantile: float

    @property
    def n_bins(self) -> int:
        """Number of bins ``n``."""
        return int(self.edges.size - 1)

    # --- calibration --------------------------------------------------------------------------
    @classmethod
    def calibrate(cls, x: F64, method: Method, n_bins: int, *, high_quantile: float,
                  low_quantile: float | None = None, floor: float | None = None,
                  n_quantiles: int = 9) -> FieldBins:
        """Fit the bins of one field on training values ``x``, shape (N,), finite, N ≥ 1."""
        x = np.asarray(x, dtype=np.float64)
        if method == "quantile":
            assert low_quantile is not None
            levels = np.linspace(low_quantile, high_quantile, n_bins - 1)  # n - 1 thresholds
            inner = np.quantile(x, levels)
            edges = np.concatenate([[x.min()], inner, [x.max()]])
        elif method == "uniform":
            lo, hi = float(x.min()), float(np.quantile(x, high_quantile))
            hi = hi if hi > lo else lo + 1.0
            edges = np.concatenate([np.linspace(lo, hi, n_bins), [max(x.max(), hi)]])
        else:
            assert floor is not None
            positive = x[x > 0]
            hi = float(np.quantile(positive, high_quantile)) if positive.size else floor * 10
            hi = hi if hi > floor else floor * 10
            log_edges = np.linspace(np.log(floor), np.log(hi), n_bins - 1)  # floor .. hi
            top = max(float(x.max()), hi)
            edges = np.concatenate([[0.0], np.exp(log_edges), [top]])
            edges[1], edges[-2] = floor, hi  # exact, not exp(log(.)) round-off
        edges = _strictly_increasing(edges)
        bins = _assign(x, edges, method)
        quantiles, counts = _inbin_quantiles(x, bins, edges, n_quantiles, method)
        return cls(method, edges, quantiles, counts,
                   low_quantile if method == "quantile" else None, high_quantile)

    # --- encode / decode ----------------------------------------------------------------------
    def assign(self, x: F64) -> I64:
        """Bin index of every value, shape (N,) int64 in ``[0, n)``."""
        return _assign(np.asarray(x, dtype=np.float64), self.edges, self.method)

    def sample(self, bins: I64, u: F64) -> F64:
        """A value inside each bin from its in-bin quantiles at uniform draws ``u`` in [0, 1).

        Linear interpolation between consecutive stored quantiles (a piecewise-linear in-bin
        CDF), clipped into the bin so that :meth:`assign` maps the value back to ``bins``.

        Returns
        -------
        ndarray, float64, shape (N,)
        """
        q = self.quantiles.shape[1]
        pos = u * (q - 1)
        j = np.minimum(pos.astype(np.int64), q - 2)
        frac = pos - j
        lower, upper = self.quantiles[bins, j], self.quantiles[bins, j + 1]
        value = lower + frac * (upper - lower)
        lo, hi = self._bounds()
        out: F64 = np.clip(value, lo[bins], hi[bins])
        return out

    def _bounds(self) -> tuple[F64, F64]:
        """Closed interval ``[lo, hi]`` of values that :meth:`assign` maps to each bin."""
        e = self.edges
        lo = np.concatenate([[-np.inf], e[1:-1]])
        hi = np.concatenate([np.nextafter(e[1:-1], -np.inf), [np.inf]])
        if self.method == "zero-log-uniform":
            lo[0], hi[0] = 0.0, 0.0
            lo[1] = np.nextafter(0.0, 1.0)
        return lo, hi

    # --- JSON ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (floats as Python floats; ``repr`` round-trips float64 exactly)."""
        return {"method": self.method, "n_bins": self.n_bins,
                "outlier_quantiles": {"low": self.low_quantile, "high": self.high_quantile},
                "edges": self.edges.tolist(), "counts": self.counts.tolist(),
                "inbin_quantiles": self.quantiles.tolist()}

    @classmethod
    def from_dict(cls, data: Any, *, file: str, field: str, n_bins: int,
                  n_quantiles: int) -> FieldBins:
        """Parse and check one field's dict; any fault is a :class:`TokenizerFileError`."""
        def fail(sub: str, detail: str) -> TokenizerFileError:
            return TokenizerFileError(file, f"{field}.{sub}" if sub else field, detail)

        if not isinstance(data, Mapping):
            raise fail("", "missing or not an object")
        for key in ("method", "n_bins", "outlier_quantiles", "edges", "counts",
                    "inbin_quantiles"):
            if key not in data:
                raise fail(key, "missing")
        if data["method"] not in METHODS:
            raise fail("method", f"must be one of {', '.join(METHODS)}, got {data['method']!r}")
        if data["n_bins"] != n_bins:
            raise fail("n_bins", f"expected {n_bins} bins, got {data['n_bins']!r}")
        edges = _array(data["edges"], (n_bins + 1,), fail("edges", ""))
        if not np.all(np.isfinite(edges)) or not np.all(np.diff(edges) > 0):
            raise fail("edges", "must be finite and strictly increasing")
        quantiles = _array(data["inbin_quantiles"], (n_bins, n_quantiles),
                           fail("inbin_quantiles", ""))
        if not np.all(np.isfinite(quantiles)) or not np.all(np.diff(quantiles, axis=1) >= 0):
            raise fail("inbin_quantiles", "must be finite and non-decreasing along each bin")
        counts = _array(data["counts"], (n_bins,), fail("counts", ""))
        if np.any(counts < 0) or np.any(counts != np.round(counts)):
            raise fail("counts", "must be non-negative integers")
        outliers = data["outlier_quantiles"]
        if not isinstance(outliers, Mapping) or not isinstance(outliers.get("high"), float):
            raise fail("outlier_quantiles", "must be an object with a float 'high'")
        return cls(data["method"], edges, quantiles, counts.astype(np.int64),
                   outliers.get("low"), outliers["high"])

    def equals(self, other: FieldBins) -> bool:
        """Exact equality of every stored number."""
        return (self.method == other.method and self.low_quantile == other.low_quantile
                and self.high_quantile == other.high_quantile
                and np.array_equal(self.edges, other.edges)
                and np.array_equal(self.quantiles, other.quantiles)
                and np.array_equal(self.counts, other.counts))


def _array(value: Any, shape: tuple[int, ...], error: TokenizerFileError) -> F64:
    """``value`` as a float64 array of ``shape``, else raise ``error`` with the shape named."""
    try:
        out = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        out = None
    if out is None or out.shape != shape:
        got = "not numbers" if out is None else f"shape {out.shape}"
        raise TokenizerFileError(error.file, error.field,
                                 f"expected numbers of shape {shape}, got {got}")
    return out


def _assign(x: F64, edges: F64, method: str) -> I64:
    """Bin of every value of ``x`` (N,) under ``edges`` (n + 1,) and ``method``."""
    n = edges.size - 1
    if method == "zero-log-uniform":
        # exact zeros -> 0; (0, edges[2]) -> 1 (values under the floor included); ... ; -> n - 1
        inner = np.searchsorted(edges[2:n], x, side="right").astype(np.int64)
        return np.where(x == 0.0, 0, 1 + inner)
    return np.searchsorted(edges[1:n], x, side="right").astype(np.int64)


def _inbin_quantiles(x: F64, bins: I64, edges: F64, q: int,
                     method: str) -> tuple[F64, I64]:
    """Per-bin quantiles ``(n, q)`` at ``linspace(0, 1, q)`` (numpy's linear method) and counts.

    One sort by (bin, value); the quantile positions of all bins are gathered at once. A bin
    without training data gets ``q`` points evenly spaced between its edges.
    """
    n = edges.size - 1
    order = np.lexsort((x, bins))
    xs = x[order]
    counts = np.bincount(bins, minlength=n).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    levels = np.linspace(0.0, 1.0, q)
    pos = starts[:, None] + levels[None, :] * np.maximum(counts - 1, 0)[:, None]  # (n, q)
    below = np.floor(pos).astype(np.int64)
    above = np.minimum(below + 1, np.maximum(starts + counts - 1, 0)[:, None])
    frac = pos - below
    safe = np.clip(below, 0, max(xs.size - 1, 0)), np.clip(above, 0, max(xs.size - 1, 0))
    if xs.size:
        quantiles = xs[safe[0]] + frac * (xs[safe[1]] - xs[safe[0]])
    else:
        quantiles = np.zeros((n, q))
    quantiles = np.maximum.accumulate(quantiles, axis=1)  # round-off never breaks monotonicity
    fallback = edges[:-1, None] + levels[None, :] * np.diff(edges)[:, None]  # (n, q)
    if method == "zero-log-uniform":
        fallback[0] = 0.0
    return np.where((counts > 0)[:, None], quantiles, fallback), counts
