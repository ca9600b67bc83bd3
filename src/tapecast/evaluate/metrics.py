"""Aggregation: one forecast (or several) in, one JSON-ready dictionary of metrics out.

The element-wise scores live in :mod:`tapecast.evaluate.scores`, ``calibration``, ``joint`` and
``significance``; this module only
masks, groups and averages them (gluonts keeps the same split between ``ev/stats.py`` and
``ev/metrics.py``). Everything returned passes through :func:`to_jsonable`, so ``NaN`` and
``inf`` become ``None`` (``null`` in ``metrics.json``) and NumPy scalars become Python numbers.

Conventions
-----------
- A channel group is a name and a list of channels: every channel on its own, ``imbalance`` (the
  ``imb_`` channels together, when there are any) and ``all_channels``.
- Regimes are the forecast origins' volatility tags (``low``/``mid``/``high``) plus ``all``; a
  regime with fewer than ``min_regime_windows`` windows reports ``None`` and its count stays
  visible in ``n_per_regime``.
- Per-channel CRPS is in the channel's own units. Where channels are combined (``crps.mean``,
  ``crps.by_step``, the Diebold-Mariano loss, energy and variogram scores) each is first divided
  by its scale, the std of its scored realized values (:func:`channel_scales`), the same for every
  forecaster of a report; ``crps.mean_raw`` keeps the plain average.
- The DM tests take the overlap of neighbouring targets from the window ids (ceil(h / stride)),
  not from the horizon alone (:func:`origin_stride`, :func:`overlap`).
"""

from __future__ import annotations

import importlib.metadata
import itertools
import math
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tapecast.core.errors import TapecastError
from tapecast.core.forecast import REGIMES, Forecast
from tapecast.evaluate import calibration, joint, scores, significance

IMBALANCE_PREFIX = "imb_"
ALL_CHANNELS = "all_channels"
DEFAULT_LEVELS = (50, 80, 90, 95)
PROVENANCE_KEYS = ("features_sha256", "features", "split", "split_spec", "fold", "seed",
                   "seeds", "package_version", "git_commit")

Array = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


# JSON -------------------------------------------------------------------------------------------
def to_jsonable(value: Any) -> Any:
    """``value`` with NaN/inf replaced by None, NumPy scalars and arrays made plain Python.

    Dict keys become strings; tuples become lists. The result passes
    ``json.dumps(..., allow_nan=False)``.
    """
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _float(x: Any) -> float | None:
    value = float(x)
    return value if math.isfinite(value) else None


# masking helpers --------------------------------------------------------------------------------
def masked_mean(values: Array, mask: BoolArray, axis: int | tuple[int, ...] | None) -> Array:
    """Mean of ``values`` over ``axis`` where ``mask`` is True (NaN where nothing is observed)."""
    kept = np.where(mask, values, 0.0)
    count = mask.sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(kept.sum(axis=axis) / count, dtype=np.float64)


def _scored_arrays(forecast: Forecast) -> tuple[NDArray[np.float32], Array, BoolArray]:
    """Samples (B,S,K,H), realized with masked entries set to 0 (B,K,H), mask (B,K,H)."""
    if forecast.realized is None or forecast.mask is None:
        raise TapecastError(f"forecast '{forecast.name}' has no realized values to score against")
    mask = np.asarray(forecast.mask, dtype=bool)
    realized = np.where(mask, forecast.realized, 0.0)
    return forecast.samples.values, realized, mask


def channel_scales(realized: Array, mask: BoolArray) -> Array:
    """Scale of each channel: std of its scored realized values over windows and steps, (K,).

    The same for every forecaster of one report (they score the same realized values), so
    dividing by it changes no ranking within a channel; it only lets channels in different units
    (``log_ret`` ~ 1e-4, ``log_realized_var`` ~ 1) count alike in cross-channel means, the DM
    loss and the energy and variogram scores. A channel without spread gets scale 1.
    """
    k = realized.shape[1]
    scales = np.ones(k, dtype=np.float64)
    for i in range(k):
        values = realized[:, i][mask[:, i]]
        std = float(values.std()) if values.size > 1 else 0.0
        scales[i] = std if np.isfinite(std) and std > 0 else 1.0
    return scales


def _scaled(values: NDArray[np.float32], realized: Array, scales: Array
            ) -> tuple[NDArray[np.float32], Array]:
    """Samples (B,S,K,H) and realized (B,K,H) with each channel divided by its scale."""
    return ((values / scales[None, None, :, None]).astype(np.float32),
            realized / scales[None, :, None])


def channel_groups(channels: Sequence[str],
                   groups: Mapping[str, Sequence[str]] | None = None) -> dict[str, list[int]]:
    """Channel groups as axis positions: each channel, ``imbalance``, ``all_channels``.

    ``groups`` (name -> channel names) replaces the default; unknown channel names are an error.
    """
    names = list(channels)
    if groups is None:
        out = {name: [i] for i, name in enumerate(names)}
        imbalance = [i for i, name in enumerate(names) if name.startswith(IMBALANCE_PREFIX)]
        if imbalance:
            out["imbalance"] = imbalance
        out[ALL_CHANNELS] = list(range(len(names)))
        return out
    out = {}
    for group, members in groups.items():
        missing = [m for m in members if m not in names]
        if missing:
            raise TapecastError(f"group '{group}' names unknown channel(s) {missing}; "
                                f"channels are {names}")
        out[str(group)] = [names.index(m) for m in members]
    return out


def regime_masks(regimes: NDArray[np.str_] | None, batch: int) -> dict[str, BoolArray]:
    """Window masks per regime: ``low``, ``mid``, ``high`` (and other tags seen), then ``all``.
    A window tagged ``""`` (no regime, as a price origin) counts in ``all`` only."""
    out: dict[str, BoolArray] = {}
    if regimes is not None:
        tags = list(REGIMES) + sorted(set(regimes.tolist()) - set(REGIMES) - {""})
        out = {tag: np.asarray(regimes == tag) for tag in tags}
    out["all"] = np.ones(batch, dtype=bool)
    return out


def _by_group_regime(values: Array, mask: BoolArray, groups: Mapping[str, list[int]],
                     regimes: Mapping[str, BoolArray],
                     min_windows: int) -> dict[str, dict[str, float | None]]:
    """Masked mean of per-element ``values`` (B,K,H) per group, then per regime."""
    out: dict[str, dict[str, float | None]] = {}
    for group, idx in groups.items():
        row: dict[str, float | None] = {}
        for regime, windows in regimes.items():
            if regime != "all" and int(windows.sum()) < min_windows:
                row[regime] = None
                continue
            sub_mask = mask[windows][:, idx]
            row[regime] = _float(masked_mean(values[windows][:, idx], sub_mask, axis=None))
        out[group] = row
    return out


def _by_regime(per_window: Array, regimes: Mapping[str, BoolArray],
               min_windows: int) -> dict[str, float | None]:
    """Mean of a per-window score (B,) per regime (NaN windows skipped)."""
    out: dict[str, float | None] = {}
    for regime, windows in regimes.items():
        values = per_window[windows]
        values = values[np.isfinite(values)]
        enough = regime == "all" or int(windows.sum()) >= min_windows
        out[regime] = _float(values.mean()) if enough and values.size else None
    return out


def _per_window_block(per_window: Array, regimes: Mapping[str, BoolArray],
                      min_windows: int) -> dict[str, Any]:
    """``{"mean": float, "by_regime": {regime: float}}`` of a per-window score (B,)."""
    by_regime = _by_regime(per_window, regimes, min_windows)
    return {"mean": by_regime["all"], "by_regime": by_regime}


# one forecast -----------------------------------------------------------------------------------
def _crps_block(crps: Array, mask: BoolArray, channels: Sequence[str],
                scales: Array) -> dict[str, Any]:
    """Per channel ``{"mean", "by_step"}`` in the channel's units; ``mean`` = mean over channels
    of CRPS / channel scale (:func:`channel_scales`), ``mean_raw`` = plain mean over channels,
    ``by_step`` = scaled mean over channels per step, ``scales``."""
    out: dict[str, Any] = {}
    channel_means = masked_mean(crps, mask, axis=(0, 2))  # (K,)
    by_step = masked_mean(crps, mask, axis=0)  # (K, H)
    for k, name in enumerate(channels):
        out[name] = {"mean": _float(channel_means[k]), "by_step": by_step[k].tolist()}
    finite = np.isfinite(channel_means)
    scaled = channel_means / scales
    out["mean"] = _float(scaled[finite].mean()) if finite.any() else None
    out["mean_raw"] = _float(channel_means[finite].mean()) if finite.any() else None
    step_scaled = by_step / scales[:, None]  # (K, H)
    out["by_step"] = [_float(np.nanmean(step_scaled[:, h])) if np.isfinite(step_scaled[:, h]).any()
                      else None for h in range(step_scaled.shape[1])]
    out["scales"] = scales.tolist()
    return out


def _calibration_blocks(values: NDArray[np.float32], realized: Array, mask: BoolArray,
                        levels: Sequence[int], rng: np.random.Generator,
                        agg: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], Array]:
    """Rank coverage, quantile coverage and interval width per level, and the PIT (B,K,H)."""
    pit = calibration.randomized_pit(values, realized, rng)
    rank: dict[str, Any] = {}
    quant: dict[str, Any] = {}
    width: dict[str, Any] = {}
    for level in levels:
        fraction = level / 100.0
        covered = calibration.rank_coverage(pit, fraction).astype(np.float64)
        q_covered, q_width = calibration.quantile_interval_coverage(values, realized, fraction)
        rank[str(level)] = agg(covered)
        quant[str(level)] = agg(np.asarray(q_covered, dtype=np.float64))
        width[str(level)] = agg(np.asarray(q_width, dtype=np.float64))
    return rank, quant, width, np.asarray(pit, dtype=np.float64)


def _pit_block(pit: Array, mask: BoolArray, groups: Mapping[str, list[int]],
               bins: int = 10) -> dict[str, Any]:
    """PIT histogram (edges, counts, density) and uniformity tests per channel group."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    out: dict[str, Any] = {}
    for group, idx in groups.items():
        sub_pit, sub_mask = pit[:, idx], mask[:, idx]
        counts = calibration.pit_histogram(sub_pit, sub_mask, bins=bins)
        total = int(counts.sum())
        density = counts * bins / total if total else np.full(bins, np.nan)
        out[group] = {"histogram": {"edges": edges, "counts": counts, "density": density},
                      "uniformity": calibration.pit_uniformity(sub_pit, sub_mask, bins=bins)}
    return out


def _joint_block(values: NDArray[np.float32], realized: Array, mask: BoolArray,
                 channels: Sequence[str], pair: tuple[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {"cov_pair": list(pair), "cov_rel_error": None}
    if pair[0] in channels and pair[1] in channels:
        i, j = channels.index(pair[0]), channels.index(pair[1])
        out["cov_rel_error"] = _float(joint.cov_rel_error(values, realized, mask, i, j))
    out["corr_frobenius_rel_error"] = (  # a 1 x 1 correlation matrix is 1 on both sides
        _float(joint.corr_frobenius_rel_error(values, realized, mask)) if len(channels) > 1
        else None)
    diversity = np.asarray(joint.diversity_ratio(values, mask), dtype=np.float64)
    out["diversity_ratio"] = {name: _float(diversity[k]) for k, name in enumerate(channels)}
    return out


def evaluate_forecast(forecast: Forecast, *, groups: Mapping[str, Sequence[str]] | None = None,
                      levels: Sequence[int] = DEFAULT_LEVELS, seed: int = 0,
                      min_regime_windows: int = 30,
                      pair: tuple[str, str] = ("imb_a0", "imb_a025")) -> dict[str, Any]:
    """Every metric of one forecast, JSON-ready (see ``docs/evaluation-report.md``).

    Parameters
    ----------
    forecast : Forecast
        Samples (B,S,K,H) with realized values and mask (B,K,H).
    groups : mapping of str to channel names, optional
        Channel groups for coverage, width and PIT; default: each channel, ``imbalance``
        (the ``imb_`` channels) and ``all_channels``.
    levels : sequence of int
        Central-interval levels in percent.
    seed : int
        Seed of the randomized PIT (ties and the rank's uniform jitter).
    min_regime_windows : int
        Fewer windows than this in a regime: its values are None.
    pair : (str, str)
        Channels whose pooled covariance is compared (``cov_rel_error``).

    Returns
    -------
    dict
        Keys ``crps``, ``energy_score``, ``variogram_score``, ``coverage``,
        ``coverage_quantile``, ``interval_width``, ``cov_pair``, ``cov_rel_error``,
        ``corr_frobenius_rel_error``, ``diversity_ratio``, ``pit``, ``n_windows``,
        ``n_per_regime``, ``n_samples``, ``horizon``, ``channels``.
    """
    values, realized, mask = _scored_arrays(forecast)
    channels = list(forecast.samples.channels)
    group_index = channel_groups(channels, groups)
    regimes = regime_masks(forecast.samples.regimes, forecast.samples.batch)

    def agg(per_element: Array) -> dict[str, dict[str, float | None]]:
        return _by_group_regime(per_element, mask, group_index, regimes, min_regime_windows)

    crps = np.asarray(scores.crps_ensemble(values, realized, estimator="fair"), dtype=np.float64)
    scales = channel_scales(realized, mask)
    std_values, std_realized = _scaled(values, realized, scales)  # channels in common units
    energy = np.asarray(scores.energy_score(std_values, std_realized, mask), dtype=np.float64)
    variogram = np.asarray(scores.variogram_score(std_values, std_realized, mask),
                           dtype=np.float64)
    rank, quant, width, pit = _calibration_blocks(values, realized, mask, levels,
                                                    np.random.default_rng(seed), agg)
    out: dict[str, Any] = {
        "crps": _crps_block(crps, mask, channels, scales),
        "energy_score": _per_window_block(energy, regimes, min_regime_windows),
        "variogram_score": _per_window_block(variogram, regimes, min_regime_windows),
        "coverage": rank, "coverage_quantile": quant, "interval_width": width,
    }
    out.update(_joint_block(values, realized, mask, channels, pair))
    out["pit"] = _pit_block(pit, mask, group_index)
    out["n_windows"] = forecast.samples.batch
    out["n_per_regime"] = {regime: int(w.sum()) for regime, w in regimes.items()}
    out.update(n_samples=forecast.samples.n_samples, horizon=forecast.samples.horizon,
               channels=channels, min_regime_windows=min_regime_windows)
    return dict(to_jsonable(out))


# several forecasts ------------------------------------------------------------------------------
def check_same_targets(forecasts: Sequence[Forecast]) -> None:
    """Raise a TapecastError unless all ``forecasts`` score the same windows in the same order."""
    if not forecasts:
        raise TapecastError("no forecasts to compare")
    first = forecasts[0]
    names = [f.name for f in forecasts]
    if len(set(names)) != len(names):
        raise TapecastError(f"forecaster names must be unique, got {names}")
    for other in forecasts[1:]:
        where = f"forecasts '{first.name}' and '{other.name}'"
        a, b = first.samples, other.samples
        if (a.batch, a.channels, a.horizon) != (b.batch, b.channels, b.horizon):
            raise TapecastError(
                f"{where} differ in shape: {a.batch} windows x {list(a.channels)} x {a.horizon} "
                f"steps vs {b.batch} x {list(b.channels)} x {b.horizon}")
        if a.window_ids is not None and b.window_ids is not None and not np.array_equal(
                a.window_ids, b.window_ids):
            raise TapecastError(f"{where} target different window ids")
        if first.realized is None or other.realized is None or not np.array_equal(
                first.realized, other.realized, equal_nan=True):
            raise TapecastError(f"{where} have different (or missing) realized values")


def window_losses(forecast: Forecast) -> tuple[Array, Array]:
    """Per-window mean scaled CRPS (B,) and per-window per-step mean over channels (B,H).

    Each channel's CRPS is divided by its scale (:func:`channel_scales`) before the mean over
    channels, so the loss is not just the CRPS of the channel with the largest units.
    """
    values, realized, mask = _scored_arrays(forecast)
    crps = np.asarray(scores.crps_ensemble(values, realized, estimator="fair"), dtype=np.float64)
    crps = crps / channel_scales(realized, mask)[None, :, None]
    return masked_mean(crps, mask, axis=(1, 2)), masked_mean(crps, mask, axis=1)


def origin_stride(window_ids: NDArray[np.int64] | None,
                  instruments: NDArray[np.str_] | None = None) -> int:
    """Smallest step between the first target windows of consecutive origins (1 if unknown).

    With stride s, the targets of an h-step forecast overlap those of ceil(h / s) - 1 neighbours.
    """
    if window_ids is None or len(window_ids) < 2:
        return 1
    first = np.asarray(window_ids)[:, 0]
    same = (np.ones(len(first) - 1, dtype=bool) if instruments is None
            else np.asarray(instruments)[1:] == np.asarray(instruments)[:-1])
    steps = np.diff(first)[same]
    steps = steps[steps > 0]
    return int(steps.min()) if steps.size else 1


def overlap(horizon: int, stride: int) -> int:
    """Number of origins an h-step target overlaps with (itself included): ceil(h / stride)."""
    return max(1, -(-horizon // max(stride, 1)))


def _dm(loss_a: Array, loss_b: Array, horizon: int) -> dict[str, Any]:
    """DM test (HAC variance, HLN correction for ``horizon``, the targets' overlap)."""
    return significance.diebold_mariano(loss_a, loss_b, horizon=horizon).to_dict()


def compare_forecasts(forecasts: Sequence[Forecast],
                      reference: str = "climatology") -> list[dict[str, Any]]:
    """Diebold-Mariano tests of per-window mean CRPS between forecasters (Diebold & Mariano 1995).

    When ``reference`` is among the forecasts, every other forecaster is tested against it
    (``b`` = reference); otherwise every pair is tested. ``mean_diff`` is mean(loss_a - loss_b):
    negative means ``a`` scores better. The loss is the per-window mean of scaled CRPS
    (:func:`window_losses`). The targets of neighbouring origins overlap ceil(h / stride) times
    (stride from the window ids, :func:`origin_stride`); that overlap, not H, sets the lag floor
    and the Harvey et al. (1997) correction: with stride = H (the evaluation default) the
    per-window losses do not overlap. Per horizon step h the loss is the scaled mean over
    channels at that step.

    Returns
    -------
    list of dict
        ``{"a", "b", "statistic", "p_value", "mean_diff", "n", "n_eff", "lag", "by_step": [...]}``.
    """
    check_same_targets(forecasts)
    losses = {f.name: window_losses(f) for f in forecasts}
    names = [f.name for f in forecasts]
    stride = origin_stride(forecasts[0].samples.window_ids, forecasts[0].samples.instruments)
    if reference in names:
        pairs = [(name, reference) for name in names if name != reference]
    else:
        pairs = list(itertools.combinations(names, 2))
    tests: list[dict[str, Any]] = []
    for a, b in pairs:
        (mean_a, step_a), (mean_b, step_b) = losses[a], losses[b]
        horizon = step_a.shape[1]
        entry = {"a": a, "b": b, **_dm(mean_a, mean_b, overlap(horizon, stride))}
        entry["by_step"] = [_dm(step_a[:, h], step_b[:, h], overlap(h + 1, stride))
                            for h in range(horizon)]
        tests.append(entry)
    return list(to_jsonable(tests))


# provenance -------------------------------------------------------------------------------------
def git_commit(path: Path | None = None) -> str | None:
    """``git rev-parse HEAD`` of the repository holding ``path`` (this package), else None."""
    where = path if path is not None else Path(__file__).resolve().parent
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True,
                              text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else None


def package_version() -> str | None:
    try:
        return importlib.metadata.version("tapecast")
    except importlib.metadata.PackageNotFoundError:
        return None


def collect_provenance(forecasts: Sequence[Forecast],
                       extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Provenance of a report: shared facts hoisted, each forecast's own provenance kept.

    A key of :data:`PROVENANCE_KEYS` (features hash, split, seeds) appears at the top level with
    its value when every forecast carries the same value, or as ``{name: value}`` otherwise.
    """
    out: dict[str, Any] = {}
    for key in PROVENANCE_KEYS:
        values = {f.name: f.provenance[key] for f in forecasts if key in f.provenance}
        if not values:
            continue
        distinct = {repr(v) for v in values.values()}
        same = len(distinct) == 1 and len(values) == len(forecasts)
        out[key] = next(iter(values.values())) if same else values
    out["package_version"] = package_version()
    out["git_commit"] = git_commit()
    out["forecasts"] = {f.name: f.provenance for f in forecasts}
    out.update(extra or {})
    return dict(to_jsonable(out))


def crps_skill(entry: Mapping[str, Any], reference: Mapping[str, Any]) -> dict[str, Any]:
    """CRPS skill score 1 - CRPS / CRPS_reference per channel, and its mean over channels.

    Unlike the raw ``crps.mean``, the mean skill weighs every channel equally whatever its
    units (Gneiting & Raftery 2007, sec. 2 for skill scores). Positive: better than the reference.
    """
    out: dict[str, Any] = {}
    for channel in entry["channels"]:
        own, ref = entry["crps"][channel]["mean"], reference["crps"][channel]["mean"]
        out[channel] = None if own is None or not ref else 1.0 - own / ref
    finite = [v for v in out.values() if v is not None]
    out["mean"] = sum(finite) / len(finite) if finite else None
    return out


def build_metrics(forecasts: Sequence[Forecast], provenance: Mapping[str, Any] | None = None, *,
                  reference: str = "climatology", unavailable: Mapping[str, str] | None = None,
                  **evaluate_kwargs: Any) -> dict[str, Any]:
    """The whole ``metrics.json``: per-forecaster metrics, DM tests and provenance.

    ``wall_s`` of each forecaster is taken from its provenance (None when absent); when the
    ``reference`` forecaster is present every entry also gets ``crps_skill`` against it.
    ``unavailable`` maps forecasters that could not run (e.g. Chronos offline) to the reason
    (``"n/a offline: ..."``); they are listed under ``unavailable`` and shown as rows in the
    report. ``evaluate_kwargs`` go to :func:`evaluate_forecast`.
    """
    check_same_targets(forecasts)
    per_forecaster: dict[str, Any] = {}
    for forecast in forecasts:
        entry = evaluate_forecast(forecast, **evaluate_kwargs)
        entry["wall_s"] = to_jsonable(forecast.provenance.get("wall_s"))
        per_forecaster[forecast.name] = entry
    if reference in per_forecaster:
        for entry in per_forecaster.values():
            entry["crps_skill"] = crps_skill(entry, per_forecaster[reference])
    return {"forecasters": per_forecaster,
            "reference": reference if reference in per_forecaster else None,
            "dm_tests": compare_forecasts(forecasts, reference=reference),
            "unavailable": dict(unavailable or {}),
            "provenance": collect_provenance(forecasts, provenance)}
