"""A partitioned Parquet store of canonical tables, written atomically, opened lazily.

Layout (hive-style, so ``pl.scan_parquet(STORE / table, hive_partitioning=True)`` works)::

    STORE/
      store.json                                   # the manifest (see below)
      <table>/instrument=<inst>/date=<YYYY-MM-DD>/part-00000.parquet

``date`` is the UTC date of the row's partition timestamp (:func:`partition_time`: for
``events`` the receive time ``ts_recv``, else ``ts_event``; ``ts`` for every other table).
The instrument is percent-encoded in the folder name (``BTC/USDT`` -> ``instrument=BTC%2FUSDT``;
polars decodes it); a null instrument is ``__HIVE_DEFAULT_PARTITION__``.
Every Parquet file holds all the canonical columns of its table (the instrument included), so a
file is self-describing; the partition folders only make pruning cheap.

The manifest ``store.json`` lists the tables, each partition with its row count and time span,
and every source ingested with its reader's counters. :meth:`Store.open` reads only the manifest.

Writes are atomic (:func:`tapecast.core.io.atomic_dir`): a new store is built in a staging
folder beside ``STORE`` (partitions kept from the old store are hard-linked, new ones written),
and only a complete store replaces the old one. A failure mid-write leaves the old store as it was.
Ingesting a partition that the store already holds is an error by default (nothing is written);
``on_conflict="replace"`` replaces that partition whole, ``on_conflict="append"`` adds the new
rows after the held ones as another part file. Partitions the ingest does not touch are kept.
One writer at a time: two concurrent ingests into the same store do not merge; the last one to
finish wins.

The API follows databento's ``DBNStore``: ``Store.open(path)``, then ``scan`` / ``read`` /
``summary``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import quote

import numpy as np
import polars as pl

from tapecast.core.errors import TapecastError
from tapecast.core.io import atomic_dir, recover_dir
from tapecast.data.schemas import SCHEMAS, TABLE_NAMES, conform, levels_schema, schema_of
from tapecast.data.summary import summarize
from tapecast.data.tables import Tables

MANIFEST: Final = "store.json"
STORE_FORMAT: Final = "tapecast-store"
SCHEMA_VERSION: Final = 1
PART_FILE: Final = "part-00000.parquet"
NULL_PARTITION: Final = "__HIVE_DEFAULT_PARTITION__"
_DATE: Final = "__date"

TimeLike = datetime | date | str
OnConflict = Literal["error", "replace", "append"]


def partition_time(table: str) -> pl.Expr:
    """The timestamp a row is partitioned and filtered by.

    For events it is the receive time ``ts_recv`` (the clock Databento orders a file by), or
    ``ts_event`` where a format has no receive clock: a Databento snapshot record keeps the
    ``ts_event`` of the order it describes (days earlier, possibly) but is received with the
    file's live events, so it lands in their partition and a replay of one date is whole.
    """
    if table == "events":
        return pl.coalesce("ts_recv", "ts_event").alias("ts_recv")
    return pl.col("ts")


def _iso_ns(value_ns: int) -> str:
    """ISO-8601 UTC string with nanoseconds, e.g. ``2023-12-25T22:00:00.000000001Z``."""
    return f"{np.datetime_as_string(np.datetime64(value_ns, 'ns'), unit='ns')}Z"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Partition:
    """One partition folder of a table.

    Attributes
    ----------
    table, instrument, date : str, str or None, str
        The partition key (``date`` is ``YYYY-MM-DD``, UTC).
    rows : int
        Rows in the partition.
    start, end : str
        ISO-8601 UTC span of the partition timestamp (first and last, nanoseconds).
    path : str
        The partition folder, relative to the store root.
    """

    table: str
    instrument: str | None
    date: str
    rows: int
    start: str
    end: str
    path: str
    files: tuple[str, ...] = (PART_FILE,)

    @property
    def key(self) -> tuple[str, str | None, str]:
        """``(table, instrument, date)``."""
        return (self.table, self.instrument, self.date)

    def to_json(self) -> dict[str, Any]:
        """The manifest entry (the table is the enclosing key)."""
        out = {k: v for k, v in asdict(self).items() if k != "table"}
        out["files"] = list(self.files)
        return out

    @classmethod
    def from_json(cls, table: str, entry: dict[str, Any]) -> Partition:
        """Inverse of :meth:`to_json`."""
        return cls(table=table, **{**entry, "files": tuple(entry["files"])})


def partition_path(table: str, instrument: str | None, day: str) -> str:
    """Relative folder of a partition (hive-style, instrument percent-encoded)."""
    inst = NULL_PARTITION if instrument is None else quote(instrument, safe="")
    return f"{table}/instrument={inst}/date={day}"


def _sort_key(p: Partition) -> tuple[str, bool, str, str]:
    return (p.table, p.instrument is None, p.instrument or "", p.date)


# ---------------------------------------------------------------------------------------------
# writing


def _conformed(tables: Tables, name: str, frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` cast to the canonical schema; a frame that cannot be stored is a user error."""
    try:
        out = conform(frame, name)
    except (ValueError, pl.exceptions.PolarsError) as exc:
        raise TapecastError(
            f"{tables.source}: table '{name}' does not fit the canonical schema "
            f"({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    ts = "ts_event" if name == "events" else "ts"
    if out[ts].null_count():
        row = int(out.select(pl.col(ts).is_null().arg_true().first()).item()) + 1
        raise TapecastError(
            f"{tables.source}: table '{name}', row {row}, field '{ts}': expected a timestamp "
            "(the store partitions by its date)")
    return out


def _gather(sources: Sequence[Tables]) -> dict[str, pl.DataFrame]:
    """Per table, every source's frame conformed and stacked in source order."""
    frames: dict[str, list[tuple[str, pl.DataFrame]]] = {}
    for tables in sources:
        for name, frame in tables.items():
            if frame.height:
                frames.setdefault(name, []).append(
                    (tables.source, _conformed(tables, name, frame)))
    out: dict[str, pl.DataFrame] = {}
    for name, parts in frames.items():
        depth_source: dict[int, str] = {}
        for src, f in parts:
            depth_source.setdefault((f.width - 2) // 4, src)
        if len(depth_source) > 1:
            (na, a), (nb, b) = list(depth_source.items())[:2]
            raise TapecastError(
                f"table '{name}': {a} has {na} book levels, {b} has {nb}; a store holds one "
                "book depth: ingest them into separate stores")
        out[name] = pl.concat([f for _, f in parts], how="vertical")
    return out


def _split(name: str, frame: pl.DataFrame) -> dict[tuple[str, str | None, str], pl.DataFrame]:
    """``frame`` split into partitions keyed ``(table, instrument, date)``, rows in input
    order."""
    keyed = frame.with_columns(
        partition_time(name).dt.date().dt.to_string("%Y-%m-%d").alias(_DATE))
    parts = keyed.partition_by(["instrument", _DATE], maintain_order=True, as_dict=True)
    return {(name, None if inst is None else str(inst), str(day)): part.drop(_DATE)
            for (inst, day), part in parts.items()}


def _write_partition(root: Path, key: tuple[str, str | None, str], frame: pl.DataFrame,
                     index: int = 0) -> Partition:
    """Write ``frame`` as part file number ``index`` of partition ``key`` under ``root``."""
    name, instrument, day = key
    rel = partition_path(name, instrument, day)
    folder = root / rel
    folder.mkdir(parents=True, exist_ok=True)
    file = f"part-{index:05d}.parquet"
    frame.write_parquet(folder / file, compression="zstd", statistics=True)
    ts = frame.select(partition_time(name).dt.epoch("ns")).to_series()
    lo, hi = ts.min(), ts.max()
    assert isinstance(lo, int) and isinstance(hi, int)
    return Partition(table=name, instrument=instrument, date=day, rows=frame.height,
                     start=_iso_ns(lo), end=_iso_ns(hi), path=rel, files=(file,))


def _link(old: Store, part: Partition, root: Path) -> None:
    """Hard-link ``part``'s files from ``old`` into ``root`` (copy where links fail)."""
    (root / part.path).mkdir(parents=True, exist_ok=True)
    for file in part.files:
        src, dst = old.root / part.path / file, root / part.path / file
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)


def _merge(old: Partition, new: Partition) -> Partition:
    return replace(old, rows=old.rows + new.rows, start=min(old.start, new.start),
                   end=max(old.end, new.end), files=old.files + new.files)


def _source_entry(tables: Tables) -> dict[str, Any]:
    return {"source": tables.source, "format": tables.format, "rows": tables.row_counts(),
            "counters": dict(tables.counters), "ingested_at": _now()}


def _check_conflicts(old: Store | None, frames: dict[str, pl.DataFrame],
                     keys: Iterable[tuple[str, str | None, str]], on_conflict: OnConflict) -> None:
    """Refuse a levels table of another depth, and (``on_conflict="error"``) held partitions."""
    if on_conflict not in ("error", "replace", "append"):
        raise TapecastError(
            f"on_conflict: expected 'error', 'replace' or 'append', got {on_conflict!r}")
    if old is None:
        return
    if "levels" in frames and "levels" in old.tables:
        have, got = old.n_levels(), (frames["levels"].width - 2) // 4
        if have != got:
            raise TapecastError(
                f"{old.root}: the store's levels table has {have} book levels, the new one "
                f"{got}; write it to another store")
    held = {p.key for p in old.partitions()}
    clash = [k for k in keys if k in held]
    if clash and on_conflict == "error":
        table, inst, day = clash[0]
        raise TapecastError(
            f"{old.root}: already holds {len(clash)} of the partitions being ingested (first: "
            f"{table} {inst} {day}); choose on_conflict='replace' or 'append' (CLI: "
            "--on-conflict), or ingest into another store")


def write_store(sources: Tables | Sequence[Tables], out: str | os.PathLike[str], *,
                on_conflict: OnConflict = "error") -> Store:
    """Write (or add to) the store at ``out``, atomically.

    Parameters
    ----------
    sources : Tables or sequence of Tables
        What readers returned (:func:`tapecast.data.read`). Several sources' rows that fall in
        the same partition are stacked in the order the sources are given.
    out : path-like
        The store folder. Created when absent; when it holds a store, the new partitions are added
        to it; any other non-empty folder is refused.
    on_conflict : {"error", "replace", "append"}, default "error"
        What to do with a partition (table, instrument, date) the store already holds:
        ``"error"`` refuses the whole ingest (nothing written), ``"replace"`` replaces the held
        partition with the new rows, ``"append"`` keeps its rows and adds the new ones after
        them (a new part file).

    Returns
    -------
    Store
        The written store, opened.

    Raises
    ------
    TapecastError
        On a clash with held partitions (``"error"``), a frame that does not fit its canonical
        schema, a null primary timestamp, book levels of two depths, or an ``out`` that is not a
        store.
    """
    batch = [sources] if isinstance(sources, Tables) else list(sources)
    root = Path(out)
    old = _existing(root)
    frames = _gather(batch)
    if not frames:
        raise TapecastError("nothing to ingest: the sources hold no rows")
    split = {k: v for name, frame in frames.items() for k, v in _split(name, frame).items()}
    _check_conflicts(old, frames, split, on_conflict)
    held = {} if old is None else {p.key: p for p in old.partitions()}
    manifest = _merged_manifest(old, batch)
    with atomic_dir(root) as staging:
        parts = []
        for key, frame in split.items():
            prior = held.pop(key, None)
            if prior is not None and on_conflict == "append":
                assert old is not None
                _link(old, prior, staging)
                parts.append(_merge(prior, _write_partition(staging, key, frame,
                                                            len(prior.files))))
            else:
                parts.append(_write_partition(staging, key, frame))
        for part in held.values():  # partitions the batch does not touch
            assert old is not None
            _link(old, part, staging)
            parts.append(part)
        _finish_manifest(manifest, old, frames, parts)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return Store.open(root)


def _existing(root: Path) -> Store | None:
    """The store at ``root``, None when ``root`` is absent or empty; refuse anything else."""
    if not root.exists():
        return None
    if not root.is_dir():
        raise TapecastError(f"{root}: exists and is not a folder; give a store folder")
    if (root / MANIFEST).exists():
        return Store.open(root)
    if any(root.iterdir()):
        raise TapecastError(f"{root}: is a non-empty folder without {MANIFEST}, not a tapecast "
                            "store; give a new or empty folder")
    return None


def _merged_manifest(old: Store | None, batch: list[Tables]) -> dict[str, Any]:
    now = _now()
    return {
        "format": STORE_FORMAT,
        "schema_version": SCHEMA_VERSION,
        "created": now if old is None else old.manifest.get("created", now),
        "updated": now,
        "tables": {},
        "sources": ([] if old is None else list(old.manifest["sources"]))
        + [_source_entry(t) for t in batch],
    }


def _finish_manifest(manifest: dict[str, Any], old: Store | None,
                     frames: dict[str, pl.DataFrame], parts: list[Partition]) -> None:
    tables: dict[str, Any] = {}
    for name in TABLE_NAMES:
        mine = sorted((p for p in parts if p.table == name), key=_sort_key)
        if not mine:
            continue
        if name in frames:
            schema = schema_of(name, frames[name])
        else:
            assert old is not None
            schema = old.schema(name)
        entry: dict[str, Any] = {"columns": {c: str(t) for c, t in schema.items()}}
        if name == "levels":
            entry["n_levels"] = (len(schema) - 2) // 4
        entry["partitions"] = [p.to_json() for p in mine]
        tables[name] = entry
    manifest["tables"] = tables


# ---------------------------------------------------------------------------------------------
# reading


def _parse_time(value: TimeLike, name: str) -> datetime:
    """A UTC datetime from a datetime, a date (its midnight) or an ISO string."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise TapecastError(
                f"{name}: expected an ISO-8601 time like 2024-01-02T09:30:00Z, got {value!r}"
            ) from None
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Store:
    """A partitioned Parquet store (see the module docstring for layout and guarantees).

    Open with :meth:`Store.open` (reads only ``store.json``); write with :func:`write_store` or
    :meth:`Store.ingest`.
    """

    def __init__(self, root: Path, manifest: dict[str, Any]) -> None:
        self.root = root
        self.manifest = manifest

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Store:
        """Open the store at ``path``, reading only its manifest."""
        root = Path(path)
        recover_dir(root)  # a swap interrupted between its two renames
        file = root / MANIFEST
        if not file.is_file():
            raise TapecastError(f"{root}: not a tapecast store (no {MANIFEST})")
        try:
            manifest = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TapecastError(f"{file}: expected a readable JSON manifest ({exc})") from None
        if not isinstance(manifest, dict) or manifest.get("format") != STORE_FORMAT:
            raise TapecastError(f"{file}: expected a manifest with format '{STORE_FORMAT}'")
        if manifest.get("schema_version") != SCHEMA_VERSION:
            raise TapecastError(
                f"{file}: field 'schema_version': expected {SCHEMA_VERSION}, got "
                f"{manifest.get('schema_version')!r} (written by another tapecast version)")
        return cls(root, manifest)

    @classmethod
    def ingest(cls, sources: Tables | Sequence[Tables], out: str | os.PathLike[str], *,
               on_conflict: OnConflict = "error") -> Store:
        """Write ``sources`` into the store at ``out`` atomically (see :func:`write_store`)."""
        return write_store(sources, out, on_conflict=on_conflict)

    @property
    def tables(self) -> tuple[str, ...]:
        """Names of the tables the store holds, in canonical order."""
        return tuple(t for t in TABLE_NAMES if t in self.manifest["tables"])

    def _table(self, table: str) -> dict[str, Any]:
        if table not in self.manifest["tables"]:
            held = ", ".join(self.tables) or "none"
            raise TapecastError(f"{self.root}: no table '{table}' (tables held: {held})")
        entry: dict[str, Any] = self.manifest["tables"][table]
        return entry

    def n_levels(self) -> int:
        """Number of book levels of the ``levels`` table."""
        return int(self._table("levels")["n_levels"])

    def schema(self, table: str) -> pl.Schema:
        """The canonical schema of ``table`` as stored."""
        self._table(table)
        return levels_schema(self.n_levels()) if table == "levels" else SCHEMAS[table]

    def partitions(self, table: str | None = None) -> list[Partition]:
        """The partitions of ``table`` (of every table when None), ordered by
        (table, instrument, date)."""
        if table is not None:
            self._table(table)  # raises on an unknown table
        names = self.tables if table is None else (table,)
        return [Partition.from_json(name, p) for name in names
                for p in self.manifest["tables"][name]["partitions"]]

    def instruments(self, table: str) -> list[str | None]:
        """The instruments of ``table``, in store order."""
        return list(dict.fromkeys(p.instrument for p in self.partitions(table)))

    def scan(self, table: str, instrument: str | Iterable[str] | None = None,
             start: TimeLike | None = None, end: TimeLike | None = None) -> pl.LazyFrame:
        """Lazily scan ``table``, pruning partitions with the manifest.

        Parameters
        ----------
        table : str
            One of :attr:`tables`.
        instrument : str or iterable of str, optional
            Keep only these instruments.
        start, end : datetime, date or ISO string, optional
            Keep rows with ``start <= t < end`` on the partition timestamp
            (:func:`partition_time`: ``ts_recv`` for events, else ``ts_event``; ``ts`` for
            the other tables); naive times are UTC.

        Returns
        -------
        pl.LazyFrame
            Canonical schema of ``table``; rows ordered by (instrument, date partition), each
            partition in the order it was ingested.
        """
        schema = self.schema(table)
        wanted = None if instrument is None else (
            {instrument} if isinstance(instrument, str) else set(instrument))
        lo = None if start is None else _parse_time(start, "start")
        hi = None if end is None else _parse_time(end, "end")
        files = [self.root / p.path / f for p in self.partitions(table)
                 if (wanted is None or p.instrument in wanted)
                 and (lo is None or p.date >= lo.date().isoformat())
                 and (hi is None or p.date <= hi.date().isoformat())
                 for f in p.files]
        if not files:
            return pl.LazyFrame(schema=schema)
        frame = pl.scan_parquet(files, hive_partitioning=False).select(
            [pl.col(c).cast(t) for c, t in schema.items()])
        ts = partition_time(table)
        if lo is not None:
            frame = frame.filter(ts >= lo)
        if hi is not None:
            frame = frame.filter(ts < hi)
        return frame

    def read(self, table: str, instrument: str | Iterable[str] | None = None,
             start: TimeLike | None = None, end: TimeLike | None = None) -> pl.DataFrame:
        """:meth:`scan`, collected."""
        return self.scan(table, instrument, start, end).collect()

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary from the manifest (see :func:`tapecast.data.summary.summarize`)."""
        return summarize(self.root, self.manifest)

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r}, tables={list(self.tables)})"
