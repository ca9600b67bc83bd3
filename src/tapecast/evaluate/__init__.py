"""The evaluation ruler: every forecast judged the same way, beside baselines and controls.

Element-wise scores are pure functions of ``(samples, realized, mask)`` returning per-element
arrays (``scores.py``, ``calibration.py``, ``joint.py``); aggregation into ``metrics.json`` lives
apart (``metrics.py``), as do the statistical tests (``significance.py``: Diebold–Mariano with a
HAC variance; ``var_tests.py``: Kupiec and Christoffersen), trading metrics (``trading.py``),
stylized facts (``stylized.py``), the honest walk-forward with SHUFFLE / RANDOM / NAIVE controls
(``walkforward.py``) and the HTML report (``report.py``, ``plots.py``). Array layout throughout:
``samples`` (B, S, K, H), ``realized`` (B, K, H), ``mask`` (B, K, H), True where an entry is scored.
This package never imports ``tapecast.models``: forecasters come in as arguments. See
``docs/evaluation-scores.md``, ``docs/evaluation-tests.md`` and ``docs/evaluation-report.md``.
"""
