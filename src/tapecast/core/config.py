"""One base for every config: a frozen dataclass with JSON round-trips and one-line errors.

A component's settings are one frozen dataclass that derives from :class:`ConfigBase`::

    @dataclass(frozen=True)
    class DenoiserConfig(ConfigBase):
        channels: int = 64
        dropout: float = 0.0
        architecture: Literal["full-grid", "context-cached"] = "full-grid"

        def validate(self) -> None:
            self.check_range("channels", low=1)
            self.check_range("dropout", low=0.0, high=1.0, high_inclusive=False)

What the base gives every config:

- **Types checked from the annotations** on every construction (``__post_init__``): an ``int``
  field takes any integer (``int``, ``numpy.int64``, ...; not a ``bool``, not ``2.0``), a
  ``float`` field any real number (integers too; not a ``bool``), numpy scalars stored as the
  builtin ``int``/``float``; a ``Literal`` field one of its values, ``X | None`` either, a
  ``tuple[...]`` field a tuple or list (stored as a tuple: frozen and hashable), a ``dict`` or
  ``Mapping`` field a mapping (stored as a new ``dict``), a nested config an instance of its
  class. Then :meth:`ConfigBase.validate`, the subclass's own range and cross-field checks.
- **Hashing**: configs are frozen and compare by value; one is hashable when its field values
  are. A config with a ``dict``/``Mapping`` or ``list`` field (``JLCSDIConfig.sample_steps``)
  is *not* hashable (``hash`` raises ``TypeError``): key caches by ``json.dumps(config.to_dict(),
  sort_keys=True)`` instead. Such a field must not be mutated in place after construction.
  A subclass checks itself in ``validate``, never in ``__post_init__`` (defining one is a
  ``TypeError`` at class creation, so the type checks cannot be skipped by accident).
- :meth:`ConfigBase.to_dict`: a JSON-ready dict in field order (tuples become lists, nested
  configs dicts, dates ISO text, enums their values, paths strings).
- :meth:`ConfigBase.from_dict`: the inverse, from a parsed ``config.json``: nested configs are
  built from their annotations, lists become tuples, ISO text dates; unknown keys, missing
  required keys and wrong types are errors; keys left out take their defaults.
- :meth:`ConfigBase.replace`: a copy with some fields changed, checked again.
- Errors are :class:`ConfigError`, one line naming the class and the field path, e.g.
  ``JLCSDIConfig.denoiser.channels: must be >= 1, got 0`` or
  ``JLCSDIConfig.train: unknown key 'lr_max'; known keys: batch_size, ...``.

A nested field may also hold a class that is not a ``ConfigBase`` but has ``to_dict`` and a
``from_dict`` classmethod; it is serialized through those.

This module imports nothing of tapecast's but :mod:`tapecast.core.errors`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import math
import numbers
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import (
    Any,
    Literal,
    NoReturn,
    Self,
    Union,
    get_args,
    get_origin,
    get_type_hints,
)

from tapecast.core.errors import TapecastError


class ConfigError(TapecastError):
    """A config key or value that is not allowed: one line naming class, field path, expectation.

    Parameters
    ----------
    owner : str
        The config class (``"JLCSDIConfig"``).
    field : str or None
        The field's path inside ``owner`` (``"denoiser.channels"``, ``"sample_steps['ddim']"``);
        None when the error is about the config as a whole (an unknown key).
    detail : str
        What is wrong (``"must be >= 1, got 0"``).
    """

    def __init__(self, owner: str, field: str | None, detail: str) -> None:
        self.owner = owner
        self.field = field
        self.detail = detail
        super().__init__(f"{owner if field is None else f'{owner}.{field}'}: {detail}")

    def inside(self, owner: str, field: str) -> ConfigError:
        """The same error seen from ``owner``, whose ``field`` holds the failing config."""
        return ConfigError(owner, _join(field, self.field), self.detail)


def _join(path: str, field: str | None) -> str:
    """``path`` then ``field``: ``denoiser`` + ``channels`` -> ``denoiser.channels``."""
    if field is None:
        return path
    return f"{path}{field}" if field.startswith("[") else f"{path}.{field}"


class _Mismatch(Exception):
    """A value that does not fit a type (internal: turned into a ConfigError by the caller)."""

    def __init__(self, expected: str, got: object, where: str = "") -> None:
        super().__init__(expected)
        self.expected = expected
        self.got = got
        self.where = where  # a suffix inside the field, e.g. "[2]" or "['ddim']"


_UNSET: Any = object()


@dataclass(frozen=True)
class ConfigBase:
    """Base of every tapecast config (see the module docstring)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__post_init__" in cls.__dict__:
            raise TypeError(f"{cls.__name__}: a ConfigBase subclass checks its values in "
                            "validate(), not __post_init__ (which checks the field types)")

    def __post_init__(self) -> None:
        hints = _field_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            converted = _field_value(type(self), f.name, value, hints[f.name], parse=False)
            if converted is not value:
                object.__setattr__(self, f.name, converted)
        self.validate()

    def validate(self) -> None:
        """Range and cross-field checks of the subclass (the field types are already checked).

        Raise through :meth:`fail`, :meth:`check_range` and :meth:`check_choice` so the message
        names the field. A subclass may normalize a value here with ``object.__setattr__``.
        """

    # --- JSON ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field, in field order.

        Tuples and lists become lists, mappings dicts, nested configs (and any value with a
        ``to_dict``) their dicts, dates and datetimes ISO text, enums their values, paths
        strings; other values are kept as they are.
        """
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Build from a dict such as :meth:`to_dict` returns (a parsed ``config.json``).

        Missing keys take their defaults; nested configs are built from nested dicts.

        Raises
        ------
        ConfigError
            On a value that is not a JSON object, an unknown or missing key, a value of the
            wrong type or one that fails :meth:`validate` (the message names the field path).
        """
        if not isinstance(data, Mapping):
            raise ConfigError(cls.__name__, None,
                              f"must be a JSON object, got {type(data).__name__}")
        cls._check_keys(data, require=True)
        hints = _field_hints(cls)
        values = {name: _field_value(cls, name, value, hints[name], parse=True)
                  for name, value in data.items()}
        return cls(**values)

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` applied, checked again like a new config.

        Raises
        ------
        ConfigError
            On an unknown field or a value that fails the checks.
        """
        type(self)._check_keys(changes, require=False)
        return dataclasses.replace(self, **changes)

    @classmethod
    def field_types(cls) -> dict[str, Any]:
        """The resolved annotation of every field, by name (for an edge that parses text).

        For example a command line that reads ``KEY=a,b`` can split the text for a field whose
        type is a ``tuple[str, ...]`` before calling :meth:`from_dict`.
        """
        hints = _field_hints(cls)
        return {f.name: hints[f.name] for f in dataclasses.fields(cls)}

    @classmethod
    def _check_keys(cls, data: Mapping[str, Any], *, require: bool) -> None:
        fields = dataclasses.fields(cls)
        known = [f.name for f in fields]
        unknown = [k for k in data if k not in known]
        if unknown:
            noun = "key" if len(unknown) == 1 else "keys"
            raise ConfigError(cls.__name__, None,
                              f"unknown {noun} {', '.join(repr(k) for k in unknown)}; "
                              f"known keys: {', '.join(sorted(known))}")
        missing = [f.name for f in fields if require and f.name not in data
                   and f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING]
        if missing:
            raise ConfigError(cls.__name__, None,
                              f"missing key(s) {', '.join(repr(k) for k in missing)}")

    # --- checks for validate() ----------------------------------------------------------------
    def fail(self, field: str | None, detail: str) -> NoReturn:
        """Raise ``ConfigError("<Class>.<field>: <detail>")``."""
        raise ConfigError(type(self).__name__, field, detail)

    def check_range(self, field: str, *, low: float | None = None, high: float | None = None,
                    low_inclusive: bool = True, high_inclusive: bool = True,
                    value: Any = _UNSET) -> None:
        """Check that a number lies in the interval from ``low`` to ``high``.

        ``value`` defaults to the field's value; pass it to check a derived value or an item
        (``field`` is then only the name in the message, e.g. ``"sample_steps['ddim']"``).
        None passes (an optional field that is off). Infinite and NaN values fail.

        Raises
        ------
        ConfigError
            ``"TrainConfig.lr: must be > 0, got -1"``, ``"...: must be in [0, 1), got 1.0"``.
        """
        x = getattr(self, field) if value is _UNSET else value
        if x is None:
            return
        if isinstance(x, bool) or not isinstance(x, numbers.Real):
            self.fail(field, f"must be a number, got {x!r}")
        number: float = x if isinstance(x, int | float) else float(x)
        if not math.isfinite(number):
            self.fail(field, f"must be a finite number, got {x!r}")
        too_low = low is not None and (number < low if low_inclusive else number <= low)
        too_high = high is not None and (number > high if high_inclusive else number >= high)
        if too_low or too_high:
            self.fail(field, f"must be {_interval(low, high, low_inclusive, high_inclusive)}, "
                             f"got {x!r}")

    def check_choice(self, field: str, choices: Sequence[object], *,
                     value: Any = _UNSET) -> None:
        """Check that the field's value (or ``value``) is one of ``choices``.

        Raises
        ------
        ConfigError
            ``"JLCSDIConfig.schedule: must be one of 'linear', 'quad', got 'sigmoid'"``.
        """
        x = getattr(self, field) if value is _UNSET else value
        if x not in choices:
            self.fail(field, f"must be {_one_of(choices)}, got {x!r}")


# --- helpers ------------------------------------------------------------------------------------
def _num(x: float) -> str:
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return repr(x)


def _interval(low: float | None, high: float | None, low_inclusive: bool,
              high_inclusive: bool) -> str:
    if low is not None and high is not None:
        left, right = "[" if low_inclusive else "(", "]" if high_inclusive else ")"
        return f"in {left}{_num(low)}, {_num(high)}{right}"
    if low is not None:
        return f"{'>=' if low_inclusive else '>'} {_num(low)}"
    if high is not None:
        return f"{'<=' if high_inclusive else '<'} {_num(high)}"
    return "a number"


def _one_of(choices: Sequence[object]) -> str:
    shown = ", ".join(repr(c) for c in choices)
    return shown if len(choices) == 1 else f"one of {shown}"


_HINTS: dict[type, dict[str, Any]] = {}


def _field_hints(cls: type) -> dict[str, Any]:
    """Resolved annotations of ``cls``'s dataclass fields (strings evaluated once per class)."""
    if cls not in _HINTS:
        try:
            _HINTS[cls] = get_type_hints(cls)
        except NameError as exc:  # a hint imported under TYPE_CHECKING only
            raise TypeError(f"{cls.__name__}: cannot resolve the field annotations ({exc}); "
                            "import their types at run time") from None
    return _HINTS[cls]


def _field_value(cls: type, name: str, value: Any, hint: Any, *, parse: bool) -> Any:
    """``value`` checked against (and, from JSON, converted to) ``hint``; errors name the field."""
    try:
        return _convert(value, hint, parse)
    except _Mismatch as exc:
        raise ConfigError(cls.__name__, name + exc.where,
                          f"must be {exc.expected}, got {exc.got!r}") from None
    except ConfigError as exc:  # a nested config's own error
        raise exc.inside(cls.__name__, name) from None
    except TapecastError as exc:  # a nested config with its own from_dict (not a ConfigBase)
        raise ConfigError(cls.__name__, name, str(exc)) from None


def _convert(value: Any, hint: Any, parse: bool) -> Any:
    """The value, checked against ``hint``; with ``parse``, JSON forms are converted."""
    origin = get_origin(hint)
    if hint is Any:
        return value
    if origin is Literal:
        return _convert_literal(value, get_args(hint))
    if origin is Union or origin is types.UnionType:
        return _convert_union(value, get_args(hint), parse)
    if hint is type(None):
        if value is not None:
            raise _Mismatch("None", value)
        return None
    if origin is tuple or hint is tuple:
        return _convert_tuple(value, get_args(hint), parse)
    if origin in (list, Sequence) or hint in (list, Sequence):
        return _convert_list(value, get_args(hint), parse)
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        return _convert_mapping(value, get_args(hint), parse)
    if not isinstance(hint, type):
        return value  # a typing construct this base does not check (Callable, Protocol, ...)
    return _convert_class(value, hint, parse)


def _convert_literal(value: Any, choices: tuple[Any, ...]) -> Any:
    for choice in choices:
        if value == choice and type(value) is type(choice):
            return choice
    raise _Mismatch(_one_of(choices), value)


def _convert_union(value: Any, members: tuple[Any, ...], parse: bool) -> Any:
    if value is None and type(None) in members:
        return None
    expected: list[str] = []
    for member in members:
        if member is type(None):
            continue
        try:
            return _convert(value, member, parse)
        except _Mismatch as exc:
            if exc.where:  # the value has the member's shape but an item is wrong
                raise
            expected.append(exc.expected)
    if type(None) in members:
        expected.append("None")
    raise _Mismatch(" or ".join(expected), value)


def _convert_tuple(value: Any, args: tuple[Any, ...], parse: bool) -> tuple[Any, ...]:
    if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
        raise _Mismatch("a list", value)
    if not args:
        return tuple(value)
    if len(args) == 2 and args[1] is Ellipsis:
        item_hints: Sequence[Any] = [args[0]] * len(value)
    else:
        if len(value) != len(args):
            raise _Mismatch(f"a list of {len(args)} items", value)
        item_hints = args
    return tuple(_item(v, h, parse, f"[{i}]") for i, (v, h) in enumerate(zip(value, item_hints,
                                                                             strict=True)))


def _convert_list(value: Any, args: tuple[Any, ...], parse: bool) -> list[Any]:
    if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
        raise _Mismatch("a list", value)
    hint = args[0] if args else Any
    return [_item(v, hint, parse, f"[{i}]") for i, v in enumerate(value)]


def _convert_mapping(value: Any, args: tuple[Any, ...], parse: bool) -> dict[Any, Any]:
    if not isinstance(value, Mapping):
        raise _Mismatch("a mapping", value)
    key_hint, value_hint = args if args else (Any, Any)
    return {_item(k, key_hint, parse, f"[{k!r}]"): _item(v, value_hint, parse, f"[{k!r}]")
            for k, v in value.items()}


def _item(value: Any, hint: Any, parse: bool, where: str) -> Any:
    """An item of a container field; ``where`` (``[2]``, ``['ddim']``) goes into the path."""
    try:
        return _convert(value, hint, parse)
    except _Mismatch as exc:
        raise _Mismatch(exc.expected, exc.got, where + exc.where) from None
    except ConfigError as exc:  # a nested config in the container: the owner is replaced later
        raise ConfigError(exc.owner, _join(where, exc.field), exc.detail) from None


def _convert_class(value: Any, hint: type, parse: bool) -> Any:
    if hint is bool:
        if not isinstance(value, bool):
            raise _Mismatch("true or false", value)
        return value
    if hint is int:
        if type(value) is int:
            return value
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise _Mismatch("an integer", value)
        return int(value)  # numpy integers and int subclasses -> int
    if hint is float:
        return _builtin_number(value)
    if hint is str:
        if not isinstance(value, str):
            raise _Mismatch("a string", value)
        return value
    if isinstance(value, hint) and not (hint is dt.date and isinstance(value, dt.datetime)):
        return value
    if parse:
        parsed = _parse(value, hint)
        if parsed is not _UNSET:
            return parsed
    raise _Mismatch(_describe(hint, parse), value)


def _builtin_number(value: Any) -> int | float:
    """A real number (not a bool) as a builtin ``int`` or ``float`` (numpy scalars included, so
    :meth:`ConfigBase.to_dict` stays plain JSON)."""
    if type(value) is int or type(value) is float:
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _Mismatch("a number", value)
    return int(value) if isinstance(value, numbers.Integral) else float(value)


def _parse(value: Any, hint: type) -> Any:
    """``value`` (a JSON form) as a ``hint``, or ``_UNSET`` when it is not one."""
    if isinstance(value, Mapping) and issubclass(hint, ConfigBase):
        return hint.from_dict(value)
    if isinstance(value, Mapping) and callable(getattr(hint, "from_dict", None)):
        return hint.from_dict(dict(value))  # type: ignore[attr-defined]
    if isinstance(value, str) and hint in (dt.date, dt.datetime):
        try:
            return hint.fromisoformat(value)
        except ValueError:
            return _UNSET
    if isinstance(value, str) and issubclass(hint, PurePath):
        return hint(value)
    if issubclass(hint, enum.Enum):
        try:
            return hint(value)
        except ValueError:
            return _UNSET
    return _UNSET


def _describe(hint: type, parse: bool) -> str:
    if hint is dt.date:
        return "an ISO date (YYYY-MM-DD)" if parse else "a datetime.date"
    if hint is dt.datetime:
        return "an ISO date-time" if parse else "a datetime.datetime"
    if issubclass(hint, enum.Enum):
        return _one_of([m.value for m in hint])
    if parse and (issubclass(hint, ConfigBase) or hasattr(hint, "from_dict")):
        return f"an object ({hint.__name__})"
    return f"{'an' if hint.__name__[:1] in 'AEIOU' else 'a'} {hint.__name__}"


def _plain(value: Any) -> Any:
    """A JSON-ready form of a field value (see :meth:`ConfigBase.to_dict`)."""
    if isinstance(value, ConfigBase) or callable(getattr(value, "to_dict", None)):
        return value.to_dict()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dt.date):  # datetime too
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    return value


__all__ = ["ConfigBase", "ConfigError"]
