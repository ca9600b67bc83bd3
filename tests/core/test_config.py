"""ConfigBase: JSON round trips, nested configs, type and range errors naming the field path."""

from __future__ import annotations

import datetime as dt
import enum
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest

from tapecast.core.config import ConfigBase, ConfigError
from tapecast.core.errors import TapecastError


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclass(frozen=True)
class Plain:
    """A nested config that is not a ConfigBase: serialized through its to_dict / from_dict."""

    rate: float = 0.1

    def to_dict(self) -> dict[str, Any]:
        return {"rate": self.rate}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plain:
        if set(data) - {"rate"}:
            raise TapecastError(f"plain config: unknown field(s) {sorted(set(data) - {'rate'})}")
        return cls(**data)


@dataclass(frozen=True)
class Inner(ConfigBase):
    channels: int = 64
    dropout: float = 0.0

    def validate(self) -> None:
        self.check_range("channels", low=1)
        self.check_range("dropout", low=0.0, high=1.0, high_inclusive=False)


@dataclass(frozen=True)
class Outer(ConfigBase):
    inner: Inner = field(default_factory=Inner)
    kind: Literal["a", "b"] = "a"
    betas: tuple[float, float] = (0.9, 0.999)
    names: tuple[str, ...] = ("x",)
    layers: tuple[Inner, ...] = ()
    steps: dict[str, int] = field(default_factory=lambda: {"ddim": 10})
    day: dt.date = dt.date(2024, 1, 8)
    every: int | Literal["epoch"] = "epoch"
    clip: float | None = 1.0
    color: Color = Color.RED
    folder: Path = Path("runs")
    plain: Plain = field(default_factory=Plain)
    flag: bool = True


@dataclass(frozen=True)
class Needs(ConfigBase):
    size: int
    name: str = "n"


def raises(match: str) -> Any:
    return pytest.raises(ConfigError, match=f"^{match}$")


def test_config_error_when_raised_is_a_one_line_tapecast_error() -> None:
    error = ConfigError("TrainConfig", "lr", "must be > 0,\n got -1")
    assert isinstance(error, TapecastError) and str(error) == "TrainConfig.lr: must be > 0, got -1"
    nested = error.inside("JLCSDIConfig", "train")
    assert str(nested) == "JLCSDIConfig.train.lr: must be > 0, got -1"


def test_to_dict_when_every_kind_of_field_then_json_ready_in_field_order() -> None:
    data = Outer(layers=(Inner(channels=2),), every=5).to_dict()
    assert list(data) == ["inner", "kind", "betas", "names", "layers", "steps", "day", "every",
                          "clip", "color", "folder", "plain", "flag"]
    assert data["inner"] == {"channels": 64, "dropout": 0.0}
    assert data["betas"] == [0.9, 0.999] and data["names"] == ["x"]
    assert data["layers"] == [{"channels": 2, "dropout": 0.0}]
    assert (data["day"], data["color"], data["folder"]) == ("2024-01-08", "red", "runs")
    assert data["plain"] == {"rate": 0.1}
    json.dumps(data, allow_nan=False)


def test_from_dict_when_round_tripped_through_json_then_equal() -> None:
    config = Outer(inner=Inner(channels=8, dropout=0.5), kind="b", names=("p", "q"),
                   layers=(Inner(channels=3), Inner()), steps={"sde": 50}, day=dt.date(2023, 2, 1),
                   every=7, clip=None, color=Color.BLUE, folder=Path("a/b"), plain=Plain(0.5),
                   flag=False)
    again = Outer.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    assert isinstance(again.betas, tuple) and isinstance(again.layers[0], Inner)


def test_from_dict_when_keys_missing_then_defaults() -> None:
    assert Outer.from_dict({}) == Outer()
    assert Outer.from_dict({"inner": {"dropout": 0.25}}).inner == Inner(dropout=0.25)


def test_from_dict_when_unknown_key_then_error_lists_known_keys() -> None:
    with raises(r"Inner: unknown key 'width'; known keys: channels, dropout"):
        Inner.from_dict({"width": 3})
    with raises(r"Inner: unknown keys 'a', 'b'; known keys: channels, dropout"):
        Inner.from_dict({"a": 1, "b": 2})


def test_from_dict_when_nested_unknown_key_then_path_names_the_field() -> None:
    with raises(r"Outer\.inner: unknown key 'lr_max'; known keys: channels, dropout"):
        Outer.from_dict({"inner": {"lr_max": 1}})


@pytest.mark.parametrize(("data", "message"), [
    ({"inner": {"channels": 0}}, r"Outer\.inner\.channels: must be >= 1, got 0"),
    ({"inner": {"channels": "8"}}, r"Outer\.inner\.channels: must be an integer, got '8'"),
    ({"inner": 3}, r"Outer\.inner: must be an object \(Inner\), got 3"),
    ({"layers": [{}, {"dropout": 1.0}]},
     r"Outer\.layers\[1\]\.dropout: must be in \[0, 1\), got 1\.0"),
    ({"kind": "c"}, r"Outer\.kind: must be one of 'a', 'b', got 'c'"),
    ({"betas": [0.9]}, r"Outer\.betas: must be a list of 2 items, got \[0\.9\]"),
    ({"betas": [0.9, "x"]}, r"Outer\.betas\[1\]: must be a number, got 'x'"),
    ({"names": "xy"}, r"Outer\.names: must be a list, got 'xy'"),
    ({"steps": {"ddim": 2.5}}, r"Outer\.steps\['ddim'\]: must be an integer, got 2\.5"),
    ({"day": "2024-13-01"}, r"Outer\.day: must be an ISO date \(YYYY-MM-DD\), got '2024-13-01'"),
    ({"every": "daily"}, r"Outer\.every: must be an integer or 'epoch', got 'daily'"),
    ({"clip": "none"}, r"Outer\.clip: must be a number or None, got 'none'"),
    ({"color": "green"}, r"Outer\.color: must be one of 'red', 'blue', got 'green'"),
    ({"flag": 1}, r"Outer\.flag: must be true or false, got 1"),
    ({"plain": {"speed": 1}}, r"Outer\.plain: plain config: unknown field\(s\) \['speed'\]"),
])
def test_from_dict_when_value_wrong_then_error_names_the_field_path(data: dict[str, Any],
                                                                   message: str) -> None:
    with raises(message):
        Outer.from_dict(data)


def test_field_types_when_asked_then_resolved_annotations_in_field_order() -> None:
    types = Needs.field_types()
    assert types == {"size": int, "name": str}
    assert Outer.field_types()["names"] == tuple[str, ...]


def test_from_dict_when_not_an_object_or_required_key_missing_then_error() -> None:
    with raises(r"Inner: must be a JSON object, got list"):
        Inner.from_dict([1, 2])  # type: ignore[arg-type]
    with raises(r"Needs: missing key\(s\) 'size'"):
        Needs.from_dict({"name": "m"})
    assert Needs.from_dict({"size": 3}) == Needs(3)


@pytest.mark.parametrize(("changes", "message"), [
    ({"channels": True}, r"Inner\.channels: must be an integer, got True"),
    ({"channels": 2.0}, r"Inner\.channels: must be an integer, got 2\.0"),
    ({"dropout": False}, r"Inner\.dropout: must be a number, got False"),
    ({"dropout": float("nan")}, r"Inner\.dropout: must be a finite number, got nan"),
])
def test_constructor_when_type_wrong_then_error(changes: dict[str, Any], message: str) -> None:
    with raises(message):
        Inner(**changes)


def test_constructor_when_list_for_tuple_then_stored_as_tuple_and_json_forms_refused() -> None:
    config = Outer(betas=[0.5, 0.6], names=["a"])  # type: ignore[arg-type]
    assert config.betas == (0.5, 0.6) and config.names == ("a",)
    assert Inner(dropout=0) == Inner(dropout=0.0)  # an int is a number
    with raises(r"Outer\.day: must be a datetime\.date, got '2024-01-08'"):
        Outer(day="2024-01-08")  # type: ignore[arg-type]
    with raises(r"Outer\.day: must be a datetime\.date, got datetime\.datetime\(2024, 1, 8.*"):
        Outer(day=dt.datetime(2024, 1, 8))
    with raises(r"Outer\.inner: must be an Inner, got \{'channels': 3\}"):
        Outer(inner={"channels": 3})  # type: ignore[arg-type]


def test_replace_when_valid_then_checked_copy_and_original_untouched() -> None:
    base = Inner()
    changed = base.replace(channels=8)
    assert changed == Inner(channels=8) and base.channels == 64
    with raises(r"Inner\.channels: must be >= 1, got 0"):
        base.replace(channels=0)
    with raises(r"Inner: unknown key 'width'; known keys: channels, dropout"):
        base.replace(width=3)


@dataclass(frozen=True)
class Ranges(ConfigBase):
    lr: float = 1e-3
    ratio: float = 0.5
    cap: float = 1.0
    count: int = 2
    clip: float | None = None
    mode: str = "fast"

    def validate(self) -> None:
        self.check_range("lr", low=0.0, low_inclusive=False)
        self.check_range("ratio", low=0.0, high=1.0, high_inclusive=False)
        self.check_range("cap", high=2.0)
        self.check_range("count", low=1, high=20_000_000)
        self.check_range("clip", low=0.0, low_inclusive=False)
        self.check_choice("mode", ("fast", "exact"))


@pytest.mark.parametrize(("changes", "message"), [
    ({"lr": -1}, r"Ranges\.lr: must be > 0, got -1"),
    ({"lr": float("inf")}, r"Ranges\.lr: must be a finite number, got inf"),
    ({"ratio": 1.0}, r"Ranges\.ratio: must be in \[0, 1\), got 1\.0"),
    ({"cap": 2.5}, r"Ranges\.cap: must be <= 2, got 2\.5"),
    ({"count": 0}, r"Ranges\.count: must be in \[1, 20000000\], got 0"),
    ({"clip": 0.0}, r"Ranges\.clip: must be > 0, got 0\.0"),
    ({"mode": "slow"}, r"Ranges\.mode: must be one of 'fast', 'exact', got 'slow'"),
])
def test_check_range_and_choice_when_out_of_bounds_then_message_names_bounds(
        changes: dict[str, Any], message: str) -> None:
    with raises(message):
        Ranges(**changes)


def test_check_range_when_optional_field_is_none_then_passes() -> None:
    assert Ranges(clip=None).clip is None and Ranges(clip=0.5).clip == 0.5


def test_check_range_when_value_given_then_field_is_only_the_label() -> None:
    config = Ranges()
    with raises(r"Ranges\.steps\['ddim'\]: must be >= 1, got 0"):
        config.check_range("steps['ddim']", low=1, value=0)
    with raises(r"Ranges\.steps: must be 'ddim', got 'euler'"):
        config.check_choice("steps", ("ddim",), value="euler")


def test_subclass_when_it_defines_post_init_then_type_error_at_class_creation() -> None:
    with pytest.raises(TypeError, match=r"Bad: .*validate\(\), not __post_init__"):
        @dataclass(frozen=True)
        class Bad(ConfigBase):
            size: int = 1

            def __post_init__(self) -> None:
                pass


def test_constructor_when_numpy_scalars_then_stored_as_builtin_numbers() -> None:
    scalars: dict[str, Any] = {"lr": np.float32(1e-3), "ratio": np.float64(0.25),
                               "cap": np.int64(1), "count": np.int64(5), "clip": np.float16(0.5)}
    config = Ranges(**scalars)
    assert config == Ranges(lr=float(np.float32(1e-3)), ratio=0.25, cap=1, count=5, clip=0.5)
    kinds = {name: type(getattr(config, name)) for name in ("lr", "ratio", "cap", "count", "clip")}
    assert kinds == {"lr": float, "ratio": float, "cap": int, "count": int, "clip": float}
    assert json.loads(json.dumps(config.to_dict())) == config.to_dict()
    fields: dict[str, Any] = {"steps": {"ddim": np.uint16(7)}, "betas": (np.float32(0.5), 0.75),
                              "every": np.int32(3)}
    outer = Outer(**fields)
    assert outer.steps == {"ddim": 7} and type(outer.steps["ddim"]) is int
    assert outer.betas == (0.5, 0.75) and type(outer.betas[0]) is float
    assert outer.every == 3 and type(outer.every) is int
    assert Inner.from_dict({"channels": np.int8(3)}).channels == 3


@pytest.mark.parametrize(("changes", "message"), [
    ({"count": np.bool_(True)}, r"Ranges\.count: must be an integer, got np\.True_"),
    ({"count": np.float64(2.0)}, r"Ranges\.count: must be an integer, got np\.float64\(2\.0\)"),
    ({"count": np.float32(2.5)}, r"Ranges\.count: must be an integer, got np\.float32\(2\.5\)"),
    ({"lr": np.bool_(False)}, r"Ranges\.lr: must be a number, got np\.False_"),
    ({"lr": np.complex128(1)}, r"Ranges\.lr: must be a number, got np\.complex128\(1\+0j\)"),
    ({"lr": np.float64("nan")}, r"Ranges\.lr: must be a finite number, got nan"),
    ({"lr": np.float32(-1)}, r"Ranges\.lr: must be > 0, got -1\.0"),
    ({"count": np.int64(0)}, r"Ranges\.count: must be in \[1, 20000000\], got 0"),
])
def test_constructor_when_numpy_scalar_of_wrong_kind_then_error(changes: dict[str, Any],
                                                               message: str) -> None:
    with raises(message):
        Ranges(**changes)


def test_train_config_when_numpy_learning_rate_then_accepted_as_float() -> None:
    from tapecast.train.config import TrainConfig

    lr: Any = np.float32(1e-3)
    config = TrainConfig(lr=lr)
    assert type(config.lr) is float and config.lr == pytest.approx(1e-3)


def test_hash_when_config_has_a_mapping_field_then_unhashable_as_documented() -> None:
    assert hash(Inner(channels=3)) == hash(Inner(channels=3))
    assert hash(Ranges(count=3)) == hash(Ranges(count=3))
    with pytest.raises(TypeError, match="unhashable"):
        hash(Outer())
    assert Outer(steps={"ddim": 4}) == Outer(steps={"ddim": 4})
