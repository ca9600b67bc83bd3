from __future__ import annotations

from tapecast.core.errors import InputError, TapecastError, UnsupportedFormatError


def test_input_error_when_all_parts_given_names_file_row_field_and_value() -> None:
    err = InputError("a.csv", 7, "price", "a positive number", -1.5)
    assert str(err) == "a.csv, row 7, field 'price': expected a positive number, got -1.5"
    assert (err.file, err.row, err.field) == ("a.csv", 7, "price")
    assert isinstance(err, TapecastError)


def test_input_error_when_no_row_or_field_names_file_only() -> None:
    assert str(InputError("b.dbn", None, None, "a non-empty file")) == (
        "b.dbn: expected a non-empty file"
    )


def test_tapecast_error_when_message_has_newlines_is_one_line() -> None:
    err = UnsupportedFormatError("first line\nsecond   line")
    assert str(err) == "first line second line"
