"""Shared fixtures: the real market data in ../shared/data (tests skip cleanly when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("TAPECAST_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_file(relative: str) -> Path:
    """Path of a file under ../shared/data, or skip the test when it is absent."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"real data not present: {path}")
    return path


@pytest.fixture
def shared_data() -> Path:
    """The ../shared/data folder, or skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder not present: {SHARED_DATA}")
    return SHARED_DATA
