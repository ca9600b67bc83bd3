"""Progress on the command line: a Rich implementation of the workflows' ``Reporter``."""

from __future__ import annotations

import time
from typing import Any

from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from tapecast.commands.common import err_console


class _BudgetLeft(ProgressColumn):
    """The demo's budget left (negative when over)."""

    def __init__(self, deadline: float) -> None:
        super().__init__()
        self.deadline = deadline

    def render(self, task: Task) -> Text:
        left = self.deadline - time.monotonic()
        sign = "-" if left < 0 else ""
        minutes, seconds = divmod(int(abs(left)), 60)
        return Text(f"budget left {sign}{minutes}:{seconds:02d}",
                    style="red" if left < 0 else "cyan")


class RichReporter:
    """A :class:`tapecast.workflows.Reporter` drawing one Rich bar per stage on stderr.

    With a ``deadline`` (``time.monotonic()`` seconds) each bar shows the budget left beside it;
    ``transient`` bars vanish when done.
    """

    def __init__(self, deadline: float | None = None, *, transient: bool = False) -> None:
        columns: list[ProgressColumn] = [
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"), TimeRemainingColumn()]
        if deadline is not None:
            columns.append(_BudgetLeft(deadline))
        self.progress = Progress(*columns, console=err_console, transient=transient,
                                 disable=not err_console.is_terminal)
        self.task: Any = None

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done()
        self.progress.stop()

    def stage(self, title: str, total: float | None = None) -> None:
        self.done()
        self.task = self.progress.add_task(title, total=total, status="")

    def update(self, completed: float, status: str = "") -> None:
        if self.task is not None:
            self.progress.update(self.task, completed=completed, status=status)

    def note(self, text: str) -> None:
        self.progress.console.print(f"[dim]•[/dim] {escape(text)}", highlight=False,
                                    soft_wrap=True)

    def done(self) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
            self.task = None
