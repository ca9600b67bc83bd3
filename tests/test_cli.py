"""The command line: ingest, inspect, book, formats; exit codes and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

import tapecast.data
from tapecast.cli import app, expand_sources
from tapecast.core.errors import InputError
from tapecast.data.detect import FORMATS
from tapecast.data.schemas import levels_schema
from tapecast.data.store import Store
from tapecast.data.tables import Tables
from tests.conftest import shared_file
from tests.data.test_store import make_events, make_trades

runner = CliRunner()
TAPECAST = Path(sys.executable).parent / "tapecast"
HEADER = "timestamp,symbol,price,size,side\n"


def _csv(path: Path, rows: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + "".join(r + "\n" for r in rows))
    return path


@pytest.fixture
def sources(tmp_path: Path) -> Path:
    """A folder of two generic trade CSVs, a README and a listing (both skipped)."""
    folder = tmp_path / "in"
    _csv(folder / "a.csv", ["2024-01-02T10:00:00Z,AAA,10.5,2,buy",
                            "2024-01-03T10:00:01Z,AAA,10.6,1,sell"])
    _csv(folder / "sub" / "b.csv", ["2024-01-02T11:00:00Z,BBB,20.0,5,sell"])
    (folder / "README.md").write_text("# notes\n")
    (folder / "sub" / "MANIFEST.tsv").write_text("a\tb\n")
    return folder


def _invoke(*args: str | Path) -> Any:
    return runner.invoke(app, [str(a) for a in args])


def test_ingest_when_folder_given_writes_store_and_json_summary(sources: Path,
                                                                 tmp_path: Path) -> None:
    out = tmp_path / "st"
    result = _invoke("ingest", sources, "--out", out, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [Path(f).name for f in report["ingest"]["files"]] == ["a.csv", "b.csv"]
    assert {Path(s["path"]).name for s in report["ingest"]["skipped"]} == {"README.md",
                                                                          "MANIFEST.tsv"}
    assert report["ingest"]["rows"] == {"trades": 3}
    trades = report["store"]["tables"]["trades"]
    assert trades["instruments"]["AAA"]["dates"] == {"2024-01-02": 1, "2024-01-03": 1}
    assert trades["start"] == "2024-01-02T10:00:00.000000000Z"
    assert report["store"]["rows_rejected"] == 0
    assert Store.open(out).read("trades")["price"].to_list() == [10.5, 10.6, 20.0]


def test_inspect_when_store_ingested_equals_ingest_summary(sources: Path, tmp_path: Path) -> None:
    out = tmp_path / "st"
    ingested = json.loads(_invoke("ingest", sources, "--out", out, "--json").stdout)
    inspected = _invoke("inspect", out, "--json")
    assert inspected.exit_code == 0
    assert json.loads(inspected.stdout) == ingested["store"]


def test_ingest_when_human_output_prints_rich_summary(sources: Path, tmp_path: Path) -> None:
    result = _invoke("ingest", sources, "--out", tmp_path / "st")
    assert result.exit_code == 0
    text_out = " ".join(result.stdout.split())
    for text in ("ingested 2 file(s)", "3 trades", "rows per table, instrument and date",
                 "2024-01-03", "BBB", "rows rejected: 0", "skipped", "README.md"):
        assert text in text_out
    inspected = _invoke("inspect", tmp_path / "st")
    assert "rows per table, instrument and date" in inspected.stdout


def test_ingest_when_one_file_bad_exits_2_and_writes_nothing(sources: Path,
                                                              tmp_path: Path) -> None:
    bad = _csv(sources / "zz_bad.csv", ["2024-01-02T10:00:00Z,CCC,10.0,1,buy",
                                        "2024-01-02T10:00:02Z,CCC,-3.0,1,buy"])
    out = tmp_path / "st"
    result = _invoke("ingest", sources, "--out", out)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1  # one line
    assert f"{bad}, row 2, field 'price': expected a positive number" in result.stderr
    assert "Traceback" not in result.output
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_ingest_when_partition_held_exits_2_and_keeps_store(sources: Path,
                                                             tmp_path: Path) -> None:
    out = tmp_path / "st"
    _invoke("ingest", sources, "--out", out)
    before = (out / "store.json").read_text()
    again = _invoke("ingest", sources / "a.csv", "--out", out)
    assert again.exit_code == 2
    assert "already holds 2 of the partitions" in again.stderr
    assert (out / "store.json").read_text() == before
    replaced = _invoke("ingest", sources / "a.csv", "--out", out, "--on-conflict", "replace")
    assert replaced.exit_code == 0
    assert Store.open(out).read("trades").height == 3


def test_ingest_when_usage_wrong_exits_2(tmp_path: Path) -> None:
    assert _invoke("ingest", tmp_path).exit_code == 2  # no --out
    missing = _invoke("ingest", tmp_path / "nope.csv", "--out", tmp_path / "st")
    assert missing.exit_code == 2
    assert "nope.csv: expected an existing file or folder" in missing.stderr
    bad_choice = _invoke("ingest", tmp_path, "--out", tmp_path / "st", "--on-conflict", "x")
    assert bad_choice.exit_code == 2


def test_expand_sources_when_lobster_pair_given_reads_message_file_once(tmp_path: Path) -> None:
    msg = tmp_path / "AMZN_2012-06-21_34200000_57600000_message_1.csv"
    book = tmp_path / "AMZN_2012-06-21_34200000_57600000_orderbook_1.csv"
    for p in (msg, book):
        p.write_text("1\n")
    files, skipped = expand_sources([tmp_path, msg])
    assert files == [msg.resolve()]
    assert [r for _, r in skipped] == ["1 given twice", "read with its LOBSTER message file"]


def test_inspect_when_not_a_store_exits_2(tmp_path: Path) -> None:
    result = _invoke("inspect", tmp_path)
    assert result.exit_code == 2
    assert "not a tapecast store (no store.json)" in result.stderr


def test_formats_when_listed_names_every_format() -> None:
    result = _invoke("formats")
    assert result.exit_code == 0
    for name in FORMATS:
        assert name in result.stdout
    assert "[ts, id, null, side" in result.stdout  # Rich markup escaped


def _fake_read(tables: Tables) -> Any:
    def read(path: str | Path, format: str | None = None, **options: Any) -> Tables:
        return tables

    return read


def test_book_when_events_given_writes_one_row_per_event_in_order(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = make_events("ESH4", 6), make_events("ESM4", 5)
    events = pl.concat([a, b]).sort("ts_event", maintain_order=True)  # instruments interleaved
    monkeypatch.setattr(tapecast.data, "read", _fake_read(Tables("ev.dbn", "dbn", events=events)))
    out = tmp_path / "book.parquet"
    result = _invoke("book", "ev.dbn", "--levels", "3", "--out", out, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["rows"] == events.height
    assert report["counters"]["events"] == events.height
    book = pl.read_parquet(out)
    assert book.schema == levels_schema(3)
    assert_frame_equal(book.select("ts", "instrument"),
                       events.select(pl.col("ts_event").alias("ts"), "instrument"))
    assert book["bid_px_1"][0] == events["price"][0]  # the first add rests on the bid
    assert list(tmp_path.iterdir()) == [out]  # atomic: no temp file left


def test_book_when_source_has_no_events_exits_2(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    trades = make_trades(["A"], [0.0])
    monkeypatch.setattr(tapecast.data, "read", _fake_read(Tables("t.csv", "csv", trades=trades)))
    result = _invoke("book", "t.csv", "--out", tmp_path / "b.parquet")
    assert result.exit_code == 2
    assert "t.csv: expected an events (order-book) source" in result.stderr
    assert not (tmp_path / "b.parquet").exists()


def test_book_when_reader_fails_exits_2_with_its_message(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    def bad(path: str | Path, format: str | None = None, **options: Any) -> Tables:
        raise InputError(path, 7, "price", "a positive price", -1.0)

    monkeypatch.setattr(tapecast.data, "read", bad)
    result = _invoke("book", "x.dbn", "--out", tmp_path / "b.parquet")
    assert result.exit_code == 2
    assert "x.dbn, row 7, field 'price': expected a positive price, got -1.0" in result.stderr


def test_book_when_real_lobster_writes_one_row_per_event(tmp_path: Path) -> None:
    src = shared_file("lobster/LOBSTER_SampleFile_AMZN_2012-06-21_1.zip")
    out = tmp_path / "book.parquet"
    result = _invoke("book", src, "--levels", "1", "--out", out)
    assert result.exit_code == 0, result.output
    assert "replay counters:" in result.stdout
    book = pl.read_parquet(out)
    events = tapecast.data.read(src)["events"]
    assert book.height == events.height
    assert (book["ts"] == events["ts_event"]).all()


def test_console_script_when_input_bad_exits_2_without_traceback(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    proc = subprocess.run([str(TAPECAST), "ingest", str(empty), "--out", str(tmp_path / "st")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0
    assert "empty.csv: expected a non-empty file" in proc.stderr
    assert not (tmp_path / "st").exists()
    usage = subprocess.run([str(TAPECAST), "book"], capture_output=True, text=True, timeout=120,
                           check=False)
    assert usage.returncode == 2
    assert "Traceback" not in usage.stderr


def test_ingest_when_reader_has_a_bug_exits_1_with_one_line(
        tmp_path: Path, sources: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def buggy(path: str | Path, format: str | None = None, **options: Any) -> Tables:
        raise KeyError("price")

    monkeypatch.setattr(tapecast.data, "read", buggy)
    monkeypatch.delenv("TAPECAST_DEBUG", raising=False)
    result = _invoke("ingest", sources, "--out", tmp_path / "st")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: internal error (KeyError: 'price')")
    assert result.stderr.count("\n") == 1
    assert not (tmp_path / "st").exists()


def test_ingest_when_real_dbn_counts_match_reader(tmp_path: Path) -> None:
    src = shared_file("nautilus/databento/esh4-glbx-mdp3-20231225.mbo.dbn.zst")
    result = _invoke("ingest", src, "--out", tmp_path / "st", "--json")
    assert result.exit_code == 0, result.output
    store = json.loads(result.stdout)["store"]
    tables = tapecast.data.read(src)
    assert store["tables"]["events"]["rows"] == tables["events"].height == 68_792
    # snapshot records carry a 2023-12-24 ts_event but are received with the live events, and
    # events are partitioned by receive time: one partition holds the whole replayable day
    assert store["tables"]["events"]["instruments"]["ESH4"]["dates"] == {"2023-12-25": 68_792}
    assert_frame_equal(Store.open(tmp_path / "st").read("events"), tables["events"])


def test_ingest_when_store_inside_source_folder_does_not_read_it(sources: Path) -> None:
    out = sources / "st"
    assert _invoke("ingest", sources, "--out", out).exit_code == 0
    again = _invoke("ingest", sources, "--out", out, "--on-conflict", "replace", "--json")
    assert again.exit_code == 0, again.output
    assert [Path(f).name for f in json.loads(again.stdout)["ingest"]["files"]] == ["a.csv",
                                                                                  "b.csv"]
    assert Store.open(out).read("trades").height == 3


def test_ingest_when_generic_columns_mapped_reads_them(tmp_path: Path) -> None:
    src = tmp_path / "t.csv"
    src.write_text("sym,t,px,qty\nX,2024-01-02T10:00:00,10.5,3\nX,2024-01-02T10:00:01,10.6,1\n")
    result = _invoke("ingest", src, "--out", tmp_path / "st", "-m", "ts=t", "-m", "price=px",
                     "-m", "size=qty", "-m", "instrument=sym", "-O", "table=trades",
                     "-O", "timezone=America/New_York")
    assert result.exit_code == 0, result.output
    trades = Store.open(tmp_path / "st").read("trades")
    assert trades["price"].to_list() == [10.5, 10.6]
    assert trades["instrument"].to_list() == ["X", "X"]
    assert str(trades["ts"][0]) == "2024-01-02 15:00:00+00:00"  # 10:00 New York


@pytest.mark.parametrize(
    ("args", "message"),
    [(["-O", "bogus=1"], "format 'csv' takes no option 'bogus'"),
     (["-O", "novalue"], "--option 'novalue': expected KEY=VALUE")],
)
def test_ingest_when_reader_option_bad_exits_2_naming_it(tmp_path: Path, args: list[str],
                                                         message: str) -> None:
    src = _csv(tmp_path / "a.csv", ["2024-01-02T10:00:00Z,AAA,10.5,2,buy"])
    result = _invoke("ingest", src, "--out", tmp_path / "st", *args)
    assert result.exit_code == 2
    assert message in " ".join(result.stderr.split())
    assert not (tmp_path / "st").exists()


def test_ingest_when_events_source_counts_replay_anomalies(tmp_path: Path) -> None:
    src = shared_file("nautilus/databento/esh4-glbx-mdp3-20231225.mbo.dbn.zst")
    result = _invoke("ingest", src, "--out", tmp_path / "st", "--json")
    assert result.exit_code == 0, result.output
    counters = json.loads(result.stdout)["store"]["counters"]
    # the Globex pre-open crosses legitimately (docs/book.md): counted, not raised
    assert counters["replay_crossed_book"] == 891
    assert "replay_unknown_order" not in counters  # a full-state replay: every order known
