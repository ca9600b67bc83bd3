"""What a store holds, from its manifest alone: rows per table, instrument and date; time spans;
rows rejected; the readers' counters. ``tapecast ingest`` and ``tapecast inspect`` print it.

A pure function of the manifest (``store.json``): :meth:`tapecast.data.store.Store.summary`
calls it, and this module imports nothing of the store's.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from typing import Any

from tapecast.data.schemas import TABLE_NAMES

# a reader counts the rows it leaves out by design under a name with one of these endings
DROPPED_SUFFIXES = ("_dropped", "_skipped")


def _span(parts: list[Mapping[str, Any]]) -> dict[str, Any]:
    return {"rows": sum(p["rows"] for p in parts),
            "start": min(p["start"] for p in parts), "end": max(p["end"] for p in parts)}


def summarize(root: str | os.PathLike[str], manifest: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-ready summary of the store at ``root`` from its ``manifest`` (``store.json``).

    Returns
    -------
    dict
        ``store`` (path), ``schema_version``, ``tables`` (per table: ``rows``, ``start``,
        ``end``, ``instruments``: per instrument ``rows``, ``start``, ``end`` and ``dates``:
        date -> rows), ``rows_rejected`` (bad rows raise, so this is 0 for any stored source),
        ``rows_dropped`` (rows a reader leaves out by design and counts: the sum of its counters
        named ``*_dropped`` or ``*_skipped``, e.g. LEAN's zero-size prints), ``counters`` (the
        readers' counters summed over sources) and ``sources`` (each source
        with its format, rows per table and counters). Instruments that are null appear as
        ``"null"``.
    """
    tables: dict[str, Any] = {}
    for table in (t for t in TABLE_NAMES if t in manifest["tables"]):
        parts: list[Mapping[str, Any]] = manifest["tables"][table]["partitions"]
        by_inst: dict[str, list[Mapping[str, Any]]] = {}
        for p in parts:
            by_inst.setdefault("null" if p["instrument"] is None else p["instrument"],
                               []).append(p)
        entry = _span(parts)
        entry["instruments"] = {
            inst: {**_span(ps), "dates": {p["date"]: p["rows"] for p in ps}}
            for inst, ps in by_inst.items()
        }
        tables[table] = entry
    counters: Counter[str] = Counter()
    for source in manifest["sources"]:
        counters.update(source["counters"])
    return {
        "store": str(root),
        "schema_version": manifest["schema_version"],
        "tables": tables,
        "rows_rejected": int(counters.pop("rows_rejected", 0)),
        "rows_dropped": sum(n for k, n in counters.items() if k.endswith(DROPPED_SUFFIXES)),
        "counters": dict(sorted(counters.items())),
        "sources": [{k: s[k] for k in ("source", "format", "rows", "counters")}
                    for s in manifest["sources"]],
    }
