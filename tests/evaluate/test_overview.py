"""report.png: the one-image overview of a report (plots.overview, report.write_overview)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.image import imread

from tapecast.core.forecast import Forecast
from tapecast.evaluate import metrics, plots, report
from tests.evaluate.test_metrics import synthetic_forecasts


@pytest.fixture(scope="module")
def forecasts() -> list[Forecast]:
    return synthetic_forecasts(n_windows=40, n_samples=8, seed=5)


@pytest.fixture(scope="module")
def built(forecasts: list[Forecast]) -> dict[str, Any]:
    return metrics.build_metrics(forecasts, reference=forecasts[0].name)


def test_write_overview_when_written_is_a_wide_png_file(
        built: dict[str, Any], forecasts: list[Forecast], tmp_path: Path) -> None:
    path = report.write_overview(built, forecasts, tmp_path / "report.png",
                                 forecasts[-1].name, "title")
    image = imread(io.BytesIO(path.read_bytes()), format="png")
    height, width = image.shape[:2]
    assert width > height > 400 and path.stat().st_size < 600_000


def test_overview_when_highlight_is_unknown_raises(built: dict[str, Any],
                                                   forecasts: list[Forecast]) -> None:
    with pytest.raises(ValueError, match="no forecast named"):
        plots.overview(built, forecasts, "nobody")


def test_skill_by_step_when_forecaster_is_the_reference_is_zero(built: dict[str, Any]) -> None:
    reference = built["reference"]
    skill = plots._skill_by_step(built, reference)
    assert skill is not None and np.allclose(skill, 0.0)
    other = next(n for n in built["forecasters"] if n != reference)
    assert not np.allclose(plots._skill_by_step(built, other), 0.0)  # type: ignore[arg-type]
