"""The built-in synthetic market: a seeded, documented tape generator.

See ``docs/synthetic-market.md``. Usage::

    from tapecast.sim import SyntheticMarketConfig, generate_market
    tables = generate_market(SyntheticMarketConfig(n_sessions=2, trades_per_session=50_000), seed=0)

and its L3 event stream (adds, cancels, executions on a book)::

    from tapecast.sim import SyntheticL3Config, generate_l3_market
    tables = generate_l3_market(SyntheticL3Config(n_sessions=1), seed=0)
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from tapecast.sim.config import SyntheticMarketConfig
from tapecast.sim.market import generate_market

if TYPE_CHECKING:
    from tapecast.sim.l3_market import SyntheticL3Config, generate_l3_market
    from tapecast.sim.matching import AddResult, MatchingEngine

__all__ = ["AddResult", "MatchingEngine", "SyntheticL3Config", "SyntheticMarketConfig",
           "generate_l3_market", "generate_market"]

# the L3 market pulls in the matching engine, the Hawkes fit (scipy) and the event features:
# loaded on first use, so `features --synthetic` and the demo do not pay for them
_LAZY = {"SyntheticL3Config": "tapecast.sim.l3_market",
         "generate_l3_market": "tapecast.sim.l3_market",
         "AddResult": "tapecast.sim.matching", "MatchingEngine": "tapecast.sim.matching"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tapecast.sim' has no attribute {name!r}")
