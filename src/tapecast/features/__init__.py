"""Features: trades -> trade-time order-flow windows -> normalized forecasting samples.

The path, one module per step (``docs/features.md``, ``docs/features-samples.md``)::

    trades ─filters/sessions─► windows (orderflow.py, kernels.py) ─splits.py─► labelled windows
        ─featureset.py─► features folder ─dataset.py─► ForecastBatch / card inputs
                                          └normalize.py─► OrderFlowNormalizer (JSON)

``streaming.py`` computes the same windows one trade at a time (the causality check).
"""

from tapecast.core.batch import ForecastBatch
from tapecast.features.channels import CHANNELS, IMBALANCE_CHANNELS
from tapecast.features.dataset import ForecastDataset
from tapecast.features.featureset import FeatureSet, build_feature_set, write_feature_set
from tapecast.features.normalize import OrderFlowNormalizer
from tapecast.features.orderflow import OrderFlowConfig, OrderFlowResult, orderflow_windows
from tapecast.features.splits import SplitSpec, assign_splits, walk_forward_folds
from tapecast.features.streaming import StreamingOrderFlow

__all__ = [
    "CHANNELS",
    "IMBALANCE_CHANNELS",
    "FeatureSet",
    "ForecastBatch",
    "ForecastDataset",
    "OrderFlowConfig",
    "OrderFlowNormalizer",
    "OrderFlowResult",
    "SplitSpec",
    "StreamingOrderFlow",
    "assign_splits",
    "build_feature_set",
    "orderflow_windows",
    "walk_forward_folds",
    "write_feature_set",
]
