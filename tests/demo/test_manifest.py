from __future__ import annotations

import json
from pathlib import Path

import pytest

from tapecast.core.errors import TapecastError
from tapecast.demo.manifest import FORMAT_VERSION, KIND, MANIFEST_FILE, Manifest, input_key


def test_manifest_when_marked_and_reopened_knows_the_step_by_its_key(tmp_path: Path) -> None:
    Manifest(tmp_path).mark("features", "abc", {"windows": 3})
    again = Manifest.open(tmp_path)
    assert again.done("features", "abc") == {"windows": 3}
    assert again.done("features", "other") is None and again.done("report", "abc") is None


def test_manifest_when_file_is_not_json_raises_one_line_naming_fresh(tmp_path: Path) -> None:
    (tmp_path / MANIFEST_FILE).write_text("{not json")
    with pytest.raises(TapecastError, match=r"not valid JSON.*--fresh") as info:
        Manifest.open(tmp_path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("data", [[1, 2], {"kind": "something.else", "steps": {}}])
def test_manifest_when_kind_is_not_the_demo_raises(tmp_path: Path, data: object) -> None:
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(data))
    with pytest.raises(TapecastError, match="not a tapecast demo manifest"):
        Manifest.open(tmp_path)


def test_manifest_when_format_version_differs_starts_empty(tmp_path: Path) -> None:
    (tmp_path / MANIFEST_FILE).write_text(json.dumps({
        "kind": KIND, "format_version": FORMAT_VERSION + 1,
        "steps": {"features": {"key": "k", "info": {}}}}))
    assert Manifest.open(tmp_path).steps == {}


def test_manifest_when_a_step_is_forgotten_drops_it_on_disk(tmp_path: Path) -> None:
    manifest = Manifest(tmp_path)
    manifest.mark("a", "k")
    manifest.mark("b", "k")
    manifest.forget("a")
    assert set(Manifest.open(tmp_path).steps) == {"b"}


def test_input_key_when_parts_differ_differs_and_dict_order_does_not_matter() -> None:
    assert input_key({"a": 1, "b": 2}) == input_key({"b": 2, "a": 1})
    assert input_key({"a": 1}) != input_key({"a": 2}) and len(input_key(1)) == 16
