"""The evaluation ruler: proper scores, calibration and joint-structure checks of sample forecasts.

Scores are pure functions of ``(samples, realized, mask)`` that return per-element arrays;
aggregation (means per channel, group, regime, horizon step) lives apart from them. Array layout
throughout: ``samples`` (B, S, K, H), ``realized`` (B, K, H), ``mask`` (B, K, H) with True where an
entry is scored. See ``docs/evaluation-scores.md``.
"""
