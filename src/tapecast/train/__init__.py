"""The training loop shared by every tapecast torch model (docs/training.md).

``fit(model, loss_fn, train_data, val_data, TrainConfig(...), run_dir=RUN)`` trains with AdamW,
an EMA of the weights, gradient clipping and a learning-rate schedule; keeps ``RUN/best`` (the EMA
weights with the lowest validation loss) and ``RUN/last`` (an exact resume point, also written
on Ctrl-C); runs unchanged under ``torchrun --nproc_per_node=N`` (gloo) with the same result
as one process at equal ``batch_shards``.
"""

from tapecast.train.checkpoint import TrainState, load_best, read_best
from tapecast.train.config import TrainConfig
from tapecast.train.ema import EMA
from tapecast.train.loop import (
    Batch,
    Dataset,
    LossFn,
    TensorDictDataset,
    TrainEvent,
    TrainResult,
    as_dataset,
    fit,
)

__all__ = [
    "EMA",
    "Batch",
    "Dataset",
    "LossFn",
    "TensorDictDataset",
    "TrainConfig",
    "TrainEvent",
    "TrainResult",
    "TrainState",
    "as_dataset",
    "fit",
    "load_best",
    "read_best",
]
