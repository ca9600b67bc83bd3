"""docs/cli.md is what scripts/cli_reference.py writes from the current Typer app."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Annotated

import pytest
import typer

from tapecast.cli import app

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "cli_reference.py"


def load_generator() -> ModuleType:
    """scripts/cli_reference.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("cli_reference", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_md_when_regenerated_from_app_is_unchanged() -> None:
    expected = load_generator().render(app)
    current = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    assert current == expected, (
        "docs/cli.md is stale: run `.venv/bin/python scripts/cli_reference.py` and commit it")


def test_render_when_app_has_every_command_lists_each_once() -> None:
    generator = load_generator()
    text = generator.render(app)
    root = typer.main.get_command(app)
    listed = root.list_commands(typer.Context(root))  # type: ignore[attr-defined]
    names = [f"tapecast {name}" for name in listed]
    assert generator.commands_in(text) == names


def test_render_when_called_twice_gives_identical_text() -> None:
    generator = load_generator()
    assert generator.render(app) == generator.render(app)


def test_render_when_terminal_is_narrow_is_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    generator = load_generator()
    wide = generator.render(app)
    monkeypatch.setenv("COLUMNS", "40")
    monkeypatch.setenv("FORCE_COLOR", "1")
    narrow = generator.render(app)
    assert narrow == wide
    assert "\x1b[" not in narrow


def test_render_when_app_changes_shows_new_option_type_default_and_help() -> None:
    generator = load_generator()
    toy = typer.Typer()

    @toy.command()
    def first(
        path: Annotated[Path, typer.Argument(help="Input file.")],
        steps: Annotated[int, typer.Option("--steps", "-s", min=1, help="Steps | per run.")] = 7,
        mode: Annotated[str, typer.Option(help="Mode.")] = "fast",
    ) -> None:
        """First line.

        Second paragraph
        joined."""

    @toy.command()
    def second(
        flag: Annotated[bool, typer.Option("--flag/--no-flag", help="A flag.")] = True,
    ) -> None:
        """Second command."""

    text = generator.render(toy)
    assert generator.commands_in(text) == ["tapecast first", "tapecast second"]
    assert "| `--steps`, `-s` | `<int range>` (≥ 1) | `7` | Steps \\| per run. |" in text
    assert "| `--mode` | `<str>` | `fast` | Mode. |" in text
    assert "| `path` | `<path>` | yes | Input file. |" in text
    assert "Second paragraph joined." in text
    assert "| `--flag`, `--no-flag` |  | `--flag` | A flag. |" in text
