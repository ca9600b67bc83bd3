"""The market-state vector's configuration and feature names (issue 16, first piece).

The features follow ``compute_market_state`` of the seed
``../shared/seeds/score-matching-trading.txt`` ("Feature Engineering for Score Matching");
:mod:`tapecast.features.state` defines each one and lists where it departs from the seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from tapecast.core.config import ConfigBase

__all__ = ["STATE_FEATURES", "StateConfig"]

STATE_FEATURES: Final[tuple[str, ...]] = (
    "return_1", "return_5", "return_10", "return_20", "volatility", "volatility_ratio",
    "momentum", "volume_ratio", "price_position", "rsi",
)


@dataclass(frozen=True)
class StateConfig(ConfigBase):
    """How bars become market-state vectors.

    Parameters
    ----------
    return_spans : tuple of int
        Bars summed by the multi-scale returns ``return_{p}`` (the seed: 1, 5, 10, 20). The
        feature names are fixed by the default spans; other spans rename them ``return_{p}``.
    lookback : int
        Bars of the volatility, the momentum, the volume mean and the high-low range (the
        seed's ``lookback`` = 20).
    short_vol : int
        Returns of the short volatility in ``volatility_ratio`` (the seed: 5).
    rsi_span : int
        Returns averaged by the RSI-like ratio (the seed: 14).
    epsilon : float
        The seed's 1e-8 added to the denominators of ``price_position`` and ``rsi``.
    clip : float
        The normalizer clips z-scores to ±clip (the seed: 5 standard deviations).
    features : tuple of str
        Which features the state vector holds, in this order (empty, the default: all of
        :attr:`all_features`, the seed's ten).
    """

    return_spans: tuple[int, ...] = (1, 5, 10, 20)
    lookback: int = 20
    short_vol: int = 5
    rsi_span: int = 14
    epsilon: float = 1e-8
    clip: float = 5.0
    features: tuple[str, ...] = ()

    def validate(self) -> None:
        """Positive increasing spans, 2 <= short_vol < lookback, known features, clip > 0."""
        if not self.return_spans:
            self.fail("return_spans", "must name at least one span")
        for k, span in enumerate(self.return_spans):
            self.check_range(f"return_spans[{k}]", low=1, value=span)
        if any(b <= a for a, b in zip(self.return_spans, self.return_spans[1:], strict=False)):
            self.fail("return_spans", f"must increase, got {self.return_spans}")
        self.check_range("lookback", low=3)
        self.check_range("short_vol", low=2, high=self.lookback - 1)
        self.check_range("rsi_span", low=1)
        self.check_range("epsilon", low=0.0)
        self.check_range("clip", low=0.0, low_inclusive=False)
        unknown = [f for f in self.features if f not in self.all_features]
        if unknown:
            self.fail("features", f"unknown {unknown}; known: {', '.join(self.all_features)}")
        if len(set(self.features)) != len(self.features):
            self.fail("features", f"names a feature twice: {self.features}")

    @property
    def all_features(self) -> tuple[str, ...]:
        """Every feature this config can compute, in the seed's order."""
        return (*(f"return_{p}" for p in self.return_spans), *STATE_FEATURES[4:])

    @property
    def names(self) -> tuple[str, ...]:
        """The state vector's features, in order."""
        return self.features or self.all_features

    @property
    def warmup(self) -> int:
        """Rows dropped per instrument: the first row with every feature defined is row
        ``warmup`` (0-based). A p-bar return needs p + 1 closes; a std of ``lookback`` returns
        ``lookback`` + 1; the RSI ``rsi_span`` + 1; momentum and the range ``lookback``."""
        return max(self.return_spans[-1], self.lookback, self.rsi_span)
