"""write_mbo_csv: canonical events → Databento MBO CSV → the same events and trades."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from tapecast.core.errors import TapecastError
from tapecast.data.detect import read
from tapecast.data.schemas import conform
from tapecast.data.writers import write_mbo_csv
from tests.conftest import SHARED_DATA

ES = SHARED_DATA / "nautilus" / "databento" / "esh4-glbx-mdp3-20231225.mbo.dbn.zst"
T0 = 1_700_000_000_000_000_123


def _events() -> pl.DataFrame:
    rows = [  # ns offset, action, side, price, size, order id, flags
        (0, "clear", "none", None, 0, 0, 8), (0, "add", "bid", 4800.25, 3, 11, 0x20 | 0x80),
        (1, "add", "ask", 4800.5, 2, 12, 0x80), (5, "trade", "bid", 4800.5, 1, 0, 0),
        (5, "fill", "ask", 4800.5, 1, 12, 0x80), (9, "modify", "bid", 4800.0, 4, 11, 0x80),
        (12, "cancel", "ask", 4800.5, 1, 12, 0x80)]
    frame = pl.DataFrame(rows, schema=["dt", "action", "side", "price", "size", "order_id",
                                       "flags"], orient="row")
    ts = (pl.lit(T0) + pl.col("dt") * 1_000).cast(pl.Datetime("ns", "UTC"))
    return conform(frame.with_columns(ts_event=ts, ts_recv=ts + pl.duration(nanoseconds=7),
                                      instrument=pl.lit("ESH4"),
                                      sequence=pl.int_range(pl.len())).drop("dt"), "events")


def test_write_mbo_csv_when_read_back_gives_the_same_events(tmp_path: Path) -> None:
    events = _events()
    path = tmp_path / "sim.mbo.csv"
    write_mbo_csv(events, path)
    back = read(path)
    assert back.format == "databento-csv"
    assert back.events is not None and back.events.equals(events)
    assert back.trades is not None and back.trades["price"].to_list() == [4800.5]


def test_write_mbo_csv_when_empty_refuses_and_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(TapecastError, match="no event"):
        write_mbo_csv(_events().clear(), tmp_path / "x.csv")
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.skipif(not ES.exists(), reason=f"real data not present: {ES}")
def test_write_mbo_csv_when_es_hour_round_trips_events_and_trades(tmp_path: Path) -> None:
    source = read(ES)
    write_mbo_csv(source.events, tmp_path / "es.csv")  # type: ignore[arg-type]
    back = read(tmp_path / "es.csv")
    assert back.events is not None and back.events.equals(source.events)
    assert back.trades is not None and back.trades.equals(source.trades)
