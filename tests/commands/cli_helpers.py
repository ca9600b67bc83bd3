"""Shared by the command tests: invoke the CLI and read its one-line error."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from tapecast.cli import app

runner = CliRunner()


def invoke(*args: str | Path) -> tuple[int, str]:
    """Run ``tapecast ARGS``: (exit code, output)."""
    result = runner.invoke(app, list(map(str, args)))
    return result.exit_code, result.output


def one_line_error(output: str) -> str:
    """The one ``error:`` line of ``output`` (asserted to be exactly one), whitespace-joined."""
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, output
    return " ".join(output[output.index("error:"):].split())
