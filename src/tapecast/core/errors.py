"""User-facing errors.

Every error a user can cause by handing tapecast bad input is a :class:`TapecastError` whose
message is one line that names the file, the row or record, the field and what was expected.
The CLI prints that line and exits with status 2, without a traceback.
"""

from __future__ import annotations

from os import PathLike


class TapecastError(Exception):
    """Base class of every user-facing tapecast error (one-line message)."""

    def __init__(self, message: str) -> None:
        # one line, always: a multi-line message would break the CLI's contract
        super().__init__(" ".join(str(message).split()))


def _location(file: str | PathLike[str] | None, row: int | None, field: str | None) -> str:
    parts: list[str] = []
    if file is not None:
        parts.append(str(file))
    if row is not None:
        parts.append(f"row {row}")
    if field is not None:
        parts.append(f"field '{field}'")
    return ", ".join(parts) if parts else "input"


class InputError(TapecastError):
    """Malformed input: names file, row (1-based data row or record index), field, expectation.

    Parameters
    ----------
    file : path-like or None
        The file being read.
    row : int or None
        1-based data row (header excluded) or record number; None when the whole file is at fault.
    field : str or None
        The column or record field at fault.
    expected : str
        What the reader expected, in words ("a positive price", "ts_recv not decreasing").
    got : object, optional
        The offending value, shown with ``repr``.
    """

    def __init__(
        self,
        file: str | PathLike[str] | None,
        row: int | None,
        field: str | None,
        expected: str,
        got: object = None,
    ) -> None:
        self.file = None if file is None else str(file)
        self.row = row
        self.field = field
        self.expected = expected
        self.got = got
        message = f"{_location(file, row, field)}: expected {expected}"
        if got is not None:
            message += f", got {got!r}"
        super().__init__(message)


class UnsupportedFormatError(TapecastError):
    """A file whose format or schema tapecast does not read (named, with what is supported)."""


class ReplayError(TapecastError):
    """An order-book replay that started from a full state met an impossible event."""
