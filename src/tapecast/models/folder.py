"""A saved model folder, as every trained forecaster writes it.

``config.json`` holds the model's ``kind`` (``tapecast.jl-csdi``, ``tapecast.price-diffusion``),
its ``format_version``, a ``state`` (``training`` while a run is under way, ``trained`` once
saved) and the model's own ``to_dict()``; ``model.safetensors`` the network's weights (no
pickles). A model adds its own files beside them (normalizers, data statistics). Writes are
atomic (:mod:`tapecast.core.io`); every read error is one line naming the file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Container, Mapping
from pathlib import Path
from typing import Any, Final, TypeVar

from safetensors import SafetensorError
from safetensors.torch import load_model, save_model
from torch import nn

from tapecast.core.errors import TapecastError
from tapecast.core.io import atomic_path, atomic_write_text

CONFIG_FILE: Final = "config.json"
WEIGHTS_FILE: Final = "model.safetensors"

__all__ = ["CONFIG_FILE", "WEIGHTS_FILE", "finite_or_none", "load_weights", "preset_or_file",
           "read_json", "read_meta", "save_model_folder", "save_weights", "write_meta"]

C = TypeVar("C")


def read_json(path: Path, what: str, label: str = "model") -> dict[str, Any]:
    """A JSON object from ``path``, or a one-line TapecastError naming ``what`` is wrong
    (``label`` names the model in the hint, e.g. ``JL-CSDI``)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TapecastError(f"{path}: no {what} (is {path.parent} a trained {label} model "
                            "folder?)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TapecastError(f"{path}: {what} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise TapecastError(f"{path}: {what} must be a JSON object")
    return data


def write_meta(folder: Path, kind: str, version: int, state: str,
               content: dict[str, Any]) -> None:
    """Write ``folder/config.json``: kind, format version, state, then ``content``."""
    meta = {"format_version": version, "kind": kind, "state": state, **content}
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / CONFIG_FILE, json.dumps(meta, indent=1) + "\n")


def read_meta(folder: Path, kind: str, version: int, label: str) -> dict[str, Any]:
    """``folder/config.json``, checked to be a ``kind`` model of format ``version``."""
    if not folder.is_dir():
        raise TapecastError(f"{folder}: no such {label} model folder")
    meta = read_json(folder / CONFIG_FILE, CONFIG_FILE, label)
    if meta.get("kind") != kind or meta.get("format_version") != version:
        raise TapecastError(f"{folder / CONFIG_FILE}: not a {label} model config of format "
                            f"{version} (kind {meta.get('kind')!r})")
    return meta


def save_weights(net: nn.Module, path: Path) -> None:
    """The network's weights as safetensors, written atomically."""
    with atomic_path(path) as tmp:
        save_model(net, str(tmp))


def load_weights(net: nn.Module, path: Path, state: str) -> None:
    """Load ``path`` into ``net`` (strict); one line when missing (a run still ``training``
    says how to resume) or when the weights do not fit the network."""
    if not path.exists():
        hint = ("training has not finished: run the same `tapecast train` command again to "
                "resume it" if state == "training" else "the weights file is missing")
        raise TapecastError(f"{path}: no weights; {hint}")
    try:
        load_model(net, str(path), strict=True)
    except (RuntimeError, OSError, ValueError, SafetensorError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise TapecastError(f"{path}: weights do not fit the config ({first})") from None


def save_model_folder(folder: str | Path, net: nn.Module,
                      write_model_meta: Callable[[Path, str], None],
                      extras: Mapping[str, Callable[[Path], object]] | None = None) -> Path:
    """Write a model folder: each extra file (``name -> saver(path)``: normalizers, statistics,
    a tokenizer), the weights, then ``config.json`` with state ``trained`` last, so a folder
    whose config says trained is complete. Returns the folder."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for name, save in (extras or {}).items():
        save(out / name)
    save_weights(net, out / WEIGHTS_FILE)
    write_model_meta(out, "trained")
    return out


def finite_or_none(value: float | None) -> float | None:
    """``value`` when finite, else None (JSON has no NaN)."""
    return value if value is not None and math.isfinite(value) else None


def preset_or_file(spec: str, presets: Container[str], preset: Callable[[str], C],
                   from_dict: Callable[[dict[str, Any]], C], label: str) -> C:
    """The config ``spec`` names: a preset (a preset name wins over a file of that name), or a
    config.json — a bare config, a model folder's ``config.json`` or the folder itself.

    Parameters
    ----------
    spec : str
        What the user gave (``--config`` / ``--preset``).
    presets : container of str
        The preset names.
    preset : callable
        Preset name -> config (raises one line for an unknown name).
    from_dict : callable
        The config class's ``from_dict``.
    label : str
        The model's name in messages (``TradeFM``, ``score-matching``).
    """
    path = Path(spec)
    if path.is_dir():  # a trained run folder: its config
        path = path / CONFIG_FILE
    if spec not in presets and (path.suffix == ".json" or path.is_file()):
        data = read_json(path, f"{label} config", label)
        return from_dict(data.get("config", data))
    return preset(spec)
