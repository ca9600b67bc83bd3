"""The report's figures as PNG bytes (matplotlib's Agg renderer, no display, no pyplot state).

Every function takes the ``metrics.json`` dictionary (or the forecasts, for fan charts) and
returns one PNG. Forecasters keep one colour across all figures (:func:`forecaster_colors`), the
legend sits outside the panels, and each panel is titled with its channel group.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from numpy.typing import NDArray

from tapecast.core.forecast import Forecast

DPI = 100
PANEL_W, PANEL_H = 4.2, 3.0
FAN_CONTEXT_STEPS = 30
PIT_DENSITY_TOP = 2.5
REGIME_ORDER = ("low", "mid", "high", "all")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h", "<")


def forecaster_colors(names: Sequence[str]) -> dict[str, Any]:
    """One colour per forecaster, stable across figures (tab10, then tab20)."""
    cmap = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {name: cmap(i % cmap.N) for i, name in enumerate(names)}


def display_groups(channels: Sequence[str], groups: Sequence[str]) -> list[str]:
    """Groups worth a panel: ``imbalance`` (if present) then every non-imbalance channel."""
    if "imbalance" in groups:
        return ["imbalance", *[c for c in channels if not c.startswith("imb_")]]
    return list(channels)


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)  # a bare Figure renders with Agg
    return buffer.getvalue()


def _grid(n_panels: int, max_cols: int = 4, title: str = "",
          panel: tuple[float, float] = (PANEL_W, PANEL_H)) -> tuple[Figure, list[Any]]:
    """A constrained-layout figure with ``n_panels`` axes (extra axes hidden)."""
    cols = min(max_cols, max(1, n_panels))
    rows = -(-n_panels // cols)
    fig = Figure(figsize=(panel[0] * cols, panel[1] * rows + 0.8), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[n_panels:]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=13)
    return fig, flat[:n_panels]


def _legend(fig: Figure, axes: Sequence[Any], n: int) -> None:
    """One legend for the figure, below the panels, from the first axis with labelled artists."""
    for ax in axes:
        handles, labels = ax.get_legend_handles_labels()
        if handles:
            fig.legend(handles, labels, loc="outside lower center", ncols=min(n, 6), fontsize=10,
                       frameon=False)
            return


def _forecaster_groups(metrics: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    entries = metrics["forecasters"]
    names = list(entries)
    first = entries[names[0]]
    groups = list(next(iter(first["coverage"].values())))
    return names, display_groups(first["channels"], groups)


def reliability_diagram(metrics: Mapping[str, Any]) -> bytes:
    """Nominal vs observed rank-based central-interval coverage, one panel per channel group."""
    names, groups = _forecaster_groups(metrics)
    colors = forecaster_colors(names)
    fig, axes = _grid(len(groups), max_cols=4, panel=(4.0, 3.6),
                      title="Reliability: observed vs nominal central-interval coverage "
                            "(rank-based, all regimes)")
    for ax, group in zip(axes, groups, strict=True):
        ax.plot([0, 100], [0, 100], color="0.6", lw=1, ls="--", label="ideal")
        for i, name in enumerate(names):
            cov = metrics["forecasters"][name]["coverage"]
            levels = sorted(cov, key=float)
            observed = [np.nan if cov[lv][group]["all"] is None else 100 * cov[lv][group]["all"]
                        for lv in levels]
            ax.plot([float(lv) for lv in levels], observed, marker=_MARKERS[i % len(_MARKERS)],
                    color=colors[name], label=name, lw=1.5, ms=5)
        ax.set(title=group, xlabel="nominal coverage (%)", ylabel="observed coverage (%)",
               xlim=(40, 100), ylim=(0, 100))
        ax.grid(alpha=0.3)
    _legend(fig, axes, len(names) + 1)
    return _png(fig)


def pit_histograms(metrics: Mapping[str, Any]) -> bytes:
    """Randomized-PIT histograms (density) per channel group, one step line per forecaster."""
    names, groups = _forecaster_groups(metrics)
    colors = forecaster_colors(names)
    fig, axes = _grid(len(groups), max_cols=4, panel=(4.0, 3.4),
                      title="PIT histograms (uniform = calibrated; U = under-dispersed, "
                            "hump = over-dispersed)")
    for ax, group in zip(axes, groups, strict=True):
        ax.axhline(1.0, color="0.6", lw=1, ls="--", label="uniform")
        off_scale = []
        for name in names:
            hist = metrics["forecasters"][name]["pit"][group]["histogram"]
            edges = np.asarray(hist["edges"], dtype=float)
            density = np.asarray([np.nan if d is None else d for d in hist["density"]], float)
            ax.stairs(density, edges, color=colors[name], lw=1.6, label=name)
            if np.nanmax(density, initial=0.0) > PIT_DENSITY_TOP:
                off_scale.append(name)
        ax.set(title=group, xlabel="PIT", ylabel="density", xlim=(0, 1),
               ylim=(0, PIT_DENSITY_TOP))
        if off_scale:  # a point forecast's spikes would flatten everything else
            ax.text(0.5, 0.96, "off scale: " + ", ".join(off_scale), transform=ax.transAxes,
                    ha="center", va="top", fontsize=8, color="0.3",
                    bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8})
        ax.grid(alpha=0.3)
    _legend(fig, axes, len(names) + 1)
    return _png(fig)


def coverage_by_regime(metrics: Mapping[str, Any], level: str = "90") -> bytes:
    """Grouped bars: rank coverage at ``level`` per volatility regime, per channel group."""
    names, groups = _forecaster_groups(metrics)
    colors = forecaster_colors(names)
    first = metrics["forecasters"][names[0]]
    regimes = [r for r in REGIME_ORDER if r in first["n_per_regime"]]
    counts = first["n_per_regime"]
    fig, axes = _grid(len(groups), max_cols=2, panel=(6.0, 3.4),
                      title=f"{level} % central-interval coverage by volatility regime "
                            f"(rank-based; dashed = nominal; empty = fewer than "
                            f"{first.get('min_regime_windows', 30)} windows)")
    width = 0.8 / len(names)
    x = np.arange(len(regimes))
    for ax, group in zip(axes, groups, strict=True):
        for i, name in enumerate(names):
            row = metrics["forecasters"][name]["coverage"][level][group]
            values = [np.nan if row.get(r) is None else 100 * row[r] for r in regimes]
            centers = x - 0.4 + width * (i + 0.5)
            ax.bar(centers, values, width, color=colors[name], label=name)
            ax.plot(centers, values, ls="none", marker="_", ms=9, mew=2, color=colors[name])
        for j, regime in enumerate(regimes):
            if all(metrics["forecasters"][n]["coverage"][level][group].get(regime) is None
                   for n in names):
                ax.text(x[j], 50, "too few\nwindows", ha="center", va="center", fontsize=9,
                        color="0.4")
        ax.axhline(float(level), color="k", lw=1, ls="--")
        ax.set_xticks(x, [f"{r}\n(n={counts[r]})" for r in regimes])
        ax.set(title=group, ylabel="observed coverage (%)", ylim=(0, 105),
               xlim=(-0.5, len(regimes) - 0.5))
        ax.grid(axis="y", alpha=0.3)
    _legend(fig, axes, len(names))
    return _png(fig)


def crps_by_step(metrics: Mapping[str, Any]) -> bytes:
    """Mean CRPS per horizon step, one panel per channel (own units), a line per forecaster."""
    entries = metrics["forecasters"]
    names = list(entries)
    channels = entries[names[0]]["channels"]
    colors = forecaster_colors(names)
    fig, axes = _grid(len(channels), max_cols=4, panel=(4.0, 2.9),
                      title="Mean CRPS by horizon step (lower is better; each channel in its "
                            "own units)")
    for ax, channel in zip(axes, channels, strict=True):
        for i, name in enumerate(names):
            steps = entries[name]["crps"][channel]["by_step"]
            y = np.asarray([np.nan if v is None else v for v in steps], dtype=float)
            ax.plot(np.arange(1, y.size + 1), y, marker=_MARKERS[i % len(_MARKERS)], ms=4,
                    color=colors[name], label=name, lw=1.5)
        ax.set(title=channel, xlabel="horizon step", ylabel="CRPS")
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 4))
        ax.grid(alpha=0.3)
    _legend(fig, axes, len(names))
    return _png(fig)


def _fan_panel(ax: Any, forecast: Forecast, index: int, k: int, color: Any) -> None:
    """Context (last FAN_CONTEXT_STEPS), 5-95 and 25-75 % bands, median, realized values."""
    values = forecast.samples.values[index, :, k, :].astype(np.float64)  # (S, H)
    horizon = values.shape[1]
    steps = np.arange(1, horizon + 1)
    q05, q25, q50, q75, q95 = np.quantile(values, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)
    if forecast.context is not None:
        ctx = forecast.context[index, k, -FAN_CONTEXT_STEPS:]
        ax.plot(np.arange(-ctx.size + 1, 1), ctx, color="0.35", lw=1.2, label="context")
    if horizon == 1:  # one step (a price return): bands as a box around step 1, not a line
        band_x = np.array([0.75, 1.25])
        q05, q25, q50, q75, q95 = (np.repeat(q, 2) for q in (q05, q25, q50, q75, q95))
    else:
        band_x = steps
    ax.fill_between(band_x, q05, q95, color=color, alpha=0.2, lw=0, label="5-95 %")
    ax.fill_between(band_x, q25, q75, color=color, alpha=0.45, lw=0, label="25-75 %")
    ax.plot(band_x, q50, color=color, lw=1.8, label="median")
    if forecast.realized is not None:
        ax.plot(steps, forecast.realized[index, k], color="k", lw=1.0, ls=":", marker="o",
                ms=3.5, label="realized")
    ax.axvline(0.5, color="0.7", lw=0.8)
    ax.grid(alpha=0.3)


def fan_chart_channels(channels: Sequence[str]) -> list[str]:
    """One channel per group: the first imbalance channel, then every other channel."""
    imbalance = [c for c in channels if c.startswith("imb_")]
    return imbalance[:1] + [c for c in channels if not c.startswith("imb_")]


def fan_chart(forecasts: Sequence[Forecast], index: int,
              channels: Sequence[str] | None = None) -> bytes:
    """Fan charts of window ``index``: a row per forecaster, a column per channel.

    The x axis counts windows from the forecast origin: context at 0 and before, forecast steps
    1..H. Panels of one column share the y axis so forecasters compare at a glance.
    """
    first = forecasts[0].samples
    shown = list(channels) if channels is not None else fan_chart_channels(first.channels)
    colors = forecaster_colors([f.name for f in forecasts])
    rows, cols = len(forecasts), len(shown)
    # one column (a price return) still needs the width of the caption and the legend
    fig = Figure(figsize=(max(3.6 * cols, 7.2), 2.3 * rows + 1.0), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True, sharey="col")
    for r, forecast in enumerate(forecasts):
        for c, channel in enumerate(shown):
            ax = axes[r, c]
            _fan_panel(ax, forecast, index, first.channels.index(channel),
                       colors[forecast.name])
            if r == 0:
                ax.set_title(channel, fontsize=11)
            if c == 0:
                ax.set_ylabel(forecast.name, fontsize=10)
            if r == rows - 1:
                ax.set_xlabel("windows from origin")
    fig.suptitle(_window_caption(forecasts[0], index), fontsize=12)
    handles = _fan_legend(with_context=any(f.context is not None for f in forecasts))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=9,
               frameon=False)
    return _png(fig)


def _fan_legend(with_context: bool = True) -> list[Any]:
    """Legend entries of a fan chart in neutral grey (each row has its forecaster's colour);
    no context entry for forecasts without context (a price return's)."""
    grey = "0.45"
    context = [Line2D([], [], color="0.35", lw=1.2, label="context")] if with_context else []
    return [*context,
            Patch(color=grey, alpha=0.2, label="5-95 %"),
            Patch(color=grey, alpha=0.45, label="25-75 %"),
            Line2D([], [], color=grey, lw=1.8, label="median"),
            Line2D([], [], color="k", lw=1.0, ls=":", marker="o", ms=3.5, label="realized")]


def _window_caption(forecast: Forecast, index: int) -> str:
    s = forecast.samples
    parts = [f"window {index}"]
    if s.window_ids is not None:
        parts[0] = f"target windows {s.window_ids[index, 0]}-{s.window_ids[index, -1]}"
    if s.instruments is not None:
        parts.append(str(s.instruments[index]))
    if s.timestamps is not None:
        parts.append(f"first step {np.datetime_as_string(s.timestamps[index, 0], unit='s')} UTC")
    if s.regimes is not None and s.regimes[index]:
        parts.append(f"regime {s.regimes[index]}")
    return "Fan chart: " + ", ".join(parts)


def sample_windows(forecast: Forecast, n: int = 3) -> list[int]:
    """Up to ``n`` window positions to chart: the middle window of each regime, else spread out."""
    s = forecast.samples
    if s.regimes is not None:
        picks = []
        for regime in ("low", "mid", "high"):
            where = np.flatnonzero(s.regimes == regime)
            if where.size:
                picks.append(int(where[where.size // 2]))
        if picks:
            return picks[:n]
    return sorted({int(s.batch * (i + 1) / (n + 1)) for i in range(n)})


# ---------------------------------------------------------------------------------------------
# one-image overview (report.png)


def _skill_by_step(metrics: Mapping[str, Any], name: str) -> NDArray[np.float64] | None:
    """CRPS skill 1 - CRPS / CRPS_reference per horizon step, averaged over channels (H,)."""
    reference = metrics.get("reference")
    entries = metrics["forecasters"]
    if reference not in entries:
        return None
    rows = []
    for channel in entries[name]["channels"]:
        own = entries[name]["crps"][channel]["by_step"]
        ref = entries[reference]["crps"][channel]["by_step"]
        rows.append([np.nan if a is None or not b else 1.0 - a / b
                     for a, b in zip(own, ref, strict=True)])
    out: NDArray[np.float64] = np.nanmean(np.asarray(rows, dtype=float), axis=0)
    return out


def _overview_skill(ax: Any, metrics: Mapping[str, Any], colors: Mapping[str, Any]) -> None:
    entries = metrics["forecasters"]
    for i, name in enumerate(entries):
        skill = _skill_by_step(metrics, name)
        if skill is None or name == metrics.get("reference"):
            continue
        ax.plot(np.arange(1, skill.size + 1), 100 * skill, marker=_MARKERS[i % len(_MARKERS)],
                ms=4, lw=1.5, color=colors[name], label=name)
    ax.axhline(0.0, color="k", lw=1, ls="--")
    ax.set(title=f"CRPS skill vs {metrics.get('reference')} by step (higher is better)",
           xlabel="horizon step", ylabel="skill (%), mean over channels")
    bottom, top = ax.get_ylim()
    ax.set_ylim(max(bottom, -60.0), top)  # a far-off control (naive) must not flatten the rest
    ax.grid(alpha=0.3)


def _overview_ranking(ax: Any, metrics: Mapping[str, Any], colors: Mapping[str, Any]) -> None:
    entries = metrics["forecasters"]
    skills = {n: (e.get("crps_skill") or {}).get("mean") for n, e in entries.items()}
    ranked = sorted((n for n in skills if skills[n] is not None),
                    key=lambda n: float(skills[n]))  # type: ignore[arg-type]
    values = [100 * float(skills[n]) for n in ranked]  # type: ignore[arg-type]
    ax.barh(np.arange(len(ranked)), np.clip(values, -60.0, None),
            color=[colors[n] for n in ranked])
    for y, value in enumerate(values):
        ax.text(max(value, -60.0), y, f" {value:+.1f}", va="center", fontsize=8)
    ax.set_yticks(np.arange(len(ranked)), ranked, fontsize=9)
    ax.axvline(0.0, color="k", lw=1)
    ax.set(title="Mean CRPS skill over channels and steps (%)", xlabel="skill (%), clipped at -60")
    ax.grid(axis="x", alpha=0.3)


def _overview_coverage(ax: Any, metrics: Mapping[str, Any], colors: Mapping[str, Any],
                       level: str) -> None:
    names, groups = _forecaster_groups(metrics)
    group = groups[0]
    first = metrics["forecasters"][names[0]]
    regimes = [r for r in REGIME_ORDER if r in first["n_per_regime"]]
    width = 0.8 / len(names)
    x = np.arange(len(regimes))
    for i, name in enumerate(names):
        row = metrics["forecasters"][name]["coverage"][level][group]
        values = [np.nan if row.get(r) is None else 100 * row[r] for r in regimes]
        ax.bar(x - 0.4 + width * (i + 0.5), values, width, color=colors[name], label=name)
    ax.axhline(float(level), color="k", lw=1, ls="--")
    ax.set_xticks(x, [f"{r}\n(n={first['n_per_regime'][r]})" for r in regimes])
    ax.set(title=f"{level} % coverage of {group} by volatility regime", ylim=(0, 105),
           ylabel="observed coverage (%)",
           xlabel=f"dashed: nominal; no bar: fewer than {first.get('min_regime_windows', 30)} "
                  "windows")
    ax.grid(axis="y", alpha=0.3)


def overview(metrics: Mapping[str, Any], forecasts: Sequence[Forecast], highlight: str,
             level: str = "90", title: str = "") -> bytes:
    """One PNG summing up a report: fan charts of ``highlight`` on one window (top row), CRPS
    skill by step, the skill ranking and the coverage by regime (bottom row).

    Parameters
    ----------
    metrics : mapping
        :func:`tapecast.evaluate.metrics.build_metrics` output.
    forecasts : sequence of Forecast
        Must include the forecaster named ``highlight``.
    highlight : str
        The forecaster whose fan chart is drawn (e.g. the best model).
    """
    by_name = {f.name: f for f in forecasts}
    if highlight not in by_name:
        raise ValueError(f"overview: no forecast named {highlight!r}")
    forecast = by_name[highlight]
    colors = forecaster_colors(list(metrics["forecasters"]))
    shown = fan_chart_channels(forecast.samples.channels)[:3]
    fig = Figure(figsize=(17.0, 9.0), layout="constrained")
    grid = fig.add_gridspec(2, 3)
    index = sample_windows(forecast, 1)[0]
    for c, channel in enumerate(shown):
        ax = fig.add_subplot(grid[0, c])
        _fan_panel(ax, forecast, index, forecast.samples.channels.index(channel),
                   colors.get(highlight, "C0"))
        ax.set(title=f"{highlight}: {channel}", xlabel="windows from origin")
    fig.axes[0].legend(handles=_fan_legend(), fontsize=8, loc="best")
    _overview_skill(fig.add_subplot(grid[1, 0]), metrics, colors)
    _overview_ranking(fig.add_subplot(grid[1, 1]), metrics, colors)
    coverage_ax = fig.add_subplot(grid[1, 2])
    _overview_coverage(coverage_ax, metrics, colors, level)
    handles, labels = coverage_ax.get_legend_handles_labels()  # every forecaster, once
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 8),
               fontsize=10, frameon=False)
    fig.suptitle(title or _window_caption(forecast, index), fontsize=13)
    return _png(fig)
