"""The 8 order-flow channels of the JL-CSDI model card, in their fixed order (issue 3).

``imb_a*`` are the Maitrier–Bouchaud a-family imbalances (arXiv 2506.07711) at
a = 0, 0.25, 0.5, 0.75, 1; then the window's log return, log realized variance and log total
traded size. Normalization, datasets and feature sets read channel names from here.
"""

from __future__ import annotations

CHANNELS: tuple[str, ...] = (
    "imb_a0", "imb_a025", "imb_a05", "imb_a075", "imb_a1",
    "log_ret", "log_realized_var", "log_tot_vol",
)
"""Channel names in axis order (``K = 8``)."""

IMBALANCE_CHANNELS: tuple[str, ...] = CHANNELS[:5]
"""The imbalance group (scaled by the window's number of signed trades)."""

REGIME_CHANNEL = "log_realized_var"
"""The channel whose context mean tags a sample's volatility regime."""
