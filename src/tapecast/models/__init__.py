"""User-facing forecasters: the :class:`Forecaster` seam, the baselines and their registry.

Every forecaster is fitted on a training :class:`~tapecast.features.batch.ForecastBatch` and
returns :class:`~tapecast.core.forecast.Samples` ``(B, n_samples, K, H)`` in raw units; see
``tapecast.models.base`` and ``docs/baselines.md``.
"""

from tapecast.models.base import (
    Forecaster,
    TrainingWindows,
    baseline_names,
    get_baseline,
    register,
)

__all__ = ["Forecaster", "TrainingWindows", "baseline_names", "get_baseline", "register"]
