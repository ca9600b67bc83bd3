"""Format detection by extension and content, and the dispatching :func:`read`.

Each format maps to a reader function ``module:function`` imported lazily, so a reader's own
dependencies load only when that format is read.
"""

from __future__ import annotations

import gzip
import importlib
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from tapecast.core.errors import InputError, UnsupportedFormatError
from tapecast.data.tables import Tables

ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"
GZIP_MAGIC: Final = b"\x1f\x8b"
ZIP_MAGIC: Final = b"PK\x03\x04"

READERS: Final[dict[str, str]] = {
    "dbn": "tapecast.data.readers.dbn:read_dbn",
    "databento-csv": "tapecast.data.readers.databento_csv:read_databento_csv",
    "lobster": "tapecast.data.readers.lobster:read_lobster",
    "lean": "tapecast.data.readers.lean:read_lean",
    "hftbacktest": "tapecast.data.readers.binance:read_hftbacktest",
    "freqtrade": "tapecast.data.readers.binance:read_freqtrade",
    "csv": "tapecast.data.readers.generic:read_generic",
    "parquet": "tapecast.data.readers.generic:read_generic",
}
FORMATS: Final = tuple(READERS)


def _head(path: Path, n: int = 4096) -> bytes:
    """First ``n`` decompressed bytes of ``path`` (zstd and gzip are looked through)."""
    with open(path, "rb") as fh:
        raw = fh.read(n)
    if raw.startswith(ZSTD_MAGIC):
        import zstandard

        try:
            with open(path, "rb") as fh:
                reader = zstandard.ZstdDecompressor().stream_reader(fh)
                return bytes(reader.read(n))
        except zstandard.ZstdError as exc:
            raise InputError(path, None, None, f"a readable zstd stream ({exc})") from None
    if raw.startswith(GZIP_MAGIC):
        try:
            with gzip.open(path, "rb") as fh:
                return bytes(fh.read(n))
        except (OSError, EOFError) as exc:
            raise InputError(path, None, None, f"a readable gzip stream ({exc})") from None
    return raw


def detect(path: str | Path) -> str:
    """Name the format of ``path`` (a key of :data:`READERS`) from its name and first bytes.

    Raises
    ------
    UnsupportedFormatError
        For formats tapecast knowingly does not read (legacy DBZ, DBN fragments) or cannot place.
    InputError
        For a missing or empty file.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(p, None, None, "an existing file or folder")
    if p.is_dir():
        raise UnsupportedFormatError(f"{p}: is a folder; pass the files in it")
    name = p.name.lower()
    if p.stat().st_size == 0:
        raise InputError(p, None, None, "a non-empty file (it has 0 bytes)")
    if name.endswith((".dbz", ".dbz.zst")):
        raise UnsupportedFormatError(
            f"{p}: legacy DBZ files are not supported; convert with `dbn --input-fmt dbz` "
            "or re-download as DBN")
    if ".frag" in name:
        raise UnsupportedFormatError(
            f"{p}: a DBN fragment has no metadata header and cannot be read on its own; "
            "read a full DBN file")
    head = _head(p)
    if head.startswith(b"DBN") or name.endswith((".dbn", ".dbn.zst")):
        return "dbn"
    if head.startswith(ZIP_MAGIC):
        return _detect_zip(p)
    if name.endswith(".parquet") or head.startswith(b"PAR1"):
        return "parquet"
    first_line = head.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    if first_line[:1].isdigit() and " {" in first_line:
        return "hftbacktest"  # "<local receive ns> <websocket json>"
    if first_line.startswith("[[") or (first_line.startswith("[") and name.endswith(
            (".json", ".json.gz"))):
        return "freqtrade"
    header = [c.strip().strip('"').lower() for c in first_line.split(",")]
    if "ts_event" in header and ("rtype" in header or "action" in header
                                 or "open" in header or "bid_px_00" in header):
        return "databento-csv"
    if "_message_" in name or "_orderbook_" in name:
        return "lobster"
    if header[:1] == [""]:  # a pandas export's unnamed index column
        header = header[1:]
    if header[:4] == ["timestamp", "id", "type", "side"]:
        return "freqtrade"
    return "csv"


def _detect_zip(p: Path) -> str:
    try:
        with zipfile.ZipFile(p) as zf:
            names = [n.lower() for n in zf.namelist()]
    except zipfile.BadZipFile as exc:
        raise InputError(p, None, None, f"a readable zip archive ({exc})") from None
    if any("_message_" in n for n in names):
        return "lobster"
    return "lean"


def reader_for(fmt: str) -> Callable[..., Tables]:
    """The reader function of format ``fmt``."""
    if fmt not in READERS:
        raise UnsupportedFormatError(
            f"unknown format {fmt!r}; formats are: {', '.join(FORMATS)}")
    module_name, func_name = READERS[fmt].split(":")
    module = importlib.import_module(module_name)
    func: Callable[..., Tables] = getattr(module, func_name)
    return func


def read(path: str | Path, format: str | None = None, **options: Any) -> Tables:
    """Read ``path`` into canonical tables.

    Parameters
    ----------
    path : str or Path
        A file in any supported format (see :data:`FORMATS`).
    format : str, optional
        Force a format instead of detecting it.
    **options
        Passed to the format's reader (for example ``mapping=`` for generic CSV).

    Returns
    -------
    Tables
        The canonical tables this source yields, with the reader's counters.
    """
    fmt = format or detect(path)
    return reader_for(fmt)(Path(path), **options)
