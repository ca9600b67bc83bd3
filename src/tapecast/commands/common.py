"""Console and error handling shared by every CLI command."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from tapecast.core.errors import TapecastError

console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``message`` as one line on stderr and exit with ``code``."""
    err_console.print(f"[red]error:[/red] {escape(' '.join(message.split()))}",
                      highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn errors into one line on stderr: exit 2 for user errors (TapecastError, an unreadable
    file), exit 1 for anything else (a bug: ``TAPECAST_DEBUG=1`` shows its traceback)."""
    try:
        yield
    except (typer.Exit, KeyboardInterrupt):
        raise
    except TapecastError as exc:
        fail(str(exc))
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        fail(f"{where}{exc.strerror or exc}")
    except Exception as exc:
        if os.environ.get("TAPECAST_DEBUG"):
            raise
        first = (str(exc).splitlines() or [""])[0]
        fail(f"internal error ({type(exc).__name__}: {first}); this is a tapecast bug, please "
             "report it (TAPECAST_DEBUG=1 shows the traceback)", code=1)


def refuse_inside(out: Path, option: str, *folders: Path | None) -> None:
    """Refuse an output path inside one of the input ``folders`` (a model run, a features
    folder): writing there would overwrite or add to the files the command reads."""
    target = out.resolve()
    for folder in folders:
        if folder is None:
            continue
        root = folder.resolve()
        if target == root or root in target.parents:
            raise TapecastError(f"{option} {out}: inside the input folder {folder}; write the "
                                "output elsewhere")
