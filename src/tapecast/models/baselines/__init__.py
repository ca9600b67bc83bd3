"""Baseline forecasters, registered under their CLI names (``tapecast baseline NAME``).

``climatology``, ``hist-vol``, ``bootstrap``, ``garch``, ``var``, ``naive`` and ``chronos``; see
``docs/baselines.md``. Importing this package registers them; heavy dependencies (``arch``,
``torch``, ``chronos``) are imported only when a baseline that needs them is fitted or sampled.
"""

from tapecast.models.baselines.bootstrap import BlockBootstrap, BootstrapConfig
from tapecast.models.baselines.chronos import ChronosBolt, ChronosConfig, ModelUnavailableError
from tapecast.models.baselines.climatology import Climatology, ClimatologyConfig
from tapecast.models.baselines.garch import Garch, GarchConfig
from tapecast.models.baselines.histvol import HistVol, HistVolConfig
from tapecast.models.baselines.naive import Naive, NaiveConfig
from tapecast.models.baselines.var import VAR1, VARConfig

__all__ = [
    "VAR1",
    "BlockBootstrap",
    "BootstrapConfig",
    "ChronosBolt",
    "ChronosConfig",
    "Climatology",
    "ClimatologyConfig",
    "Garch",
    "GarchConfig",
    "HistVol",
    "HistVolConfig",
    "ModelUnavailableError",
    "Naive",
    "NaiveConfig",
    "VARConfig",
]
