"""The ``tapecast`` command line (Typer + Rich). YAML and user-facing printing live only here."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from tapecast.core.errors import TapecastError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="tapecast: probabilistic forecasts and synthetic order flow from the tape.")
console = Console()
err_console = Console(stderr=True)


@app.callback()
def _root() -> None:
    """tapecast: probabilistic forecasts and synthetic order flow from the tape."""


@app.command()
def demo() -> None:
    """Run the end-to-end demo (not built yet: it lands with the demo issue)."""
    console.print("tapecast demo: not built yet — the data layer is in; models land with later "
                  "issues. Try `tapecast --help`.")


def main() -> None:
    """Console entry point: user errors print one line and exit 2, without a traceback."""
    try:
        app()
    except TapecastError as exc:
        err_console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
