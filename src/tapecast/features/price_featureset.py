"""A price features folder: the 1-second grid, its labelled windows and what they were built from.

Layout (written atomically, :func:`tapecast.core.io.atomic_dir`)::

    FEATURES/
      grid.parquet      the 1-second grid of every (instrument, session) (features/price.py)
      windows.parquet   the valid origins (features/price_windows.py) with a ``split`` column;
                        ``row`` indexes grid.parquet
      features.json     format version, kind ``price``, the PriceGridConfig, the context
                        channels, the split spec (seconds) and its embargo, the summaries, and
                        the provenance: source files with their SHA-256, the two Parquet files'
                        SHA-256

::

    spec = price_split_spec(config, "last")
    fs = PriceFeatureSet.build(bars, quote_bars, config, spec, source="AIG second bars")
    fs = fs.save("features/aig")
    fs = PriceFeatureSet.open("features/aig")
    train = fs.dataset("train")                 # a PriceDataset (target: the 30-s return)
    test = fs.dataset("test", target="path")    # the 30-step cumulative return path
    for fold in fs.folds():                     # a walk-forward spec
        fs.dataset("test", fold=fold.index)

Splits are by session with an embargo in seconds (:mod:`tapecast.features.price_splits`);
walk-forward folds are recomputed from the stored spec, as :class:`FeatureSet` does.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import polars as pl

from tapecast.core.errors import TapecastError
from tapecast.core.io import atomic_dir, file_sha256, recover_dir
from tapecast.features.featureset import META_FILE, read_features_json
from tapecast.features.price import PriceGridConfig, price_grid
from tapecast.features.price_dataset import PriceDataset, Target
from tapecast.features.price_splits import (
    assign_price_splits,
    check_price_split,
    min_embargo_s,
    split_gaps,
)
from tapecast.features.price_windows import context_features, price_windows
from tapecast.features.splits import SPLITS, Fold, SplitSpec, walk_forward_folds

__all__ = ["FORMAT_VERSION", "GRID_FILE", "KIND", "WINDOWS_FILE", "PriceFeatureSet",
           "source_files"]

FORMAT_VERSION = 1
KIND = "price"
GRID_FILE = "grid.parquet"
WINDOWS_FILE = "windows.parquet"


def source_files(paths: Sequence[str | os.PathLike[str]]) -> list[dict[str, Any]]:
    """Provenance of input files: ``path``, ``bytes`` and ``sha256`` of each."""
    return [{"path": str(p), "bytes": os.stat(p).st_size, "sha256": file_sha256(p)}
            for p in paths]


def _check_splits(labels: pl.Series, spec: SplitSpec, what: str) -> None:
    """Every split of ``spec`` holds at least one window, else one line naming the empty ones."""
    counts = dict(labels.value_counts().iter_rows())
    empty = [s for s in spec.splits if not counts.get(s, 0)]
    if empty:
        held = ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items()))
        raise TapecastError(
            f"price split{what}: no valid window in {', '.join(map(repr, empty))} (windows by "
            f"label: {held}; embargo {spec.embargo_windows} s); choose other sessions or dates")


@dataclass(frozen=True, eq=False)
class PriceFeatureSet:
    """A price features folder, in memory.

    Attributes
    ----------
    grid : polars.DataFrame
        The 1-second grid (:func:`~tapecast.features.price.grid_schema`).
    windows : polars.DataFrame
        Valid origins (:data:`~tapecast.features.price_windows.WINDOWS_SCHEMA`) with ``split``.
    config : PriceGridConfig
    split_spec : SplitSpec
        Context, horizon and embargo in seconds.
    summary : dict
        ``grid`` (:func:`~tapecast.features.price.price_grid`'s summary), ``windows``
        (:func:`~tapecast.features.price_windows.price_windows`'), ``splits``
        (:func:`~tapecast.features.price_splits.split_gaps` with the embargo).
    source : dict
        ``description``, ``files`` (path, bytes, sha256), and once saved ``grid_sha256`` and
        ``windows_sha256``.
    path : Path or None
        The folder it was opened from or saved to.
    """

    grid: pl.DataFrame
    windows: pl.DataFrame
    config: PriceGridConfig
    split_spec: SplitSpec
    summary: dict[str, Any]
    source: dict[str, Any]
    path: Path | None = None

    # --- building -------------------------------------------------------------------------------
    @classmethod
    def build(cls, bars: pl.DataFrame | None, quote_bars: pl.DataFrame | None,
              config: PriceGridConfig, split: SplitSpec, *, source: str | None = None,
              files: Sequence[str | os.PathLike[str]] = ()) -> PriceFeatureSet:
        """Grid, windows and split labels of ``bars`` and ``quote_bars``.

        Parameters
        ----------
        bars, quote_bars : polars.DataFrame or None
            Canonical 1-second trade and quote bars (:func:`price_grid`).
        config : PriceGridConfig
        split : SplitSpec
            From :func:`~tapecast.features.price_splits.price_split_spec` (seconds).
        source : str, optional
            What the bars are (a path, "synthetic market ...").
        files : sequence of path
            Input files, recorded with their SHA-256.

        Raises
        ------
        TapecastError
            Whatever :func:`price_grid` and :func:`price_windows` refuse (bad timestamps, a day
            without session data, ``price="mid"`` without quote bars, too few bars for one
            window); a split spec that does not fit the config or has too short an embargo; a
            split without a valid window.
        """
        check_price_split(split, config)
        grid, grid_summary = price_grid(bars, quote_bars, config)
        windows, windows_summary = price_windows(grid, config)
        labels = assign_price_splits(windows, split)
        _check_splits(labels, split, "")
        if split.kind == "walk-forward":
            _check_splits(assign_price_splits(windows, split, 0), split, " (fold 0)")
        labelled = windows.with_columns(labels)
        summary = {"grid": grid_summary, "windows": windows_summary,
                   "splits": cls._splits_summary(labelled, split, config)}
        prov = {"description": source, "files": source_files(files)}
        return cls(grid, labelled, config, split, summary, prov)

    @staticmethod
    def _splits_summary(windows: pl.DataFrame, spec: SplitSpec,
                        config: PriceGridConfig) -> dict[str, Any]:
        gaps = split_gaps(windows, windows["split"])
        return {"kind": spec.kind, "embargo_s": spec.embargo_windows,
                "min_embargo_s": min_embargo_s(config), **gaps}

    # --- the folder -----------------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        """The JSON-ready contents of ``features.json``."""
        return {"format_version": FORMAT_VERSION, "kind": KIND, "config": self.config.to_dict(),
                "channels": list(context_features(self.config)),
                "split_spec": self.split_spec.to_dict(), "context_s": self.config.context_s,
                "horizon_s": self.config.horizon_s, "summary": self.summary,
                "source": self.source}

    def save(self, out: str | os.PathLike[str]) -> PriceFeatureSet:
        """Write the folder ``out`` atomically (an existing folder is replaced as a whole).

        Returns
        -------
        PriceFeatureSet
            The set as saved: ``path`` is ``out``, ``source`` carries the Parquet SHA-256s.
        """
        with atomic_dir(out) as stage:
            self.grid.write_parquet(stage / GRID_FILE)
            self.windows.write_parquet(stage / WINDOWS_FILE)
            source = {**self.source, "grid_sha256": file_sha256(stage / GRID_FILE),
                      "windows_sha256": file_sha256(stage / WINDOWS_FILE)}
            saved = replace(self, source=source, path=Path(out))
            text = json.dumps(saved.meta(), indent=2, allow_nan=False, default=str)
            (stage / META_FILE).write_text(text + "\n", encoding="utf-8")
        return saved

    @classmethod
    def open(cls, path: str | os.PathLike[str], verify: bool = True) -> PriceFeatureSet:
        """Open a folder written by :meth:`save`; ``verify`` checks both Parquet files against
        the SHA-256 recorded at write time."""
        folder = Path(path)
        recover_dir(folder)  # a swap interrupted between its two renames
        meta = _read_meta(folder)
        try:
            config = PriceGridConfig.from_dict(meta["config"])
            spec = SplitSpec.from_dict(meta["split_spec"])
            summary, source = dict(meta["summary"]), dict(meta["source"])
        except (KeyError, TypeError, ValueError) as exc:
            raise TapecastError(f"{folder / META_FILE}: missing or invalid field {exc}") from None
        frames = {}
        for name, key in ((GRID_FILE, "grid_sha256"), (WINDOWS_FILE, "windows_sha256")):
            file = folder / name
            if not file.is_file():
                raise TapecastError(f"{folder}: price features folder without {name}")
            if verify and source.get(key) and file_sha256(file) != source[key]:
                raise TapecastError(f"{file}: changed since it was written (SHA-256 differs "
                                    f"from {META_FILE}); rebuild the features")
            frames[name] = pl.read_parquet(file)
        if "split" not in frames[WINDOWS_FILE].columns:
            raise TapecastError(f"{folder / WINDOWS_FILE}: missing column 'split'")
        check_price_split(spec, config)
        return cls(frames[GRID_FILE], frames[WINDOWS_FILE], config, spec, summary, source, folder)

    # --- readers --------------------------------------------------------------------------------
    def folds(self) -> list[Fold]:
        """The walk-forward folds of the stored spec (a ``walk-forward`` spec only): fold ``k``
        tests its session(s) and trains on every earlier one, the last ``val_sessions`` of them
        as validation."""
        return walk_forward_folds(self.windows, self.split_spec)

    def split_labels(self, fold: int | None = None) -> pl.Series:
        """Stored labels, or walk-forward fold ``fold``'s labels recomputed from the spec."""
        if fold is None:
            return self.windows["split"]
        return assign_price_splits(self.windows, self.split_spec, fold)

    def dataset(self, split: str, target: Target = "return",
                fold: int | None = None) -> PriceDataset:
        """The origins of ``split`` (``train``/``val``/``test``) as a :class:`PriceDataset`.

        Raises
        ------
        TapecastError
            An unknown split, or one without a window (in fold ``fold``).
        """
        if split not in SPLITS:
            raise TapecastError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        chosen = self.windows.filter(self.split_labels(fold) == split)
        if chosen.height == 0:
            where = "" if fold is None else f" of fold {fold}"
            raise TapecastError(f"{self.path or 'price features'}: split '{split}'{where} holds "
                                "no window")
        return PriceDataset(self.grid, chosen, self.config, target)


def _read_meta(folder: Path) -> Mapping[str, Any]:
    meta_path = folder / META_FILE
    data = read_features_json(folder, "tapecast features --kind price ... --out FOLDER")
    if data.get("kind") != KIND:
        raise TapecastError(f"{meta_path}: a '{data.get('kind')}' features folder, not a price "
                            "one (build it with `tapecast features --kind price`)")
    if data.get("format_version") != FORMAT_VERSION:
        raise TapecastError(f"{meta_path}: price features format "
                            f"{data.get('format_version')!r} is not supported (this tapecast "
                            f"reads format {FORMAT_VERSION})")
    return data
