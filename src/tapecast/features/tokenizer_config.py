"""Settings of the TradeFM composite tokenizer (arXiv 2602.23784, §6.2).

One frozen dataclass, saved inside ``tokenizer.json`` beside the calibrated edges. The vocabulary
is ``2 (action) × 2 (side) × n_bins (δp) × n_bins (v) × n_bins (Δt)``: 16,384 ids at the
paper's ``n_bins = 16``.
"""

from __future__ import annotations

from dataclasses import dataclass

from tapecast.core.config import ConfigBase


@dataclass(frozen=True)
class TokenizerConfig(ConfigBase):
    """How the tokenizer's bins are calibrated.

    Parameters
    ----------
    n_bins : int
        Bins per continuous field (δp, v, Δt), outlier bins included (the paper: 16).
    dp_low_quantile, dp_high_quantile : float
        Training quantiles below / above which δp falls into the low / high outlier bin
        (0.5 % and 99.5 %); the ``n_bins - 2`` bins between are equal-frequency.
    v_high_quantile : float
        Training quantile of v = log(1 + size) above which v falls into the high outlier bin;
        the ``n_bins - 1`` bins below are equal-width in v from the training minimum.
    dt_floor : float
        Seconds; the low end of the equal-width log-Δt bins. Values in (0, floor) go to the
        first non-zero bin; exact zeros have a bin of their own.
    dt_high_quantile : float
        Quantile of the *positive* training Δt above which Δt falls into the high outlier bin.
    n_inbin_quantiles : int
        Quantiles stored per bin (levels evenly spaced over [0, 1], ends included) from which
        ``decode`` samples a value inside the bin.
    n_context_dp_bins : int
        Bins of the context Δp (mid relative to the session open), equal-frequency like δp with
        outlier bins at the same quantiles.
    liquidity_tiers : tuple of str
        The liquidity-tier vocabulary of the context (ids in this order).
    flags : tuple of str
        The flag vocabulary of the context; must hold the reserved ``"simulated"`` flag.
    """

    n_bins: int = 16
    dp_low_quantile: float = 0.005
    dp_high_quantile: float = 0.995
    v_high_quantile: float = 0.995
    dt_floor: float = 1e-6
    dt_high_quantile: float = 0.995
    n_inbin_quantiles: int = 9
    n_context_dp_bins: int = 16
    liquidity_tiers: tuple[str, ...] = ("low", "medium", "high")
    flags: tuple[str, ...] = ("market", "participant", "simulated")

    def validate(self) -> None:
        self.check_range("n_bins", low=4, high=256)
        self.check_range("n_context_dp_bins", low=3, high=256)
        self.check_range("dp_low_quantile", low=0.0, high=0.5, low_inclusive=False,
                         high_inclusive=False)
        self.check_range("dp_high_quantile", low=0.5, high=1.0, low_inclusive=False,
                         high_inclusive=False)
        self.check_range("v_high_quantile", low=0.5, high=1.0, low_inclusive=False)
        self.check_range("dt_high_quantile", low=0.5, high=1.0, low_inclusive=False)
        self.check_range("dt_floor", low=0.0, low_inclusive=False)
        self.check_range("n_inbin_quantiles", low=2, high=1025)
        for name in ("liquidity_tiers", "flags"):
            vocab = getattr(self, name)
            if not vocab or len(set(vocab)) != len(vocab):
                self.fail(name, f"must be non-empty names without repeats, got {list(vocab)}")
        if "simulated" not in self.flags:
            self.fail("flags", f"must hold the reserved 'simulated' flag, got {list(self.flags)}")

    @property
    def vocab_size(self) -> int:
        """Number of composite token ids: ``4 * n_bins ** 3``."""
        return 4 * self.n_bins ** 3
