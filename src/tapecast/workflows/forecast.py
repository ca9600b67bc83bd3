"""Forecast a split with any forecaster and keep the result as a :class:`Forecast` with provenance.

The one place where a forecaster meets a batch of test origins, used by ``tapecast forecast``,
``tapecast baseline``, the demo and the results scripts::

    forecast = forecast_batch(model, test, 32, name="jl-csdi/sde-mgd", seed=0, chunk=4,
                              sampler="sde-mgd")
    forecast = fit_and_forecast(get_baseline("climatology"), train, test, 32, seed=0)
    forecast.save("clim.npz")

Sampling runs over chunks of origins (chunk ``i`` seeded ``seed + i``, so a run is reproducible
for a given chunk size), reports progress to a :class:`~tapecast.workflows.progress.Reporter`, and
asks an optional ``stop`` hook before each chunk (the demo's deadline), so a forecast is either
whole or not made.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tapecast.core.batch import ForecastBatch, OriginSource
from tapecast.core.errors import TapecastError
from tapecast.core.forecast import Forecast, Samples
from tapecast.core.forecaster import Forecaster, check_n_samples
from tapecast.workflows.progress import Reporter

if TYPE_CHECKING:
    from tapecast.features.featureset import FeatureSet
    from tapecast.features.price_featureset import PriceFeatureSet

StopHook = Callable[[int, float], bool]
"""``stop(done, elapsed_s)``: asked before each chunk with the origins done so far; True stops."""


def sample_in_chunks(forecaster: Forecaster, batch: ForecastBatch, n_samples: int, *,
                     seed: int = 0, chunk: int = 64, reporter: Reporter | None = None,
                     stop: StopHook | None = None, **options: Any) -> Samples | None:
    """``forecaster.sample`` over ``batch`` in chunks of ``chunk`` origins.

    Parameters
    ----------
    forecaster : Forecaster
        Fitted.
    batch : ForecastBatch
        B origins.
    n_samples : int
        S, samples per origin.
    seed : int
        Chunk ``i`` is sampled with seed ``seed + i``.
    chunk : int
        Origins per call (memory and progress granularity).
    reporter : Reporter, optional
        Told the origins done after each chunk, with the rate (``update``).
    stop : callable, optional
        See :data:`StopHook`; when it returns True the chunks done are dropped (a forecast
        covers every origin or none) and None is returned.
    **options
        Passed to ``forecaster.sample`` (e.g. ``sampler``, ``steps``).

    Returns
    -------
    Samples or None
        values (B, S, K, H); None when stopped.
    """
    check_n_samples(n_samples)
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise TapecastError(f"chunk must be a positive integer, got {chunk!r}")
    parts: list[Samples] = []
    start = time.perf_counter()
    for i, first in enumerate(range(0, batch.size, chunk)):
        if stop is not None and stop(first, time.perf_counter() - start):
            return None
        part = batch.select(slice(first, first + chunk))
        parts.append(forecaster.sample(part, n_samples, seed=seed + i, **options))
        if reporter is not None:
            done = first + part.size
            rate = done / max(time.perf_counter() - start, 1e-9)
            reporter.update(done, f"{rate:.2f} windows/s")
    if not parts:
        raise TapecastError("there are no origins to forecast (the batch is empty)")
    return Samples.concat(parts)


def forecast_batch(forecaster: Forecaster, batch: ForecastBatch, n_samples: int, *,
                   name: str | None = None, seed: int = 0, chunk: int = 64,
                   provenance: Mapping[str, Any] | None = None, reporter: Reporter | None = None,
                   stop: StopHook | None = None, **options: Any) -> Forecast | None:
    """Forecast every origin of ``batch`` and keep the samples beside the realized target.

    Parameters
    ----------
    name : str, optional
        The forecast's name in reports (default: the forecaster's).
    provenance : mapping, optional
        Facts about the data (features hash, split, fold...), recorded with what this function
        adds: ``forecaster`` (its ``to_dict()``), ``seed``, ``n_samples``, ``chunk``, the sample
        ``options``, ``sample_s`` and ``windows_per_s``.

    Other parameters are those of :func:`sample_in_chunks`.

    Returns
    -------
    Forecast or None
        samples (B, S, K, H), realized = ``batch.target``, context = ``batch.context`` when the
        batch forecasts its own context channels (else None: a price batch's context holds
        other channels than its target); None when ``stop`` stopped it.
    """
    start = time.perf_counter()
    samples = sample_in_chunks(forecaster, batch, n_samples, seed=seed, chunk=chunk,
                               reporter=reporter, stop=stop, **options)
    if samples is None:
        return None
    seconds = time.perf_counter() - start
    record = {**(provenance or {}), "forecaster": forecaster.to_dict(), "seed": seed,
              "n_samples": n_samples, "chunk": chunk, **_jsonable(options),
              "sample_s": seconds,
              "windows_per_s": batch.size / seconds if seconds > 0 else None}
    return Forecast(name or forecaster.name, samples, realized=batch.target,
                    context=batch.context if batch.forecasts_its_context else None,
                    provenance=record)


def fit_and_forecast(forecaster: Forecaster, train: OriginSource, test: ForecastBatch,
                     n_samples: int, *, name: str | None = None, seed: int = 0, chunk: int = 64,
                     provenance: Mapping[str, Any] | None = None,
                     reporter: Reporter | None = None, **options: Any) -> Forecast:
    """Fit ``forecaster`` on ``train`` (seed ``seed``) and forecast ``test``: a baseline's whole
    job. The provenance also records ``fit_s`` and ``wall_s`` (fit plus sampling)."""
    start = time.perf_counter()
    forecaster.fit(train, seed=seed)
    fit_s = time.perf_counter() - start
    forecast = forecast_batch(forecaster, test, n_samples, name=name, seed=seed, chunk=chunk,
                              provenance=provenance, reporter=reporter, **options)
    assert forecast is not None  # no stop hook
    forecast.provenance.update(fit_s=fit_s, wall_s=time.perf_counter() - start)
    return forecast


def split_provenance(features: str | Path, fs: FeatureSet | PriceFeatureSet,
                     split: str | None = None, fold: int | None = None) -> dict[str, Any]:
    """What a forecast of a features folder's split records about its data and code: the folder,
    its kind (``orderflow`` or ``price``), its windows' SHA-256, the split spec, the split and
    fold, the package version and the git commit (one set of keys for ``tapecast forecast``,
    ``tapecast baseline`` and ``train``, either kind of folder)."""
    from tapecast.evaluate.metrics import git_commit, package_version
    from tapecast.features.price_featureset import PriceFeatureSet

    if isinstance(fs, PriceFeatureSet):
        kind, sha = "price", fs.source.get("windows_sha256")
    else:
        kind, sha = fs.meta.kind, fs.meta.windows_sha256
    return {"features": str(features), "features_kind": kind, "features_sha256": sha,
            "split_spec": fs.split_spec.to_dict(), "split": split, "fold": fold,
            "package_version": package_version(), "git_commit": git_commit()}


def _jsonable(options: Mapping[str, Any]) -> dict[str, Any]:
    """Sampling options as provenance (numpy scalars as Python numbers, others as text)."""
    out: dict[str, Any] = {}
    for key, value in options.items():
        if isinstance(value, np.generic):
            value = value.item()
        out[key] = value if value is None or isinstance(value, str | int | float | bool) \
            else str(value)
    return out
