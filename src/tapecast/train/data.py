"""Datasets the training loop reads: anything with a length and ``batch(indices)``.

:class:`Dataset` is the protocol; :func:`as_dataset` also accepts a dict of tensors
(:class:`TensorDictDataset`) and a sequence of dicts of tensors (stacked per batch).
:class:`TokenWindows` serves fixed-length windows of one long token stream, for language models:
with stride 1 and :class:`tapecast.train.sampler.RandomWindows` it trains on windows at random
offsets; with stride = window it validates on consecutive, non-overlapping windows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import torch

from tapecast.core.errors import TapecastError

Batch = Mapping[str, torch.Tensor]


@runtime_checkable
class Dataset(Protocol):
    """What :func:`tapecast.train.fit` needs of a dataset: a length and a batch of samples."""

    def __len__(self) -> int: ...

    def batch(self, indices: torch.Tensor) -> Batch:
        """The samples at ``indices`` (int64, (n,)) as a dict of tensors with leading dim n."""
        ...


class TensorDictDataset:
    """A dataset held as a dict of tensors sharing their first dimension (the samples).

    Raises
    ------
    TapecastError
        When the dict is empty or the first dimensions differ.
    """

    def __init__(self, tensors: Mapping[str, torch.Tensor]) -> None:
        sizes = {name: t.shape[0] if t.dim() else -1 for name, t in tensors.items()}
        if not sizes or len(set(sizes.values())) != 1 or -1 in sizes.values():
            raise TapecastError(f"dataset: expected tensors with one common first dimension, "
                                f"got sizes {sizes}")
        self.tensors = dict(tensors)
        self._len = next(iter(sizes.values()))

    def __len__(self) -> int:
        return self._len

    def batch(self, indices: torch.Tensor) -> Batch:
        """Rows ``indices`` of every tensor."""
        return {name: t[indices] for name, t in self.tensors.items()}


class _StackedItems:
    """An index-able dataset of dicts of tensors, batched by stacking the items."""

    def __init__(self, items: Any) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def batch(self, indices: torch.Tensor) -> Batch:
        rows = [self.items[i] for i in indices.tolist()]
        return {name: torch.stack([row[name] for row in rows]) for name in rows[0]}


def as_dataset(data: Any) -> Dataset:
    """Accept a :class:`Dataset`, a dict of tensors, or a sequence of dicts of tensors.

    Raises
    ------
    TapecastError
        On anything else.
    """
    if isinstance(data, Dataset):
        return data
    if isinstance(data, Mapping):
        return TensorDictDataset(data)
    if hasattr(data, "__getitem__") and hasattr(data, "__len__"):
        return _StackedItems(data)
    raise TapecastError(f"dataset: expected an object with __len__ and batch(indices), a dict "
                        f"of tensors or a sequence of dicts, got {type(data).__name__}")


class TokenWindows:
    """Windows of ``window + 1`` consecutive tokens of one stream, for next-token prediction.

    Sample ``i`` starts at offset ``i * stride``; a batch holds ``inputs = tokens[o : o + L]``
    and ``targets = tokens[o + 1 : o + L + 1]`` for each offset ``o`` (L = ``window``).

    Parameters
    ----------
    tokens : Tensor
        int64 (or another integer dtype), shape (T,): the token stream.
    window : int
        L, the tokens each sample predicts.
    stride : int
        Offset between consecutive samples: 1 for training on every offset (with a random
        sampler), ``window`` for non-overlapping validation windows.

    Raises
    ------
    TapecastError
        When the stream is not 1-D integers or is shorter than one window.
    """

    def __init__(self, tokens: torch.Tensor, window: int, *, stride: int = 1) -> None:
        if tokens.dim() != 1 or tokens.is_floating_point() or tokens.is_complex():
            raise TapecastError(f"token windows: expected a 1-D integer token stream, got "
                                f"{tuple(tokens.shape)} {tokens.dtype}")
        if window < 1 or stride < 1:
            raise TapecastError(f"token windows: expected window and stride >= 1, got "
                                f"{window} and {stride}")
        if len(tokens) < window + 1:
            raise TapecastError(f"token windows: a stream of {len(tokens)} tokens holds no "
                                f"window of {window} + 1")
        self.tokens = tokens.long()
        self.window, self.stride = window, stride
        self._len = (len(tokens) - window - 1) // stride + 1
        self._steps = torch.arange(window + 1)  # (L + 1,)

    def __len__(self) -> int:
        return self._len

    def batch(self, indices: torch.Tensor) -> Batch:
        """``inputs`` and ``targets``: int64, (n, L), the windows of samples ``indices``."""
        offsets = indices.long() * self.stride  # (n,)
        rows = self.tokens[offsets[:, None] + self._steps[None, :]]  # (n, L + 1)
        return {"inputs": rows[:, :-1], "targets": rows[:, 1:]}
