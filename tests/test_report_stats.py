"""Tests of hie_core.report.analysis.stats and hie_core.report.analysis.variance: the crossed test, the trend test, Holm, ranks."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from hie_core.report.analysis import stats, variance


@pytest.fixture(autouse=True)
def _few_resamples(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(stats.RESAMPLES_ENV, "499")


def test_crossed_test_of_one_run_is_the_paired_t_test_and_wilcoxon_is_kept_aside() -> None:
    a = np.array([0.5, 0.6, 0.7, 0.9, 0.4, 0.55, 0.8])
    b = np.array([0.4, 0.4, 0.6, 0.5, 0.45, 0.3, 0.7])
    res = variance.paired_contrast(a[:, None], b[:, None], margin=0.3)
    assert res["n_cases"] == 7 and res["n_seeds"] == 1 and res["reason"] == ""
    assert res["estimate"] == pytest.approx(np.mean(a - b)) and res["df"] == 6
    assert res["p"] == pytest.approx(scipy_stats.ttest_rel(a, b).pvalue)
    # ties (three differences of 0.1): the normal approximation with the tie correction
    assert res["p_wilcoxon"] == pytest.approx(scipy_stats.wilcoxon(a, b, method="asymptotic").pvalue)
    # TOST: the larger of the two one-sided t tests against -0.3 and +0.3
    d, se = a - b, np.std(a - b, ddof=1) / np.sqrt(7)
    lower = scipy_stats.t.sf((d.mean() + 0.3) / se, 6)
    upper = scipy_stats.t.cdf((d.mean() - 0.3) / se, 6)
    assert res["p_equivalence"] == pytest.approx(max(lower, upper))
    assert res["ci_low"] < res["estimate"] < res["ci_high"]
    assert variance.paired_contrast(a[:, None], b[:, None]) == variance.paired_contrast(
        a[:, None], b[:, None]
    )


def test_crossed_test_when_no_test_can_run() -> None:
    same = np.array([[0.5, 0.6], [0.6, 0.7], [0.7, 0.8]])
    zero = variance.paired_contrast(same, same)
    assert zero["estimate"] == 0 and math.isnan(zero["p"]) and "do not vary" in zero["reason"]
    assert zero["ci_low"] == 0 and zero["ci_high"] == 0
    one = variance.paired_contrast(np.array([[0.5], [np.nan]]), np.array([[0.4], [0.3]]))  # NaN case dropped
    assert one["n_cases"] == 1 and one["estimate"] == pytest.approx(0.1) and "one case" in one["reason"]
    assert variance.untestable_reason(one).startswith("split too small: 1 case(s)")
    with pytest.raises(ValueError, match="same cases"):
        variance.paired_contrast(np.zeros((2, 1)), np.zeros((3, 1)))


def test_stratum_trend_is_the_least_squares_slope_with_its_contrast_t_test() -> None:
    levels = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    y = np.array([0.3, 0.4, 0.35, 0.5, 0.55, 0.7, 0.6, 0.65])
    m = np.stack([y - 0.01, y + 0.01], axis=1)  # a run shift shared by every case cancels in the trend
    res = variance.stratum_trend(m, levels)
    assert res["estimate"] == pytest.approx(np.polyfit(levels, y, 1)[0]) and res["df"] == 8 - 3
    means = {g: y[levels == g].mean() for g in range(3)}
    pooled = sum(((y[levels == g] - means[g]) ** 2).sum() for g in range(3)) / 5
    se = np.sqrt(pooled / ((levels - levels.mean()) ** 2).sum())
    assert res["se"] == pytest.approx(se) and res["p"] == pytest.approx(
        2 * scipy_stats.t.sf(res["estimate"] / se, 5)
    )
    assert res["means"] == pytest.approx(means) and res["counts"] == {0: 3, 1: 2, 2: 3}
    assert res["ci_low"] < res["estimate"] < res["ci_high"]
    short = variance.stratum_trend(m[:6], levels[:6])  # one case in the last stratum
    assert math.isnan(short["p"]) and "at least 2 cases" in short["reason"]


def test_holm_by_hand_and_nan_outside_the_family() -> None:
    # sorted 0.01, 0.03, 0.04 -> x3, x2, x1 = 0.03, 0.06, 0.04 -> monotone: 0.03, 0.06, 0.06
    np.testing.assert_allclose(stats.holm([0.01, 0.04, np.nan, 0.03]), [0.03, 0.06, np.nan, 0.06])
    assert np.isnan(stats.holm([np.nan])).all() and stats.holm([]).size == 0


def test_challenge_ranks_directions_ties_and_missing_means() -> None:
    means = pd.DataFrame({"dice": [0.5, 0.7, 0.5, 0.1], "masd_mm": [2.0, 3.0, 1.0, np.nan], "nsd": [0.6, 0.8, 0.7, 0.2]},
                         index=["a", "b", "c", "d"])  # fmt: skip
    ranks = stats.challenge_ranks(means, {"dice": True, "masd_mm": False, "nsd": True})
    assert ranks["rank_dice"].tolist() == [2.5, 1.0, 2.5, 4.0]  # tie shares the average rank
    assert ranks["rank_masd_mm"].tolist() == [2.0, 3.0, 1.0, 4.0]  # lower is better; NaN last
    assert ranks["rank_mean"].tolist() == pytest.approx(
        [(2.5 + 2 + 3) / 3, (1 + 3 + 1) / 3, (2.5 + 1 + 2) / 3, 4.0]
    )
