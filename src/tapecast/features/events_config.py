"""Configuration of the event-feature extraction (:mod:`tapecast.features.events`)."""

from __future__ import annotations

from dataclasses import dataclass

from tapecast.core.config import ConfigBase


@dataclass(frozen=True)
class EventFeatureConfig(ConfigBase):
    """How token events and their features are derived from a canonical ``events`` table.

    Attributes
    ----------
    half_life_s : float
        Half-life in seconds of the exponentially weighted VWAP of trade prices (p_mid).
    staleness_s : float
        A VWAP whose last trade is older than this (seconds, on the feature clock) is stale: the
        book mid is used instead when the book is two-sided.
    outcome_window_s : float or None
        A cancel or modify of an order whose previous event is a fill is a matching outcome (not
        a token) when it comes at most this many seconds (event time) after the fill; ``None``:
        at any distance.
    time_zone : str
        IANA zone whose calendar day names the session (a session = one local calendar day).
    """

    half_life_s: float = 10.0
    staleness_s: float = 60.0
    outcome_window_s: float | None = 0.001
    time_zone: str = "UTC"

    def validate(self) -> None:
        """Check the ranges (positive half-life and staleness, non-negative window)."""
        self.check_range("half_life_s", low=0.0, low_inclusive=False)
        self.check_range("staleness_s", low=0.0, low_inclusive=False)
        if self.outcome_window_s is not None:
            self.check_range("outcome_window_s", low=0.0)
        try:
            from zoneinfo import ZoneInfo

            ZoneInfo(self.time_zone)
        except (KeyError, ValueError, OSError):
            self.fail("time_zone", f"expected an IANA time zone, got {self.time_zone!r}")
