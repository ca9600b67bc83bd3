"""The verbs the command line, the demo, the scripts and (later) the service share.

Below ``commands/`` and above ``models/`` and ``evaluate/``; nothing here prints or parses flags:

- :mod:`~tapecast.workflows.forecast`: forecast a batch of origins with any
  :class:`~tapecast.core.forecaster.Forecaster` (chunked, seeded, with progress and a stop hook)
  into a :class:`~tapecast.core.forecast.Forecast` with provenance; fit-and-forecast for
  baselines;
- :mod:`~tapecast.workflows.tape`: data files to trades and quotes, trade signs;
- :mod:`~tapecast.workflows.progress`: the :class:`Reporter` protocol progress is told through.
"""

from tapecast.workflows.forecast import fit_and_forecast, forecast_batch, sample_in_chunks
from tapecast.workflows.progress import Quiet, Reporter

__all__ = ["Quiet", "Reporter", "fit_and_forecast", "forecast_batch", "sample_in_chunks"]
