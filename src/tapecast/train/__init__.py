"""The training loop shared by every tapecast torch model (docs/training.md).

``fit(model, loss_fn, train_data, val_data, TrainConfig(...), run_dir=RUN)`` trains with AdamW
(optionally nanoGPT's parameter groups), an optional EMA of the weights, gradient clipping and a
learning-rate schedule, on CPU or CUDA, in fp32, bf16 or fp16; weighs each part of a batch by the
loss's own weight (samples, or tokens: :class:`LossOutput`); keeps ``RUN/best`` (the weights
with the lowest validation loss) and ``RUN/last`` (an exact resume point, also written on
Ctrl-C, crash-safe); runs unchanged under ``torchrun --nproc_per_node=N`` (gloo on CPU, NCCL on
CUDA) with the same result as one process at equal ``batch_shards``.
"""

from tapecast.train.checkpoint import TrainState, load_best, read_best
from tapecast.train.config import TrainConfig
from tapecast.train.data import Batch, Dataset, TensorDictDataset, TokenWindows, as_dataset
from tapecast.train.device import bf16_is_fast, resolve_device, resolve_precision
from tapecast.train.ema import EMA
from tapecast.train.loop import TrainEvent, TrainResult, fit
from tapecast.train.loss import LossFn, LossOutput
from tapecast.train.optim import make_optimizer, parameter_groups
from tapecast.train.sampler import BatchSampler, EpochShuffle, RandomWindows

__all__ = [
    "EMA",
    "Batch",
    "BatchSampler",
    "Dataset",
    "EpochShuffle",
    "LossFn",
    "LossOutput",
    "RandomWindows",
    "TensorDictDataset",
    "TokenWindows",
    "TrainConfig",
    "TrainEvent",
    "TrainResult",
    "TrainState",
    "as_dataset",
    "bf16_is_fast",
    "fit",
    "load_best",
    "make_optimizer",
    "parameter_groups",
    "read_best",
    "resolve_device",
    "resolve_precision",
]
