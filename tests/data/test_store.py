"""The partitioned Parquet store: round trip, layout, manifest, conflicts and atomicity."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tapecast.core.errors import TapecastError
from tapecast.data import store as store_module
from tapecast.data.schemas import EVENTS, TRADES, conform, levels_schema
from tapecast.data.store import MANIFEST, Store, write_store
from tapecast.data.tables import Tables
from tests.conftest import shared_file

DAY1 = datetime(2024, 1, 2, 23, 59, 59, tzinfo=UTC)
NS = 1_000_000_000


def _ts(values_ns: list[int]) -> pl.Series:
    base = int(DAY1.timestamp()) * NS
    return pl.Series([base + v for v in values_ns]).cast(pl.Datetime("ns", "UTC"))


def make_trades(instruments: list[str | None], offsets_s: list[float]) -> pl.DataFrame:
    n = len(offsets_s)
    frame = pl.DataFrame({
        "ts": _ts([int(o * NS) + 1 for o in offsets_s]),
        "instrument": instruments,
        "price": [100.0 + i * 0.25 for i in range(n)],
        "size": [1.5 + i for i in range(n)],
        "side": pl.Series([1, -1, 0][i % 3] for i in range(n)).cast(pl.Int8),
        "side_source": pl.Series(["exchange", "tick_rule", None][i % 3] for i in range(n)),
        "exchange": ["Q", None] * (n // 2) + ["Q"] * (n % 2),
        "suspicious": [False, True, None][:1] * n,
    })
    return conform(frame, "trades")


def make_events(instrument: str, n: int) -> pl.DataFrame:
    """A tiny valid MBO stream: adds, then a cancel, a trade; crosses midnight (two dates)."""
    actions = (["add", "add", "cancel", "trade"] * n)[:n]
    frame = pl.DataFrame({
        "ts_event": _ts([i * 400_000_000 for i in range(n)]),
        "ts_recv": _ts([i * 400_000_000 + 7 for i in range(n)]),
        "instrument": [instrument] * n,
        "action": actions,
        "side": (["bid", "ask", "bid", "none"] * n)[:n],
        "price": [10.0 + (i % 4) * 0.01 for i in range(n)],
        "size": [(i % 5) + 1 for i in range(n)],
        "order_id": pl.Series(range(1, n + 1), dtype=pl.UInt64),
        "flags": pl.Series([None if i % 2 else 128 for i in range(n)], dtype=pl.UInt8),
        "sequence": list(range(n)),
    })
    return conform(frame, "events")


def make_levels(n_levels: int, n: int) -> pl.DataFrame:
    cols: dict[str, object] = {"ts": _ts([i * NS for i in range(n)]), "instrument": ["X"] * n}
    for i in range(1, n_levels + 1):
        cols[f"ask_px_{i}"] = [10.0 + i / 100] * (n - 1) + [None]
        cols[f"ask_sz_{i}"] = [i] * (n - 1) + [None]
        cols[f"bid_px_{i}"] = [10.0 - i / 100] * n
        cols[f"bid_sz_{i}"] = [2 * i] * n
    return conform(pl.DataFrame(cols), "levels")


def _fingerprint(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def sample() -> Tables:
    trades = make_trades(["B/USD", "A", "B/USD", "A", "A"], [0.0, 0.5, 0.7, 1.0, 3.0])
    events = pl.concat([make_events("ESH4", 6), make_events("ESM4", 4)])
    return Tables(source="synthetic.csv", format="csv", trades=trades, events=events,
                  levels=make_levels(2, 3), counters={"rows_rejected": 0, "dropped": 2})


def test_write_store_when_round_trip_rows_and_dtypes_unchanged(sample: Tables,
                                                                 tmp_path: Path) -> None:
    store = write_store(sample, tmp_path / "st")
    for name, frame in sample.items():
        back = store.read(name)
        assert back.schema == frame.schema
        # rows come back grouped by instrument (store order), each instrument in input order
        assert_frame_equal(back, frame.sort("instrument", maintain_order=True))


def test_write_store_when_written_is_hive_partitioned_by_utc_date(sample: Tables,
                                                                   tmp_path: Path) -> None:
    root = tmp_path / "st"
    write_store(sample, root)
    assert (root / "trades" / "instrument=B%2FUSD" / "date=2024-01-02" / "part-00000.parquet"
            ).is_file()
    hive = pl.scan_parquet(root / "events", hive_partitioning=True).collect()
    assert hive.height == sample["events"].height
    assert (hive["date"] == hive["ts_event"].dt.date()).all()
    assert set(hive["date"].cast(pl.String)) == {"2024-01-02", "2024-01-03"}


def test_write_store_when_instrument_null_uses_default_partition(tmp_path: Path) -> None:
    trades = make_trades([None, None], [0.0, 1.0])
    store = write_store(Tables("t.csv", "csv", trades=trades), tmp_path / "st")
    assert (tmp_path / "st/trades/instrument=__HIVE_DEFAULT_PARTITION__").is_dir()
    assert_frame_equal(store.read("trades"), trades)
    assert store.summary()["tables"]["trades"]["instruments"]["null"]["rows"] == 2


def test_store_open_when_only_manifest_present_summarizes(sample: Tables, tmp_path: Path) -> None:
    root = tmp_path / "st"
    summary = write_store(sample, root).summary()
    for part in root.rglob("*.parquet"):
        part.unlink()  # open + summary must not touch the data files
    again = Store.open(root).summary()
    assert again == summary
    assert summary["tables"]["trades"]["instruments"]["A"]["dates"] == {
        "2024-01-02": 1, "2024-01-03": 2}
    assert summary["rows_rejected"] == 0
    assert summary["counters"] == {"dropped": 2}
    assert summary["tables"]["events"]["rows"] == 10


def test_store_open_when_a_swap_stopped_between_its_renames_recovers_the_old_store(
        sample: Tables, tmp_path: Path) -> None:
    root = tmp_path / "st"
    summary = write_store(sample, root).summary()
    root.rename(root.with_name(f".{root.name}.4242.old"))  # crash between the two renames
    assert Store.open(root).summary() == summary and root.is_dir()


def test_store_scan_when_filtered_by_instrument_and_time_matches_polars_filter(
        sample: Tables, tmp_path: Path) -> None:
    store = write_store(sample, tmp_path / "st")
    start, end = "2024-01-02T23:59:59.5", datetime(2024, 1, 3, 0, 0, 1, tzinfo=UTC)
    got = store.read("trades", instrument="A", start=start, end=end)
    lo = datetime(2024, 1, 2, 23, 59, 59, 500000, tzinfo=UTC)
    expected = sample["trades"].filter((pl.col("instrument") == "A") & (pl.col("ts") >= lo)
                                       & (pl.col("ts") < end))
    assert got.height == 2
    assert_frame_equal(got, expected)
    assert store.read("trades", instrument=["nope"]).height == 0
    assert store.read("trades", instrument="nope").schema == TRADES


def test_store_scan_when_table_absent_raises_naming_tables(sample: Tables, tmp_path: Path) -> None:
    store = write_store(sample, tmp_path / "st")
    with pytest.raises(TapecastError, match=r"no table 'quotes'.*events, trades, levels"):
        store.scan("quotes")
    with pytest.raises(TapecastError, match="start: expected an ISO-8601 time"):
        store.scan("trades", start="yesterday")


def test_write_store_when_partition_held_errors_and_keeps_store(sample: Tables,
                                                                 tmp_path: Path) -> None:
    root = tmp_path / "st"
    write_store(sample, root)
    before = _fingerprint(root)
    with pytest.raises(TapecastError, match=r"already holds .* partitions"):
        write_store(sample, root)
    assert _fingerprint(root) == before


def test_write_store_when_replace_swaps_only_held_partitions(sample: Tables,
                                                              tmp_path: Path) -> None:
    root = tmp_path / "st"
    write_store(sample, root)
    new = make_trades(["A"], [0.25])  # lands in (trades, A, 2024-01-02) only
    store = write_store(Tables("new.csv", "csv", trades=new), root, on_conflict="replace")
    a = store.read("trades", instrument="A")
    old_a = sample["trades"].filter(pl.col("instrument") == "A")
    assert_frame_equal(a, pl.concat([new, old_a.filter(pl.col("ts").dt.day() == 3)]))
    assert_frame_equal(store.read("events"), sample["events"])
    assert [s["source"] for s in store.manifest["sources"]] == ["synthetic.csv", "new.csv"]


def test_write_store_when_append_adds_part_file_after_held_rows(sample: Tables,
                                                                 tmp_path: Path) -> None:
    root = tmp_path / "st"
    write_store(sample, root)
    store = write_store(sample, root, on_conflict="append")
    events = store.read("events", instrument="ESM4")
    once = sample["events"].filter(pl.col("instrument") == "ESM4")
    by_day = pl.concat([once, once]).sort(pl.col("ts_event").dt.date(), maintain_order=True)
    assert_frame_equal(events, by_day)  # per date partition: held rows, then the new ones
    part = store.partitions("events")[0]
    assert part.files == ("part-00000.parquet", "part-00001.parquet")
    assert part.rows == 2 * sample["events"].filter(
        (pl.col("instrument") == "ESH4") & (pl.col("ts_event").dt.day() == 2)).height


def test_write_store_when_failing_mid_write_leaves_old_store_intact(
        sample: Tables, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "st"
    write_store(sample, root)
    before = _fingerprint(root)
    real = store_module._write_partition
    calls = []

    def flaky(*args: object, **kwargs: object) -> store_module.Partition:
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full (injected)")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store_module, "_write_partition", flaky)
    more = make_trades(["C", "C", "D"], [0.0, 2.0, 0.0])
    with pytest.raises(OSError, match="injected"):
        write_store([sample, Tables("more.csv", "csv", trades=more)], root, on_conflict="replace")
    assert len(calls) == 3
    assert _fingerprint(root) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["st"]  # no staging leftovers
    assert_frame_equal(Store.open(root).read("levels"), sample["levels"])


def test_write_store_when_new_store_fails_leaves_nothing(
        sample: Tables, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("injected")

    monkeypatch.setattr(store_module, "_finish_manifest", boom)
    with pytest.raises(RuntimeError):
        write_store(sample, tmp_path / "st")
    assert list(tmp_path.iterdir()) == []


def test_write_store_when_levels_depths_differ_raises(tmp_path: Path) -> None:
    a = Tables("a", "lobster", levels=make_levels(1, 2))
    b = Tables("b", "lobster", levels=make_levels(3, 2))
    with pytest.raises(TapecastError, match="a has 1 book levels, b has 3"):
        write_store([a, b], tmp_path / "st")
    store = write_store(a, tmp_path / "st")
    assert store.schema("levels") == levels_schema(1)
    with pytest.raises(TapecastError, match="has 1 book levels, the new one 3"):
        write_store(b, tmp_path / "st", on_conflict="append")


def test_write_store_when_timestamp_null_raises_naming_row(tmp_path: Path) -> None:
    events = make_events("X", 3).with_columns(
        pl.when(pl.int_range(pl.len()) == 1).then(None).otherwise(pl.col("ts_event"))
        .alias("ts_event"))
    with pytest.raises(TapecastError, match=r"e\.csv: table 'events', row 2, field 'ts_event'"):
        write_store(Tables("e.csv", "csv", events=events), tmp_path / "st")
    assert not (tmp_path / "st").exists()


def test_write_store_when_frame_does_not_fit_schema_raises(tmp_path: Path) -> None:
    bad = pl.DataFrame({"ts": ["not a time"], "price": [1.0], "size": [1.0]})
    with pytest.raises(TapecastError, match="table 'trades' does not fit the canonical schema"):
        write_store(Tables("x.csv", "csv", trades=bad), tmp_path / "st")


def test_write_store_when_out_is_foreign_folder_refuses(sample: Tables, tmp_path: Path) -> None:
    (tmp_path / "st").mkdir()
    (tmp_path / "st" / "notes.txt").write_text("mine")
    with pytest.raises(TapecastError, match="not a tapecast store"):
        write_store(sample, tmp_path / "st")
    assert (tmp_path / "st" / "notes.txt").read_text() == "mine"


def test_store_open_when_manifest_bad_raises(tmp_path: Path, sample: Tables) -> None:
    with pytest.raises(TapecastError, match=r"no store\.json"):
        Store.open(tmp_path)
    root = tmp_path / "st"
    write_store(sample, root)
    manifest = json.loads((root / MANIFEST).read_text())
    manifest["schema_version"] = 99
    (root / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(TapecastError, match="'schema_version': expected 1, got 99"):
        Store.open(root)
    (root / MANIFEST).write_text("{not json")
    with pytest.raises(TapecastError, match="readable JSON manifest"):
        Store.open(root)


def test_store_ingest_when_real_lobster_round_trips(tmp_path: Path) -> None:
    from tapecast.data import read

    tables = read(shared_file("lobster/LOBSTER_SampleFile_AMZN_2012-06-21_1.zip"))
    store = Store.ingest(tables, tmp_path / "st")
    for name, frame in tables.items():
        assert_frame_equal(store.read(name), frame)
    assert store.read("events").schema == EVENTS
    assert store.summary()["tables"]["events"]["instruments"]["AMZN"]["dates"] == {
        "2012-06-21": tables["events"].height}
