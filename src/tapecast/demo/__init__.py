"""``tapecast demo`` as a library: tape -> features -> JL-CSDI -> forecasts -> report, in budget.

:func:`run_demo` (in :mod:`tapecast.demo.run`) with :class:`DemoOptions`; see ``docs/demo.md``.
"""

from tapecast.demo.budget import BudgetPlan, BudgetRules, Throughput, plan_budget
from tapecast.demo.inputs import FeatureOptions
from tapecast.demo.run import run_demo
from tapecast.demo.state import DemoOptions, DemoResult
from tapecast.workflows.progress import Quiet, Reporter

__all__ = ["BudgetPlan", "BudgetRules", "DemoOptions", "DemoResult", "FeatureOptions", "Quiet",
           "Reporter", "Throughput", "plan_budget", "run_demo"]
