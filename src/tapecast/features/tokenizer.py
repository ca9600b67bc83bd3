"""The TradeFM composite tokenizer (arXiv 2602.23784, §6.2): order events ↔ 16,384 token ids.

One add or cancel event is five fields; its token is their mixed-radix number::

    id = (((action * 2 + side) * n + b_δp) * n + b_v) * n + b_Δt        n = 16 → 16,384 ids

Legend (the paper's symbols): ``action`` 0 add / 1 cancel; ``side`` 0 bid / 1 ask;
``δp = (p_order − p_mid) / p_mid``; ``v = log(1 + size)``; ``Δt`` the inter-arrival time in
seconds. The bins are calibrated on training data only (:meth:`Tokenizer.calibrate`) and then
frozen in ``tokenizer.json``:

- **δp: equal-frequency (quantile) bins** between the 0.5 % and 99.5 % training quantiles, with
  a low and a high outlier bin: orders cluster within a few ticks of the mid, so equal-frequency
  bins put the resolution where the mass is; the outlier bins keep far orders from stretching the
  grid.
- **v: equal-width bins of log size** with a high outlier bin: equal width in log is geometric in
  size (1, 2, 4, ... lots), the heavy right tail is capped by the outlier bin.
- **Δt: a dedicated zero bin, then equal-width bins of log Δt** above a floor (1 µs) with a high
  outlier bin: about 14 % of ES inter-arrivals are exactly 0 on ``ts_recv`` (one packet, many
  messages), a mass point no continuous bin represents; log1p of seconds would put almost every
  event in one bin, since Δt spans 1e-6 to 1e3 s.

``decode`` does not return bin centres: it samples a value inside each bin from the bin's stored
training quantiles (linear interpolation at a uniform draw), so decoded values reproduce the
in-bin distribution (the Δt K-S distance on ES held-out data is in ``docs/tokenizer.md``).

The context (not predicted) is vocabularies only here: liquidity tiers, flags (with the reserved
``"simulated"`` flag for generated events) and the context Δp bins (mid relative to the session
open, binned like δp with its own edges). See ``docs/tokenizer.md`` for the JSON layout.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tapecast.core.config import ConfigError
from tapecast.core.errors import TapecastError
from tapecast.core.io import atomic_write_text
from tapecast.features.tokenizer_bins import F64, I64, FieldBins, TokenizerFileError
from tapecast.features.tokenizer_config import TokenizerConfig

FORMAT = "tapecast-tokenizer"
FORMAT_VERSION = 1
FIELDS = ("action", "side", "dp", "v", "dt")

__all__ = ["FORMAT_VERSION", "Tokenizer", "TokenizerConfig", "TokenizerFileError",
           "log_volume"]


def log_volume(size: npt.ArrayLike) -> F64:
    """The paper's volume feature ``v = log(1 + size)``, shape as ``size``, float64."""
    return np.log1p(np.asarray(size, dtype=np.float64))


def _float_field(name: str, x: npt.ArrayLike) -> F64:
    arr = np.asarray(x, dtype=np.float64).ravel()
    bad = int(np.count_nonzero(~np.isfinite(arr)))
    if bad:
        raise TapecastError(f"tokenizer: field '{name}': {bad} NaN or infinite values")
    return arr


def _binary_field(name: str, x: npt.ArrayLike) -> I64:
    arr = np.asarray(x).ravel()
    ok = (arr == 0) | (arr == 1)
    if not np.all(ok):
        raise TapecastError(f"tokenizer: field '{name}': {int(np.count_nonzero(~ok))} values "
                            "outside {0, 1}")
    return arr.astype(np.int64)


@dataclass(frozen=True)
class Tokenizer:
    """Frozen, calibrated composite tokenizer; build with :meth:`calibrate` or :meth:`load`.

    Attributes
    ----------
    config : TokenizerConfig
    dp, v, dt : FieldBins
        The bins of δp, v = log(1 + size) and Δt (seconds).
    context_dp : FieldBins or None
        The context Δp bins (None when calibrated without ``dp_open``).
    provenance : dict
        The caller's provenance (sources with sha256, time span, ...) plus ``rows``.
    """

    config: TokenizerConfig
    dp: FieldBins
    v: FieldBins
    dt: FieldBins
    context_dp: FieldBins | None
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def vocab_size(self) -> int:
        """Number of token ids (16,384 at 16 bins per field)."""
        return self.config.vocab_size

    # --- calibration --------------------------------------------------------------------------
    @classmethod
    def calibrate(cls, train: Mapping[str, npt.ArrayLike],
                  config: TokenizerConfig | None = None, *,
                  provenance: Mapping[str, Any] | None = None) -> Tokenizer:
        """Fit every bin on the training split only; the result is frozen.

        Parameters
        ----------
        train : mapping of str to array, each shape (N,)
            ``"dp"`` (δp), ``"v"`` (log(1 + size), see :func:`log_volume`), ``"dt"`` (seconds,
            ≥ 0), and optionally ``"dp_open"`` (context Δp, any length ≥ 1).
        config : TokenizerConfig, optional
        provenance : mapping, optional
            JSON-ready description of the training data (sources with sha256, time span);
            ``rows`` (N) is added.

        Raises
        ------
        TapecastError
            A missing field, no rows, NaN or infinite values, negative Δt.
        """
        config = config or TokenizerConfig()
        for name in ("dp", "v", "dt"):
            if name not in train:
                raise TapecastError(f"tokenizer calibration: missing field '{name}'")
        dp, v, dt = (_float_field(n, train[n]) for n in ("dp", "v", "dt"))
        if not dp.size or not (dp.size == v.size == dt.size):
            raise TapecastError(f"tokenizer calibration: fields 'dp', 'v', 'dt' must have the "
                                f"same non-zero length, got {dp.size}, {v.size}, {dt.size}")
        _check_dt(dt)
        n, q = config.n_bins, config.n_inbin_quantiles
        context_dp = None
        if "dp_open" in train:
            dp_open = _float_field("dp_open", train["dp_open"])
            context_dp = FieldBins.calibrate(
                dp_open, "quantile", config.n_context_dp_bins, n_quantiles=q,
                low_quantile=config.dp_low_quantile, high_quantile=config.dp_high_quantile)
        return cls(
            config,
            FieldBins.calibrate(dp, "quantile", n, low_quantile=config.dp_low_quantile,
                                high_quantile=config.dp_high_quantile, n_quantiles=q),
            FieldBins.calibrate(v, "uniform", n, high_quantile=config.v_high_quantile,
                                n_quantiles=q),
            FieldBins.calibrate(dt, "zero-log-uniform", n, floor=config.dt_floor,
                                high_quantile=config.dt_high_quantile, n_quantiles=q),
            context_dp,
            {**dict(provenance or {}), "rows": int(dp.size)},
        )

    # --- encode / decode ----------------------------------------------------------------------
    def encode(self, action: npt.ArrayLike, side: npt.ArrayLike, dp: npt.ArrayLike,
               v: npt.ArrayLike, dt: npt.ArrayLike) -> I64:
        """Token ids of N events.

        Parameters
        ----------
        action, side : array of {0, 1}, shape (N,)
            0 add / 1 cancel; 0 bid / 1 ask.
        dp : array of float, shape (N,)
            δp = (p_order − p_mid) / p_mid.
        v : array of float, shape (N,)
            log(1 + size) — :func:`log_volume` of the raw size.
        dt : array of float, shape (N,)
            Inter-arrival seconds, ≥ 0.

        Returns
        -------
        ndarray, int64, shape (N,)
            Ids in ``[0, vocab_size)``.

        Raises
        ------
        TapecastError
            One line naming the field and the count of NaN, negative Δt or non-binary values.
        """
        a, s = _binary_field("action", action), _binary_field("side", side)
        x_dp, x_v, x_dt = _float_field("dp", dp), _float_field("v", v), _float_field("dt", dt)
        _check_dt(x_dt)
        if not (a.size == s.size == x_dp.size == x_v.size == x_dt.size):
            raise TapecastError("tokenizer: fields action, side, dp, v, dt must have one length, "
                                f"got {a.size}, {s.size}, {x_dp.size}, {x_v.size}, {x_dt.size}")
        n = self.config.n_bins
        b_dp, b_v, b_dt = self.dp.assign(x_dp), self.v.assign(x_v), self.dt.assign(x_dt)
        return (((a * 2 + s) * n + b_dp) * n + b_v) * n + b_dt

    def split(self, ids: npt.ArrayLike) -> dict[str, I64]:
        """The five digits of each id: ``action``, ``side``, ``dp``, ``v``, ``dt`` bins, (N,)."""
        arr = np.asarray(ids).ravel()
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise TapecastError(f"tokenizer: token ids must be integers, got {arr.dtype}")
        arr = arr.astype(np.int64)
        bad = (arr < 0) | (arr >= self.vocab_size)
        if np.any(bad):
            raise TapecastError(f"tokenizer: {int(np.count_nonzero(bad))} token ids outside "
                                f"[0, {self.vocab_size})")
        n = self.config.n_bins
        rest, b_dt = np.divmod(arr, n)
        rest, b_v = np.divmod(rest, n)
        rest, b_dp = np.divmod(rest, n)
        action, side = np.divmod(rest, 2)
        return {"action": action, "side": side, "dp": b_dp, "v": b_v, "dt": b_dt}

    def decode(self, ids: npt.ArrayLike, rng: np.random.Generator) -> dict[str, npt.NDArray[Any]]:
        """Events of N ids, the continuous fields sampled inside their bins.

        Parameters
        ----------
        ids : array of int, shape (N,)
        rng : numpy.random.Generator
            Source of the three uniform draws per event.

        Returns
        -------
        dict of str to ndarray, shape (N,) each
            ``action``, ``side`` (int64); ``dp``, ``v``, ``dt`` (float64), each inside its bin
            so that :meth:`encode` maps them back to ``ids``; ``size`` = expm1(v) (float64).

        Raises
        ------
        TapecastError
            Ids outside ``[0, vocab_size)`` (one line with the count).
        """
        digits = self.split(ids)
        u = rng.random((3, digits["dp"].size))  # (field, N)
        v = self.v.sample(digits["v"], u[1])
        return {"action": digits["action"], "side": digits["side"],
                "dp": self.dp.sample(digits["dp"], u[0]), "v": v,
                "dt": self.dt.sample(digits["dt"], u[2]), "size": np.expm1(v)}

    # --- context ------------------------------------------------------------------------------
    def encode_context_dp(self, dp_open: npt.ArrayLike) -> I64:
        """Context Δp bin of each value, shape (N,) int64 in ``[0, n_context_dp_bins)``."""
        if self.context_dp is None:
            raise TapecastError("tokenizer: calibrated without 'dp_open', so it has no context "
                                "Δp bins")
        return self.context_dp.assign(_float_field("dp_open", dp_open))

    def tier_id(self, name: str) -> int:
        """Id of a liquidity tier in the context vocabulary."""
        return _vocab_id(self.config.liquidity_tiers, name, "liquidity tier")

    def flag_id(self, name: str) -> int:
        """Id of a flag (``"simulated"`` for generated events) in the context vocabulary."""
        return _vocab_id(self.config.flags, name, "flag")

    # --- JSON ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The ``tokenizer.json`` document (layout in ``docs/tokenizer.md``)."""
        n = self.config.n_bins
        return {
            "format": FORMAT, "format_version": FORMAT_VERSION,
            "vocab_size": self.vocab_size,
            "radix": {"action": 2, "side": 2, "dp": n, "v": n, "dt": n},
            "id": "(((action * 2 + side) * n + dp) * n + v) * n + dt",
            "config": self.config.to_dict(),
            "fields": {"dp": self.dp.to_dict(), "v": self.v.to_dict(),
                       "dt": self.dt.to_dict()},
            "context": {"liquidity_tiers": list(self.config.liquidity_tiers),
                        "flags": list(self.config.flags),
                        "dp_open": None if self.context_dp is None
                        else self.context_dp.to_dict()},
            "provenance": self.provenance,
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``tokenizer.json`` atomically (temp file + rename); returns the path."""
        path = Path(path)
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Tokenizer:
        """Read and check a ``tokenizer.json``.

        Raises
        ------
        TokenizerFileError
            One line naming the file and the field: another format or version, a missing
            field, a wrong bin count, edges not strictly increasing.
        """
        file = str(path)
        if not Path(path).is_file():
            what = "is a folder" if Path(path).is_dir() else "no such file"
            raise TapecastError(f"{file}: {what} (a tokenizer.json: a `tapecast tokenize` "
                                "folder's or a trained TradeFM run's)")
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise TokenizerFileError(file, "(file)", f"not readable JSON ({exc})") from None
        return cls.from_dict(data, file=file)

    @classmethod
    def from_dict(cls, data: Any, *, file: str = "<dict>") -> Tokenizer:
        """Inverse of :meth:`to_dict`, with the checks of :meth:`load`."""
        if not isinstance(data, Mapping):
            raise TokenizerFileError(file, "(file)", "must be a JSON object")
        for key in ("format", "format_version", "config", "fields", "context", "provenance"):
            if key not in data:
                raise TokenizerFileError(file, key, "missing")
        if data["format"] != FORMAT:
            raise TokenizerFileError(file, "format", f"expected {FORMAT!r}, got "
                                     f"{data['format']!r}")
        if data["format_version"] != FORMAT_VERSION:
            raise TokenizerFileError(file, "format_version", f"expected {FORMAT_VERSION}, got "
                                     f"{data['format_version']!r} (another tapecast version)")
        try:
            config = TokenizerConfig.from_dict(data["config"])
        except ConfigError as exc:
            raise TokenizerFileError(file, f"config.{exc.field or ''}".rstrip("."),
                                     exc.detail) from None
        fields, context = data["fields"], data["context"]
        if not isinstance(fields, Mapping) or not isinstance(context, Mapping):
            raise TokenizerFileError(file, "fields" if not isinstance(fields, Mapping)
                                     else "context", "must be an object")
        n, q = config.n_bins, config.n_inbin_quantiles
        bins = {name: FieldBins.from_dict(fields.get(name), file=file, field=f"fields.{name}",
                                          n_bins=n, n_quantiles=q)
                for name in ("dp", "v", "dt")}
        for name, method in (("dp", "quantile"), ("v", "uniform"), ("dt", "zero-log-uniform")):
            if bins[name].method != method:
                raise TokenizerFileError(file, f"fields.{name}.method",
                                         f"expected {method!r}, got {bins[name].method!r}")
        for key in ("liquidity_tiers", "flags"):
            if list(context.get(key, [])) != list(getattr(config, key)):
                raise TokenizerFileError(file, f"context.{key}", "missing or not the config's")
        context_dp = None
        if context.get("dp_open") is not None:
            context_dp = FieldBins.from_dict(context["dp_open"], file=file,
                                             field="context.dp_open",
                                             n_bins=config.n_context_dp_bins, n_quantiles=q)
        if not isinstance(data["provenance"], Mapping):
            raise TokenizerFileError(file, "provenance", "must be an object")
        return cls(config, bins["dp"], bins["v"], bins["dt"], context_dp,
                   dict(data["provenance"]))

    def equals(self, other: Tokenizer) -> bool:
        """Exact equality of config, every edge, quantile, count and the provenance."""
        same_context = (self.context_dp is None and other.context_dp is None) or (
            self.context_dp is not None and other.context_dp is not None
            and self.context_dp.equals(other.context_dp))
        return (self.config == other.config and self.dp.equals(other.dp)
                and self.v.equals(other.v) and self.dt.equals(other.dt) and same_context
                and self.provenance == other.provenance)


def _check_dt(dt: F64) -> None:
    negative = int(np.count_nonzero(dt < 0))
    if negative:
        raise TapecastError(f"tokenizer: field 'dt': {negative} negative values (inter-arrival "
                            "seconds must be >= 0)")


def _vocab_id(vocab: tuple[str, ...], name: str, what: str) -> int:
    if name not in vocab:
        raise TapecastError(f"tokenizer: unknown {what} {name!r}; known: {', '.join(vocab)}")
    return vocab.index(name)
