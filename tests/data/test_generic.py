"""Tests of the generic CSV / Parquet reader (trades, bars, quotes with a column mapping)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tapecast.core.errors import InputError
from tapecast.data.detect import detect, read
from tapecast.data.readers._columns import instrument_from_name
from tapecast.data.readers.generic import parse_duration, read_generic
from tapecast.data.schemas import BARS, QUOTES, TRADES
from tests.conftest import shared_file

# ------------------------------------------------------------------------------ real files


def test_read_generic_when_nautilus_6eh4_bars_reads_all_minutes() -> None:
    path = shared_file("nautilus/xcme/6EH4.XCME_1min_bars_20240101_20240131.csv.gz")
    assert detect(path) == "csv"
    bars = read(path)["bars"]
    assert bars.height == 29_996 and bars.schema == BARS
    assert bars["ts"][0] == datetime(2024, 1, 1, 23, 1, tzinfo=UTC)
    assert bars["close"][0] == 1.1078 and bars["volume"][0] == 205
    assert (bars["bar_length"] == timedelta(minutes=1)).all()  # the modal gap


def test_read_generic_when_btc_perp_bars_with_fractional_seconds() -> None:
    bars = read(shared_file("nautilus/btc-perp-20211231-20220201_1m.csv"),
                instrument="BTC-PERP")["bars"]
    assert bars.height == 45_031
    assert bars["ts"][0] == datetime(2021, 12, 31, 23, 1, tzinfo=UTC)
    assert (bars["instrument"] == "BTC-PERP").all()


def test_read_generic_when_binance_parquet_side_from_buyer_maker() -> None:
    path = shared_file("nautilus/binance/btcusdt-trades.parquet")
    assert detect(path) == "parquet"
    src = pl.read_parquet(path)
    trades = read(path, instrument="BTCUSDT")["trades"]
    assert trades.height == src.height == 2_001 and trades.schema == TRADES
    assert trades["side"].to_list() == [-1 if m == "True" else 1 for m in src["buyer_maker"]]
    assert trades["ts"].to_list() == src["timestamp"].to_list()
    assert trades["size"].to_list() == src["quantity"].to_list()
    assert (trades["side_source"] == "exchange").all()


@pytest.mark.parametrize(
    ("names", "instrument"),
    [
        (("nautilus/binance/btcusdt-trades.parquet",), "BTCUSDT"),
        (("nautilus/ADABTC-1m-2021-11-27.csv", "nautilus/ADABTC-1m-2021-11-28.csv"), "ADABTC"),
        (("nautilus/fxcm/gbpusd-m1-bid-2012.csv", "nautilus/fxcm/gbpusd-m1-ask-2012.csv"),
         "GBPUSD"),
        (("nautilus/fxcm/usdjpy-m1-bid-2013.csv", "nautilus/fxcm/usdjpy-m1-ask-2013.csv"),
         "USDJPY"),
        (("nautilus/truefx/usdjpy-ticks.csv",), "USDJPY"),
        (("nautilus/btc-perp-20211231-20220201_1m.csv",), "BTC-PERP"),
        (("nautilus/xcme/6EH4.XCME_1min_bars_20240101_20240131.csv.gz",), "6EH4.XCME"),
        (("freqtrade/kraken/BCHEUR.csv", "freqtrade/kraken/BCHEUR_incremental_q2.csv"),
         "BCHEUR"),
    ],
)
def test_read_generic_when_real_files_of_one_market_share_one_instrument(
        names: tuple[str, ...], instrument: str) -> None:
    for name in names:
        tables = read(shared_file(name))
        frame = next(f for f in (tables.trades, tables.bars, tables.quotes, tables.quote_bars)
                     if f is not None)
        assert frame["instrument"].unique().to_list() == [instrument], name


def test_read_generic_when_fxcm_bid_and_ask_bars_gives_one_sided_quote_bars() -> None:
    bid = read(shared_file("nautilus/fxcm/gbpusd-m1-bid-2012.csv"))
    ask = read(shared_file("nautilus/fxcm/gbpusd-m1-ask-2012.csv"))
    assert bid.bars is None and bid.quote_bars is not None and ask.quote_bars is not None
    assert bid.quote_bars.height == ask.quote_bars.height == 30_117
    assert bid.quote_bars["bid_close"][0] == 1.57576 and bid.quote_bars["ask_close"].is_null().all()
    assert ask.quote_bars["bid_close"].is_null().all()
    assert (ask.quote_bars["ask_close"] > 0).all()
    plain = read_generic(shared_file("nautilus/fxcm/gbpusd-m1-bid-2012.csv"), quote_side="none")
    assert plain.bars is not None and plain.bars["close"][0] == 1.57576


def test_read_generic_when_quote_side_option_bad_raises(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("timestamp,open,high,low,close\n2024-01-01,1,2,0.5,1.5\n")
    assert read_generic(path, quote_side="ask").quote_bars is not None
    with pytest.raises(InputError, match="field 'quote_side': expected bid, ask or none"):
        read_generic(path, quote_side="mid")


def test_read_generic_when_instrument_column_present_keeps_it_unless_overridden() -> None:
    path = shared_file("nautilus/binance/btcusdt-quotes.parquet")
    assert (read(path)["quotes"]["instrument"] == "BTC/USDT").all()  # its symbol column
    assert instrument_from_name(path) == "BTCUSDT"
    assert (read(path, instrument="X")["quotes"]["instrument"] == "X").all()


@pytest.mark.parametrize(
    ("name", "instrument"),
    [
        ("btcusdt-quotes.parquet", "BTCUSDT"),
        ("BTCUSDT-trades.csv.gz", "BTCUSDT"),
        ("ES_2024-01-02_2024-01-05.csv", "ES"),
        ("es-20240102.csv.zst", "ES"),
        ("AAPL_2024-01-02T09-30_2024-01-02T16-00.csv", "AAPL"),
        ("eurusd-h1-ohlcv-2020-2021.csv", "EURUSD"),
        ("SPY-1d-bars.parquet", "SPY"),
        ("ethusdt-1s-klines-2024-08.csv", "ETHUSDT"),
        ("XRP_ETH-5m.json", "XRP/ETH"),
        ("xrp_eth-trades.csv", "XRP/ETH"),
        ("BTC_USDT_USDT-1h-futures.feather", "BTC/USDT:USDT"),
        ("BTCUSD_PERP_20240808.csv", "BTCUSD_PERP"),
        ("BTC-PERP-20211231-20220201_1m.csv", "BTC-PERP"),
        ("trades.csv", "TRADES"),
        ("2024-01-02.csv", "2024-01-02"),
        ("aapl.csv", "AAPL"),
    ],
)
def test_instrument_from_name_when_synthetic_names_strips_dates_resolutions_tables(
        name: str, instrument: str) -> None:
    assert instrument_from_name(Path("some/dir") / name) == instrument


def test_read_generic_when_bar_files_differ_by_day_store_one_instrument(tmp_path: Path) -> None:
    for day in ("27", "28"):
        (tmp_path / f"ADABTC-1m-2021-11-{day}.csv").write_text(
            f"2021-11-{day} 00:00:00,1,2,0.5,1.5,10\n2021-11-{day} 00:01:00,1,2,0.5,1.5,10\n")
    got = {read(p)["bars"]["instrument"][0] for p in sorted(tmp_path.iterdir())}
    assert got == {"ADABTC"}


def test_read_generic_when_kraken_headerless_three_columns_reads_trades() -> None:
    path = shared_file("freqtrade/kraken/BCHEUR.csv")
    trades = read(path)["trades"]
    assert trades.height == 148
    assert trades["ts"][0] == datetime.fromtimestamp(1672531436, UTC)
    assert trades["price"][0] == 90.54 and trades["size"][0] == 1.1044842
    assert (trades["side"] == 0).all() and trades["side_source"].null_count() == 148
    assert (trades["instrument"] == "BCHEUR").all()
    by_position = read_generic(path, has_header=False, table="trades", instrument="BCH/EUR",
                               mapping={"ts": 0, "price": 1, "size": 2})["trades"]
    assert by_position.equals(trades.with_columns(pl.lit("BCH/EUR").alias("instrument")))
    by_name = read_generic(path, has_header=False,
                           mapping={"ts": "column_0", "price": "column_1", "size": "column_2"})
    assert by_name["trades"].equals(trades)


def test_read_generic_when_histdata_ticks_given_mapping_and_format_reads_quotes() -> None:
    path = shared_file("nautilus/quote_tick_data.csv")
    quotes = read_generic(path, table="quotes", has_header=False, ts_format="%Y%m%d %H%M%S%3f",
                          mapping={"ts": 0, "bid_px": 1, "ask_px": 2},
                          timezone="America/New_York", instrument="EUR/USD")["quotes"]
    assert quotes.height == 9_500 and quotes.schema == QUOTES
    # 2020-01-01 17:00:00.065 New York (EST, UTC-5) = 22:00:00.065 UTC
    assert quotes["ts"][0] == datetime(2020, 1, 1, 22, 0, 0, 65_000, tzinfo=UTC)
    assert quotes["bid_px"][0] == 1.1212


def test_read_generic_when_binance_kline_headerless_reads_bars() -> None:
    bars = read(shared_file("nautilus/ADABTC-1m-2021-11-27.csv"))["bars"]
    assert bars.height == 10
    assert bars["n_trades"][0] == 79 and bars["amount"][0] == 1.03547608
    assert bars["bar_length"][0] == timedelta(minutes=1)


# ------------------------------------------------------------- the seed's 1-second bars

SEED = """symbol,bob,eob,close,high,low,volume,amount
AMD,2025-09-24 13:30:00+00:00,2025-09-24 13:30:01+00:00,160.5,160.6,160.4,1200,192600.0
AMD,2025-09-24 13:30:01+00:00,2025-09-24 13:30:02+00:00,160.55,160.6,160.5,300,48165.0
NVDA,2025-09-24 13:30:00+00:00,2025-09-24 13:30:01+00:00,177.1,177.2,177.0,5000,885500.0
"""


def test_read_generic_when_seed_one_second_bars_maps_bob_eob(tmp_path: Path) -> None:
    path = tmp_path / "AMD.csv"
    path.write_text(SEED)
    bars = read(path)["bars"]
    assert bars.schema == BARS
    assert bars["instrument"].to_list() == ["AMD", "AMD", "NVDA"]  # from symbol, grouped
    assert bars["ts"][1] == datetime(2025, 9, 24, 13, 30, 1, tzinfo=UTC)  # ts = bob
    assert (bars["bar_length"] == timedelta(seconds=1)).all()  # eob - bob
    assert bars["open"].null_count() == 3  # the format has no open
    assert bars["amount"].to_list() == [192600.0, 48165.0, 885500.0]
    assert bars["volume"].to_list() == [1200.0, 300.0, 5000.0]


def test_read_generic_when_naive_times_read_in_given_timezone(tmp_path: Path) -> None:
    path = tmp_path / "AMD.csv"
    path.write_text(SEED.replace("+00:00", ""))
    bars = read_generic(path, timezone="America/New_York")["bars"]
    assert bars["ts"][0] == datetime(2025, 9, 24, 17, 30, tzinfo=UTC)  # EDT = UTC-4


@pytest.mark.parametrize(
    ("stamp", "unit", "expected_ns"),
    [
        ("1700000000", None, 1_700_000_000 * 10**9),
        ("1700000000.123456789", None, 1_700_000_000_123_456_789),
        ("1700000000123", None, 1_700_000_000_123 * 10**6),
        ("1700000000123456", None, 1_700_000_000_123_456 * 10**3),
        ("1700000000123456789", None, 1_700_000_000_123_456_789),
        ("1700000000123.5", None, 1_700_000_000_123_500_000),
        ("1700000000", "ms", 1_700_000_000 * 10**6),
        ("2023-11-14T22:13:20.000000001Z", None, 1_700_000_000_000_000_001),
    ],
)
def test_read_generic_when_epoch_or_iso_timestamp_parses_exactly(
    tmp_path: Path, stamp: str, unit: str | None, expected_ns: int
) -> None:
    path = tmp_path / "t.csv"
    path.write_text(f"time,price,qty\n{stamp},1.5,2\n")
    trades = read_generic(path, ts_unit=unit)["trades"]  # type: ignore[arg-type]
    assert trades["ts"].dt.epoch("ns")[0] == expected_ns


def test_read_generic_when_side_column_maps_buy_sell_and_unknown(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("ts,price,size,side\n1,1,1,buy\n2,1,1,S\n3,1,1,\n4,1,1,-1\n")
    trades = read_generic(path, ts_unit="s")["trades"]
    assert trades["side"].to_list() == [1, -1, 0, -1]
    assert trades["side_source"].to_list() == ["exchange", "exchange", None, "exchange"]


def test_parse_duration_when_units_given_returns_nanoseconds() -> None:
    assert parse_duration("1s") == 10**9
    assert parse_duration("500ms") == 5 * 10**8
    assert parse_duration("1min") == parse_duration("1m") == 60 * 10**9
    with pytest.raises(InputError, match="bar_length"):
        parse_duration("one minute")


def test_read_generic_when_bar_length_option_given_uses_it(tmp_path: Path) -> None:
    path = tmp_path / "b.csv"
    path.write_text("timestamp,open,high,low,close,volume\n1,1,1,1,1,1\n")
    bars = read_generic(path, bar_length="1h", ts_unit="s")["bars"]
    assert bars["bar_length"][0] == timedelta(hours=1)


# ------------------------------------------------------------------------------ bad input

_GOOD = "timestamp,price,size\n1700000000,1.5,2\n1700000001,1.6,3\n"


@pytest.mark.parametrize(
    ("text", "options", "match"),
    [
        (_GOOD, {"mapping": {"ts": "when"}}, r"field 'when': expected a column named 'when'"),
        (_GOOD.replace("1700000001,", "17x0,"), {},
         r"row 2, field 'timestamp': expected an epoch timestamp"),
        (_GOOD.replace("1.6", "nan"), {}, r"row 2, field 'price': expected a finite"),
        (_GOOD.replace("1.6", "-1.6"), {}, r"row 2, field 'price': expected a positive"),
        (_GOOD.replace("1.6", "0"), {}, r"row 2, field 'price': expected a positive"),
        (_GOOD.replace(",3\n", ",-3\n"), {}, r"row 2, field 'size': expected a positive"),
        (_GOOD.replace("1.6", "1,6"), {}, r"row 2: expected 3 fields"),
        (_GOOD.replace("1.6", "abc"), {}, r"row 2, field 'price': expected a number, got 'abc'"),
        (_GOOD.replace("1.6", ""), {}, r"row 2, field 'price': expected a value"),
        (_GOOD.replace("1700000001", "1699999999"), {},
         r"row 2, field 'timestamp': expected timestamp not decreasing"),
        ("timestamp,price,size\n", {}, r"expected at least one data row"),
        ("", {}, r"expected at least one data row"),
        ("a,b,c,d\nx,y,z,w\n", {}, r"expected columns of bars"),
        ("timestamp,close\n2024-02-30 00:00:00,1\n", {}, r"row 1, field 'timestamp'"),
        ("timestamp,close\n2024-03-10 02:30:00,1\n", {"timezone": "America/New_York"},
         r"row 1, field 'timestamp': expected a local time that exists"),
        (_GOOD, {"timezone": "Nowhere/Zone"}, r"field 'timezone': expected an IANA time zone"),
        (_GOOD.replace(",size", ",size,side").replace(",2\n", ",2,up\n").replace(",3\n", ",3,\n"),
         {}, r"row 1, field 'side': expected a side"),
    ],
)
def test_read_generic_when_bad_input_names_row_and_field(
    tmp_path: Path, text: str, options: dict[str, object], match: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=match):
        read_generic(path, **options)  # type: ignore[arg-type]


def test_read_generic_when_corrupt_parquet_raises_input_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"PAR1 not really parquet")
    with pytest.raises(InputError, match="a readable Parquet file"):
        read_generic(path)


# ------------------------------------------------------------- property-based fuzzing

_floats = st.floats(min_value=1e-9, max_value=1e9, allow_nan=False, allow_infinity=False)
_rows = st.lists(st.tuples(st.integers(0, 5_000), _floats, _floats,
                           st.sampled_from(["buy", "sell", ""])), min_size=1, max_size=30)


def _trades_csv(rows: list[tuple[int, float, float, str]]) -> tuple[list[int], str]:
    stamps, t, lines = [], 1_650_000_000_000, ["ts,price,qty,side"]
    for gap, price, size, side in rows:
        t += gap
        stamps.append(t)
        lines.append(f"{t},{price!r},{size!r},{side}")
    return stamps, "\n".join(lines) + "\n"


@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=_rows)
def test_read_generic_when_random_valid_trades_round_trip_exactly(
    tmp_path: Path, rows: list[tuple[int, float, float, str]]
) -> None:
    stamps, text = _trades_csv(rows)
    path = tmp_path / "fuzz.csv"
    path.write_text(text)
    trades = read_generic(path, ts_unit="ms")["trades"]
    assert trades["ts"].dt.epoch("ms").to_list() == stamps
    assert trades["price"].to_list() == [r[1] for r in rows]
    assert trades["size"].to_list() == [r[2] for r in rows]
    assert trades["side"].to_list() == [{"buy": 1, "sell": -1, "": 0}[r[3]] for r in rows]


_bar_rows = st.lists(st.tuples(_floats, _floats, st.integers(0, 10**6)), min_size=1,
                     max_size=30)


@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=_bar_rows)
def test_read_generic_when_random_valid_seed_bars_round_trip_exactly(
    tmp_path: Path, rows: list[tuple[float, float, int]]
) -> None:
    start = datetime(2025, 9, 24, 13, 30, tzinfo=UTC)
    lines = ["symbol,bob,eob,close,high,low,volume,amount"]
    for i, (close, amount, volume) in enumerate(rows):
        bob, eob = start + timedelta(seconds=i), start + timedelta(seconds=i + 1)
        lines.append(f"X,{bob.isoformat()},{eob.isoformat()},{close!r},{close!r},{close!r},"
                     f"{volume},{amount!r}")
    path = tmp_path / "X.csv"
    path.write_text("\n".join(lines) + "\n")
    bars = read(path)["bars"]
    assert bars["ts"].to_list() == [start + timedelta(seconds=i) for i in range(len(rows))]
    assert bars["close"].to_list() == [r[0] for r in rows]
    assert bars["amount"].to_list() == [r[1] for r in rows]
    assert bars["volume"].to_list() == [float(r[2]) for r in rows]


@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=_rows, data=st.data())
def test_read_generic_when_random_corruption_raises_input_error(
    tmp_path: Path, rows: list[tuple[int, float, float, str]], data: st.DataObject
) -> None:
    _, text = _trades_csv(rows)
    lines = text.splitlines()
    i = data.draw(st.integers(1, len(lines) - 1), label="line")
    kind = data.draw(st.sampled_from(["number", "empty", "side", "truncate", "shuffle"]))
    if kind == "shuffle" and len(lines) > 2 and lines[1].split(",")[0] != lines[-1].split(",")[0]:
        lines[1], lines[-1] = lines[-1], lines[1]
    elif kind == "truncate":  # cut before the last separator: fields go missing
        lines[i] = lines[i][: data.draw(st.integers(1, lines[i].rindex(",")))]
    else:
        fields = lines[i].split(",")
        column = data.draw(st.sampled_from([0, 1, 2]), label="column")
        if kind == "number":
            fields[column] = data.draw(st.sampled_from(["x", "1..2", "nan", "-3", "inf", "--"]))
        elif kind == "side":
            fields[3] = data.draw(st.sampled_from(["bid?", "2", "BUYER"]))
        else:
            fields[column] = ""
        lines[i] = ",".join(fields)
    path = tmp_path / "corrupt.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError):
        read_generic(path, ts_unit="ms")
