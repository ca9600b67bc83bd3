"""Tests of the DBN reader (tapecast.data.readers.dbn), against the official client's counts."""

from __future__ import annotations

import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any

import databento_dbn as dbn
import numpy as np
import polars as pl
import pytest
import zstandard
from polars.testing import assert_frame_equal

from tapecast.core.errors import InputError, UnsupportedFormatError
from tapecast.data.detect import read
from tapecast.data.readers.databento_common import SUPPORTED_SCHEMAS, UNDEF_PRICE
from tapecast.data.readers.dbn import read_dbn
from tests.conftest import SHARED_DATA, shared_file

FIXTURES = SHARED_DATA / "databento_fixtures"
ES_MBO = "nautilus/databento/esh4-glbx-mdp3-20231225.mbo.dbn.zst"
ESM4_MBO = "nautilus/databento/orderbooks_mbo_2024-05-08T00-00-00_2024-05-08T00-00-02.dbn.zst"
PRIMARY = {"mbo": "events", "trades": "trades", "tbbo": "quotes", "mbp-1": "quotes",
           "mbp-10": "levels"}


def _summary() -> list[tuple[str, str, int | None]]:
    """(path, schema or error, records) per fixture file listed in SUMMARY.tsv."""
    table = FIXTURES / "SUMMARY.tsv"
    if not table.exists():
        return []
    rows: list[tuple[str, str, int | None]] = []
    for line in table.read_text().splitlines()[1:]:
        cols = line.split("\t")
        if cols[1].startswith("ERROR"):
            rows.append((cols[0], "ERROR", None))
        else:
            rows.append((cols[0], cols[3], int(cols[5].removeprefix("n="))))
    return rows


SUMMARY = _summary()


def _official_count(path: Path) -> int:
    from databento import DBNStore

    return len(DBNStore.from_bytes(path.read_bytes()).to_ndarray())  # from_file leaks a handle


@pytest.mark.parametrize(("relative", "schema", "records"), SUMMARY or [("absent", "", None)],
                         ids=[r[0] for r in SUMMARY] or ["absent"])
def test_read_dbn_when_fixture_then_reads_or_fails_clearly(
        relative: str, schema: str, records: int | None) -> None:
    path = shared_file(f"databento_fixtures/{relative}")
    if schema == "ERROR":  # legacy DBZ and fragments without a metadata header
        with pytest.raises(UnsupportedFormatError, match=path.name):
            read_dbn(path)
    elif schema not in SUPPORTED_SCHEMAS:
        expected = "mixed schemas" if schema == "None" else f"unsupported schema '{schema}'"
        with pytest.raises(UnsupportedFormatError, match=expected):
            read_dbn(path)
    elif records == 0:
        with pytest.raises(InputError, match=rf"{path.name}: expected at least one record"):
            read_dbn(path)
    else:
        tables = read_dbn(path)
        assert tables.counters["records"] == records == _official_count(path)
        table = "bars" if schema.startswith("ohlcv") else PRIMARY[schema]
        assert tables[table].height == records


def test_read_dbn_when_every_fixture_file_then_listed_in_summary() -> None:
    if not FIXTURES.is_dir():
        pytest.skip("databento fixtures absent")
    listed = {r[0] for r in SUMMARY}
    files = {str(p.relative_to(FIXTURES)) for p in FIXTURES.rglob("*")
             if p.is_file() and (".dbn" in p.name or p.name.endswith(".dbz"))}
    assert files <= listed


def test_read_dbn_when_live_mixed_stream_then_unsupported() -> None:
    path = shared_file("databento_fixtures/databento-python/LIVE/test_data.live.dbn.zst")
    with pytest.raises(UnsupportedFormatError, match="mixed schemas"):
        read_dbn(path)


def test_read_dbn_when_es_mbo_with_snapshot_then_all_records_and_trades() -> None:
    path = shared_file(ES_MBO)
    tables = read_dbn(path)
    events = tables["events"]
    assert events.height == 68_792 == _official_count(path)
    assert tables.counters["snapshot_records"] == 8_725
    assert int(((events["flags"] & 0x20) != 0).sum()) == 8_725  # flags preserved
    assert events["instrument"].unique().to_list() == ["ESH4"]  # symbology resolved
    assert events["ts_recv"].is_sorted()
    trades = tables["trades"]
    assert trades.height == int((events["action"] == "trade").sum()) == 2_973
    assert set(trades["side"].unique().to_list()) == {-1, 0, 1}
    unknown = trades.filter(pl.col("side") == 0)
    assert unknown["side_source"].null_count() == unknown.height
    assert (trades.filter(pl.col("side") != 0)["side_source"] == "exchange").all()


def test_read_dbn_when_esm4_opens_with_clear_then_clear_event_kept() -> None:
    tables = read_dbn(shared_file(ESM4_MBO))
    first = tables["events"].row(0, named=True)
    assert first["action"] == "clear" and first["price"] is None
    assert tables.counters["clears"] == 1
    assert tables["events"].height == 13_796


def test_read_dbn_when_snapshot_clear_carries_flag_then_not_counted_as_snapshot() -> None:
    tables = read_dbn(shared_file(ESM4_MBO))
    events = tables["events"]
    flagged = events.filter((pl.col("flags") & 0x20) != 0)
    assert flagged.height == 13_601  # the opening clear carries the snapshot flag too
    assert flagged.filter(pl.col("action") == "add").height == 13_600
    assert tables.counters["snapshot_records"] == 13_600  # the adds the book replay counts


def test_read_dbn_when_mbp1_then_its_trades_equal_the_trades_file() -> None:
    mbp1 = read_dbn(shared_file(
        "nautilus/databento/futures_mbp-1_2024-07-01T23-58_2024-07-02T00-02.dbn.zst"))
    trades = read_dbn(shared_file(
        "nautilus/databento/futures_trades_2024-07-01T23-58_2024-07-02T00-02.dbn.zst"))
    assert mbp1["quotes"].height == 2_288
    assert_frame_equal(mbp1["trades"], trades["trades"])
    quotes = mbp1["quotes"]
    assert (quotes["bid_px"] < quotes["ask_px"]).all()


def test_read_dbn_when_ohlcv_1m_then_minute_bars_of_two_instruments() -> None:
    bars = read_dbn(shared_file(
        "nautilus/databento/futures_ohlcv-1m_2024-07-01T23-40_2024-07-02T00-10.dbn.zst"))["bars"]
    assert bars.height == 60
    assert bars["instrument"].n_unique() == 2
    assert bars["bar_length"].unique().to_list() == [timedelta(minutes=1)]
    assert (bars["low"] <= bars["high"]).all()


# ---- generated fixtures (databento_dbn metadata + numpy records) ----

def _mbo_records(n: int) -> Any:
    dtype = np.dtype(dbn.MBOMsg._dtypes)
    rec = np.zeros(n, dtype=dtype)
    rec["length"] = dtype.itemsize // 4
    rec["rtype"] = 160
    rec["publisher_id"] = 1
    rec["instrument_id"] = 42
    rec["ts_event"] = 1_700_000_000_000_000_000 + np.arange(n)
    rec["ts_recv"] = rec["ts_event"] + 1_000
    rec["order_id"] = np.arange(1, n + 1)
    rec["price"] = 4_500_250_000_000  # 4500.25
    rec["size"] = 3
    rec["action"] = b"A"
    rec["side"] = b"B"
    rec["flags"] = 0x80
    rec["sequence"] = np.arange(n)
    return rec


def _write(path: Path, records: Any, schema: Any = dbn.Schema.MBO, *, ts_out: bool = False,
           compress: bool = False) -> Path:
    metadata = dbn.Metadata(dataset="GLBX.MDP3", schema=schema, start=0,
                            stype_in=dbn.SType.RAW_SYMBOL, stype_out=dbn.SType.INSTRUMENT_ID,
                            end=2**62, ts_out=ts_out)
    data = metadata.encode() + records.tobytes()
    path.write_bytes(zstandard.ZstdCompressor().compress(data) if compress else data)
    return path


def test_read_dbn_when_generated_mbo_then_values_decoded(tmp_path: Path) -> None:
    rec = _mbo_records(4)
    rec["action"] = [b"R", b"A", b"T", b"N"]
    rec["side"] = [b"N", b"A", b"B", b"N"]
    rec["price"][0] = UNDEF_PRICE
    rec["flags"][:2] = 0x80 | 0x20  # a snapshot: its clear and one add
    tables = read_dbn(_write(tmp_path / "g.dbn", rec))
    events = tables["events"]
    assert events["action"].to_list() == ["clear", "add", "trade"]  # N: no book action
    assert events["price"].to_list() == [None, 4500.25, 4500.25]
    assert events["instrument"].to_list() == ["42"] * 3  # no symbology: the instrument_id
    # the clear is not a snapshot record, though it carries the flag
    assert tables.counters == {"records": 4, "no_action_records": 1, "snapshot_records": 1,
                               "clears": 1}
    assert tables["trades"]["side"].to_list() == [1]


def test_read_dbn_when_ts_out_then_records_still_decode(tmp_path: Path) -> None:
    rec = _mbo_records(3)
    dtype = np.dtype([*dbn.MBOMsg._dtypes, ("ts_out", "u8")])
    with_out = np.zeros(3, dtype=dtype)
    for name in rec.dtype.names:
        with_out[name] = rec[name]
    with_out["length"] = dtype.itemsize // 4
    tables = read_dbn(_write(tmp_path / "o.dbn", with_out, ts_out=True))
    assert tables["events"]["order_id"].to_list() == [1, 2, 3]


def test_read_dbn_when_truncated_then_names_record(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.dbn", _mbo_records(5))
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(InputError, match=r"t\.dbn, row 5: expected a complete 56-byte mbo"):
        read_dbn(path)


def test_read_dbn_when_compressed_stream_truncated_then_input_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.dbn.zst", _mbo_records(500), compress=True)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(InputError, match=r"t\.dbn\.zst.*truncated"):
        read_dbn(path)


def test_read_dbn_when_corrupt_header_then_input_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "h.dbn", _mbo_records(2))
    data = bytearray(path.read_bytes())
    data[8:24] = b"\xff" * 16  # the dataset name and schema: garbage
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"h\.dbn, field 'metadata'"):
        read_dbn(path)


def test_read_dbn_when_header_length_beyond_file_then_input_error(tmp_path: Path) -> None:
    path = tmp_path / "short.dbn"
    path.write_bytes(b"DBN\x03" + (10_000).to_bytes(4, "little") + b"\x00" * 20)
    with pytest.raises(InputError, match="complete metadata header"):
        read_dbn(path)


@pytest.mark.parametrize("content", [b"DBN", b"DBN\x03", b"DBN\x03\x10\x00"])
def test_read_dbn_when_only_magic_bytes_then_truncated_not_version(
        tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "magic.dbn"
    path.write_bytes(content)
    with pytest.raises(InputError, match=r"magic\.dbn, field 'metadata': expected a complete "
                       r"metadata header \(the file is truncated"):
        read_dbn(path)


def test_read_dbn_when_unknown_version_then_unsupported(tmp_path: Path) -> None:
    path = _write(tmp_path / "v.dbn", _mbo_records(2))
    path.write_bytes(b"DBN\x09" + path.read_bytes()[4:])
    with pytest.raises(UnsupportedFormatError, match="DBN version 9"):
        read_dbn(path)


def test_read_dbn_when_corrupt_record_type_then_names_record_and_field(tmp_path: Path) -> None:
    rec = _mbo_records(4)
    rec["rtype"][2] = 7
    with pytest.raises(InputError, match=r"row 3, field 'rtype'.*corrupt"):
        read_dbn(_write(tmp_path / "c.dbn", rec))


def test_read_dbn_when_ts_recv_out_of_order_then_names_record(tmp_path: Path) -> None:
    rec = _mbo_records(4)
    rec["ts_recv"][3] = rec["ts_recv"][1]
    with pytest.raises(InputError, match=r"row 4, field 'ts_recv'"):
        read_dbn(_write(tmp_path / "o.dbn", rec))


def test_read_dbn_when_zero_price_on_add_then_input_error(tmp_path: Path) -> None:
    rec = _mbo_records(3)
    rec["price"][1] = 0
    with pytest.raises(InputError, match=r"row 2, field 'price': expected a positive number"):
        read_dbn(_write(tmp_path / "z.dbn", rec))


def test_read_dbn_when_undefined_price_on_add_then_input_error(tmp_path: Path) -> None:
    rec = _mbo_records(3)
    rec["price"][2] = UNDEF_PRICE
    with pytest.raises(InputError, match=r"row 3, field 'price'"):
        read_dbn(_write(tmp_path / "u.dbn", rec))


def test_read_dbn_when_unknown_action_then_input_error(tmp_path: Path) -> None:
    rec = _mbo_records(3)
    rec["action"][1] = b"X"
    with pytest.raises(InputError, match=r"row 2, field 'action'.*'X'"):
        read_dbn(_write(tmp_path / "a.dbn", rec))


def test_read_dbn_when_metadata_only_then_empty_file_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="0 records"):
        read_dbn(_write(tmp_path / "e.dbn", _mbo_records(0)))


def test_read_dbn_when_mbp1_empty_side_then_null_not_zero(tmp_path: Path) -> None:
    dtype = np.dtype(dbn.MBP1Msg._dtypes)
    rec = np.zeros(2, dtype=dtype)
    rec["length"], rec["rtype"] = dtype.itemsize // 4, 1
    rec["ts_event"] = [10, 20]
    rec["ts_recv"] = [11, 21]
    rec["price"], rec["size"] = 5_000_000_000, 1
    rec["action"], rec["side"] = [b"A", b"T"], [b"B", b"A"]
    rec["bid_px_00"], rec["bid_sz_00"] = 5_000_000_000, 7
    rec["ask_px_00"], rec["ask_sz_00"] = UNDEF_PRICE, 0
    tables = read_dbn(_write(tmp_path / "m.dbn", rec, dbn.Schema.MBP_1))
    quotes = tables["quotes"]
    assert quotes["bid_px"].to_list() == [5.0, 5.0]
    assert quotes["ask_px"].null_count() == 2 and quotes["ask_sz"].null_count() == 2
    assert tables["trades"]["side"].to_list() == [-1]


def test_read_when_dbz_content_forced_as_dbn_then_unsupported(tmp_path: Path) -> None:
    source = shared_file("databento_fixtures/dbn/test_data.mbo.dbz")
    renamed = tmp_path / "mystery.bin"
    renamed.write_bytes(source.read_bytes())
    with pytest.raises(UnsupportedFormatError, match="legacy DBZ"):
        read(renamed, format="dbn")


def test_read_when_dbn_file_then_detected_and_read() -> None:
    path = shared_file("databento_fixtures/dbn/test_data.mbo.v3.dbn")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tables = read(path)
    assert tables.format == "dbn"
    assert tables["events"].height == 2
