"""metrics.json and report.html: atomic files, strict JSON, every section and figure present."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from tapecast.core.forecast import Forecast
from tapecast.evaluate import metrics, plots, report
from tests.evaluate.test_metrics import synthetic_forecasts

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def forecasts() -> list[Forecast]:
    return synthetic_forecasts(n_windows=80, n_samples=16, seed=3)


@pytest.fixture(scope="module")
def built(forecasts: list[Forecast]) -> dict:
    return metrics.build_metrics(forecasts, {"command": "pytest"})


@pytest.fixture(scope="module")
def report_dir(built: dict, forecasts: list[Forecast],
               tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One report, rendered once (the figures take seconds) and read by several tests."""
    out = tmp_path_factory.mktemp("report")
    (out / "keep.txt").write_text("mine")
    assert report.write_report(built, forecasts, out) == out
    return out


def _image_shape(png: bytes) -> tuple[int, ...]:
    assert png.startswith(PNG_SIGNATURE)
    return tuple(imread(io.BytesIO(png), format="png").shape)


def _images(page: str) -> dict[str, bytes]:
    found = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([^"]+)"', page)
    return {alt: base64.b64decode(data) for alt, data in found}


def test_write_report_when_written_has_strict_json_and_self_contained_html(
        report_dir: Path, forecasts: list[Forecast]) -> None:
    assert (report_dir / "keep.txt").read_text() == "mine"
    text = (report_dir / "metrics.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    loaded = json.loads(text)
    assert set(loaded) == {"forecasters", "reference", "dm_tests", "provenance", "unavailable"}
    page = (report_dir / "report.html").read_text()
    for section in ("Model vs baselines", "CRPS by horizon step", "Reliability",
                    "PIT histograms", "Coverage by regime", "Fan charts",
                    "Mean CRPS per channel", "Diebold-Mariano tests", "Provenance"):
        assert f"<h2>{section}" in page
    images = _images(page)
    assert len(images) == 4 + len(plots.sample_windows(forecasts[0]))
    assert "http" not in page  # no external assets
    assert sorted(p.name for p in report_dir.iterdir()) == ["keep.txt", "metrics.json",
                                                            "report.html"]


def test_headline_table_when_reference_present_shows_dm_and_marks_reference(
        built: dict) -> None:
    table = report.headline_table(built)
    model_row = re.search(r"<tr><td class=name>model</td>(.*?)</tr>", table)
    assert model_row is not None
    p_value = next(t["p_value"] for t in built["dm_tests"] if t["a"] == "model")
    assert report._fmt(p_value, 3) in model_row.group(1)
    reference_row = re.search(r"<tr><td class=name>climatology</td>(.*?)</tr>", table)
    assert reference_row is not None and "reference" in reference_row.group(1)
    assert table.count('class="best"') == 1


def test_fmt_when_value_missing_or_tiny_is_readable() -> None:
    assert report._fmt(None) == "n/a"
    assert report._fmt(1.23456e-5) == "1.235e-05"
    assert report._fmt(0.123456) == "0.1235"
    assert report._fmt(7) == "7"


def test_report_figures_when_rendered_are_pngs_sized_by_panels(report_dir: Path) -> None:
    images = _images((report_dir / "report.html").read_text())
    height, width, _ = _image_shape(images["CRPS by step"])
    assert width > 1200 and height > 400  # 8 channel panels, 4 per row
    for alt in ("reliability", "PIT histograms", "coverage by regime"):
        assert _image_shape(images[alt])[1] >= 800  # 4 group panels
    fans = [png for alt, png in images.items() if alt.startswith("fan chart")]
    assert fans and all(_image_shape(png)[0] > 4 * 200 for png in fans)  # a row per forecaster


def test_fan_chart_when_no_context_still_renders(forecasts: list[Forecast]) -> None:
    f = forecasts[0]
    bare = Forecast(f.name, f.samples, f.realized)
    assert _image_shape(plots.fan_chart([bare], 1, channels=["log_ret"]))[0] > 100


def test_sample_windows_when_regimes_present_picks_one_per_regime(
        forecasts: list[Forecast]) -> None:
    picks = plots.sample_windows(forecasts[0])
    regimes = forecasts[0].samples.regimes
    assert len(picks) == len({regimes[i] for i in picks}) == len(set(regimes.tolist()))


def test_display_groups_when_imbalance_present_collapses_imb_channels() -> None:
    channels = ("imb_a0", "imb_a1", "log_ret")
    assert plots.display_groups(channels, ["imb_a0", "imbalance"]) == ["imbalance", "log_ret"]
    assert plots.display_groups(channels, list(channels)) == list(channels)


def test_write_metrics_when_metric_is_nan_writes_null(built: dict, tmp_path: Path) -> None:
    broken = json.loads(json.dumps(built))
    first = next(iter(broken["forecasters"].values()))
    first["energy_score"]["mean"] = float("nan")
    first["wall_s"] = np.float64(np.inf)
    path = report.write_metrics(broken, tmp_path / "sub" / "metrics.json")
    loaded = json.loads(path.read_text())
    entry = next(iter(loaded["forecasters"].values()))
    assert entry["energy_score"]["mean"] is None and entry["wall_s"] is None


def test_write_report_when_a_forecaster_is_unavailable_shows_an_na_row(
        tmp_path: Path, forecasts: list[Forecast]) -> None:
    from tapecast.evaluate.metrics import build_metrics
    from tapecast.evaluate.report import write_report

    metrics = build_metrics(forecasts, unavailable={"chronos": "n/a offline: no network"})
    write_report(metrics, forecasts, tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert "chronos" in page and "n/a offline" in page
    assert json.loads((tmp_path / "metrics.json").read_text())["unavailable"] == {
        "chronos": "n/a offline: no network"}
