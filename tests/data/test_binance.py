"""Tests of the Binance readers: hftbacktest websocket captures and freqtrade trade lists."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tapecast.core.errors import InputError
from tapecast.data.detect import detect, read
from tapecast.data.readers._columns import instrument_from_name
from tapecast.data.readers.binance import read_freqtrade, read_hftbacktest
from tapecast.data.schemas import QUOTES, TRADES
from tests.conftest import shared_file

# (file, trade lines, bookTicker lines, depthUpdate lines): the data README's table
CAPTURES = [
    ("spot/btcusdt_20240808.gz", 9_757, 28_040, 3_451),
    ("spot/btcusdt_20240809.gz", 10_147, 45_134, 3_044),
    ("spot/ethusdt_20240808.gz", 6_106, 24_077, 3_434),
    ("spot/ethusdt_20240809.gz", 8_409, 34_681, 3_036),
    ("usdm/btcusdt_20240808.gz", 21_313, 66_089, 6_551),
    ("usdm/ethusdt_20240808.gz", 14_076, 53_992, 6_586),
    ("cm/btcusd_perp_20240808.gz", 2_286, 19_136, 26_847),
    ("cm/btcusd_perp_20240809.gz", 2_949, 29_219, 17_948),
    ("cm/ethusd_perp_20240808.gz", 1_732, 15_812, 22_909),
    ("cm/ethusd_perp_20240809.gz", 1_863, 19_751, 16_246),
]


@pytest.mark.parametrize(("name", "n_trades", "n_quotes", "n_depth"), CAPTURES)
def test_read_hftbacktest_when_real_capture_counts_match_readme(
    name: str, n_trades: int, n_quotes: int, n_depth: int
) -> None:
    path = shared_file(f"hftbacktest_binance/{name}")
    assert detect(path) == "hftbacktest"
    tables = read(path)
    assert tables.trades is not None and tables.quotes is not None
    assert tables.trades.height == n_trades
    assert tables.quotes.height == n_quotes
    assert tables.counters["depth_update_lines"] == n_depth
    assert tables.counters.get("depth_snapshot_lines", 0) == (1 if "0808" in name else 0)
    assert tables.trades.schema == TRADES and tables.quotes.schema == QUOTES
    assert tables.trades["ts"].is_sorted()  # the trade time T is monotone
    assert set(tables.trades["side"].unique()) == {-1, 1}
    assert (tables.trades["side_source"] == "exchange").all()


def _raw_lines(path: Path, stream: str) -> list[tuple[int, dict[str, object]]]:
    out = []
    with gzip.open(path, "rt") as fh:
        for line in fh:
            ns, js = line.split(" ", 1)
            if f'{stream}"' in js[:40]:
                out.append((int(ns), json.loads(js)["data"]))
    return out


def test_read_hftbacktest_when_spot_trades_match_json_and_quotes_use_local_clock() -> None:
    path = shared_file("hftbacktest_binance/spot/btcusdt_20240808.gz")
    tables = read_hftbacktest(path)
    trades = _raw_lines(path, "@trade")
    t = tables["trades"]
    assert t["price"].to_list() == [float(d["p"]) for _, d in trades]  # type: ignore[arg-type]
    assert t["side"].to_list() == [-1 if d["m"] else 1 for _, d in trades]
    assert t["ts"].dt.epoch("ms").to_list() == [d["T"] for _, d in trades]
    assert (t["exchange"] == "binance").all() and (t["instrument"] == "BTCUSDT").all()
    quotes = _raw_lines(path, "@bookTicker")
    q = tables["quotes"]
    assert q["ts"].dt.epoch("ns").to_list() == [ns for ns, _ in quotes]  # spot: no venue time
    assert q["ask_sz"].to_list() == [float(d["A"]) for _, d in quotes]  # type: ignore[arg-type]


def test_read_hftbacktest_when_futures_quotes_use_transaction_time() -> None:
    path = shared_file("hftbacktest_binance/cm/ethusd_perp_20240809.gz")
    tables = read_hftbacktest(path)
    quotes = _raw_lines(path, "@bookTicker")
    assert tables["quotes"]["ts"].dt.epoch("ms").to_list() == [d["T"] for _, d in quotes]
    assert (tables["trades"]["exchange"] == "binance-coinm").all()
    assert (tables["trades"]["instrument"] == "ETHUSD_PERP").all()


def test_read_hftbacktest_when_clock_local_every_table_on_receive_clock() -> None:
    path = shared_file("hftbacktest_binance/usdm/ethusdt_20240808.gz")
    tables = read_hftbacktest(path, clock="local", instrument="ETHUSDT-PERP")
    trades = _raw_lines(path, "@trade")
    assert tables["trades"]["ts"].dt.epoch("ns").to_list() == [ns for ns, _ in trades]
    assert tables["quotes"]["ts"].is_sorted()
    assert (tables["trades"]["instrument"] == "ETHUSDT-PERP").all()
    assert (tables["trades"]["exchange"] == "binance-usdm").all()


# ---------------------------------------------------------------------- synthetic captures

def _trade(t_ms: int, price: str = "100.5", qty: str = "0.25", maker: bool = True) -> str:
    return json.dumps({"stream": "btcusdt@trade", "data": {
        "e": "trade", "E": t_ms + 1, "s": "BTCUSDT", "t": 1, "p": price, "q": qty, "T": t_ms,
        "m": maker, "M": True}}, separators=(",", ":"))


def _ticker() -> str:
    return json.dumps({"stream": "btcusdt@bookTicker", "data": {
        "u": 1, "s": "BTCUSDT", "b": "100.0", "B": "1.5", "a": "100.1", "A": "2.0"}},
        separators=(",", ":"))


def _capture(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "btcusdt_20240101.gz"
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    return path


def test_read_hftbacktest_when_synthetic_capture_reads_sides_and_counts(tmp_path: Path) -> None:
    depth = '{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","b":[],"a":[]}}'
    path = _capture(tmp_path, [f"1000 {_trade(5, maker=True)}", f"1001 {_ticker()}",
                               f"1002 {depth}", f"1003 {_trade(6, maker=False)}"])
    tables = read(path)
    assert tables["trades"]["side"].to_list() == [-1, 1]
    assert tables["quotes"]["bid_sz"].to_list() == [1.5]
    assert tables.counters == {"trade_lines": 2, "book_ticker_lines": 1, "depth_update_lines": 1}


@pytest.mark.parametrize(
    ("lines", "match"),
    [
        (["1000 {T}", "999 {T}"], r"row 2, field 'local_ts': expected local_ts not decreasing"),
        (["1000 {T}", "abc {T}"], r"row 2, field 'local_ts': expected '<local receive ns>"),
        (["1000 {T}", '1001 {"stream":"btcusdt@trade","data":{"p":'],
         r"row 2, field 'json': expected valid JSON"),
        (["1000 {T}", '1001 {"foo": 1}'], r"row 2, field 'stream'"),
        (["1000 {BADPRICE}"], r"row 1, field 'p': expected a number, got 'x1'"),
        (['1000 {"stream":"btcusdt@depth@0ms","data":{}}'], r"field 'stream': expected at least"),
    ],
)
def test_read_hftbacktest_when_malformed_names_line_and_field(
    tmp_path: Path, lines: list[str], match: str
) -> None:
    subst = {"{T}": _trade(5), "{BADPRICE}": _trade(5, price="x1")}
    for key, value in subst.items():
        lines = [line.replace(key, value) for line in lines]
    with pytest.raises(InputError, match=match):
        read_hftbacktest(_capture(tmp_path, lines))


def test_read_hftbacktest_when_empty_file_raises(tmp_path: Path) -> None:
    path = tmp_path / "empty.gz"
    path.write_bytes(gzip.compress(b"\n"))
    with pytest.raises(InputError, match="empty"):
        read_hftbacktest(path)


# ------------------------------------------------------------------------------ freqtrade

def test_read_freqtrade_when_real_json_matches_source_rows() -> None:
    path = shared_file("freqtrade/XRP_ETH-trades.json.gz")
    assert detect(path) == "freqtrade"
    rows = json.loads(gzip.decompress(path.read_bytes()))
    trades = read(path)["trades"]
    assert trades.height == len(rows) == 12_477
    assert (trades["instrument"] == "XRP/ETH").all()
    assert trades["price"].to_list() == [r[4] for r in rows]
    assert trades["size"].to_list() == [r[5] for r in rows]
    assert trades["side"].to_list() == [1 if r[3] == "buy" else -1 for r in rows]
    assert trades["ts"].dt.epoch("ms").to_list() == [r[0] for r in rows]


def test_read_freqtrade_when_real_csv_with_index_column_reads_all_rows() -> None:
    path = shared_file("freqtrade/orderflow/public_trades_list.csv")
    assert detect(path) == "freqtrade"
    src = pl.read_csv(path)
    trades = read(path)["trades"]
    assert trades.height == 1_000
    assert (trades["instrument"] == "PUBLIC_TRADES_LIST").all()
    assert trades["ts"].dt.epoch("ms").to_list() == src["timestamp"].to_list()
    assert trades["side"].to_list() == [1 if s == "buy" else -1 for s in src["side"]]
    assert (read(path, instrument="ETH/USDT")["trades"]["instrument"] == "ETH/USDT").all()


@pytest.mark.parametrize(
    ("name", "pair"),
    [("XRP_ETH-trades.json.gz", "XRP/ETH"), ("BTC_USDT_USDT-futures-trades.json", "BTC/USDT:USDT"),
     ("mytrades.csv", "MYTRADES"), ("BTC_USDT_USDT-1h-futures.feather", "BTC/USDT:USDT"),
     ("1INCH_USDT-5m.json", "1INCH/USDT"), ("btcusd_perp_20240808.gz", "BTCUSD_PERP")],
)
def test_instrument_from_name_when_freqtrade_name_gives_pair(name: str, pair: str) -> None:
    assert instrument_from_name(Path(name)) == pair


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('[[1000,"1",null,"buy",1.5,2.0,3.0],[999,"2",null,"sell",1.5,2.0,3.0]]',
         r"row 2, field 'timestamp': expected timestamp not decreasing"),
        ('[[1000,"1",null,"hold",1.5,2.0,3.0]]', r"row 1, field 'side': expected 'buy' or"),
        ('[[1000,"1",null,"buy",1.5,2.0]]', r"row 1, field 'record': expected 7 values"),
        ('[[1000,"1",null,"buy",-1.5,2.0,3.0]]', r"row 1, field 'price': expected a positive"),
        ('[[1000,"1",null,"buy",1.5,2.0,3.0]', r"field 'json': expected valid JSON"),
        ("[]", r"expected at least one trade"),
        ('[[1000,"1",null,"buy",1.5,2.0,3.0],[1001,"2",null,"sell",NaN,2.0,3.0]]',
         r"row 2, field 'price': expected a finite number, got nan"),
        ('[[1000,"1",null,"buy",1.5,2.0,3.0],[1001,"2",null,"sell",null,2.0,3.0]]',
         r"row 2, field 'price': expected a value"),
        ('[[1000,"1",null,"buy",1.5,2.0,3.0],[1001,"2",null,"sell", -Infinity ,2.0,3.0]]',
         r"row 2, field 'price': expected a finite number"),
        ('[[1000,"1",null,"buy",1.5,2.0,3.0],[1001,"2",null,"sell",1.5,NaN,3.0]]',
         r"row 2, field 'size': expected a finite number"),
        ('[[1000,"1",null,"buy",1.5,2.0,3.0],[NaN,"2",null,"sell",1.5,2.0,3.0]]',
         r"row 2, field 'timestamp': expected an epoch timestamp"),
    ],
)
def test_read_freqtrade_when_malformed_json_names_row_and_field(
    tmp_path: Path, text: str, match: str
) -> None:
    path = tmp_path / "XRP_ETH-trades.json"
    path.write_text(text)
    with pytest.raises(InputError, match=match):
        read_freqtrade(path)


def test_read_freqtrade_when_nan_cost_only_reads_the_trade(tmp_path: Path) -> None:
    path = tmp_path / "XRP_ETH-trades.json"
    path.write_text(json.dumps([[1000, "1", None, "buy", 1.5, 2.0, float("nan")]]))
    trades = read_freqtrade(path).trades
    assert trades is not None and trades["price"].to_list() == [1.5]


# ------------------------------------------------------- property-based: freqtrade CSV

_HEADER = "timestamp,id,type,side,price,amount,cost\n"
_prices = st.floats(min_value=1e-8, max_value=1e7, allow_nan=False, allow_infinity=False)
_trade_rows = st.lists(
    st.tuples(st.integers(0, 10_000), _prices, _prices, st.sampled_from(["buy", "sell"])),
    min_size=1, max_size=30)


def _freqtrade_csv(rows: list[tuple[int, float, float, str]]) -> tuple[list[int], str]:
    stamps, t = [], 1_600_000_000_000
    lines = [_HEADER]
    for i, (gap, price, amount, side) in enumerate(rows):
        t += gap
        stamps.append(t)
        lines.append(f"{t},{i},,{side},{price!r},{amount!r},{price * amount!r}\n")
    return stamps, "".join(lines)


@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=_trade_rows)
def test_read_freqtrade_when_random_valid_csv_round_trips_exactly(
    tmp_path: Path, rows: list[tuple[int, float, float, str]]
) -> None:
    stamps, text = _freqtrade_csv(rows)
    path = tmp_path / "BTC_USDT-trades.csv"
    path.write_text(text)
    trades = read(path)["trades"]
    assert trades["ts"].dt.epoch("ms").to_list() == stamps
    assert trades["price"].to_list() == [r[1] for r in rows]
    assert trades["size"].to_list() == [r[2] for r in rows]
    assert trades["side"].to_list() == [1 if r[3] == "buy" else -1 for r in rows]
    assert (trades["instrument"] == "BTC/USDT").all()


@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=_trade_rows, data=st.data())
def test_read_freqtrade_when_random_corruption_raises_input_error(
    tmp_path: Path, rows: list[tuple[int, float, float, str]], data: st.DataObject
) -> None:
    _, text = _freqtrade_csv(rows)
    lines = text.splitlines()
    i = data.draw(st.integers(1, len(lines) - 1), label="line")
    fields = lines[i].split(",")
    kind = data.draw(st.sampled_from(["number", "empty", "side", "truncate", "shuffle"]))
    if kind == "shuffle" and len(lines) > 2 and lines[1].split(",")[0] != lines[-1].split(",")[0]:
        lines[1], lines[-1] = lines[-1], lines[1]
    else:
        column = data.draw(st.sampled_from([0, 4, 5]), label="column")
        bad = ["abc", "1.2.3", "nan", "-5", "1e"] + (["0"] if column else [])
        if kind == "number":
            fields[column] = data.draw(st.sampled_from(bad))
        elif kind == "side":
            fields[3] = data.draw(st.sampled_from(["BUYY", "x", "2"]))
        elif kind != "truncate":
            fields[column] = ""
        lines[i] = ",".join(fields)
        if kind == "truncate":  # cut before the last separator: fields go missing
            lines[i] = lines[i][: data.draw(st.integers(1, lines[i].rindex(",")))]
    path = tmp_path / "corrupt.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError):
        read_freqtrade(path)


def test_read_hftbacktest_when_usdm_and_spot_share_a_symbol_keeps_them_apart() -> None:
    usdm = read_hftbacktest(shared_file("hftbacktest_binance/usdm/btcusdt_20240808.gz"))
    spot = read_hftbacktest(shared_file("hftbacktest_binance/spot/btcusdt_20240808.gz"))
    assert usdm["trades"]["instrument"].unique().to_list() == ["BTCUSDT-PERP"]
    assert usdm["quotes"]["instrument"].unique().to_list() == ["BTCUSDT-PERP"]
    assert spot["trades"]["instrument"].unique().to_list() == ["BTCUSDT"]
