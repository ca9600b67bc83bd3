"""Baseline forecasters, registered under their CLI names (``tapecast baseline NAME``).

``climatology``, ``hist-vol``, ``bootstrap``, ``garch``, ``var``, ``naive`` and ``chronos``; see
``docs/baselines.md``. Importing this package registers them (each module applies
:func:`tapecast.models.base.register`); :func:`get_baseline` builds one by name. Heavy
dependencies (``arch``, ``torch``, ``chronos``) are imported only when a baseline that needs them
is fitted or sampled.
"""

from typing import Any, cast

from tapecast.models.base import BASELINES, Baseline, build_registered
from tapecast.models.baselines.bootstrap import BlockBootstrap, BootstrapConfig
from tapecast.models.baselines.chronos import ChronosBolt, ChronosConfig, ModelUnavailableError
from tapecast.models.baselines.climatology import Climatology, ClimatologyConfig
from tapecast.models.baselines.garch import Garch, GarchConfig
from tapecast.models.baselines.histvol import HistVol, HistVolConfig
from tapecast.models.baselines.naive import Naive, NaiveConfig
from tapecast.models.baselines.var import VAR1, VARConfig


def baseline_names() -> tuple[str, ...]:
    """The registered baseline names (the CLI's ``tapecast baseline NAME``)."""
    return tuple(sorted(BASELINES))


def get_baseline(name: str, **options: Any) -> Baseline[Any]:
    """An unfitted baseline ``name`` built with config ``options``.

    Raises
    ------
    TapecastError
        For an unknown name or option, or an option value its config rejects.
    """
    built = build_registered(BASELINES, name, options, "baseline", baseline_names())
    return cast(Baseline[Any], built)

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
    "baseline_names",
    "get_baseline",
]
