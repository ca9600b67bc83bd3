"""The built-in synthetic market: a seeded, documented tape generator.

See ``docs/synthetic-market.md``. Usage::

    from tapecast.sim import SyntheticMarketConfig, generate_market
    tables = generate_market(SyntheticMarketConfig(n_sessions=2, trades_per_session=50_000), seed=0)

and its L3 event stream (adds, cancels, executions on a book)::

    from tapecast.sim import SyntheticL3Config, generate_l3_market
    tables = generate_l3_market(SyntheticL3Config(n_sessions=1), seed=0)
"""

from tapecast.sim.config import SyntheticMarketConfig
from tapecast.sim.l3_market import SyntheticL3Config, generate_l3_market
from tapecast.sim.market import generate_market
from tapecast.sim.matching import AddResult, MatchingEngine

__all__ = ["AddResult", "MatchingEngine", "SyntheticL3Config", "SyntheticMarketConfig",
           "generate_l3_market", "generate_market"]
