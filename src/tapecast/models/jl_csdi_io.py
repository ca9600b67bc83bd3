"""What goes into and out of the JL-CSDI network: model-space tensors, data statistics, targets.

*Model space* is where the diffusion runs: the order-flow normalization of
:class:`~tapecast.features.normalize.OrderFlowNormalizer` (fitted on training windows), then,
with ``standardize``, each channel divided by its training standard deviation ``s_k``::

    z = normalize(x; n_signed, n_trades) / s        x = inverse(z · s; T̂, n̂)

where ``T̂``, ``n̂`` are the forecast-time plug-in counts (:func:`plugin_counts`).

This module holds

* :class:`NormalizedOrigins` — the training-loop dataset over any source of origins (a
  :class:`~tapecast.features.dataset.ForecastDataset` builds batches on demand);
* :func:`covered_windows`, :func:`batch_windows` — the distinct training windows with their
  counts (what the normalizer and :class:`DataStats` are fitted on);
* :class:`DataStats` — per-channel scale and the unconditional moments of the training windows
  (``data_stats.json`` of a saved model);
* :func:`context_moment_targets` — conditional MGD targets from one window's context;
* :func:`plugin_counts` — the causal trade counts used to undo the normalization.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from numpy.typing import NDArray

from tapecast.core.batch import ForecastBatch, OriginSource
from tapecast.core.errors import TapecastError
from tapecast.core.io import atomic_write_text
from tapecast.diffusion import MomentTargets
from tapecast.features.dataset import ForecastDataset, card_inputs
from tapecast.features.normalize import OrderFlowNormalizer

STATS_KIND = "jl-csdi-data-stats"
FORMAT_VERSION = 1
F64 = NDArray[np.float64]


# ----------------------------------------------------------------------------------------------
# model-space tensors


def model_inputs(batch: ForecastBatch, normalizer: OrderFlowNormalizer,
                 scale: F64) -> dict[str, torch.Tensor]:
    """Model-space context and target of ``batch`` (0 where undefined) with their masks.

    The target is normalized with its own realized counts (training); at forecast time it is
    NaN and its mask 0.

    Returns
    -------
    dict of str -> torch.Tensor, float32
        ``context`` and ``context_mask`` (B, K, C), ``target`` and ``target_mask`` (B, K, H).
    """
    card = card_inputs(batch, normalizer)  # the JL-CSDI card's contract, (B, L, K)
    scaled = card["observed_data"] / scale.astype(np.float32)  # (B, L, K)
    values = torch.from_numpy(np.ascontiguousarray(scaled.transpose(0, 2, 1)))  # (B, K, L)
    mask = torch.from_numpy(np.ascontiguousarray(card["observed_mask"].transpose(0, 2, 1)))
    c = batch.context_length
    return {"context": values[..., :c].contiguous(), "context_mask": mask[..., :c].contiguous(),
            "target": values[..., c:].contiguous(), "target_mask": mask[..., c:].contiguous()}


class NormalizedOrigins:
    """The :class:`tapecast.train.Dataset` of forecast origins in model space.

    Batches are built on demand (``ForecastDataset.batch`` then :func:`model_inputs`), so memory
    stays at the size of the windows table whatever the number of (overlapping) origins.

    With ``pair_permutation`` (the SHUFFLE control of :mod:`tapecast.evaluate.walkforward`),
    origin ``i`` pairs its own context with the target of origin ``pair_permutation[i]``: a
    fixed random re-pairing, so a model can learn the targets' distribution but nothing about
    which context precedes which target.
    """

    def __init__(self, data: OriginSource, normalizer: OrderFlowNormalizer,
                 scale: F64, pair_permutation: NDArray[np.int64] | None = None) -> None:
        self.data, self.normalizer, self.scale = data, normalizer, scale
        if pair_permutation is not None and sorted(pair_permutation) != list(range(len(data))):
            raise TapecastError(f"pair_permutation must permute 0..{len(data) - 1}")
        self.pair_permutation = pair_permutation

    def __len__(self) -> int:
        return len(self.data)

    def batch(self, indices: torch.Tensor) -> dict[str, torch.Tensor]:
        """Model inputs of the origins at ``indices`` (int64, (n,))."""
        rows = indices.numpy()
        inputs = model_inputs(self.data.batch(rows), self.normalizer, self.scale)
        if self.pair_permutation is not None:
            moved = model_inputs(self.data.batch(self.pair_permutation[rows]), self.normalizer,
                                 self.scale)
            inputs["target"], inputs["target_mask"] = moved["target"], moved["target_mask"]
        return inputs


def covered_windows(data: ForecastDataset) -> pl.DataFrame:
    """The rows of ``data.windows`` that belong to at least one of its samples (each once).

    For a training dataset these are training windows only: every window of a sample carries
    the split label.
    """
    origins = data.origins.select("instrument", "first_window", "last_window")
    spans = origins.with_columns(pl.int_ranges("first_window", pl.col("last_window") + 1)
                                 .alias("window")).explode("window").select("instrument",
                                                                            "window").unique()
    return data.windows.join(spans, on=["instrument", "window"], how="semi")


def batch_windows(batch: ForecastBatch) -> pl.DataFrame:
    """The distinct windows of ``batch`` as a windows table, each ``(instrument, window)`` once.

    Returns
    -------
    polars.DataFrame
        ``instrument``, ``window``, the channels (float64, NaN where undefined), ``n_signed``
        and ``n_trades``; the first occurrence of each window, in batch order.
    """
    b, length = batch.size, batch.context_length + batch.horizon
    values = np.concatenate([batch.context, batch.target], axis=2)  # (B, K, L)
    flat = values.transpose(0, 2, 1).reshape(b * length, len(batch.channels))  # (B·L, K)
    frame = pl.DataFrame({
        "instrument": np.repeat(np.asarray(batch.instruments).astype(str), length),
        "window": np.asarray(batch.window_ids, dtype=np.int64).reshape(-1),
        **{c: flat[:, k] for k, c in enumerate(batch.channels)},
        "n_signed": np.asarray(batch.extra("n_signed"), dtype=np.int64).reshape(-1),
        "n_trades": np.asarray(batch.extra("n_trades"), dtype=np.int64).reshape(-1)})
    return frame.unique(subset=["instrument", "window"], keep="first", maintain_order=True)


# ----------------------------------------------------------------------------------------------
# data statistics


@dataclass(frozen=True)
class DataStats:
    """Per-channel scale and unconditional moments of the training windows in model space.

    Attributes
    ----------
    channels : tuple of str, length K
    scale : ndarray, float64, (K,)
        Training std of each normalized channel (all ones without ``standardize``).
    central : ndarray, float64, (K, 3)
        Centered moments of orders 2, 3, 4 of the model-space training windows.
    covariance : ndarray, float64, (K, K)
        Their covariance (pairwise-complete).
    n_windows : int
        Training windows they come from.
    """

    channels: tuple[str, ...]
    scale: F64
    central: F64
    covariance: F64
    n_windows: int

    @classmethod
    def fit(cls, windows: pl.DataFrame, normalizer: OrderFlowNormalizer,
            standardize: bool) -> DataStats:
        """Statistics of training ``windows`` (a windows table with channels and counts)."""
        channels = normalizer.channels
        x = windows.select(pl.col(c).cast(pl.Float64) for c in channels).to_numpy()  # (N, K)
        z = normalizer.transform(x, windows["n_signed"].to_numpy(),
                                 windows["n_trades"].to_numpy())  # (N, K)
        defined = np.isfinite(z)
        if not defined.any(axis=0).all():
            raise TapecastError("JL-CSDI: a channel has no defined training value")
        std = np.array([np.std(z[defined[:, k], k]) for k in range(z.shape[1])])
        scale = np.where(std > 0, std, 1.0) if standardize else np.ones(z.shape[1])
        central, covariance = _moments(z / scale, defined)
        return cls(tuple(channels), scale, central, covariance, int(z.shape[0]))

    def targets(self) -> MomentTargets:
        """The unconditional MGD targets (batch dimension 1)."""
        return MomentTargets(torch.from_numpy(self.central)[None],
                             torch.from_numpy(self.covariance)[None])

    def to_dict(self) -> dict[str, Any]:
        return {"format_version": FORMAT_VERSION, "kind": STATS_KIND,
                "channels": list(self.channels), "scale": self.scale.tolist(),
                "central": self.central.tolist(), "covariance": self.covariance.tolist(),
                "n_windows": self.n_windows}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DataStats:
        """Inverse of :meth:`to_dict` (a TapecastError on another kind or bad shapes)."""
        if data.get("kind") != STATS_KIND or data.get("format_version") != FORMAT_VERSION:
            raise TapecastError(f"not JL-CSDI data statistics of format {FORMAT_VERSION} (kind "
                                f"{data.get('kind')!r}, format {data.get('format_version')!r})")
        try:
            channels = tuple(str(c) for c in data["channels"])
            k = len(channels)
            scale = np.asarray(data["scale"], dtype=np.float64).reshape(k)
            central = np.asarray(data["central"], dtype=np.float64).reshape(k, 3)
            cov = np.asarray(data["covariance"], dtype=np.float64).reshape(k, k)
            n_windows = int(data["n_windows"])
        except (KeyError, TypeError, ValueError) as exc:
            raise TapecastError(f"JL-CSDI data statistics: missing or malformed field ({exc})") \
                from None
        if not (np.all(np.isfinite(scale)) and np.all(scale > 0)):
            raise TapecastError("JL-CSDI data statistics: scales must be positive")
        return cls(channels, scale, central, cov, n_windows)

    def save(self, path: Path) -> None:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n")


def _moments(z: F64, defined: NDArray[np.bool_]) -> tuple[F64, F64]:
    """NaN-aware central moments (K, 3) and pairwise-complete covariance (K, K) of z (N, K)."""
    k = z.shape[1]
    central = np.zeros((k, 3))
    for j in range(k):
        d = z[defined[:, j], j] - z[defined[:, j], j].mean()
        central[j] = [np.mean(d**2), np.mean(d**3), np.mean(d**4)]
    cov = np.diag(central[:, 0])
    for a in range(k):
        for b in range(a + 1, k):
            both = defined[:, a] & defined[:, b]
            if both.sum() > 1:
                da, db = z[both, a] - z[both, a].mean(), z[both, b] - z[both, b].mean()
                cov[a, b] = cov[b, a] = float(np.mean(da * db))
    return central, cov


# ----------------------------------------------------------------------------------------------
# conditional MGD targets


def context_moment_targets(context: torch.Tensor, mask: torch.Tensor, horizon: int,
                           fallback: DataStats | None = None,
                           min_pairs: int = 4) -> MomentTargets:
    """Moments of the H-step forecast errors of a per-channel AR(1) fitted on each context.

    For each window and channel, least squares on the observed pairs ``(z_c, z_{c+1})`` gives
    ``φ`` (clipped to ±0.95) and innovations ``e`` with variance σ², third and fourth moments
    and cross-channel covariance Σ. With iid innovations the h-step error is
    ``Σ_{i<h} φ^i e_{t+h-i}`` (Hamilton 1994, *Time Series Analysis*, eq. 4.2.27), so its
    cumulants are ``κ_r Σ_{i<h} φ^{r i}`` and its cross-covariance ``Σ_kj Σ_{i<h} (φ_k φ_j)^i``.
    The targets are these moments averaged over h = 1..H (MGD averages over positions). For
    channels whose level barely persists (φ ≈ 0) this is the spread of the context itself;
    for persistent channels it is the much smaller spread of forecast errors.

    Parameters
    ----------
    context, mask : torch.Tensor, (B, K, C)
        Model-space context and 1 where observed.
    horizon : int
        H.
    fallback : DataStats, optional
        Moments used for a channel with fewer than ``min_pairs`` observed pairs.

    Returns
    -------
    MomentTargets
        ``central`` (B, K, 3), ``covariance`` (B, K, K), float64.
    """
    z, m = context.to(torch.float64), mask.to(torch.float64)
    w = m[..., :-1] * m[..., 1:]  # (B, K, C-1) observed pairs
    n = w.sum(-1).clamp_min(1.0)  # (B, K)
    prev = z[..., :-1] - (w * z[..., :-1]).sum(-1, keepdim=True) / n[..., None]
    nxt = z[..., 1:] - (w * z[..., 1:]).sum(-1, keepdim=True) / n[..., None]
    phi = ((w * prev * nxt).sum(-1) / (w * prev**2).sum(-1).clamp_min(1e-12)).clamp(-0.95, 0.95)
    e = w * (nxt - phi[..., None] * prev)  # (B, K, C-1), 0 off the observed pairs
    var, m3, m4 = ((e**p).sum(-1) / n for p in (2, 3, 4))
    m2_h = var * _step_mean(phi**2, horizon)
    kappa4 = m4 - 3.0 * var**2
    central = torch.stack([m2_h, m3 * _step_mean(phi**3, horizon),
                           kappa4 * _step_mean(phi**4, horizon)
                           + 3.0 * _mean_sq_over_h(var, phi, horizon)], dim=-1)  # (B, K, 3)
    joint = torch.einsum("bkc,bjc->bkj", w, w).clamp_min(1.0)
    cross = _step_mean(phi[:, :, None] * phi[:, None], horizon)  # (B, K, K)
    cov = torch.einsum("bkc,bjc->bkj", e, e) / joint * cross
    cov = cov - torch.diag_embed(cov.diagonal(dim1=1, dim2=2)) + torch.diag_embed(m2_h)
    weak = (w.sum(-1) < min_pairs) | (var <= 1e-12)  # (B, K)
    if bool(weak.any()):
        central, cov = _fill_weak(central, cov, weak, fallback)
    return MomentTargets(central, cov)


def _step_mean(base: torch.Tensor, horizon: int) -> torch.Tensor:
    """``mean_{h=1..H} Σ_{i<h} base^i``, shape of ``base``."""
    powers = torch.arange(horizon, dtype=torch.float64)  # i = 0 .. H-1
    return (base[..., None] ** powers).cumsum(-1).mean(-1)


def _mean_sq_over_h(var: torch.Tensor, phi: torch.Tensor, horizon: int) -> torch.Tensor:
    """Mean over h of (σ² Σ_{i<h} φ^{2i})²: the Gaussian part 3 M2_h² needs M2_h per h."""
    powers = torch.arange(horizon, dtype=torch.float64)
    m2_each = var[..., None] * (phi[..., None] ** (2 * powers)).cumsum(-1)  # (B, K, H)
    return (m2_each**2).mean(-1)


def _fill_weak(central: torch.Tensor, cov: torch.Tensor, weak: torch.Tensor,
               fallback: DataStats | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace the moments of weakly observed (window, channel) cells by the fallback's."""
    k = central.shape[1]
    if fallback is None:
        base_c = torch.tensor([1.0, 0.0, 3.0], dtype=torch.float64).expand(k, 3)
        base_v = torch.eye(k, dtype=torch.float64)
    else:
        base_c = torch.from_numpy(fallback.central)
        base_v = torch.from_numpy(fallback.covariance)
    central = torch.where(weak[..., None], base_c[None], central)
    either = weak[:, :, None] | weak[:, None, :]  # (B, K, K)
    return central, torch.where(either, base_v[None], cov)


# ----------------------------------------------------------------------------------------------
# forecast-time counts


def plugin_counts(batch: ForecastBatch, how: str) -> tuple[F64, F64]:
    """Causal plug-in counts for the horizon windows from the context windows' counts.

    Parameters
    ----------
    batch : ForecastBatch
        Its extras ``n_signed`` / ``n_trades`` (B, C + H); only the first C columns are read.
    how : {"context-mean", "context-median", "context-last"}

    Returns
    -------
    (ndarray, ndarray), float64, (B, 1, 1)
        ``T̂`` (signed trades) and ``n̂`` (trades) per origin, floored at 1, shaped to broadcast
        against samples (B, S, H) with the channel axis removed.
    """
    c = batch.context_length
    counts = []
    for name in ("n_signed", "n_trades"):
        values = np.asarray(batch.extra(name)[:, :c], dtype=np.float64)  # (B, C)
        if how == "context-mean":
            stat = values.mean(axis=1)
        elif how == "context-median":
            stat = np.median(values, axis=1)
        elif how == "context-last":
            stat = values[:, -1]
        else:
            raise TapecastError(f"unknown count plug-in {how!r}")
        counts.append(np.maximum(stat, 1.0).reshape(-1, 1, 1))
    return counts[0], counts[1]
