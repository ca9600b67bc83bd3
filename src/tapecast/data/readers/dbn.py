"""Databento Binary Encoding (``.dbn``, ``.dbn.zst``; DBN v1, v2, v3) -> canonical tables.

The official ``databento`` client decodes the metadata header (``DBNStore``), gives the record
layout of each DBN version (``SCHEMA_STRUCT_MAP*``, the dtypes its ``to_ndarray`` uses) and the
symbology (``InstrumentMap``); the records are then viewed as one NumPy structured array, as
``DBNStore.to_ndarray`` does, and turned into Polars columns without a per-record loop. Every
step after that is shared with the CSV reader (:mod:`.databento_common`).

Format reference: https://databento.com/docs/standards-and-conventions/databento-binary-encoding
(a ``DBN`` + version-byte prefix, a little-endian u32 metadata length, the metadata, then
fixed-size records whose first byte is the record length in 4-byte words and whose second is the
record type).

Supported schemas: mbo, trades, tbbo, mbp-1, mbp-10, ohlcv-1s/1m/1h/1d. Others (definition,
statistics, status, imbalance, bbo, cbbo, mixed live streams...) raise
:class:`~tapecast.core.errors.UnsupportedFormatError`, as do legacy DBZ files and fragments
without a metadata header. Truncated or corrupt files raise
:class:`~tapecast.core.errors.InputError` naming the record.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Final

import numpy as np
import polars as pl

from tapecast.core.errors import InputError, UnsupportedFormatError
from tapecast.data.readers.databento_common import (
    BAR_LENGTHS,
    SUPPORTED_SCHEMAS,
    fixed_prices,
    raw_columns,
    timestamps,
    to_tables,
    unsupported_schema,
)
from tapecast.data.tables import Tables
from tapecast.data.validate import ROW

ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"
DBN_VERSIONS: Final = (1, 2, 3)
# record type (rtype) each schema's records carry; old v1 ohlcv files may carry the deprecated 17
RTYPES: Final[dict[str, tuple[int, ...]]] = {
    "mbo": (160,), "trades": (0,), "tbbo": (1,), "mbp-1": (1,), "mbp-10": (10,),
    "ohlcv-1s": (32, 17), "ohlcv-1m": (33, 17), "ohlcv-1h": (34, 17), "ohlcv-1d": (35, 17),
}


def read_dbn(path: Path, **_: Any) -> Tables:
    """Read a DBN file (v1, v2 or v3, plain or zstd-compressed) into canonical tables.

    Parameters
    ----------
    path : Path
        A ``.dbn`` or ``.dbn.zst`` file of one supported schema.

    Returns
    -------
    Tables
        mbo -> events (one row per record) + trades (its ``T`` records); trades -> trades;
        tbbo / mbp-1 -> trades + quotes; mbp-10 -> trades + quotes + levels (10 levels);
        ohlcv-* -> bars. ``counters``: ``records``, ``snapshot_records``
        (flags & 0x20 on a record other than a clear), ``clears`` (action R),
        ``no_action_records`` (action N, not events).

    Raises
    ------
    UnsupportedFormatError
        Another schema, a mixed-schema stream, legacy DBZ, a fragment without a header.
    InputError
        A corrupt header, a truncated or corrupt record, an empty file, a bad value, ts_recv
        (ts_event for ohlcv) going backwards; the message names the file and the record.
    """
    data = _decompress(path)
    metadata, meta_len = _metadata(data, path)
    schema = None if metadata.schema is None else str(metadata.schema)
    if schema is None:
        raise UnsupportedFormatError(
            f"{path}: a DBN stream of mixed schemas (live data) is not supported; "
            f"supported schemas: {', '.join(SUPPORTED_SCHEMAS)}")
    if schema not in SUPPORTED_SCHEMAS:
        raise unsupported_schema(path, schema)
    records = _records(data, meta_len, metadata, schema, path)
    raw = _raw_frame(records, metadata, schema)
    return to_tables(raw, "mbp-1" if schema == "tbbo" else schema, path, "dbn")


def _decompress(path: Path) -> bytes:
    """The file's bytes, zstd frames decompressed (a truncated frame is an error)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(path, None, None, f"a readable file ({exc.strerror})") from None
    if len(data) >= 4 and data[3] == 0x18 and data[2] == 0x4D and data[1] == 0x2A \
            and data[0] & 0xF0 == 0x50:
        raise UnsupportedFormatError(
            f"{path}: legacy DBZ files are not supported; convert with `dbn --input-fmt dbz` "
            "or re-download as DBN")
    if not data.startswith(ZSTD_MAGIC):
        return data
    import zstandard

    parts: list[bytes] = []
    rest = data
    try:
        while rest:
            decoder = zstandard.ZstdDecompressor().decompressobj()
            parts.append(decoder.decompress(rest))
            if not decoder.eof:
                raise InputError(path, None, None,
                                 "a complete zstd frame (the compressed file is truncated)")
            rest = decoder.unused_data
    except zstandard.ZstdError as exc:
        raise InputError(path, None, None, f"a readable zstd stream ({exc})") from None
    return b"".join(parts)


def _metadata(data: bytes, path: Path) -> tuple[Any, int]:
    """Decode the metadata header with the official client; returns it and its byte length."""
    if not data.startswith(b"DBN"):
        raise UnsupportedFormatError(
            f"{path}: not a DBN stream (no 'DBN' header): a DBN fragment without metadata, "
            "legacy DBZ or another format")
    if len(data) < 8:  # "DBN", the version byte, the u32 metadata length
        raise InputError(path, None, "metadata", "a complete metadata header (the file is "
                         f"truncated: {len(data)} bytes, the prefix alone is 8)")
    version = data[3]
    if version not in DBN_VERSIONS:
        raise UnsupportedFormatError(
            f"{path}: DBN version {version} is not supported (versions 1, 2 and 3 are)")
    if len(data) < 8 + int.from_bytes(data[4:8], "little"):
        raise InputError(path, None, "metadata",
                         "a complete metadata header (the file is truncated)")
    from databento import DBNStore

    try:
        store = DBNStore.from_bytes(io.BytesIO(data[:8 + int.from_bytes(data[4:8], "little")]))
        return store.metadata, 8 + int.from_bytes(data[4:8], "little")
    except Exception as exc:  # the client raises BentoError, DBNError, ValueError
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(path, None, "metadata",
                         f"a decodable DBN metadata header ({detail})") from None


def _dtype(metadata: Any, schema: str) -> np.dtype[Any]:
    """The record layout of ``schema`` in the file's DBN version (the client's own dtypes)."""
    from databento import Schema
    from databento.common.constants import (
        SCHEMA_STRUCT_MAP,
        SCHEMA_STRUCT_MAP_V1,
        SCHEMA_STRUCT_MAP_V2,
    )

    structs = {1: SCHEMA_STRUCT_MAP_V1, 2: SCHEMA_STRUCT_MAP_V2}.get(
        int(metadata.version), SCHEMA_STRUCT_MAP)
    fields = list(structs[Schema(schema)]._dtypes)
    if metadata.ts_out:
        fields.append(("ts_out", "u8"))  # the gateway's send time, appended to each record
    return np.dtype(fields)


def _records(data: bytes, offset: int, metadata: Any, schema: str, path: Path) -> Any:
    """The records as one structured array, after checking each record's length and type."""
    dtype = _dtype(metadata, schema)
    n, loose = divmod(len(data) - offset, dtype.itemsize)
    if n == 0 and loose == 0:
        raise InputError(path, None, None,
                         "at least one record (the file has metadata but 0 records)")
    if loose:
        raise InputError(path, n + 1, None,
                         f"a complete {dtype.itemsize}-byte {schema} record (the file is "
                         f"truncated: {loose} bytes of it)")
    records = np.frombuffer(data, dtype=dtype, count=n, offset=offset)
    for field, bad, expected in (
        ("length", records["length"].astype(np.int64) * 4 != dtype.itemsize,
         f"{dtype.itemsize // 4} (4-byte words of a {schema} record)"),
        ("rtype", ~np.isin(records["rtype"], RTYPES[schema]),
         f"record type {' or '.join(map(str, RTYPES[schema]))} ({schema})"),
    ):
        if bad.any():
            i = int(np.argmax(bad))
            raise InputError(path, i + 1, field, f"{expected}; the record is corrupt",
                             int(records[field][i]))
    return records


def _instruments(records: Any, metadata: Any, dates: Any) -> pl.Series:
    """Raw symbol of each record from the file's symbology (for the record's date), else the
    instrument_id as a string.

    The client's ``InstrumentMap.resolve_many`` does the resolution; it is handed only the
    distinct (instrument_id, date) pairs (a day of one instrument: one pair), found by Polars.
    """
    from databento.common.symbology import InstrumentMap

    keys = pl.DataFrame({"id": records["instrument_id"],
                         "day": dates.astype("datetime64[D]").astype(np.int64)})
    pairs = keys.unique(maintain_order=True)
    imap = InstrumentMap()
    imap.insert_metadata(metadata)
    symbols = imap.resolve_many(pairs["id"].to_numpy(),
                                pairs["day"].to_numpy().astype("datetime64[D]"))
    pairs = pairs.with_columns(pl.Series("symbol", symbols, dtype=pl.String))
    joined = keys.join(pairs, on=["id", "day"], how="left", maintain_order="left")
    return joined.select(pl.coalesce("symbol", pl.col("id").cast(pl.String))).to_series()


def _raw_frame(records: Any, metadata: Any, schema: str) -> pl.DataFrame:
    """The raw frame of :mod:`.databento_common` from the records' structured array."""
    n = len(records)
    names = records.dtype.names
    columns: dict[str, Any] = {ROW: np.arange(1, n + 1, dtype=np.int64)}
    for ts in ("ts_recv", "ts_event"):
        columns[ts] = records[ts] if ts in names else np.full(n, 2**64 - 1, dtype=np.uint64)
    for name in raw_columns(schema):
        columns[name] = records[name]
    frame = pl.DataFrame(columns)
    first_ts = "ts_event" if schema in BAR_LENGTHS else "ts_recv"
    dates = records[first_ts].astype("datetime64[ns]")
    exprs: list[pl.Expr] = [
        timestamps(pl.col("ts_recv")), timestamps(pl.col("ts_event")),
        pl.lit(_instruments(records, metadata, dates)).alias("instrument"),
    ]
    for name in raw_columns(schema):
        if name in ("action", "side"):
            exprs.append(pl.col(name).cast(pl.Binary).cast(pl.String))
        elif name in ("price", "open", "high", "low", "close") or "_px_" in name:
            exprs.append(fixed_prices(pl.col(name)).alias(name))
        elif name in ("order_id", "flags"):
            exprs.append(pl.col(name))
        else:
            exprs.append(pl.col(name).cast(pl.Int64))
    return frame.with_columns(exprs)
