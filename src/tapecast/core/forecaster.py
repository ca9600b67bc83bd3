"""The forecaster contract: what every probabilistic model and baseline of tapecast offers.

::

    model = SomeForecaster(config).fit(train, val, seed=0, run_dir="runs/x")
    samples = model.sample(test_batch, n_samples=32, seed=1)    # values (B, S, K, H), raw units
    batch = model.make_batch(last_windows, extras=counts)       # from the raw context a user holds
    model.sample(batch, 32, seed=1)

``train`` and ``val`` are any :class:`~tapecast.core.batch.OriginSource`: a
:class:`~tapecast.core.batch.ForecastBatch`, or a feature family's dataset that builds batches on
demand (a model may train on millions of overlapping origins without holding them at once).
Samples come back in the batch's raw units with the window ids, time stamps, instruments and
regimes of the horizon (:class:`~tapecast.core.forecast.Samples`).

Every implementation runs one contract suite (``tests/models/test_forecaster_contract.py``),
and the walk-forward (:mod:`tapecast.evaluate.walkforward`) and the forecast workflow
(:mod:`tapecast.workflows`) take any of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, Self, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike

from tapecast.core.batch import ForecastBatch, OriginSource
from tapecast.core.errors import TapecastError
from tapecast.core.forecast import Samples


def check_n_samples(n_samples: object) -> int:
    """``n_samples`` as an int when it is a positive integer (not a bool), else one line."""
    if isinstance(n_samples, bool) or not isinstance(n_samples, int | np.integer) \
            or n_samples < 1:
        raise TapecastError(f"n_samples must be a positive integer, got {n_samples!r}")
    return int(n_samples)


@runtime_checkable
class Forecaster(Protocol):
    """What every tapecast forecaster offers (baselines and models alike)."""

    @property
    def name(self) -> str:
        """Name in reports and on the CLI (``"climatology"``, ``"jl-csdi"``...)."""
        ...

    def fit(self, train: OriginSource, val: OriginSource | None = None, *, seed: int = 0,
            run_dir: str | Path | None = None) -> Self:
        """Fit on the training origins (validating on ``val`` where the model uses it).

        ``run_dir`` is where a model that trains keeps its checkpoints (resumable); None keeps
        them in a temporary folder. Returns the fitted forecaster.
        """
        ...

    def sample(self, batch: ForecastBatch, n_samples: int, *, seed: int = 0) -> Samples:
        """Draw ``n_samples`` joint forecasts per origin, values (B, n_samples, K, H), raw units.

        Implementations may take further keyword options (a sampler, its steps) with defaults.
        """
        ...

    def make_batch(self, context: ArrayLike, *, horizon: int | None = None,
                   timestamps: ArrayLike | None = None, instruments: ArrayLike | str | None = None,
                   extras: Mapping[str, ArrayLike] | None = None) -> ForecastBatch:
        """A batch to forecast from the raw context a user holds (what a service calls).

        ``context`` is (B, K, C) or (K, C) in original units, oldest first; ``horizon``
        defaults to the model's; ``extras`` holds what the model needs beside the values (for
        order flow: the context windows' ``n_trades`` and ``n_signed``, shape (B, C)). The target
        is unknown (NaN). See :meth:`ForecastBatch.from_context`.
        """
        ...

    def to_dict(self) -> dict[str, Any]:
        """Name and config (JSON-ready), for a forecast's provenance."""
        ...
