"""Baselines of the 30-s price distribution (issue 13), registered under ``price-`` names.

``price-climatology``, ``price-histvol``, ``price-bootstrap``, ``price-garch-t`` and
``price-quantreg``; see ``docs/price-baselines.md``. They forecast the ``log_return`` target of a
:class:`~tapecast.features.price_dataset.PriceDataset` batch (the 30-s return, or the 30-step
path for all but ``price-quantreg``) and refuse any other batch. They have their own registry,
beside the order-flow baselines' (:func:`tapecast.models.baselines.baseline_names` is
unchanged); :func:`get_price_baseline` builds one by name. ``arch`` and ``statsmodels`` are
imported only when ``price-garch-t`` or ``price-quantreg`` is fitted.
"""

from typing import Any, cast

from tapecast.models.base import build_registered
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
    built = build_registered(PRICE_BASELINES, name, options, "price baseline",
                             price_baseline_names())
    return cast(PriceBaseline[Any], built)


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
