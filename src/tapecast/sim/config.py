"""The synthetic market's parameters: one frozen, validated dataclass (docs/synthetic-market.md).

Every default is documented with the model term it sets. The defaults were chosen by looking at
the stylized facts of the SPY trade ticks in ``../shared/data`` (2013-10-07..11): that is the
calibration of a simulator, done once by hand, not a fit on any forecasting test window.

The config is a :class:`tapecast.core.config.ConfigBase`: ``replace(**changes)``, ``to_dict()``
(the date as ISO text) and ``from_dict``; a bad value raises one line naming the field, e.g.
``SyntheticMarketConfig.noise_fraction: must be in [0, 1], got 1.5``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from tapecast.core.config import ConfigBase

# (field, lower bound, upper bound, lower inclusive, upper inclusive); None = unbounded
_BOUNDS: tuple[tuple[str, float | None, float | None, bool, bool], ...] = (
    ("n_sessions", 1, 2_000, True, True),
    ("trades_per_session", 1_000, 20_000_000, True, True),
    ("session_activity_sd", 0.0, 2.0, True, True),
    ("open_boost", 0.0, None, True, False),
    ("close_boost", 0.0, None, True, False),
    ("profile_decay", 0.0, 1.0, False, True),
    ("start_price", 0.0, None, False, False),
    ("tick_size", 0.0, None, False, False),
    ("n_metaorders", 1, 10_000, True, True),
    ("metaorder_alpha", 0.0, None, False, False),
    ("max_metaorder_length", 1, None, True, False),
    ("noise_fraction", 0.0, 1.0, True, True),
    ("burst_prob", 0.0, 1.0, True, False),
    ("burst_sd", 0.0, 3.0, True, True),
    ("size_lot", 1, None, True, False),
    ("size_tail_index", 0.0, None, False, False),
    ("size_scale", 0.0, None, False, False),
    ("size_vol_coupling", 0.0, 4.0, True, True),
    ("impact_ticks", 0.0, None, True, False),
    ("propagator_l0", 0.0, None, True, False),
    ("propagator_beta", 0.0, 2.0, True, True),
    ("impact_size_exponent", 0.0, 2.0, True, True),
    ("noise_ticks", 0.0, None, True, False),
    ("vol_sd", 0.0, 3.0, True, True),
    ("activity_coupling", 0.0, 4.0, True, True),
    ("wide_spread_prob", 0.0, 1.0, True, True),
    ("overnight_gap_ticks", 0.0, None, True, False),
)


@dataclass(frozen=True)
class SyntheticMarketConfig(ConfigBase):
    """A seeded, SPY-like synthetic tape: metaorder signs, heavy-tailed sizes, propagator prices.

    Parameters
    ----------
    instrument : str, default "SYN"
        Instrument name written in every row.
    n_sessions : int, default 5
        Sessions, one per business day (Monday-Friday; holidays are not skipped) from
        ``start_date``.
    start_date : datetime.date, default 2024-01-08
        First session's date (moved forward to a Monday if it falls on a weekend).
    trades_per_session : int, default 150_000
        Mean number of trades per session, 09:30-16:00 America/New_York.
    session_activity_sd : float, default 0.25
        Std of the log of each session's activity factor (its trade count is
        ``trades_per_session`` times a log-normal factor of mean 1).
    open_boost, close_boost : float, default 2.6 and 3.2
        Extra trade intensity at the open and at the close, relative to midday (the U shape):
        λ(u) = 1 + open_boost e^{-u/d} + close_boost e^{-(1-u)/d}, u the fraction of the session.
    profile_decay : float, default 0.06
        d above: how fast (in fractions of a session) the open and close bursts fade.
    start_price : float, default 170.0
        The first mid price (SPY traded near 168 in October 2013).
    tick_size : float, default 0.01
        Price grid; quotes and trades lie on it.
    n_metaorders : int, default 16
        Number of concurrently active metaorders N (Lillo, Mike & Farmer 2005).
    metaorder_alpha : float, default 1.5
        Tail exponent α of the metaorder length law P(L > l) ~ l^{-α}; the sign autocorrelation
        then decays as τ^{-(α-1)} (Lillo, Mike & Farmer measured α ≈ 1.5 on the LSE).
    max_metaorder_length : int, default 10_000
        Lengths are capped here (child trades).
    noise_fraction : float, default 0.3
        Share of trades with an independent random sign (not from a metaorder).
    burst_prob : float, default 0.75
        Probability that a trade is another print of the previous trade's order, with the same
        sign, microseconds later (one aggressive order walking through several resting orders;
        54 % of SPY's regular-hours prints share their timestamp with the print before).
    burst_sd : float, default 1.5
        Std of g_t, a fast AR(1) liquidity factor (half-life 150 trades) behind the burst
        probability: 1 - b_t = (1 - b) exp(g_t - Var g / 2), b_t capped at 0.98. Stretches of
        single-print orders alternate with stretches of multi-print sweeps, so the number of
        sign changes (the bid-ask bounce, hence a window's realized variance) clusters.
    size_lot : int, default 100
        Round lot: sizes are whole lots.
    size_tail_index : float, default 1.6
        Pareto tail index a of the number of lots per trade (SPY's Hill estimate is about 1.6).
    size_scale : float, default 1.5
        Pareto scale x of the lot count at volatility factor 1: lots = max(1, floor(x U^{-1/a}))
        (about half the trades are above one lot, as in SPY).
    size_vol_coupling : float, default 0.6
        The scale is x σ_t^c with c this coupling: volatile periods trade larger, so the traded
        volume of a window is persistent.
    impact_ticks : float, default 0.035
        Γ0, the propagator's impact of one average trade on the next mid, in ticks.
    propagator_l0 : float, default 20.0
        ℓ0 of the propagator G(ℓ) = Γ0 ((ℓ0 + 1) / (ℓ0 + ℓ))^β (Bouchaud et al. 2004).
    propagator_beta : float, default 0.07
        β. Bouchaud et al.'s rule β ≈ (1 - γ)/2 needs γ < 1; the generated sign ACF falls
        about as τ^{-1.1} over lags 10-1000 (-0.9 to -1.2 over seeds; the bursts dominate the
        short lags), so β was set instead to make consecutive 500-trade window returns about
        uncorrelated (SPY: -0.01).
    impact_size_exponent : float, default 0.5
        δ in the size factor (v / v̄)^δ (square-root impact).
    noise_ticks : float, default 0.03
        Std of the independent mid-price noise per trade, in ticks (random-walk increments).
    vol_sd : float, default 0.14
        Std of the log volatility factor (sum of three AR(1) components in trade time, with
        half-lives of 1,000, 10,000 and 100,000 trades): volatility clustering.
    activity_coupling : float, default 1.0
        Trade intensity is proportional to (volatility factor)^activity_coupling: busy periods
        are volatile periods.
    wide_spread_prob : float, default 0.05
        Probability (at volatility factor 1, scaled by the factor) that the spread is 2 ticks
        instead of 1.
    overnight_gap_ticks : float, default 40.0
        Std of the overnight mid jump between sessions, in ticks.
    """

    instrument: str = "SYN"
    n_sessions: int = 5
    start_date: dt.date = dt.date(2024, 1, 8)
    trades_per_session: int = 150_000
    session_activity_sd: float = 0.25
    open_boost: float = 2.6
    close_boost: float = 3.2
    profile_decay: float = 0.06
    start_price: float = 170.0
    tick_size: float = 0.01
    n_metaorders: int = 16
    metaorder_alpha: float = 1.5
    max_metaorder_length: int = 10_000
    noise_fraction: float = 0.3
    burst_prob: float = 0.75
    burst_sd: float = 1.5
    size_lot: int = 100
    size_tail_index: float = 1.6
    size_scale: float = 1.5
    size_vol_coupling: float = 0.6
    impact_ticks: float = 0.035
    propagator_l0: float = 20.0
    propagator_beta: float = 0.07
    impact_size_exponent: float = 0.5
    noise_ticks: float = 0.03
    vol_sd: float = 0.14
    activity_coupling: float = 1.0
    wide_spread_prob: float = 0.05
    overnight_gap_ticks: float = 40.0

    def validate(self) -> None:
        """A named instrument and every number inside its bounds (:data:`_BOUNDS`)."""
        if not self.instrument.strip():
            self.fail("instrument", f"must be a non-empty string, got {self.instrument!r}")
        for name, low, high, low_in, high_in in _BOUNDS:
            self.check_range(name, low=low, high=high, low_inclusive=low_in,
                             high_inclusive=high_in)
