"""Checkpoints of a training run: tensors in safetensors, everything else in JSON, no pickles.

A run folder holds two checkpoint folders, each written into a staging folder and swapped in
(:func:`tapecast.core.io.atomic_dir`), so a crash at any point leaves the previous or the new
one; readers first finish a swap a crash interrupted (:func:`tapecast.core.io.recover_dir`)::

    RUN/last/                    the resumable state after the last completed step
        model.safetensors        the raw (trained) weights and buffers
        ema.safetensors          the EMA shadow of every floating-point parameter (absent when
                                 the run keeps no EMA)
        optimizer.safetensors    every tensor of the optimiser state
                                 ("optimizer/state/<param id>/<key>")
        rng.safetensors          torch CPU (and CUDA) generator states, the Mersenne Twister
                                 words of numpy's and python's global generators
        state.json               step, epoch, position in the epoch, wall time, best so far,
                                 EMA counters, the optimiser's structure and hyper-parameters,
                                 python/numpy RNG scalars, gradient-scaler state, the sampler,
                                 the train config
    RUN/best/                    the weights that scored the lowest validation loss
        model.safetensors        a full state dict (EMA or trained parameters, the buffers)
        best.json                step, epoch, val_loss, weights ("ema" or "trained"), metrics

A ``last/`` that exists but cannot be read is an error, never a silent fresh start.

The optimiser state dict is split by :func:`flatten_state`: each tensor goes to safetensors under
its path, and the nesting (with int keys and tuples kept as such) goes to JSON.
"""

from __future__ import annotations

import contextlib
import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn

from tapecast.core.errors import TapecastError
from tapecast.core.io import atomic_dir, recover_dir
from tapecast.train.ema import EMA

FORMAT_VERSION = 2  # 2 added the optional EMA, precision, metrics, scaler and sampler
READABLE_FORMATS = (1, 2)
LAST, BEST = "last", "best"


@dataclass
class TrainState:
    """Where a run stands after a completed step (everything the loop needs to go on).

    Attributes
    ----------
    step : int
        Completed optimiser steps.
    epoch : int
        The epoch the next step belongs to (0-based).
    batch_in_epoch : int
        Batches of ``epoch`` already done.
    batch_shards : int
        Random-stream shards of each global batch (the run keeps its value on resume).
    wall_s : float
        Seconds spent in training so far, over all sessions of the run.
    best_val_loss, best_step, best_epoch : float, int, int or None
        The validation that wrote ``best/`` (None before the first one).
    last_eval_step : int or None
        Step of the latest validation.
    loss_sum_since_eval, steps_since_eval : float, int
        Training losses since that validation (the mean goes into the next ``eval`` log row).
    metric_sums_since_eval : dict of str to float
        The same sums for each metric of the loss (:class:`tapecast.train.loss.LossOutput`).
    best_val_metrics : dict of str to float
        Validation metrics of the ``best/`` weights.
    precision : str or None
        The precision the run resolved when it started (``fp32``/``bf16``/``fp16``); None in
        checkpoints older than the field.
    """

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    batch_shards: int = 1
    wall_s: float = 0.0
    best_val_loss: float | None = None
    best_step: int | None = None
    best_epoch: int | None = None
    last_eval_step: int | None = None
    loss_sum_since_eval: float = 0.0
    steps_since_eval: int = 0
    metric_sums_since_eval: dict[str, float] = field(default_factory=dict)
    best_val_metrics: dict[str, float] = field(default_factory=dict)
    precision: str | None = None


# --- generic split of nested state into tensors + JSON -------------------------------------


def flatten_state(obj: Any, path: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Move every tensor of a nested state into ``tensors`` (keyed by path); return the JSON rest.

    Dicts become ``{"__dict__": [[key, value], ...]}`` (keys keep their int/str type), tuples
    ``{"__tuple__": [...]}``, tensors ``{"__tensor__": path}``.

    Raises
    ------
    TapecastError
        On a value that is neither a tensor, a container nor a JSON scalar.
    """
    if isinstance(obj, torch.Tensor):
        if path in tensors:
            raise TapecastError(f"checkpoint: two state tensors share the name '{path}'")
        tensors[path] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": path}
    if isinstance(obj, dict):
        return {"__dict__": [[k, flatten_state(v, f"{path}/{k}", tensors)]
                             for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [flatten_state(v, f"{path}/{i}", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [flatten_state(v, f"{path}/{i}", tensors) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    raise TapecastError(f"checkpoint: cannot store {type(obj).__name__} at '{path}' "
                        f"(tensors, dicts, lists, tuples and JSON scalars only)")


def unflatten_state(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`flatten_state`."""
    if isinstance(obj, list):
        return [unflatten_state(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__tuple__" in obj:
            return tuple(unflatten_state(v, tensors) for v in obj["__tuple__"])
        return {k: unflatten_state(v, tensors) for k, v in obj["__dict__"]}
    return obj


# --- RNG states ----------------------------------------------------------------------------


def capture_rng() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Global RNG states of torch (CPU, initialised CUDA devices), numpy and python.

    Returns
    -------
    tensors : dict of str to Tensor
        ``torch_cpu`` (uint8), ``torch_cuda/<i>`` (uint8), ``numpy_keys`` (int64, (624,)),
        ``python_state`` (int64, (625,): the Mersenne Twister words of ``random.getstate()``).
    scalars : dict
        numpy's kind/pos/has_gauss/cached_gaussian; python's version and gauss_next.
    """
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda/{i}"] = state
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002 (global state)
    tensors["numpy_keys"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    version, internal, gauss_next = random.getstate()
    tensors["python_state"] = torch.tensor(internal, dtype=torch.int64)
    scalars = {"numpy": {"kind": kind, "pos": int(pos), "has_gauss": int(has_gauss),
                         "cached_gaussian": float(cached)},
               "python": {"version": version, "gauss_next": gauss_next}}
    return tensors, scalars


def restore_rng(tensors: dict[str, torch.Tensor], scalars: dict[str, Any]) -> None:
    """Set the global RNG states captured by :func:`capture_rng`."""
    torch.set_rng_state(tensors["torch_cpu"])
    cuda = sorted((k for k in tensors if k.startswith("torch_cuda/")),
                  key=lambda k: int(k.split("/")[1]))
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensors[k] for k in cuda][: torch.cuda.device_count()])
    np_state = scalars["numpy"]
    keys = tensors["numpy_keys"].numpy().astype(np.uint32)
    np.random.set_state((np_state["kind"], keys, np_state["pos"],  # noqa: NPY002
                         np_state["has_gauss"], np_state["cached_gaussian"]))
    py = scalars["python"]
    internal = tuple(int(v) for v in tensors["python_state"].tolist())
    random.setstate((py["version"], internal, py["gauss_next"]))


# --- last (resumable) ----------------------------------------------------------------------


def save_last(run_dir: Path, *, model: nn.Module, ema: EMA | None,
              optimizer: torch.optim.Optimizer, state: TrainState, config: dict[str, Any],
              extra: dict[str, Any] | None = None) -> Path:
    """Write ``run_dir/last`` atomically (layout in the module docstring); returns its path.

    ``extra`` holds further JSON entries of ``state.json`` (the loop's ``scaler`` state and
    ``sampler``).
    """
    opt_tensors: dict[str, torch.Tensor] = {}
    opt_structure = flatten_state(optimizer.state_dict(), "optimizer", opt_tensors)
    rng_tensors, rng_scalars = capture_rng()
    ema_state = None if ema is None else ema.state_dict()
    shadow = None if ema_state is None else ema_state.pop("shadow")
    document = {"format": FORMAT_VERSION, "train_state": asdict(state), "ema": ema_state,
                "optimizer": opt_structure, "rng": rng_scalars, "train_config": config,
                "torch_version": torch.__version__, **(extra or {})}
    dest = run_dir / LAST
    with atomic_dir(dest) as tmp:
        save_model(model, str(tmp / "model.safetensors"))
        if isinstance(shadow, dict):
            save_file({k: v.detach().cpu().contiguous() for k, v in shadow.items()},
                      str(tmp / "ema.safetensors"))
        save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
        save_file(rng_tensors, str(tmp / "rng.safetensors"))
        (tmp / "state.json").write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    return dest


def read_last_document(run_dir: Path) -> dict[str, Any] | None:
    """The ``state.json`` of ``run_dir/last``, or None when the run has no checkpoint.

    A swap that a crash interrupted is finished first, so the previous checkpoint is found.

    Raises
    ------
    TapecastError
        When ``last/`` exists but its state is missing, unreadable or of another format: the
        run is not silently started over.
    """
    folder = run_dir / LAST
    recover_dir(folder)
    if not folder.exists():
        return None
    path = folder / "state.json"
    try:
        document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TapecastError(f"{path}: expected a JSON checkpoint state, got {exc}; move "
                            f"{folder} away or fit with resume=False to start over") from exc
    if document.get("format") not in READABLE_FORMATS:
        raise TapecastError(f"{path}: expected checkpoint format "
                            f"{' or '.join(map(str, READABLE_FORMATS))}, "
                            f"got {document.get('format')!r}")
    return document


def load_last(run_dir: Path, *, model: nn.Module, ema: EMA | None,
              optimizer: torch.optim.Optimizer) -> TrainState:
    """Restore model, EMA, optimiser and global RNG states from ``run_dir/last``.

    Raises
    ------
    TapecastError
        When there is no checkpoint, a file of it is missing or unreadable, or it does not fit
        the model.
    """
    document = read_last_document(run_dir)
    folder = run_dir / LAST
    if document is None:
        raise TapecastError(f"{folder}: expected a checkpoint (state.json), found none")
    _load_weights(model, folder / "model.safetensors")
    if ema is not None:
        if document["ema"] is None:
            raise TapecastError(f"{folder}: the checkpoint holds no EMA, the run expects one")
        ema.load_state_dict({"shadow": _read_tensors(folder / "ema.safetensors"),
                             **document["ema"]})
    opt_tensors = _read_tensors(folder / "optimizer.safetensors")
    try:
        optimizer.load_state_dict(unflatten_state(document["optimizer"], opt_tensors))
    except (ValueError, KeyError) as exc:
        raise TapecastError(f"{folder}: optimizer state does not fit the model: {exc}") from exc
    restore_rng(_read_tensors(folder / "rng.safetensors"), document["rng"])
    return TrainState(**document["train_state"])


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own SafetensorError besides OSError
        raise TapecastError(f"{path}: expected a readable safetensors file, got {exc}; move "
                            f"{path.parent} away or fit with resume=False to start over") from exc


# --- best ----------------------------------------------------------------------------------


def save_best(run_dir: Path, *, model: nn.Module, ema: EMA | None, step: int, epoch: int,
              val_loss: float | None, metrics: dict[str, float] | None = None) -> Path:
    """Write ``run_dir/best`` atomically: the EMA weights (the trained ones when ``ema`` is
    None) and ``best.json``; returns its path."""
    dest = run_dir / BEST
    info: dict[str, Any] = {"step": step, "epoch": epoch, "val_loss": val_loss,
                            "weights": "trained" if ema is None else "ema"}
    if metrics:
        info["metrics"] = metrics
    applied = contextlib.nullcontext() if ema is None else ema.applied_to(model)
    with atomic_dir(dest) as tmp, applied:
        save_model(model, str(tmp / "model.safetensors"))
        (tmp / "best.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    return dest


def read_best(run_dir: Path) -> dict[str, Any] | None:
    """``best.json`` of ``run_dir/best`` (step, epoch, val_loss, ...), or None when absent."""
    recover_dir(run_dir / BEST)
    path = run_dir / BEST / "best.json"
    if not path.exists():
        return None
    info: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return info


def load_best(run_dir: Path, model: nn.Module) -> dict[str, Any]:
    """Load the best weights of ``run_dir`` into ``model``; returns ``best.json``.

    Raises
    ------
    TapecastError
        When there is no best checkpoint or it does not fit the model.
    """
    info = read_best(run_dir)
    if info is None:
        raise TapecastError(f"{run_dir / BEST}: expected a best checkpoint, found none")
    _load_weights(model, run_dir / BEST / "model.safetensors")
    return info


def _load_weights(model: nn.Module, path: Path) -> None:
    if not path.exists():
        raise TapecastError(f"{path}: expected a safetensors weights file, found none")
    try:
        load_model(model, str(path), strict=True, device=_device_of(model))
    except RuntimeError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TapecastError(f"{path}: weights do not fit the model: {first}") from exc
    except Exception as exc:  # a damaged file: safetensors' own error type
        raise TapecastError(f"{path}: expected a readable safetensors file, got {exc}") from exc


def _device_of(model: nn.Module) -> str:
    for p in model.parameters():
        return str(p.device)
    return "cpu"
