"""Reading data files on the command line: the workflow's readers with a Rich progress bar."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tapecast.commands.common import err_console
from tapecast.workflows.tape import expand_sources, read_one
from tapecast.workflows.tape import read_all as read_files

if TYPE_CHECKING:
    from tapecast.data.tables import Tables

__all__ = ["expand_sources", "file_bar", "read_all", "read_one"]


@contextlib.contextmanager
def file_bar(total: int | None) -> Iterator[Callable[[Path], None]]:
    """A 'reading' bar on a terminal's stderr; yields the ``on_file`` callback that advances it
    (``total`` files, or None when not known in advance)."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("{task.fields[file]}"))
    with Progress(*columns, console=err_console, transient=True,
                  disable=not err_console.is_terminal) as progress:
        task = progress.add_task("reading", total=total, file="")
        seen = [0]

        def on_file(path: Path) -> None:
            progress.update(task, completed=seen[0], file=path.name)
            seen[0] += 1

        yield on_file


def read_all(files: list[Path], fmt: str | None,
             options: dict[str, Any] | None = None) -> list[Tables]:
    """Read every file (all before any write), with a progress bar on a terminal's stderr."""
    with file_bar(len(files)) as on_file:
        return read_files(files, fmt, options, on_file=on_file)
