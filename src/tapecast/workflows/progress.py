"""How a workflow tells its caller what it is doing (the CLI draws Rich bars from this).

The library never prints: workflows and the demo call a :class:`Reporter`. :class:`Quiet` keeps
the notes in a list (for Python use and tests); the commands pass a Rich implementation.
"""

from __future__ import annotations

from typing import Protocol


class Reporter(Protocol):
    """Progress sink of a workflow.

    ``stage`` opens a stage of ``total`` units (None: unknown), ``update`` sets how many units
    are done (with a short status text), ``note`` records a sentence for the user, ``done``
    closes the stage.
    """

    def stage(self, title: str, total: float | None = None) -> None: ...

    def update(self, completed: float, status: str = "") -> None: ...

    def note(self, text: str) -> None: ...

    def done(self) -> None: ...


class Quiet:
    """A reporter that draws nothing and keeps the notes (``notes``), the stage titles
    (``stages``) and each stage's totals and updates (``totals``, ``updates``: title ->
    list of ``(completed, status)``)."""

    def __init__(self) -> None:
        self.notes: list[str] = []
        self.stages: list[str] = []
        self.totals: dict[str, float | None] = {}
        self.updates: dict[str, list[tuple[float, str]]] = {}

    def stage(self, title: str, total: float | None = None) -> None:
        self.stages.append(title)
        self.totals[title] = total
        self.updates.setdefault(title, [])

    def update(self, completed: float, status: str = "") -> None:
        if self.stages:
            self.updates[self.stages[-1]].append((completed, status))

    def note(self, text: str) -> None:
        self.notes.append(text)

    def done(self) -> None:
        return None
