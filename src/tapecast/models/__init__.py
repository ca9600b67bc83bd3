"""User-facing forecasters: the baselines and their registry, and JL-CSDI.

Every forecaster implements :class:`tapecast.core.forecaster.Forecaster`: fitted on training
origins (:class:`~tapecast.core.batch.ForecastBatch` or a dataset), it returns
:class:`~tapecast.core.forecast.Samples` ``(B, n_samples, K, H)`` in raw units; see
``tapecast.models.base`` and ``docs/baselines.md``.
"""

from tapecast.core.forecaster import Forecaster
from tapecast.models.base import TrainingWindows, register
from tapecast.models.baselines import baseline_names, get_baseline

__all__ = ["Forecaster", "TrainingWindows", "baseline_names", "get_baseline", "register"]
