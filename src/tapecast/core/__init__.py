"""Core: errors, atomic file writes. Imported by everything, imports nothing of tapecast's."""

from tapecast.core.errors import (
    InputError,
    ReplayError,
    TapecastError,
    UnsupportedFormatError,
)
from tapecast.core.io import atomic_dir, atomic_path, atomic_write_bytes, atomic_write_text

__all__ = [
    "InputError",
    "ReplayError",
    "TapecastError",
    "UnsupportedFormatError",
    "atomic_dir",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
]
