"""tapecast.train.sampler and data: stateless samplers, token windows."""

from __future__ import annotations

import pytest
import torch

from tapecast.core.errors import TapecastError
from tapecast.train import BatchSampler, EpochShuffle, RandomWindows, TokenWindows
from tapecast.train.data import as_dataset
from tapecast.train.sampler import epoch_order


def test_epoch_order_when_same_seed_and_epoch_is_the_same_permutation() -> None:
    first = epoch_order(3, 0, 50)
    assert torch.equal(first, epoch_order(3, 0, 50))
    assert torch.equal(torch.sort(first).values, torch.arange(50))
    assert not torch.equal(first, epoch_order(3, 1, 50))
    assert not torch.equal(first, epoch_order(4, 0, 50))


@pytest.mark.parametrize(("drop_last", "steps", "last"), [(False, 4, 2), (True, 3, 6)])
def test_epoch_shuffle_when_cut_into_batches_covers_the_epoch_permutation(
        drop_last: bool, steps: int, last: int) -> None:
    sampler = EpochShuffle(drop_last)
    assert isinstance(sampler, BatchSampler)
    assert sampler.steps_per_epoch(20, 6) == steps
    batches = [sampler.indices(20, 6, seed=1, epoch=2, batch=b) for b in range(steps)]
    assert len(batches[-1]) == last
    assert torch.equal(torch.cat(batches), epoch_order(1, 2, 20)[: 6 * (steps - 1) + last])
    with pytest.raises(TapecastError, match="no full batch"):
        EpochShuffle(drop_last=True).steps_per_epoch(5, 6)


def test_random_windows_when_same_position_draws_the_same_batch() -> None:
    sampler = RandomWindows(epoch_steps=10)
    assert isinstance(sampler, BatchSampler) and sampler.steps_per_epoch(1000, 8) == 10
    assert RandomWindows().steps_per_epoch(1000, 8) == 125
    draw = sampler.indices(1000, 8, seed=1, epoch=0, batch=3)
    assert draw.dtype == torch.int64 and draw.shape == (8,)
    assert int(draw.min()) >= 0 and int(draw.max()) < 1000
    assert torch.equal(draw, RandomWindows(epoch_steps=10).indices(1000, 8, seed=1, epoch=0,
                                                                   batch=3))
    others = [sampler.indices(1000, 8, seed=s, epoch=e, batch=b)
              for s, e, b in ((2, 0, 3), (1, 1, 3), (1, 0, 4))]
    assert all(not torch.equal(draw, other) for other in others)
    assert repr(sampler) == "RandomWindows(epoch_steps=10)"  # stored in checkpoints
    with pytest.raises(TapecastError, match="epoch_steps"):
        RandomWindows(epoch_steps=0)


def test_token_windows_when_batched_gives_shifted_inputs_and_targets() -> None:
    stream = torch.arange(100, 120)
    train = TokenWindows(stream, 4)
    assert len(train) == 16 and isinstance(as_dataset(train), TokenWindows)
    batch = train.batch(torch.tensor([0, 15]))
    assert batch["inputs"].tolist() == [[100, 101, 102, 103], [115, 116, 117, 118]]
    assert batch["targets"].tolist() == [[101, 102, 103, 104], [116, 117, 118, 119]]
    val = TokenWindows(stream, 4, stride=4)
    assert len(val) == 4  # offsets 0, 4, 8, 12; offset 16 has no 5th token
    assert val.batch(torch.tensor([3]))["targets"].tolist() == [[113, 114, 115, 116]]


@pytest.mark.parametrize(("tokens", "window", "match"), [
    (torch.zeros(10), 4, "integer"), (torch.zeros(2, 5, dtype=torch.long), 4, "1-D"),
    (torch.arange(4), 4, "holds no window")])
def test_token_windows_when_stream_unusable_raises(tokens: torch.Tensor, window: int,
                                                   match: str) -> None:
    with pytest.raises(TapecastError, match=match):
        TokenWindows(tokens, window)
