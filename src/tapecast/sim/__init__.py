"""The built-in synthetic market: a seeded, documented tape generator.

See ``docs/synthetic-market.md``. Usage::

    from tapecast.sim import SyntheticMarketConfig, generate_market
    tables = generate_market(SyntheticMarketConfig(n_sessions=2, trades_per_session=50_000), seed=0)
"""

from tapecast.sim.config import SyntheticMarketConfig
from tapecast.sim.market import generate_market
from tapecast.sim.matching import AddResult, MatchingEngine

__all__ = ["AddResult", "MatchingEngine", "SyntheticMarketConfig", "generate_market"]
