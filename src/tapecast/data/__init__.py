"""Data layer: readers for real formats -> canonical tables; validation; store; the L3 book."""

from tapecast.data.detect import FORMATS, detect, read
from tapecast.data.schemas import SCHEMAS, TABLE_NAMES, levels_schema
from tapecast.data.tables import Tables, concat_tables

__all__ = [
    "FORMATS",
    "SCHEMAS",
    "TABLE_NAMES",
    "Tables",
    "concat_tables",
    "detect",
    "levels_schema",
    "read",
]
