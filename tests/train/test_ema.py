"""tapecast.train.ema: the moving average of the weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tapecast.core.errors import TapecastError
from tapecast.train.ema import EMA


def _scalar_model(value: float) -> nn.Module:
    model = nn.Module()
    model.theta = nn.Parameter(torch.tensor([value]))
    return model


def _set(model: nn.Module, value: float) -> None:
    with torch.no_grad():
        model.theta.fill_(value)


def test_update_when_no_warmup_follows_hand_example() -> None:
    model = _scalar_model(0.0)
    ema = EMA(model, 0.5, warmup=False)
    _set(model, 1.0)
    ema.update(model)  # 0.5 * 0 + 0.5 * 1
    assert ema.shadow["theta"].item() == pytest.approx(0.5)
    _set(model, 3.0)
    ema.update(model)  # 0.5 * 0.5 + 0.5 * 3
    assert ema.shadow["theta"].item() == pytest.approx(1.75)
    assert ema.num_updates == 2


def test_update_when_warmup_uses_smaller_early_decay() -> None:
    model = _scalar_model(0.0)
    ema = EMA(model, 0.99, warmup=True)
    _set(model, 1.0)
    d1 = 2.0 / 11.0  # min(0.99, (1 + 1) / (10 + 1))
    ema.update(model)
    assert ema.shadow["theta"].item() == pytest.approx(1.0 - d1)
    ema.num_updates = 10_000
    assert ema.current_decay() == pytest.approx(0.99)


def test_copy_to_when_called_writes_shadow_into_model() -> None:
    model = _scalar_model(0.0)
    ema = EMA(model, 0.5, warmup=False)
    _set(model, 2.0)
    ema.update(model)
    ema.copy_to(model)
    assert model.theta.item() == pytest.approx(1.0)


def test_applied_to_when_block_raises_restores_weights_exactly() -> None:
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    ema = EMA(model, 0.9)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    own = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(RuntimeError), ema.applied_to(model):
        assert torch.equal(model.weight, ema.shadow["weight"])
        raise RuntimeError("boom")
    assert all(torch.equal(model.state_dict()[k], v) for k, v in own.items())


def test_state_dict_when_loaded_into_fresh_ema_round_trips() -> None:
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    ema = EMA(model, 0.8, warmup=False)
    with torch.no_grad():
        model.weight.mul_(3.0)
    ema.update(model)
    other = EMA(nn.Linear(3, 2), 0.1, warmup=True)
    other.load_state_dict(ema.state_dict())
    assert (other.decay, other.warmup, other.num_updates) == (0.8, False, 1)
    assert all(torch.equal(other.shadow[k], v) for k, v in ema.shadow.items())


def test_load_state_dict_when_names_differ_raises() -> None:
    ema = EMA(nn.Linear(3, 2), 0.9)
    foreign = EMA(nn.Sequential(nn.Linear(3, 2)), 0.9)
    with pytest.raises(TapecastError, match="does not fit"):
        ema.load_state_dict(foreign.state_dict())


def test_ema_when_weights_tied_tracks_them_once() -> None:
    model = nn.Module()
    model.a = nn.Linear(2, 2, bias=False)
    model.b = nn.Linear(2, 2, bias=False)
    model.b.weight = model.a.weight
    assert list(EMA(model, 0.9).shadow) == ["a.weight"]


@pytest.mark.parametrize("decay", [-0.1, 1.0, 1.5])
def test_ema_when_decay_outside_unit_interval_raises(decay: float) -> None:
    with pytest.raises(TapecastError, match="decay"):
        EMA(nn.Linear(1, 1), decay)
