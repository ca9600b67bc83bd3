"""How a fit is watched: ``train_log.jsonl`` and the Rich progress bar (rank 0 only)."""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from tapecast.core.io import atomic_write_text


class TrainLog:
    """``train_log.jsonl``: one JSON object per line (written by rank 0 only)."""

    def __init__(self, path: Path, *, enabled: bool) -> None:
        self.path, self.enabled = path, enabled

    def reset(self, *, keep_through: int | None) -> None:
        """Start empty, or keep the rows up to step ``keep_through`` (drop rows a crash wrote
        after the checkpoint it resumes from)."""
        if not self.enabled:
            return
        kept: list[str] = []
        if keep_through is not None and self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                with contextlib.suppress(ValueError):
                    if json.loads(line).get("step", math.inf) <= keep_through:
                        kept.append(line)
        atomic_write_text(self.path, "".join(f"{line}\n" for line in kept))

    def write(self, row: dict[str, Any]) -> None:
        """Append one row and flush."""
        if self.enabled:
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")


class ProgressBar:
    """Rich progress bar on stderr: steps, train and val loss, steps/s, samples/s, time left.

    Draws nothing unless ``enabled`` and stderr is a terminal.
    """

    def __init__(self, enabled: bool, *, total: int, done: int, val: float | None) -> None:
        console = Console(stderr=True)
        self.enabled = enabled and console.is_terminal
        self.progress = Progress(
            TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}  val {task.fields[val]}"),
            TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
            console=console, disable=not self.enabled, transient=False)
        self.task = self.progress.add_task("train", total=total, completed=done, loss="-",
                                           val=_fmt(val), rate="")

    def __enter__(self) -> ProgressBar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def advance(self, step: int) -> None:
        """Show ``step`` steps done."""
        self.progress.update(self.task, completed=step)

    def note(self, text: str) -> None:
        """Print a line above the bar."""
        if self.enabled:
            self.progress.console.print(escape(text))

    def show_train(self, step: int, loss: float, steps_per_s: float,
                   samples_per_s: float) -> None:
        """Show the training loss and speed of the latest window."""
        self.progress.update(self.task, completed=step, loss=_fmt(loss),
                             rate=f"{steps_per_s:.2f} steps/s {samples_per_s:.0f} samples/s")

    def show_val(self, val_loss: float | None) -> None:
        """Show the latest validation loss."""
        self.progress.update(self.task, val=_fmt(val_loss))


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"
