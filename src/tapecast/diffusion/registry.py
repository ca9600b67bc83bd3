"""Samplers and noise processes by name: each registers itself, ``get_sampler`` checks the fit.

A new sampler or noise is a new file that decorates its class (or factory) and is imported by
``tapecast/diffusion/__init__.py``; nothing here changes::

    @register_sampler("ddim", noise_kind="gaussian")
    class DDIMSampler(RespacedGaussianSampler): ...

    @register_noise("gaussian")
    class GaussianNoise: ...

A model's ``sample()`` then runs (see :mod:`tapecast.diffusion.protocols`)::

    sampler = get_sampler("ddim", noise)
    sampler.set_timesteps(n_steps)
    x = sampler.init_noise(shape, generator)
    for i, t in enumerate(sampler.timesteps):
        out = net(x, sampler.model_time(t).expand(len(x)), cond)
        x = sampler.step(out, i, x, generator=generator)

A sampler fits one kind of noise: asking for one that does not fit the model's noise is a
:class:`~tapecast.core.errors.TapecastError` naming the samplers that do. This module imports no
sampler or noise (they import it), so the package has no import cycle.
"""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from tapecast.core.errors import TapecastError
from tapecast.diffusion.protocols import NoiseKind, NoiseProcess, Sampler

T = TypeVar("T", bound=Callable[..., Any])


@dataclass(frozen=True)
class SamplerEntry:
    """A registered sampler: the noise kind it needs and what builds it from ``(noise, **opts)``."""

    name: str
    noise_kind: NoiseKind
    build: Callable[..., Any]


_SAMPLERS: dict[str, SamplerEntry] = {}
_NOISES: dict[NoiseKind, Callable[..., Any]] = {}


def is_count(value: object) -> bool:
    """Whether ``value`` is an integer (Python or numpy, not a bool): a number of steps."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _same(a: Callable[..., Any], b: Callable[..., Any]) -> bool:
    """One class or factory, also across ``importlib.reload`` of its module."""
    return a is b or (getattr(a, "__module__", None), getattr(a, "__qualname__", None)) == (
        getattr(b, "__module__", None), getattr(b, "__qualname__", None))


def register_sampler(name: str, *, noise_kind: NoiseKind) -> Callable[[T], T]:
    """Decorator: make a sampler class (or a factory ``(noise, **options) -> Sampler``)
    available to :func:`get_sampler` as ``name``, for noise processes of ``noise_kind``."""
    def decorate(build: T) -> T:
        known = _SAMPLERS.get(name)
        if known is not None and not _same(known.build, build):
            raise TapecastError(f"a sampler named '{name}' is already registered")
        _SAMPLERS[name] = SamplerEntry(name, noise_kind, build)
        return build
    return decorate


def register_noise(kind: NoiseKind) -> Callable[[T], T]:
    """Decorator: make a noise-process class available to :func:`get_noise` as ``kind``."""
    def decorate(build: T) -> T:
        known = _NOISES.get(kind)
        if known is not None and not _same(known, build):
            raise TapecastError(f"a noise process of kind '{kind}' is already registered")
        _NOISES[kind] = build
        return build
    return decorate


def sampler_names() -> tuple[str, ...]:
    """Every registered sampler name, in registration order."""
    return tuple(_SAMPLERS)


def noise_kinds() -> tuple[NoiseKind, ...]:
    """Every registered noise kind, in registration order."""
    return tuple(_NOISES)


def samplers_for(kind: str) -> tuple[str, ...]:
    """Names of the samplers that fit noise of ``kind``."""
    return tuple(e.name for e in _SAMPLERS.values() if e.noise_kind == kind)


def _quoted(names: Sequence[str]) -> str:
    quoted = [f"'{name}'" for name in names] or ["a sampler made for that noise"]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def get_noise(kind: str, **options: Any) -> NoiseProcess:
    """A registered noise process of ``kind`` built with ``options`` (its constructor's)."""
    if kind not in _NOISES:
        raise TapecastError(f"unknown noise {kind!r}; expected one of {_quoted(noise_kinds())}")
    _check_options(f"noise '{kind}'", _NOISES[kind], (), options)
    noise: NoiseProcess = _NOISES[kind](**options)
    return noise


def get_sampler(name: str, noise: NoiseProcess, **options: Any) -> Sampler:
    """Build the named sampler for a model's noise process.

    Parameters
    ----------
    name : str
        A registered sampler (:func:`sampler_names`).
    noise : NoiseProcess
        The model's forward process; its ``kind`` must be the sampler's.
    **options
        Sampler options (``eta`` for ddim, ``variance`` for ddpm, ``stochasticity`` for sde;
        ``n_samples``, ``targets``, ``strength``, ... for sde-mgd).

    Returns
    -------
    Sampler
        A sampler with the common contract.
    """
    if name not in _SAMPLERS:
        raise TapecastError(f"unknown sampler {name!r}; expected one of "
                            f"{_quoted(sampler_names())}")
    entry = _SAMPLERS[name]
    kind = getattr(noise, "kind", None)
    if kind != entry.noise_kind:
        raise TapecastError(
            f"sampler '{name}' needs a {entry.noise_kind}-noise model; this model uses {kind} "
            f"noise; use {_quoted(samplers_for(str(kind)))}"
        )
    _check_options(f"sampler '{name}'", entry.build, (noise,), options)
    sampler: Sampler = entry.build(noise, **options)
    return sampler


def _check_options(what: str, build: Callable[..., Any], args: tuple[Any, ...],
                   options: dict[str, Any]) -> None:
    """A TapecastError when ``build`` does not take these options (checked against its
    signature, so a TypeError raised inside a constructor is not mistaken for one)."""
    try:
        signature = inspect.signature(build)
    except (TypeError, ValueError):  # no signature to check: the call itself will tell
        return
    try:
        signature.bind(*args, **options)
    except TypeError as exc:
        raise TapecastError(f"{what}: {exc}") from None


__all__ = ["NoiseKind", "NoiseProcess", "Sampler", "SamplerEntry", "get_noise", "get_sampler",
           "is_count", "noise_kinds", "register_noise", "register_sampler", "sampler_names",
           "samplers_for"]
