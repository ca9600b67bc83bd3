"""Data layer: readers for real formats -> canonical tables; validation; store; the L3 book.

The public API, in the order a user meets it::

    tables = tapecast.data.read("esh4.mbo.dbn.zst")      # Tables: events, trades, ...
    store = tapecast.data.write_store([tables], "store")  # partitioned Parquet, atomic
    store = tapecast.data.Store.open("store")             # lazy: reads the manifest only
    book = tapecast.data.replay_tables(tables, 10)        # top-10 book after every event
    trades = tapecast.data.sign_trades(trades, quotes)    # venue side, else Lee-Ready, else tick
"""

from tapecast.data.aggressor import sign_trades
from tapecast.data.book import BookResult, replay_book, replay_tables, top_of_book
from tapecast.data.detect import FORMATS, detect, read
from tapecast.data.schemas import SCHEMAS, TABLE_NAMES, levels_schema
from tapecast.data.store import Store, write_store
from tapecast.data.tables import Tables, concat_tables

__all__ = [
    "FORMATS",
    "SCHEMAS",
    "TABLE_NAMES",
    "BookResult",
    "Store",
    "Tables",
    "concat_tables",
    "detect",
    "levels_schema",
    "read",
    "replay_book",
    "replay_tables",
    "sign_trades",
    "top_of_book",
    "write_store",
]
