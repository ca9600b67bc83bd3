"""Baselines of the 30-s price distribution (issue 13), registered under ``price-`` names.

``price-climatology``, ``price-histvol``, ``price-bootstrap``, ``price-garch-t`` and
``price-quantreg``; see ``docs/price-baselines.md``. They forecast the ``log_return`` target of a
:class:`~tapecast.features.price_dataset.PriceDataset` batch (the 30-s return, or the 30-step
path for all but ``price-quantreg``) and refuse any other batch. They have their own registry,
beside the order-flow baselines' (:func:`tapecast.models.baselines.baseline_names` is
unchanged); :func:`get_price_baseline` builds one by name. ``arch`` and ``statsmodels`` are
imported only when ``price-garch-t`` or ``price-quantreg`` is fitted.
"""

from typing import Any, get_origin

from tapecast.core.config import ConfigError
from tapecast.core.errors import TapecastError
from tapecast.models.price_baselines.base import (
    PRICE_BASELINES,
    PriceBaseline,
    PriceBaselineConfig,
    PriceTraining,
)
from tapecast.models.price_baselines.bootstrap import PriceBootstrap, PriceBootstrapConfig
from tapecast.models.price_baselines.climatology import (
    PriceClimatology,
    PriceClimatologyConfig,
)
from tapecast.models.price_baselines.garch_t import PriceGarchT, PriceGarchTConfig
from tapecast.models.price_baselines.histvol import PriceHistVol, PriceHistVolConfig
from tapecast.models.price_baselines.quantreg import PriceQuantReg, PriceQuantRegConfig


def price_baseline_names() -> tuple[str, ...]:
    """The registered price baseline names."""
    return tuple(sorted(PRICE_BASELINES))


def get_price_baseline(name: str, **options: Any) -> PriceBaseline[Any]:
    """An unfitted price baseline ``name`` built with config ``options``.

    Raises
    ------
    TapecastError
        For an unknown name or option, or an option value its config rejects.
    """
    if name not in PRICE_BASELINES:
        raise TapecastError(f"unknown price baseline '{name}'; choose one of "
                            f"{list(price_baseline_names())}")
    cls = PRICE_BASELINES[name]
    types = cls.config_class.field_types()
    unknown = sorted(set(options) - set(types))
    if unknown:
        raise TapecastError(f"price baseline '{name}' has no option(s) {unknown}; "
                            f"its options are {sorted(types)}")
    values = dict(options)
    for key, value in values.items():  # "a,b" from the command line for a tuple field
        if isinstance(value, str) and get_origin(types[key]) is tuple:
            values[key] = [v.strip() for v in value.split(",") if v.strip()]
    try:
        return cls(cls.config_class.from_dict(values))
    except ConfigError as exc:
        raise TapecastError(f"price baseline '{name}': {exc}") from None


__all__ = [
    "PRICE_BASELINES",
    "PriceBaseline",
    "PriceBaselineConfig",
    "PriceBootstrap",
    "PriceBootstrapConfig",
    "PriceClimatology",
    "PriceClimatologyConfig",
    "PriceGarchT",
    "PriceGarchTConfig",
    "PriceHistVol",
    "PriceHistVolConfig",
    "PriceQuantReg",
    "PriceQuantRegConfig",
    "PriceTraining",
    "get_price_baseline",
    "price_baseline_names",
]
