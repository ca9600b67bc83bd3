"""tapecast.train.config: validation, JSON round trip, learning-rate schedules."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from tapecast.core.errors import TapecastError
from tapecast.train.config import TrainConfig


def test_to_dict_when_dumped_to_json_round_trips() -> None:
    config = TrainConfig(lr=3e-4, betas=(0.8, 0.99), max_steps=50, eval_every=7, bf16=True,
                         batch_shards=2, lr_schedule="cosine", warmup_steps=5)
    back = TrainConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert back == config
    assert back.betas == (0.8, 0.99)


def test_from_dict_when_key_unknown_raises() -> None:
    with pytest.raises(TapecastError, match="unknown key"):
        TrainConfig.from_dict({"learning_rate": 1e-3})


@pytest.mark.parametrize(("field", "value"), [
    ("lr", 0.0), ("lr", math.nan), ("weight_decay", -1.0), ("betas", (0.9, 1.0)),
    ("betas", (0.9,)), ("batch_size", 0), ("max_steps", 0), ("grad_clip", 0.0),
    ("ema_decay", 1.0), ("eval_every", 0), ("eval_every", "step"), ("bf16", 1),
    ("lr_schedule", "linear"), ("batch_shards", 17), ("seed", -1), ("log_every", 1.5),
    ("precision", "fp8"), ("device", "gpu"), ("device", "cuda:x"), ("weight_decay_on", "none"),
    ("max_val_batches", 0), ("validate_with_ema", 1),
])
def test_config_when_field_invalid_raises_naming_it(field: str, value: Any) -> None:
    with pytest.raises(TapecastError, match=field):
        TrainConfig(**{field: value})


def test_config_when_neither_epochs_nor_steps_raises() -> None:
    with pytest.raises(TapecastError, match="max_epochs or max_steps"):
        TrainConfig(max_epochs=None, max_steps=None)


def test_lr_at_when_warmup_rises_linearly_then_constant() -> None:
    config = TrainConfig(lr=1.0, warmup_steps=4)
    assert [config.lr_at(s, 100) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_lr_at_when_cosine_falls_to_min_ratio() -> None:
    config = TrainConfig(lr=2.0, lr_schedule="cosine", min_lr_ratio=0.1)
    assert config.lr_at(0, 101) == pytest.approx(2.0)
    assert config.lr_at(50, 101) == pytest.approx(2.0 * (0.1 + 0.9 * 0.5))
    assert config.lr_at(100, 101) == pytest.approx(0.2)


def test_lr_at_when_step_schedule_divides_by_ten_at_75_and_90_percent() -> None:
    config = TrainConfig(lr=1.0, lr_schedule="step")
    assert [config.lr_at(s, 100) for s in (74, 75, 89, 90)] == pytest.approx(
        [1.0, 0.1, 0.1, 0.01])


def test_trajectory_differences_when_only_length_changes_is_empty() -> None:
    base = TrainConfig(max_steps=10)
    assert base.trajectory_differences(TrainConfig(max_steps=20, log_every=3)) == []
    assert base.trajectory_differences(TrainConfig(max_steps=10, seed=1)) == ["seed"]


def test_config_when_bf16_flag_given_means_precision_bf16() -> None:
    legacy = TrainConfig(bf16=True)
    assert legacy == TrainConfig(precision="bf16") and legacy.bf16 is False
    assert TrainConfig.from_dict({"bf16": True, "ema_decay": 0.99}).precision == "bf16"
    with pytest.raises(TapecastError, match="bf16"):
        TrainConfig(bf16=True, precision="fp16")


def test_config_when_ema_off_and_devices_given_is_valid() -> None:
    for device in ("cpu", "cuda", "cuda:3", "auto"):
        assert TrainConfig(device=device, ema_decay=None).device == device


def test_trajectory_differences_when_device_or_val_cap_changes_is_empty() -> None:
    base = TrainConfig(max_steps=10)
    assert base.trajectory_differences(TrainConfig(max_steps=10, device="auto",
                                                   max_val_batches=3)) == []
    assert base.trajectory_differences(TrainConfig(max_steps=10, precision="bf16")) == [
        "precision"]
