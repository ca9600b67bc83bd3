"""Tests of the Databento CSV reader (tapecast.data.readers.databento_csv).

The parser is proved by round trips: DBN -> the official client's ``to_csv`` (and a pandas
export of its ``to_df``) -> our CSV reader must equal our DBN reader, frame for frame.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import databento_dbn as dbn
import numpy as np
import polars as pl
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from tapecast.core.errors import InputError, TapecastError, UnsupportedFormatError
from tapecast.data.detect import detect
from tapecast.data.readers.databento_csv import read_databento_csv
from tapecast.data.readers.dbn import read_dbn
from tapecast.data.tables import Tables
from tests.conftest import shared_file

ROUND_TRIP = [f"databento_fixtures/databento-python/{d}/test_data.{s}.dbn.zst"
              for d in ("GLBX.MDP3", "IFEU.IMPACT")
              for s in ("mbo", "trades", "tbbo", "mbp-1", "mbp-10",
                        "ohlcv-1s", "ohlcv-1m", "ohlcv-1h", "ohlcv-1d")]
ROUND_TRIP += ["nautilus/databento/esh4-glbx-mdp3-20231225.mbo.dbn.zst",
               "nautilus/databento/futures_mbp-1_2024-07-01T23-58_2024-07-02T00-02.dbn.zst"]
RAW = {"pretty_px": False, "pretty_ts": False, "map_symbols": False}

HEADER = ("ts_recv,ts_event,rtype,publisher_id,instrument_id,action,side,price,size,channel_id,"
          "order_id,flags,ts_in_delta,sequence,symbol")
ROWS = [
    "2024-01-02T14:30:00.000000100Z,2024-01-02T14:30:00.000000000Z,160,1,7,R,N,,0,0,0,8,0,0,ES",
    "2024-01-02T14:30:01.000000100Z,2024-01-02T14:30:01.000000000Z,160,1,7,A,B,4500.250000000,"
    "3,0,11,130,0,1,ES",
    "2024-01-02T14:30:02.000000100Z,2024-01-02T14:30:02.000000000Z,160,1,7,A,A,4500.500000000,"
    "2,0,12,130,0,2,ES",
    "2024-01-02T14:30:03.000000100Z,2024-01-02T14:30:03.000000000Z,160,1,7,T,B,4500.500000000,"
    "1,0,0,0,0,3,ES",
]


def _store(path: Path) -> Any:
    from databento import DBNStore

    return DBNStore.from_bytes(path.read_bytes())  # from_file leaves its handle open


def _assert_same(ours: Tables, theirs: Tables, drop: tuple[str, ...] = ()) -> None:
    assert [n for n, _ in ours.items()] == [n for n, _ in theirs.items()]
    for name, frame in ours.items():
        other = theirs[name]
        cols = [c for c in drop if c in frame.columns]
        assert_frame_equal(frame.drop(cols), other.drop(cols))


def _mbo_csv(tmp_path: Path, rows: list[str], header: str = HEADER) -> Path:
    path = tmp_path / "mbo.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


@pytest.mark.parametrize("relative", ROUND_TRIP)
def test_read_databento_csv_when_client_to_csv_then_equals_dbn_reader(
        relative: str, tmp_path: Path) -> None:
    path = shared_file(relative)
    ours = read_dbn(path)
    store = _store(path)
    store.to_csv(tmp_path / "pretty.csv")
    _assert_same(ours, read_databento_csv(tmp_path / "pretty.csv"))
    store.to_csv(tmp_path / "raw.csv", **RAW)  # integer ns and 1e-9 fixed-point prices
    _assert_same(ours, read_databento_csv(tmp_path / "raw.csv"), drop=("instrument",))


@pytest.mark.parametrize("relative", ROUND_TRIP[:5] + ROUND_TRIP[-2:])
def test_read_databento_csv_when_pandas_to_df_export_then_equals_dbn_reader(
        relative: str, tmp_path: Path) -> None:
    path = shared_file(relative)
    ours = read_dbn(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # databento's own pandas deprecation warnings
        frame = _store(path).to_df()
    frame.to_csv(tmp_path / "indexed.csv")  # ts_recv, the index, written
    assert detect(tmp_path / "indexed.csv") == "databento-csv"
    _assert_same(ours, read_databento_csv(tmp_path / "indexed.csv"))
    frame.to_csv(tmp_path / "no_index.csv", index=False)  # no ts_recv column
    assert detect(tmp_path / "no_index.csv") == "databento-csv"
    _assert_same(ours, read_databento_csv(tmp_path / "no_index.csv"), drop=("ts_recv",))


def test_read_databento_csv_when_zstd_compressed_then_same_tables(tmp_path: Path) -> None:
    plain = _mbo_csv(tmp_path, ROWS)
    packed = tmp_path / "mbo.csv.zst"
    packed.write_bytes(zstandard.ZstdCompressor().compress(plain.read_bytes()))
    _assert_same(read_databento_csv(plain), read_databento_csv(packed))


def test_read_databento_csv_when_arl_mbo_then_events_open_with_clear() -> None:
    path = shared_file("blockhouse_arl/mbo.csv")
    assert detect(path) == "databento-csv"
    tables = read_databento_csv(path)
    events = tables["events"]
    assert events.height == 5886
    assert events["action"][0] == "clear"
    assert events["price"][0] is None
    assert events["instrument"].unique().to_list() == ["ARL"]
    assert tables.counters["clears"] == 1
    assert tables["trades"].height == int((events["action"] == "trade").sum())


def test_read_databento_csv_when_arl_mbp10_with_index_column_then_levels() -> None:
    path = shared_file("blockhouse_arl/mbp.csv")
    assert detect(path) == "databento-csv"
    tables = read_databento_csv(path)
    levels = tables["levels"]
    assert levels.height == 3928
    assert levels.columns[2:6] == ["ask_px_1", "ask_sz_1", "bid_px_1", "bid_sz_1"]
    # second row: one bid at 5.51 x 100, no ask: the empty side is null, not 0
    assert levels.row(1, named=True)["bid_px_1"] == 5.51
    assert levels.row(1, named=True)["ask_sz_1"] is None
    quotes = tables["quotes"]
    empty_ask = quotes.filter(pl.col("ask_px").is_null())
    assert empty_ask["ask_sz"].null_count() == empty_ask.height > 0


# ---- bad input: InputError naming file, 1-based row and field ----

def _replace(row: int, field: str, value: str) -> list[str]:
    rows = list(ROWS)
    cells = rows[row - 1].split(",")
    cells[HEADER.split(",").index(field)] = value
    rows[row - 1] = ",".join(cells)
    return rows


@pytest.mark.parametrize(("row", "field", "value", "message"), [
    (2, "ts_event", "2024-13-45 99:00", "a UTC timestamp"),
    (3, "ts_recv", "yesterday", "a UTC timestamp"),
    (2, "price", "NaN", "a finite number"),
    (3, "price", "-4500.5", "a positive number"),
    (2, "price", "0.000000000", "a positive number"),  # zero price on an add
    (2, "price", "abc", "a decimal price"),
    (3, "size", "-2", "a non-negative number"),
    (3, "size", "1.5", "an integer"),
    (2, "order_id", "-1", "an integer"),
    (2, "flags", "300", "an integer"),
    (2, "action", "X", "one of A, C, M, T, F, R, N"),
    (3, "side", "Q", "one of B, A, N"),
    (4, "ts_recv", "2024-01-02T14:30:00.000000000Z", "ts_recv not decreasing"),
    (3, "rtype", "10", "one record type per file"),
])
def test_read_databento_csv_when_bad_value_then_names_row_and_field(
        tmp_path: Path, row: int, field: str, value: str, message: str) -> None:
    path = _mbo_csv(tmp_path, _replace(row, field, value))
    with pytest.raises(InputError, match=rf"mbo\.csv, row {row}, field '{field}': .*{message}"):
        read_databento_csv(path)


def test_read_databento_csv_when_column_missing_then_names_field(tmp_path: Path) -> None:
    header = HEADER.replace(",price", "")
    rows = [",".join(c for i, c in enumerate(r.split(",")) if i != 7) for r in ROWS]
    with pytest.raises(InputError, match=r"mbo\.csv, field 'price': expected a column 'price'"):
        read_databento_csv(_mbo_csv(tmp_path, rows, header))


@pytest.mark.parametrize(("row", "line", "n_fields"), [
    (3, ROWS[2] + ",extra,fields", 17),
    (4, ROWS[3].removesuffix(",ES"), 14),  # the symbol missing: never the instrument_id
    (2, "", 1),  # a blank line is a row of one empty field
])
def test_read_databento_csv_when_wrong_field_count_then_names_row(
        tmp_path: Path, row: int, line: str, n_fields: int) -> None:
    rows = list(ROWS)
    rows[row - 1] = line
    with pytest.raises(InputError, match=rf"mbo\.csv, row {row}: expected 15 comma-separated "
                       rf"fields, as in the header.*'{n_fields} fields'"):
        read_databento_csv(_mbo_csv(tmp_path, rows))


def test_read_databento_csv_when_short_last_row_without_newline_then_names_row(
        tmp_path: Path) -> None:
    path = tmp_path / "mbo.csv"
    path.write_text("\n".join([HEADER, *ROWS[:3], ROWS[3].removesuffix(",ES")]))
    with pytest.raises(InputError, match=r"mbo\.csv, row 4: expected 15 .*'14 fields'"):
        read_databento_csv(path)


def test_read_databento_csv_when_quoted_commas_then_not_ragged(tmp_path: Path) -> None:
    rows = [r.removesuffix(",ES") + ',"E,S ""x"""' for r in ROWS]
    tables = read_databento_csv(_mbo_csv(tmp_path, rows))
    assert tables["events"]["instrument"].unique().to_list() == ['E,S "x"']


def test_read_databento_csv_when_quoted_field_short_row_then_names_row(tmp_path: Path) -> None:
    rows = [r.removesuffix(",ES") + ',"E,S"' for r in ROWS]
    rows[1] = rows[1].replace(",130,", ",", 1)
    with pytest.raises(InputError, match=r"mbo\.csv, row 2: expected 15 .*'14 fields'"):
        read_databento_csv(_mbo_csv(tmp_path, rows))


@pytest.mark.parametrize(("row", "where"), [(3, "row 3"), (0, "field 'header'")])
def test_read_databento_csv_when_invalid_utf8_then_input_error(
        tmp_path: Path, row: int, where: str) -> None:
    lines = [line.encode() for line in (HEADER, *ROWS)]
    lines[row] = lines[row].replace(b"s", b"\xff", 1).replace(b"ES", b"E\xff")
    path = tmp_path / "mbo.csv"
    path.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(InputError, match=rf"mbo\.csv, {where}: expected UTF-8 text"):
        read_databento_csv(path)


@pytest.mark.parametrize("content", [b"", b"\n\n", (HEADER + "\n").encode()])
def test_read_databento_csv_when_empty_then_input_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    with pytest.raises(InputError, match=r"empty\.csv.*(empty|only a header)"):
        read_databento_csv(path)


def test_read_databento_csv_when_unsupported_rtype_then_unsupported(tmp_path: Path) -> None:
    rows = [r.replace(",160,", ",19,") for r in ROWS]  # 19: instrument definitions
    with pytest.raises(UnsupportedFormatError, match="rtype=19"):
        read_databento_csv(_mbo_csv(tmp_path, rows))


def test_read_databento_csv_when_no_ts_recv_then_order_not_checked(tmp_path: Path) -> None:
    header = HEADER.removeprefix("ts_recv,")
    rows = [r.split(",", 1)[1] for r in ROWS]
    events = read_databento_csv(_mbo_csv(tmp_path, rows, header))["events"]
    assert events["ts_recv"].null_count() == 4
    assert events["action"].to_list() == ["clear", "add", "add", "trade"]


# ---- property-based: random valid records round-trip, random corruption raises cleanly ----

@st.composite
def mbo_records(draw: st.DrawFn) -> Any:
    n = draw(st.integers(1, 12))
    dtype = np.dtype(dbn.MBOMsg._dtypes)
    rec = np.zeros(n, dtype=dtype)
    rec["length"], rec["rtype"], rec["publisher_id"] = dtype.itemsize // 4, 160, 1
    rec["instrument_id"] = draw(st.integers(1, 2**32 - 1))
    gaps = draw(st.lists(st.integers(0, 10**12), min_size=n, max_size=n))
    rec["ts_recv"] = 1_600_000_000_000_000_000 + np.cumsum(gaps)
    rec["ts_event"] = rec["ts_recv"] - draw(st.integers(0, 10**9))
    rec["action"] = draw(st.lists(st.sampled_from([b"A", b"C", b"M", b"T", b"F"]),
                                  min_size=n, max_size=n))
    rec["side"] = draw(st.lists(st.sampled_from([b"B", b"A", b"N"]), min_size=n, max_size=n))
    rec["price"] = draw(st.lists(st.integers(1, 10**15), min_size=n, max_size=n))
    rec["size"] = draw(st.lists(st.integers(1, 2**32 - 1), min_size=n, max_size=n))
    rec["order_id"] = draw(st.lists(st.integers(0, 2**64 - 1), min_size=n, max_size=n))
    rec["flags"] = draw(st.lists(st.integers(0, 255), min_size=n, max_size=n))
    rec["sequence"] = draw(st.lists(st.integers(0, 2**32 - 1), min_size=n, max_size=n))
    return rec


def _write_dbn(path: Path, rec: Any) -> Path:
    metadata = dbn.Metadata(dataset="XNAS.ITCH", schema=dbn.Schema.MBO, start=0,
                            stype_in=dbn.SType.RAW_SYMBOL, stype_out=dbn.SType.INSTRUMENT_ID,
                            end=2**62)
    path.write_bytes(metadata.encode() + rec.tobytes())
    return path


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rec=mbo_records(), pretty=st.booleans())
def test_read_databento_csv_when_random_valid_records_then_round_trip(
        tmp_path: Path, rec: Any, pretty: bool) -> None:
    path = _write_dbn(tmp_path / "r.dbn", rec)
    csv = tmp_path / "r.csv"
    _store(path).to_csv(csv, pretty_px=pretty, pretty_ts=pretty)
    _assert_same(read_dbn(path), read_databento_csv(csv))


CORRUPTIONS = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["NaN", "-1", "inf", "", "1e999", "0", "18446744073709551616", "\x00",
                     "2024-02-30T00:00:00Z", "\"", ",", "é", "9223372036854775807"]),
)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(row=st.integers(1, len(ROWS)), column=st.integers(0, len(HEADER.split(",")) - 1),
       value=CORRUPTIONS)
def test_read_databento_csv_when_random_field_corrupted_then_only_tapecast_errors(
        tmp_path: Path, row: int, column: int, value: str) -> None:
    field = HEADER.split(",")[column]
    path = _mbo_csv(tmp_path, _replace(row, field, value))
    try:
        read_databento_csv(path)
    except TapecastError as exc:
        assert "mbo.csv" in str(exc)
        assert "\n" not in str(exc)


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(1, 400), junk=st.binary(max_size=20))
def test_read_databento_csv_when_bytes_mangled_then_only_tapecast_errors(
        tmp_path: Path, cut: int, junk: bytes) -> None:
    data = _mbo_csv(tmp_path, ROWS).read_bytes()
    path = tmp_path / "mangled.csv"
    path.write_bytes(data[:cut] + junk + data[cut + len(junk):])
    try:
        read_databento_csv(path)
    except TapecastError as exc:
        assert "mangled.csv" in str(exc)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(row=st.integers(1, len(ROWS)),
       field=st.sampled_from(["ts_event", "size", "order_id", "flags", "sequence",
                              "instrument_id"]),
       value=st.text(alphabet="abcxyz!?", min_size=1, max_size=6))
def test_read_databento_csv_when_non_numeric_field_then_input_error_names_it(
        tmp_path: Path, row: int, field: str, value: str) -> None:
    path = _mbo_csv(tmp_path, _replace(row, field, value))
    with pytest.raises(InputError, match=rf"row {row}, field '{field}'"):
        read_databento_csv(path)


def test_read_databento_csv_when_one_ts_recv_empty_then_names_row(tmp_path: Path) -> None:
    path = _mbo_csv(tmp_path, _replace(3, "ts_recv", ""))
    with pytest.raises(InputError, match=r"row 3, field 'ts_recv'"):
        read_databento_csv(path)


def test_read_databento_csv_when_deep_level_nan_then_names_row_and_field(tmp_path: Path) -> None:
    source = shared_file("blockhouse_arl/mbp.csv")
    lines = source.read_text().splitlines()[:6]
    header = lines[0].split(",")
    cells = lines[5].split(",")
    cells[header.index("ask_px_04")] = "NaN"
    lines[5] = ",".join(cells)
    path = tmp_path / "mbp.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"mbp\.csv, row 5, field 'ask_px_5': expected a finite"):
        read_databento_csv(path)
