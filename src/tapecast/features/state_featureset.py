"""A state features folder: market-state vectors, their time split and the train normalizer.

Layout (written atomically, :func:`tapecast.core.io.atomic_dir`)::

    FEATURES/
      state.parquet     one row per bar after the warm-up (features/state.py), raw features,
                        with a ``split`` column (train / val / test / embargo)
      normalizer.json   mean and std of the train rows, and the clip (features/state_normalize.py)
      features.json     format version, kind ``state``, the StateConfig, the feature order, the
                        split (fractions, cut times, embargo), the summary and the provenance
                        (source files with their SHA-256, state.parquet's SHA-256)

::

    fs = StateFeatureSet.build(bars, StateConfig(), source="SPY hourly").save("features/spy")
    fs = StateFeatureSet.open("features/spy")
    x = fs.matrix("train")              # (N, d) clipped z-scores

**Split.** By time, as the seed's 70/15/15: the distinct ``known_at`` stamps of all
instruments are cut at the ``train`` and ``train + val`` fractions, so every instrument shares
the cut times. The first ``embargo`` rows (default: the warm-up) of each instrument's val and
test are labelled ``embargo``: their lookback windows reach into the split before.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from tapecast.core.errors import TapecastError
from tapecast.core.io import atomic_dir, file_sha256, recover_dir
from tapecast.features.featureset import META_FILE, read_features_json
from tapecast.features.price_featureset import source_files
from tapecast.features.splits import SPLITS
from tapecast.features.state import state_features
from tapecast.features.state_config import StateConfig
from tapecast.features.state_normalize import StateNormalizer

__all__ = ["FORMAT_VERSION", "KIND", "NORMALIZER_FILE", "STATE_FILE", "StateFeatureSet",
           "state_splits"]

FORMAT_VERSION = 1
KIND = "state"
STATE_FILE = "state.parquet"
NORMALIZER_FILE = "normalizer.json"


def state_splits(table: pl.DataFrame, train: float = 0.70, val: float = 0.15,
                 embargo: int = 20) -> tuple[pl.Series, dict[str, Any]]:
    """Time-split labels of a state table (sorted by instrument then time) and the spec.

    Raises
    ------
    TapecastError
        Fractions outside (0, 1) or summing to 1 or more, a negative embargo, or a split
        without a row.
    """
    if not (0 < train < 1 and 0 < val < 1 and train + val < 1) or embargo < 0:
        raise TapecastError(f"state split: need 0 < train, val and train + val < 1 and an "
                            f"embargo >= 0, got train {train}, val {val}, embargo {embargo}")
    stamps = table["known_at"].unique().sort()
    n = stamps.len()
    val_start, test_start = stamps[int(n * train)], stamps[min(int(n * (train + val)), n - 1)]
    known = pl.col("known_at")
    base = (pl.when(known < val_start).then(pl.lit("train"))
            .when(known < test_start).then(pl.lit("val")).otherwise(pl.lit("test")))
    labels = table.select(
        instrument=pl.col("instrument"), split=base).with_columns(
        k=pl.int_range(pl.len()).over("instrument", "split")).select(
        pl.when((pl.col("split") != "train") & (pl.col("k") < embargo))
        .then(pl.lit("embargo")).otherwise(pl.col("split")).alias("split"))["split"]
    counts = {s: int((labels == s).sum()) for s in (*SPLITS, "embargo")}
    empty = [s for s in SPLITS if not counts[s]]
    if empty:
        raise TapecastError(f"state split: no row in {', '.join(empty)} ({table.height:,} rows, "
                            f"{n:,} distinct times, embargo {embargo} rows); give more bars")
    spec = {"kind": "time-fraction", "train": train, "val": val, "test": round(1 - train - val, 12),
            "embargo_rows": embargo, "val_start": str(val_start), "test_start": str(test_start),
            "rows_per_split": counts}
    return labels, spec


@dataclass(frozen=True, eq=False)
class StateFeatureSet:
    """A state features folder, in memory.

    Attributes
    ----------
    table : polars.DataFrame
        :func:`~tapecast.features.state.state_schema` columns plus ``split``.
    config : StateConfig
    normalizer : StateNormalizer
        Fitted on the ``train`` rows.
    split : dict
        From :func:`state_splits`.
    summary : dict
        :func:`~tapecast.features.state.state_features`' summary per instrument.
    source : dict
        ``description``, ``files``, and once saved ``state_sha256``.
    path : Path or None
    """

    table: pl.DataFrame
    config: StateConfig
    normalizer: StateNormalizer
    split: dict[str, Any]
    summary: dict[str, Any]
    source: dict[str, Any]
    path: Path | None = None

    @classmethod
    def build(cls, bars: pl.DataFrame, config: StateConfig, *, train: float = 0.70,
              val: float = 0.15, embargo: int | None = None, source: str | None = None,
              files: Sequence[str | os.PathLike[str]] = ()) -> StateFeatureSet:
        """State vectors of ``bars``, their split and the normalizer fitted on train.

        Raises
        ------
        TapecastError
            What :func:`state_features` and :func:`state_splits` refuse; a feature constant
            over the train rows.
        """
        table, summary = state_features(bars, config)
        labels, split = state_splits(table, train, val,
                                     config.warmup if embargo is None else embargo)
        table = table.with_columns(labels)
        normalizer = StateNormalizer.fit(table.filter(pl.col("split") == "train"),
                                         config.names, config.clip)
        prov = {"description": source, "files": source_files(files)}
        return cls(table, config, normalizer, split, summary, prov)

    def meta(self) -> dict[str, Any]:
        """The JSON-ready contents of ``features.json``."""
        return {"format_version": FORMAT_VERSION, "kind": KIND, "config": self.config.to_dict(),
                "features": list(self.config.names), "warmup": self.config.warmup,
                "split": self.split, "summary": self.summary, "source": self.source}

    def save(self, out: str | os.PathLike[str]) -> StateFeatureSet:
        """Write the folder ``out`` atomically (an existing folder is replaced as a whole)."""
        with atomic_dir(out) as stage:
            self.table.write_parquet(stage / STATE_FILE)
            self.normalizer.save(stage / NORMALIZER_FILE)
            source = {**self.source, "state_sha256": file_sha256(stage / STATE_FILE)}
            saved = replace(self, source=source, path=Path(out))
            text = json.dumps(saved.meta(), indent=2, allow_nan=False, default=str)
            (stage / META_FILE).write_text(text + "\n", encoding="utf-8")
        return saved

    @classmethod
    def open(cls, path: str | os.PathLike[str], verify: bool = True) -> StateFeatureSet:
        """Open a folder written by :meth:`save`; ``verify`` checks state.parquet's SHA-256."""
        folder = Path(path)
        recover_dir(folder)
        meta = read_features_json(folder, "tapecast features --kind state ... --out FOLDER")
        where = folder / META_FILE
        if meta.get("kind") != KIND:
            raise TapecastError(f"{where}: a '{meta.get('kind')}' features folder, not a state "
                                "one (build it with `tapecast features --kind state`)")
        if meta.get("format_version") != FORMAT_VERSION:
            raise TapecastError(f"{where}: state features format {meta.get('format_version')!r}"
                                f" is not supported (this tapecast reads {FORMAT_VERSION})")
        try:
            config = StateConfig.from_dict(meta["config"])
            split, summary, source = dict(meta["split"]), dict(meta["summary"]), dict(
                meta["source"])
        except (KeyError, TypeError, ValueError) as exc:
            raise TapecastError(f"{where}: missing or invalid field {exc}") from None
        file = folder / STATE_FILE
        if not file.is_file():
            raise TapecastError(f"{folder}: state features folder without {STATE_FILE}")
        if verify and source.get("state_sha256") and file_sha256(file) != source["state_sha256"]:
            raise TapecastError(f"{file}: changed since it was written (SHA-256 differs from "
                                f"{META_FILE}); rebuild the features")
        normalizer = StateNormalizer.load(folder / NORMALIZER_FILE)
        return cls(pl.read_parquet(file), config, normalizer, split, summary, source, folder)

    def matrix(self, split: str, normalized: bool = True) -> NDArray[np.float64]:
        """(N, d) state vectors of ``split`` in feature order: clipped z-scores, or raw."""
        if split not in (*SPLITS, "embargo"):
            raise TapecastError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        x = (self.table.filter(pl.col("split") == split).select(self.config.names)
             .to_numpy().astype(np.float64))
        return self.normalizer.transform(x) if normalized else x
