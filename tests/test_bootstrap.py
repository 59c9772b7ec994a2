"""The project's one bootstrap (hie_core.bootstrap) against closed-form answers, and its users.

Closed forms: the bootstrap mean of n draws from a two-point sample {0, 1} (half each) is
Binomial(n, 1/2) / n, so its percentile interval is two binomial quantiles; for an additive matrix
``a_case + b_run`` the pigeonhole grand mean's variance is exactly ``var(a)/n + var(b)/r``
(population variances); a constant matrix has a zero-width interval.
"""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

from hie_core import bootstrap
from hie_core.metrics import summarize
from hie_core.report.analysis import stats

ROOT = Path(__file__).resolve().parents[1]


def test_two_point_sample_interval_is_the_binomial_quantiles() -> None:
    n = 10
    sample = np.array([0.0, 1.0] * (n // 2))[:, None]
    low, high = bootstrap.crossed_ci(sample, n_resamples=9999, seed=3)
    binom = scipy_stats.binom(n, 0.5)
    assert (low, high) == (binom.ppf(0.025) / n, binom.ppf(0.975) / n) == (0.2, 0.8)


def test_additive_matrix_variance_is_case_plus_run_variance() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1.0, 12), rng.normal(0, 2.0, 4)
    means = bootstrap.pigeonhole_means(a[:, None] + b[None, :], n_resamples=40000, seed=1)
    expected = a.var() / a.size + b.var() / b.size
    assert means.mean() == pytest.approx(a.mean() + b.mean(), abs=0.02)
    assert means.var() == pytest.approx(expected, rel=0.03)


def test_constant_matrix_and_too_few_cases() -> None:
    assert bootstrap.crossed_ci(np.full((5, 3), 0.4), n_resamples=99) == (0.4, 0.4)
    assert all(math.isnan(v) for v in bootstrap.crossed_ci(np.array([[0.3, 0.5]]), n_resamples=99))
    with pytest.raises(ValueError, match="confidence"):
        bootstrap.percentile_interval(np.arange(5.0), confidence=1.0)
    with pytest.raises(ValueError, match="infinite"):
        bootstrap.crossed_ci(np.array([[math.inf], [1.0]]))


def test_resample_count_from_argument_environment_or_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(bootstrap.RESAMPLES_ENV, "123")
    assert bootstrap.resamples() == 123 and bootstrap.pigeonhole_means(np.ones((3, 1))).shape == (123,)
    assert summarize([{"dice": 0.1}, {"dice": 0.9}], metrics=("dice",)) == summarize(
        [{"dice": 0.1}, {"dice": 0.9}], metrics=("dice",), n_resamples=123
    )
    monkeypatch.delenv(bootstrap.RESAMPLES_ENV)
    assert bootstrap.resamples() == bootstrap.DEFAULT_RESAMPLES == 9999
    with pytest.raises(ValueError, match="at least 99"):
        summarize([{"dice": 0.1}, {"dice": 0.9}], metrics=("dice",), n_resamples=10)


def test_summarize_interval_is_the_studys_bootstrap() -> None:
    values = np.array([0.2, 0.4, 0.9, 0.5, 0.7, 0.1])
    out = summarize([{"dice": v} for v in values], metrics=("dice",), n_resamples=999, seed=4)["dice"]
    assert (out["ci_low"], out["ci_high"]) == stats.crossed_ci(values[:, None], n_resamples=999, seed=4)
    two = summarize([{"dice": v} for v in [0.0, 1.0] * 5], metrics=("dice",), n_resamples=9999, seed=3)[
        "dice"
    ]
    assert (two["ci_low"], two["ci_high"]) == (0.2, 0.8)  # the binomial quantiles, as above


def test_one_resampling_loop_in_the_package() -> None:
    """Only hie_core.bootstrap draws resamples: no other module calls ``rng.multinomial`` or
    indexes a sample with ``integers(0, n, size=(B, n))`` (the hand-written bootstrap it replaced)."""
    offenders = []
    for path in sorted((ROOT / "hie_core").rglob("*.py")):
        if path.name == "bootstrap.py" and path.parent.name == "hie_core":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                size = next((k.value for k in node.keywords if k.arg == "size"), None)
                if node.func.attr == "multinomial" or (
                    node.func.attr == "integers" and isinstance(size, ast.Tuple) and len(size.elts) == 2
                ):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, f"resampling outside hie_core.bootstrap: {offenders}"
