"""Baseline forecasters, registered under their CLI names (``tapecast baseline NAME``).

``climatology``, ``hist-vol``, ``bootstrap``, ``garch``, ``var``, ``naive`` and ``chronos``; see
``docs/baselines.md``. Importing this package registers them (each module applies
:func:`tapecast.models.base.register`); :func:`get_baseline` builds one by name. Heavy
dependencies (``arch``, ``torch``, ``chronos``) are imported only when a baseline that needs them
is fitted or sampled.
"""

import dataclasses
from typing import Any

from tapecast.core.errors import TapecastError
from tapecast.models.base import BASELINES, Baseline
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
    if name not in BASELINES:
        raise TapecastError(f"unknown baseline '{name}'; choose one of {list(baseline_names())}")
    cls = BASELINES[name]
    fields = {f.name for f in dataclasses.fields(cls.config_class)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise TapecastError(f"baseline '{name}' has no option(s) {unknown}; "
                            f"its options are {sorted(fields)}")
    try:
        config = cls.config_class(**options)
    except (TypeError, ValueError) as exc:  # e.g. a string where a number belongs
        raise TapecastError(f"baseline '{name}': invalid option value ({exc})") from None
    return cls(config)

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
