"""The demo's options, its result, and the state one run holds while it goes."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tapecast.core.errors import TapecastError
from tapecast.demo import inputs, runs
from tapecast.demo.budget import BudgetPlan, BudgetRules, Throughput
from tapecast.demo.manifest import Manifest
from tapecast.models.jl_csdi_config import JLCSDIConfig, jlcsdi_config
from tapecast.workflows.progress import Reporter

if TYPE_CHECKING:
    from tapecast.sim import SyntheticMarketConfig


@dataclass(frozen=True)
class DemoOptions:
    """What ``tapecast demo`` takes (the test-size knobs are for Python and tests).

    Parameters
    ----------
    out : Path
        The demo folder.
    data : Path, optional
        Store, files or folder of trades; None: the built-in synthetic market.
    budget_minutes : float
        Wall-clock budget of the whole run.
    fresh : bool
        Redo every step (deletes what the demo wrote in ``out``).
    seed : int
        Seed of the market, the sampling and the baselines.
    n_samples : int
        Samples per forecast origin.
    features : FeatureOptions
    config : JLCSDIConfig or str
        The JL-CSDI config (``small``); its noise is set per model, its steps by the plan.
    market : SyntheticMarketConfig, optional
        The built-in market's config (default: :func:`market_config` for the budget).
    rules : BudgetRules
    """

    out: Path
    data: Path | None = None
    budget_minutes: float = 10.0
    fresh: bool = False
    seed: int = 0
    n_samples: int = 32
    features: inputs.FeatureOptions = field(default_factory=inputs.FeatureOptions)
    config: JLCSDIConfig | str = "small"
    market: SyntheticMarketConfig | None = None
    rules: BudgetRules = field(default_factory=BudgetRules)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.budget_minutes) and self.budget_minutes > 0):
            raise TapecastError("--budget-minutes must be a positive finite number, got "
                                f"{self.budget_minutes}")
        if self.n_samples < 2:
            raise TapecastError(f"--n-samples must be at least 2, got {self.n_samples}")


@dataclass
class DemoResult:
    """What a demo run produced and decided."""

    out: Path
    metrics: dict[str, Any]
    plan: BudgetPlan
    reused: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    wall_s: float = 0.0


def market_config(budget_minutes: float) -> SyntheticMarketConfig:
    """The built-in market for a budget: 5 sessions of ~250k trades at 10 minutes and more
    (about 30 test origins of 500-trade windows), down to half that for shorter budgets (still
    at least 12 test origins of 500 trades: the windows keep their default size)."""
    from tapecast.sim import SyntheticMarketConfig

    scale = min(1.0, max(0.5, budget_minutes / 10.0))
    return SyntheticMarketConfig(n_sessions=5, trades_per_session=int(250_000 * scale))


class RunState:
    """What one demo run holds while it goes: its options and reporter, the folder and its
    manifest, the notes and reused steps so far, the clock, the model config and the market.

    The steps are the methods of :class:`tapecast.demo.run.DemoRun`; the report step
    (:mod:`tapecast.demo.evaluation`) reads this state only.
    """

    def __init__(self, options: DemoOptions, reporter: Reporter) -> None:
        self.options, self.reporter = options, reporter
        self.out = options.out
        self.threads = runs.sampling_threads()  # before any work: our own load must not count
        self.start = time.monotonic()
        self.deadline = self.start + 60.0 * options.budget_minutes
        self.manifest = Manifest.open(self.out)
        self.reused: list[str] = []
        self.notes: list[str] = []
        base = options.config
        self.config = jlcsdi_config(base) if isinstance(base, str) else base
        self.config = self.config.with_sizes(options.features.context, options.features.horizon)
        self.market: SyntheticMarketConfig | None = None  # the built-in market (without data)
        if options.data is None:
            self.market = (options.market if options.market is not None
                           else market_config(options.budget_minutes))
        self.throughput: Throughput | None = None  # set when the budget is planned

    def note(self, text: str) -> None:
        self.notes.append(text)
        self.reporter.note(text)

    def reuse(self, step: str, key: str) -> dict[str, Any] | None:
        info = self.manifest.done(step, key)
        if info is not None:
            self.reused.append(step)
        return info
