"""Finding and reading data files for the CLI: folder expansion, reader options, progress."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tapecast.commands.common import err_console
from tapecast.core.errors import TapecastError

if TYPE_CHECKING:
    from tapecast.data.tables import Tables

# files a folder expansion passes over: documentation and listings, not market data
SKIP_SUFFIXES = frozenset({".md", ".tsv", ".txt", ".rst", ".pdf", ".html", ".htm", ".py",
                           ".yaml", ".yml", ".toml", ".ini", ".log", ".sha256", ".lock",
                           ".png", ".jpg", ".jpeg", ".gif", ".svg"})
SKIP_STEMS = ("readme", "license", "licence", "manifest", "summary", "changelog", "notice")


def _skip_reason(path: Path) -> str | None:
    """Why a file found in a folder is not read (None: read it)."""
    name = path.name.lower()
    if name.startswith("."):
        return "hidden file"
    if path.suffix.lower() in SKIP_SUFFIXES or name.startswith(SKIP_STEMS):
        return "not a data file"
    return None


def _lobster_partner(path: Path, chosen: set[Path]) -> bool:
    """True for a LOBSTER orderbook CSV whose message file is read too (the pair is read once)."""
    from tapecast.data.readers.lobster import parse_name

    parsed = parse_name(path.name)
    if parsed is None or parsed[1] != "orderbook":
        return False
    return path.with_name(parsed[0].file("message")) in chosen


def expand_sources(sources: list[Path], exclude: Path | None = None
                   ) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The files to read from ``sources`` (folders expanded recursively, in name order) and the
    files skipped with why; files under ``exclude`` (the output store) are passed over. A
    missing source is a user error."""
    files: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    for src in sources:
        if not src.exists():
            raise TapecastError(f"{src}: expected an existing file or folder")
        if src.is_dir():
            for path in sorted(p for p in src.rglob("*") if p.is_file()):
                reason = _skip_reason(path.relative_to(src))
                if reason is None and any(part.startswith(".")
                                          for part in path.relative_to(src).parts):
                    reason = "hidden folder"
                (skipped.append((path, reason)) if reason else files.append(path))
        else:
            files.append(src)
    unique = list(dict.fromkeys(p.resolve() for p in files))
    if len(unique) < len(files):
        skipped.append((Path("(duplicates)"), f"{len(files) - len(unique)} given twice"))
    chosen = set(unique)
    store = None if exclude is None else exclude.resolve()
    kept = []
    for path in unique:
        if store is not None and path.is_relative_to(store):
            continue  # the store being written, found inside a source folder
        if _lobster_partner(path, chosen):
            skipped.append((path, "read with its LOBSTER message file"))
        else:
            kept.append(path)
    return kept, skipped


def read_one(path: Path, fmt: str | None, options: dict[str, Any]) -> Tables:
    """:func:`tapecast.data.read`, with reader options a reader does not take named clearly."""
    import inspect

    import tapecast.data
    from tapecast.data.detect import detect, reader_for

    if options:
        name = fmt or detect(path)
        params = inspect.signature(reader_for(name)).parameters
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            unknown = sorted(set(options) - set(params))
            if unknown:
                takes = [n for n in params if n != "path"]
                raise TapecastError(
                    f"{path}: format '{name}' takes no option "
                    f"{', '.join(map(repr, unknown))}; it takes: {', '.join(takes) or 'none'}")
    return tapecast.data.read(path, format=fmt, **options)


def read_all(files: list[Path], fmt: str | None,
              options: dict[str, Any] | None = None) -> list[Tables]:
    """Read every file (all before any write), with a progress bar on a terminal's stderr."""

    out = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("{task.fields[file]}"))
    with Progress(*columns, console=err_console, transient=True,
                  disable=not err_console.is_terminal) as progress:
        task = progress.add_task("reading", total=len(files), file="")
        for path in files:
            progress.update(task, file=path.name)
            out.append(read_one(path, fmt, options or {}))
            progress.advance(task)
    return out


