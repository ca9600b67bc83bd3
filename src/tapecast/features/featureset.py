"""A features folder: the windows with their split labels, and the metadata every reader applies.

Layout (written atomically, :func:`tapecast.core.io.atomic_dir`)::

    FEATURES/
      windows.parquet   the windows table (issue 3 layout) with a ``split`` column
      features.json     format version, kind, config, channel order, split spec, regime
                        thresholds, context/horizon, summary, source store and windows hash

Every command reading a features folder goes through :class:`FeatureSet`, so ``--split test``
selects the same windows, the same origins (same stride) and the same regime thresholds
everywhere. Walk-forward folds are recomputed from the stored spec (:meth:`FeatureSet.dataset`
with ``fold=k``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import polars as pl

from tapecast.core.errors import TapecastError
from tapecast.core.io import atomic_dir, file_sha256, recover_dir
from tapecast.features.channels import CHANNELS
from tapecast.features.dataset import (
    ForecastDataset,
    fit_regime_thresholds,
    sessions_text,
    size_hint,
)
from tapecast.features.normalize import OrderFlowNormalizer
from tapecast.features.splits import LABELS, SplitSpec, assign_splits

FORMAT_VERSION = 1
WINDOWS_FILE = "windows.parquet"
META_FILE = "features.json"


@dataclass(frozen=True)
class FeatureMeta:
    """What ``features.json`` holds beside the windows.

    Parameters
    ----------
    split_spec : SplitSpec
        The split (context and horizon included) every reader applies.
    regime_thresholds : (float, float) or None
        Terciles of the context-mean ``log_realized_var`` over the training samples.
    channels : tuple of str
        Channel order.
    config : dict
        How the windows were computed (window size, session rule, filters...); a
        ``window_trades`` entry is used to suggest a window size when samples are too few.
    summary : dict
        Counts for humans (windows and samples per split, ...).
    source : str or None
        The store the windows came from.
    windows_sha256 : str or None
        SHA-256 of ``windows.parquet`` (set by :func:`write_feature_set`).
    kind : str
        ``orderflow``.
    """

    split_spec: SplitSpec
    regime_thresholds: tuple[float, float] | None
    channels: tuple[str, ...] = CHANNELS
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    source: str | None = None
    windows_sha256: str | None = None
    kind: str = "orderflow"

    @property
    def window_trades(self) -> int | None:
        value = self.config.get("window_trades")
        return value if isinstance(value, int) else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "config": self.config,
            "channels": list(self.channels),
            "split_spec": self.split_spec.to_dict(),
            "regime_thresholds": (None if self.regime_thresholds is None
                                  else list(self.regime_thresholds)),
            "context": self.split_spec.context,
            "horizon": self.split_spec.horizon,
            "summary": self.summary,
            "source": {"store": self.source, "windows_sha256": self.windows_sha256},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeatureMeta:
        """Inverse of :meth:`to_dict`; a wrong version or missing field is a TapecastError."""
        if d.get("kind", "orderflow") != "orderflow":
            raise TapecastError(f"a '{d.get('kind')}' features folder, not an order-flow one "
                                "(open it with its own reader, e.g. PriceFeatureSet.open)")
        if d.get("format_version") != FORMAT_VERSION:
            raise TapecastError(f"features format {d.get('format_version')!r} is not supported "
                                f"(this tapecast reads format {FORMAT_VERSION})")
        try:
            thresholds = d["regime_thresholds"]
            source = d.get("source") or {}
            return cls(
                split_spec=SplitSpec.from_dict(d["split_spec"]),
                regime_thresholds=None if thresholds is None else
                (float(thresholds[0]), float(thresholds[1])),
                channels=tuple(str(c) for c in d["channels"]),
                config=dict(d.get("config") or {}),
                summary=dict(d.get("summary") or {}),
                source=source.get("store"),
                windows_sha256=source.get("windows_sha256"),
                kind=str(d["kind"]),
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise TapecastError(f"features metadata: missing or invalid field {exc}") from None


def _split_summary(windows: pl.DataFrame, samples: Mapping[str, int]) -> dict[str, Any]:
    counts = dict(windows["split"].value_counts().iter_rows())
    return {
        "windows": int(windows.height),
        "instruments": sorted(windows["instrument"].unique().to_list()),
        "sessions": int(windows["session_date"].n_unique()),
        "windows_per_split": {label: int(counts.get(label, 0)) for label in LABELS},
        "samples_per_split": dict(samples),
    }


def _check_enough(windows: pl.DataFrame, *datasets: ForecastDataset,
                  window_trades: int | None) -> None:
    """Raise one error naming every split without a sample and one window size for all."""
    empty = [d for d in datasets if len(d) == 0]
    if not empty:
        return
    first = empty[0]
    per_session = windows.group_by("instrument", "session_date", maintain_order=True).len()
    parts = ", ".join(f"'{d.split}' (longest run of its windows {d.longest_run})" for d in empty)
    factor = max(d.size_factor() for d in empty)
    raise TapecastError(
        f"too few windows for forecasting samples of {first.context + first.horizon} windows "
        f"({first.context} context + {first.horizon} horizon): no sample in {parts}; "
        f"windows per session: {sessions_text(list(per_session.iter_rows()))}; "
        f"{size_hint(factor, window_trades)} "
        "for every split")


def build_feature_set(windows: pl.DataFrame, spec: SplitSpec,
                      config: Mapping[str, Any] | None = None,
                      summary: Mapping[str, Any] | None = None, source: str | None = None,
                      channels: tuple[str, ...] = CHANNELS) -> tuple[pl.DataFrame, FeatureMeta]:
    """Label the windows with ``spec``, fit the regime thresholds on the training samples.

    Every split of the spec must yield at least one sample (stride as readers use it), otherwise
    the :class:`TapecastError` of :class:`ForecastDataset` says how many windows each session
    has and which window size would give enough.

    Returns
    -------
    (polars.DataFrame, FeatureMeta)
        The windows sorted by instrument, window with a ``split`` column, and the metadata to
        pass to :func:`write_feature_set`.
    """
    cfg = dict(config or {})
    labelled = windows.with_columns(assign_splits(windows, spec)).sort("instrument", "window")
    meta = FeatureMeta(spec, None, channels, cfg, dict(summary or {}), source)

    made = {s: ForecastDataset(labelled, s, spec.context, spec.horizon, channels=channels,
                               min_samples=0) for s in spec.splits}
    _check_enough(labelled, *made.values(), window_trades=meta.window_trades)
    thresholds = fit_regime_thresholds(made["train"])
    samples = {s: len(d) for s, d in made.items()}
    full = {**meta.summary, "splits": _split_summary(labelled, samples)}
    return labelled, replace(meta, regime_thresholds=thresholds, summary=full)


def write_feature_set(out: str | os.PathLike[str], windows: pl.DataFrame,
                      meta: FeatureMeta) -> Path:
    """Write ``windows.parquet`` and ``features.json`` to the folder ``out`` atomically.

    ``windows`` must carry the ``split`` column (from :func:`build_feature_set`). Returns the
    folder path.
    """
    missing = [c for c in ("split", "instrument", "window", *meta.channels)
               if c not in windows.columns]
    if missing:
        raise TapecastError(f"cannot write features: the windows lack column(s) {missing}")
    with atomic_dir(out) as stage:
        windows.write_parquet(stage / WINDOWS_FILE)
        final = replace(meta, windows_sha256=file_sha256(stage / WINDOWS_FILE))
        text = json.dumps(final.to_dict(), indent=2, allow_nan=False, default=str)
        (stage / META_FILE).write_text(text + "\n", encoding="utf-8")
    return Path(out)


def read_features_json(folder: Path, command: str) -> dict[str, Any]:
    """The JSON object in ``folder/features.json`` of any features family; one line when the
    folder, the file or the JSON is missing (``command`` says how to write one)."""
    meta_path = folder / META_FILE
    if not folder.is_dir():
        raise TapecastError(f"{folder}: no such features folder (write one with "
                            f"`{command}`)")
    if not meta_path.is_file():
        raise TapecastError(f"{folder}: not a features folder (no {META_FILE})")
    try:
        data = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TapecastError(f"{meta_path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise TapecastError(f"{meta_path}: expected a JSON object")
    return data


def _read_meta(folder: Path) -> FeatureMeta:
    meta_path = folder / META_FILE
    data = read_features_json(folder, "tapecast features STORE --out FOLDER")
    try:
        return FeatureMeta.from_dict(data)
    except TapecastError as exc:
        raise TapecastError(f"{meta_path}: {exc}") from None


@dataclass(frozen=True, eq=False)
class FeatureSet:
    """An opened features folder.

    Attributes
    ----------
    path : Path
    windows : polars.DataFrame
        The windows with their ``split`` column, sorted by instrument, window.
    meta : FeatureMeta
    """

    path: Path
    windows: pl.DataFrame
    meta: FeatureMeta

    @classmethod
    def open(cls, path: str | os.PathLike[str], verify: bool = True) -> FeatureSet:
        """Open a folder written by :func:`write_feature_set`.

        ``verify`` checks the windows file against the SHA-256 recorded at write time.
        """
        folder = Path(path)
        recover_dir(folder)  # a swap interrupted between its two renames
        meta = _read_meta(folder)
        windows_path = folder / WINDOWS_FILE
        if not windows_path.is_file():
            raise TapecastError(f"{folder}: features folder without {WINDOWS_FILE}")
        if verify and meta.windows_sha256 and file_sha256(windows_path) != meta.windows_sha256:
            raise TapecastError(f"{windows_path}: changed since it was written (SHA-256 differs "
                                f"from {META_FILE}); rebuild the features")
        windows = pl.read_parquet(windows_path)
        missing = [c for c in ("split", *meta.channels) if c not in windows.columns]
        if missing:
            raise TapecastError(f"{windows_path}: missing column(s) {missing}")
        return cls(folder, windows, meta)

    @property
    def split_spec(self) -> SplitSpec:
        return self.meta.split_spec

    @property
    def regime_thresholds(self) -> tuple[float, float] | None:
        return self.meta.regime_thresholds

    def split_labels(self, fold: int | None = None) -> pl.Series:
        """Stored labels, or walk-forward fold ``fold``'s labels recomputed from the spec."""
        if fold is None:
            return self.windows["split"]
        return assign_splits(self.windows, self.split_spec, fold)

    def dataset(self, split: str, stride: int | None = None, fold: int | None = None,
                min_samples: int = 1) -> ForecastDataset:
        """The samples of ``split`` (``train``/``val``/``test``) with the stored context, horizon
        and regime thresholds; ``stride`` defaults to 1 for train and the horizon otherwise."""
        spec = self.split_spec
        return ForecastDataset(self.windows, split, spec.context, spec.horizon, stride,
                               self.regime_thresholds, self.split_labels(fold),
                               self.meta.channels, self.meta.window_trades, min_samples)

    def fit_normalizer(self, fold: int | None = None) -> OrderFlowNormalizer:
        """The normalization fitted on the training windows only (embargo excluded)."""
        train = self.windows.filter(self.split_labels(fold) == "train")
        return OrderFlowNormalizer.fit(train, self.meta.channels)
