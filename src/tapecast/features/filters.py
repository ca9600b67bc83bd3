"""Print filters: which trades feed the order-flow windows.

On by default where the trades table carries the fields:

* ``suspicious`` — prints the vendor flagged suspicious are dropped;
* ``sale_condition`` — non-market prints are dropped. Only LEAN's encoding is decoded: a hex
  string of QuantConnect's ``TradeConditionFlags`` bits (``condition_codes="auto"`` recognises it
  when every non-null value is 1–8 hex digits; other encodings get no condition filter). The
  non-market set, :data:`NON_MARKET_FLAGS`, holds the conditions whose price is not a fresh price
  of the open market: average-price, derivatively priced, prior-reference-price, stock-option,
  out-of-sequence and sold-last (late) reports, trades with non-standard settlement (cash, next
  day, seller's option), the official open/close re-reports and price-variation trades. The
  measurement that backs the choice (distance of each flag's prints from the market on the
  LEAN SPY ticks) is produced by :func:`condition_distance_table` and shown in
  ``docs/features.md``.

Optional: ``regular_hours_only`` (09:30–16:00 America/New_York, the us-equity-rth clock) and
``min_trades`` (sessions with fewer kept trades are dropped; applied by the windowing step, which
knows the sessions, through :func:`small_session_mask`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal, get_args

import numba
import numpy as np
import polars as pl
import pyarrow as pa
from numpy.typing import NDArray

from tapecast.core.errors import TapecastError
from tapecast.features.sessions import assign_sessions

ConditionCodes = Literal["auto", "lean", "none"]
CONDITION_CODES: Final[tuple[ConditionCodes, ...]] = get_args(ConditionCodes)

# QuantConnect LEAN TradeConditionFlags: bit position of each flag
LEAN_TRADE_FLAGS: Final[dict[str, int]] = {
    "Regular": 0, "Cash": 1, "NextDay": 2, "Seller": 3, "YellowFlag": 4, "IntermarketSweep": 5,
    "OpeningPrints": 6, "ClosingPrints": 7, "ReOpeningPrints": 8, "DerivativelyPriced": 9,
    "FormT": 10, "Sold": 11, "Stopped": 12, "ExtendedHours": 13, "OutOfSequence": 14,
    "Split": 15, "Acquisition": 16, "Bunched": 17, "StockOption": 18, "Distribution": 19,
    "AveragePrice": 20, "Cross": 21, "PriceVariation": 22, "Rule155": 23, "OfficialClose": 24,
    "PriorReferencePrice": 25, "OfficialOpen": 26, "CapElection": 27, "AutoExecution": 28,
    "TradeThroughExempt": 29, "Undocumented": 30, "OddLot": 31,
}
NON_MARKET_FLAGS: Final[tuple[str, ...]] = (
    "Cash", "NextDay", "Seller", "DerivativelyPriced", "Sold", "OutOfSequence", "StockOption",
    "AveragePrice", "PriceVariation", "OfficialClose", "PriorReferencePrice", "OfficialOpen",
)
NON_MARKET_MASK: Final[int] = sum(1 << LEAN_TRADE_FLAGS[name] for name in NON_MARKET_FLAGS)
# prints used as the market reference in condition_distance_table
PLAIN_FLAGS: Final[tuple[str, ...]] = (
    "Regular", "IntermarketSweep", "TradeThroughExempt", "ExtendedHours",
)
_HEX: Final = re.compile(r"[0-9A-Fa-f]{1,8}")

DROP_REASONS: Final[tuple[str, ...]] = (
    "suspicious", "non_market_condition", "outside_regular_hours", "outside_session",
    "small_session",
)


@dataclass(frozen=True, eq=False)
class FilterResult:
    """Kept trades and the number of prints dropped for each reason.

    Parameters
    ----------
    trades : pl.DataFrame
        The kept rows, in input order.
    dropped : dict of str to int
        Prints dropped by reason (``suspicious``, ``non_market_condition``,
        ``outside_regular_hours``); a print is counted under the first reason that drops it.
    """

    trades: pl.DataFrame
    dropped: dict[str, int]


@numba.njit(cache=True)
def _parse_hex(word, length):  # type: ignore[no-untyped-def]
    """Value of the ``length`` (1-8) little-endian ASCII hex digits in ``word``; -1: not hex."""
    value = 0
    for j in range(length):
        c = (word >> (8 * j)) & 0xFF
        if 48 <= c <= 57:
            value = value * 16 + (c - 48)
        elif 97 <= c <= 102:
            value = value * 16 + (c - 87)
        elif 65 <= c <= 70:
            value = value * 16 + (c - 55)
        else:
            return -1
    return value


@numba.njit(cache=True)
def _parse_hex_views(views, is_null, mask):  # type: ignore[no-untyped-def]
    """Hex value of each Arrow string view (0 for nulls), whether it has a bit of ``mask``, and
    the index of the first value that is not 1-8 hex digits (-1: none). ``views`` is (N, 2)
    uint64: the 16-byte view of each string, ``[length:int32 | bytes 0-3]`` and
    ``[bytes 4-11]`` for strings up to 12 bytes; ``is_null`` is empty when there are no nulls.
    Each distinct string is parsed about once: a 256-slot cache keyed by the view's bytes."""
    n = views.shape[0]
    flags = np.zeros(n, dtype=np.int64)
    hit = np.zeros(n, dtype=np.bool_)
    has_nulls = is_null.shape[0] > 0
    cache_used = np.zeros(256, dtype=np.bool_)
    cache_key0 = np.zeros(256, dtype=np.uint64)
    cache_key1 = np.zeros(256, dtype=np.uint64)
    cache_value = np.zeros(256, dtype=np.int64)
    for i in range(n):
        if has_nulls and is_null[i]:
            continue
        key0 = views[i, 0]
        key1 = views[i, 1]
        slot = ((key0 ^ (key1 * np.uint64(0x9E3779B97F4A7C15))) >> np.uint64(56)) & np.uint64(255)
        if not (cache_used[slot] and cache_key0[slot] == key0 and cache_key1[slot] == key1):
            length = np.int64(key0 & np.uint64(0xFFFFFFFF))
            if length < 1 or length > 8:
                return flags, hit, i
            word = (key0 >> np.uint64(32)) | (key1 << np.uint64(32))  # the 8 inline bytes
            value = _parse_hex(np.int64(word), length)
            if value < 0:
                return flags, hit, i
            cache_used[slot] = True
            cache_key0[slot] = key0
            cache_key1[slot] = key1
            cache_value[slot] = value
        flags[i] = cache_value[slot]
        hit[i] = (cache_value[slot] & mask) != 0
    return flags, hit, -1


def _decode_unique(values: pl.Series) -> tuple[NDArray[np.int64], int]:
    """The general path: decode each distinct string once, then map back."""
    mapping: dict[str, int] = {}
    for code in values.drop_nulls().unique().to_list():
        if _HEX.fullmatch(code) is None:
            return np.zeros(values.len(), dtype=np.int64), int(
                values.index_of(code))  # type: ignore[arg-type]
        mapping[code] = int(code, 16)
    decoded = values.replace_strict(mapping, default=0, return_dtype=pl.Int64).fill_null(0)
    return decoded.to_numpy(), -1


def decode_lean_conditions(values: pl.Series, mask: int = NON_MARKET_MASK
                           ) -> tuple[NDArray[np.int64], NDArray[np.bool_], int]:
    """LEAN ``TradeConditionFlags`` bits of hex condition strings.

    Short strings are parsed straight from Polars' Arrow string views (zero-copy, one numba
    pass that parses each distinct string about once); otherwise each distinct string is decoded
    once and mapped back.

    Parameters
    ----------
    values : pl.Series, String, length N
    mask : int
        Flag bits to test (default: the non-market set).

    Returns
    -------
    flags : ndarray, int64, shape (N,)
        Flag bits, 0 where the condition is null.
    hit : ndarray, bool, shape (N,)
        ``flags & mask != 0``.
    first_invalid : int
        Index of the first value that is not 1–8 hex digits, -1 when all are valid.
    """
    arrow = values.to_arrow(compat_level=pl.CompatLevel.newest())
    if not isinstance(arrow, pa.StringViewArray):
        flags, first_invalid = _decode_unique(values)
        return flags, (flags & mask) != 0, first_invalid
    views = np.frombuffer(arrow.buffers()[1], dtype="<u8").reshape(-1, 2)
    views = views[arrow.offset:arrow.offset + len(arrow)]  # (N, 2): 16-byte views
    is_null = values.is_null().to_numpy() if values.null_count() else np.zeros(0, np.bool_)
    flags, hit, first_invalid = _parse_hex_views(views, is_null, np.int64(mask))
    return flags, hit, int(first_invalid)


def lean_flags(values: pl.Series) -> pl.Series:
    """Decode LEAN hex condition strings to their flag bits.

    Parameters
    ----------
    values : pl.Series, String, length N

    Returns
    -------
    pl.Series, Int64, length N
        The flag bits; null where the condition is null.

    Raises
    ------
    TapecastError
        A value that is not 1–8 hex digits.
    """
    flags, _, first_invalid = decode_lean_conditions(values)
    if first_invalid >= 0:
        raise TapecastError(f"row {first_invalid}, field 'sale_condition': expected LEAN hex "
                            f"condition flags (1-8 hex digits), got {values[first_invalid]!r}")
    nulls = np.flatnonzero(values.is_null().to_numpy())
    return pl.Series(values.name, flags).scatter(nulls, None)


def _non_market(trades: pl.DataFrame, condition_codes: ConditionCodes) -> NDArray[np.bool_] | None:
    """Non-market print mask from LEAN condition flags; None when not LEAN-coded."""
    if condition_codes not in CONDITION_CODES:
        raise TapecastError(f"unknown condition_codes {condition_codes!r}; "
                            f"expected one of {CONDITION_CODES}")
    if condition_codes == "none" or "sale_condition" not in trades.columns:
        return None
    values = trades["sale_condition"]
    if values.null_count() == values.len():
        return None
    _, non_market, first_invalid = decode_lean_conditions(values)
    if first_invalid >= 0:
        if condition_codes == "auto":
            return None  # another encoding: no condition filter
        lean_flags(values)  # raises, naming the row
    return non_market


def print_reasons(
    trades: pl.DataFrame, *, drop_suspicious: bool = True, condition_codes: ConditionCodes = "auto",
    regular_hours_only: bool = False,
) -> dict[str, NDArray[np.bool_]]:
    """Per-print drop masks, one per enabled reason that applies to this table.

    Returns
    -------
    dict of str to ndarray, bool, shape (N,)
        True where the reason drops the print (reasons may overlap).
    """
    reasons: dict[str, NDArray[np.bool_]] = {}
    if drop_suspicious and "suspicious" in trades.columns and trades["suspicious"].any():
        suspicious = np.zeros(trades.height, dtype=np.bool_)
        suspicious[trades["suspicious"].arg_true().to_numpy()] = True
        reasons["suspicious"] = suspicious
    non_market = _non_market(trades, condition_codes)
    if non_market is not None:
        reasons["non_market_condition"] = non_market
    if regular_hours_only:
        ts_ns = trades["ts"].to_physical().to_numpy()
        reasons["outside_regular_hours"] = assign_sessions(ts_ns, "us-equity-rth")[0] < 0
    return reasons


def print_mask(
    trades: pl.DataFrame, *, drop_suspicious: bool = True, condition_codes: ConditionCodes = "auto",
    regular_hours_only: bool = False,
) -> tuple[NDArray[np.bool_], dict[str, int]]:
    """Which prints the filters keep, and how many each reason drops.

    Returns
    -------
    keep : ndarray, bool, shape (N,)
    dropped : dict of str to int
        Prints dropped by reason, each print under the first reason that drops it (order:
        ``suspicious``, ``non_market_condition``, ``outside_regular_hours``).
    """
    reasons = print_reasons(trades, drop_suspicious=drop_suspicious,
                            condition_codes=condition_codes,
                            regular_hours_only=regular_hours_only)
    counts: dict[str, int] = {"suspicious": 0, "non_market_condition": 0}
    if regular_hours_only:
        counts["outside_regular_hours"] = 0
    drop: NDArray[np.bool_] | None = None
    for name, mask in reasons.items():
        if drop is None:
            counts[name] = int(np.count_nonzero(mask))
            drop = mask
        else:
            counts[name] = int(np.count_nonzero(mask & ~drop))
            drop |= mask
    return (np.ones(trades.height, dtype=np.bool_) if drop is None else ~drop), counts


def filter_prints(
    trades: pl.DataFrame, *, drop_suspicious: bool = True, condition_codes: ConditionCodes = "auto",
    regular_hours_only: bool = False,
) -> FilterResult:
    """Drop suspicious and non-market prints (and, optionally, prints outside regular hours).

    Parameters
    ----------
    trades : pl.DataFrame
        Canonical trades (``ts``; ``suspicious`` and ``sale_condition`` where the format has them).
    drop_suspicious : bool
        Drop rows whose ``suspicious`` is true.
    condition_codes : {"auto", "lean", "none"}
        How ``sale_condition`` is read: LEAN hex flags (``auto``: when every value looks like
        one), or not at all.
    regular_hours_only : bool
        Keep only prints in 09:30–16:00 America/New_York on weekdays.

    Returns
    -------
    FilterResult
        Kept rows (input order) and counts by reason, each print under its first reason.
    """
    keep, counts = print_mask(trades, drop_suspicious=drop_suspicious,
                              condition_codes=condition_codes,
                              regular_hours_only=regular_hours_only)
    if keep.all():
        return FilterResult(trades, counts)
    return FilterResult(trades.filter(pl.Series(keep)), counts)


def small_session_mask(group: NDArray[np.int64], min_trades: int) -> NDArray[np.bool_]:
    """True for trades of a group (instrument × session) with fewer than ``min_trades`` trades.

    Parameters
    ----------
    group : ndarray, int64, shape (N,)
        Dense group code per trade, >= 0 (excluded trades: -1, never flagged).
    min_trades : int

    Returns
    -------
    ndarray, bool, shape (N,)
    """
    if min_trades <= 1 or group.shape[0] == 0:
        return np.zeros(group.shape[0], dtype=np.bool_)
    counts = np.bincount(np.maximum(group, 0), weights=(group >= 0).astype(np.float64))
    return (group >= 0) & (counts[np.maximum(group, 0)] < min_trades)


def condition_distance_table(trades: pl.DataFrame, reference_prints: int = 101) -> pl.DataFrame:
    """How far the prints carrying each LEAN condition flag sit from the market.

    The market reference at a print is the rolling median of the last ``reference_prints``
    plain prints (flags within :data:`PLAIN_FLAGS`) of the same instrument and UTC day, up to and
    including that time; the distance is ``|price / reference - 1|`` in basis points.

    Parameters
    ----------
    trades : pl.DataFrame
        Canonical trades with LEAN hex ``sale_condition``, sorted by ``ts`` within instrument.
    reference_prints : int
        Length of the rolling median window.

    Returns
    -------
    pl.DataFrame
        One row per flag present: ``flag``, ``bit``, ``non_market`` (in the default drop set),
        ``prints``, ``median_bp``, ``p90_bp``, ``max_bp``, ``share_over_10bp``.
    """
    plain = sum(1 << LEAN_TRADE_FLAGS[name] for name in PLAIN_FLAGS)
    flags = lean_flags(trades["sale_condition"]).fill_null(0).alias("flags")
    frame = trades.select("ts", "instrument", "price").with_columns(flags)
    frame = frame.with_columns(pl.col("ts").dt.date().alias("_day"))
    reference = (
        frame.filter((pl.col("flags") & ~plain) == 0)
        .with_columns(pl.col("price").rolling_median(reference_prints, min_samples=1)
                      .over("instrument", "_day").alias("reference"))
        .select("ts", "instrument", "reference")
    )
    frame = frame.sort("instrument", "ts", maintain_order=True).join_asof(
        reference.sort("instrument", "ts", maintain_order=True), on="ts", by="instrument",
        strategy="backward", check_sortedness=False)
    frame = frame.with_columns(
        ((pl.col("price") / pl.col("reference") - 1).abs() * 1e4).alias("bp"))
    rows = []
    for name, bit in LEAN_TRADE_FLAGS.items():
        prints = frame.filter((pl.col("flags") & (1 << bit)) != 0)
        if prints.height == 0:
            continue
        bp = prints["bp"].drop_nulls()
        rows.append({"flag": name, "bit": bit, "non_market": name in NON_MARKET_FLAGS,
                     "prints": prints.height, "median_bp": bp.median(),
                     "p90_bp": bp.quantile(0.9), "max_bp": bp.max(),
                     "share_over_10bp": (bp > 10).mean()})
    return pl.DataFrame(rows)
