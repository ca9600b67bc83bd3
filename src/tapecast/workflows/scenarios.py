"""Scenario generation from a trained score model: market states drawn by annealed Langevin,
unconditionally or with some features fixed (inpainting), in z-scores and in raw units.

The score model is not a forecaster (docs/score-matching.md): it draws whole states, so its
"what if" question is "which states are likely when return_1 is -3 % and volatility 2 %?",
answered by :meth:`tapecast.models.score_matching.ScoreMatching.sample` with ``known``/
``known_mask``. Raw values given here are z-scored with the run's normalizer before the
sampler sees them; a value beyond the ±clip σ the training states were clipped to is refused
(the model has never seen it). Draws are mapped back with the normalizer's inverse after the
same clip, so each raw column stays within ±clip σ of its training mean; the ``z_`` columns keep
the sampler's draws as they are. Nothing else is enforced: a draw can break a feature's natural
bounds (a negative volatility, a price position outside [0, 1]) where the model puts mass there.

Usage::

    frame = generate_scenarios(model, normalizer, 1000, given={"return_1": -0.03}, seed=0)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from tapecast.core.errors import TapecastError
from tapecast.features.state_normalize import StateNormalizer
from tapecast.models.score_matching import ScoreMatching

__all__ = ["generate_scenarios", "parse_given"]


def parse_given(items: Sequence[str], features: Sequence[str]) -> dict[str, float]:
    """``["return_1=-0.03", ...]`` -> ``{"return_1": -0.03}``, checked against ``features``.

    Raises
    ------
    TapecastError
        One line naming the item that is not ``FEATURE=NUMBER`` with a known feature and a
        finite number, or a feature given twice.
    """
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in features:
            raise TapecastError(f"--given {item!r}: expected FEATURE=VALUE with FEATURE one of "
                                f"{', '.join(features)}")
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        if not np.isfinite(number):
            raise TapecastError(f"--given {item!r}: {value!r} is not a finite number")
        if name in out:
            raise TapecastError(f"--given {name}: given twice")
        out[name] = number
    return out


def generate_scenarios(model: ScoreMatching, normalizer: StateNormalizer, n_samples: int, *,
                       given: Mapping[str, float] | None = None, seed: int = 0,
                       n_levels: int | None = None, steps_per_level: int | None = None
                       ) -> pl.DataFrame:
    """``n_samples`` states from ``model``, with the raw features ``given`` held fixed.

    Parameters
    ----------
    model : ScoreMatching
        Trained on states normalized by ``normalizer``.
    normalizer : StateNormalizer
    n_samples : int
    given : mapping of feature name to raw value, optional
    seed : int
    n_levels, steps_per_level : int, optional
        Langevin overrides (default: the model's config).

    Returns
    -------
    pl.DataFrame
        ``sample`` (0..S-1), one column per feature in raw units and one ``z_<feature>`` per
        feature in z-scores.
    """
    features = list(normalizer.features)
    if model.feature_names is not None and list(model.feature_names) != features:
        raise TapecastError(f"the model's features ({', '.join(model.feature_names)}) are not "
                            f"the normalizer's ({', '.join(features)})")
    if model.dim != len(features):
        raise TapecastError(f"the model draws states of dimension {model.dim}; the normalizer "
                            f"has {len(features)} features")
    given = dict(given or {})
    if given:
        raw = np.array([[given.get(f, m) for f, m in zip(features, normalizer.mean,
                                                          strict=True)]])
        z_known = normalizer.transform(raw)[0]  # (D,)
        for k, f in enumerate(features):
            lo, hi = (normalizer.mean[k] + sign * normalizer.clip * normalizer.std[k]
                      for sign in (-1.0, 1.0))
            if f in given and not lo <= given[f] <= hi:
                raise TapecastError(f"--given {f}={given[f]:g}: outside the training range "
                                    f"the model saw, [{lo:.4g}, {hi:.4g}] (±{normalizer.clip:g} "
                                    "σ of the train split)")
        mask = np.array([f in given for f in features])
        draws = model.sample(n_samples, seed=seed, known=z_known[None], known_mask=mask[None],
                             n_levels=n_levels, steps_per_level=steps_per_level)[0]
    else:
        draws = model.sample(n_samples, seed=seed, n_levels=n_levels,
                             steps_per_level=steps_per_level)
    z = draws.double().numpy()  # (S, D)
    values = normalizer.inverse(np.clip(z, -normalizer.clip, normalizer.clip))
    columns: dict[str, Any] = {"sample": np.arange(n_samples)}
    columns.update({f: values[:, k] for k, f in enumerate(features)})
    columns.update({f"z_{f}": z[:, k] for k, f in enumerate(features)})
    return pl.DataFrame(columns)
