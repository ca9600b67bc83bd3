"""Fixtures of the command tests: a trained score run, shared by the score and backtest tests
(session-scoped: trained once)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.commands.cli_helpers import invoke


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A state folder of the embedded S&P 500, a tiny score model trained on it (5 steps, seed
    3), and a second state folder of other split fractions (another normalization)."""
    root = tmp_path_factory.mktemp("score")
    code, output = invoke("features", "--kind", "state", "--sp500", "--out", root / "st")
    assert code == 0, output
    code, output = invoke("features", "--kind", "state", "--sp500", "--out", root / "other",
                          "--train-fraction", "0.6", "--val-fraction", "0.2")
    assert code == 0, output
    code, output = invoke("train", "-F", root / "st", "-o", root / "run", "--preset", "tiny",
                          "--max-steps", "5", "--seed", "3")
    assert code == 0, output
    return root / "st", root / "run", root / "other"
