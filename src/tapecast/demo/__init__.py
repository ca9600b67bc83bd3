"""Library orchestration of whole tapecast runs (``tapecast demo`` without the CLI)."""

from tapecast.pipeline.budget import BudgetPlan, BudgetRules, Throughput, plan_budget
from tapecast.pipeline.demo import DemoOptions, DemoResult, run_demo
from tapecast.pipeline.inputs import FeatureOptions
from tapecast.workflows.progress import Quiet, Reporter

__all__ = ["BudgetPlan", "BudgetRules", "DemoOptions", "DemoResult", "FeatureOptions", "Quiet",
           "Reporter", "Throughput", "plan_budget", "run_demo"]
