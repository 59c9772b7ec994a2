"""Tests of hie_core.report.stats: bootstrap intervals, paired comparisons, Holm, challenge ranks."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from hie_core.report import stats


def test_mean_ci_skips_undefined_values_and_brackets_the_mean() -> None:
    res = stats.mean_ci([0.2, 0.4, np.nan, 0.6, 0.8])
    assert (
        res["mean"] == pytest.approx(0.5)
        and res["n"] == 4
        and res["n_undefined"] == 1
        and res["reason"] == ""
    )
    assert 0.2 <= res["ci_low"] < 0.5 < res["ci_high"] <= 0.8
    assert stats.mean_ci([0.2, 0.4, 0.6, 0.8]) == stats.mean_ci([0.2, 0.4, 0.6, 0.8])  # seeded


def test_mean_ci_degenerate_inputs() -> None:
    const = stats.mean_ci([0.3, 0.3, 0.3])
    assert const["ci_low"] == pytest.approx(0.3) and const["ci_high"] == pytest.approx(0.3)
    one = stats.mean_ci([0.7, np.nan])
    assert one["mean"] == 0.7 and math.isnan(one["ci_low"]) and "one value" in one["reason"]
    none = stats.mean_ci([np.nan])
    assert math.isnan(none["mean"]) and none["n"] == 0 and none["reason"] == "no defined value"
    with pytest.raises(ValueError, match="inf"):
        stats.mean_ci([0.1, np.inf])


def test_paired_difference_matches_scipy_and_drops_incomplete_pairs() -> None:
    a = np.array([0.5, 0.6, 0.7, 0.9, 0.4, np.nan, 0.8])
    b = np.array([0.4, 0.4, 0.6, 0.5, 0.45, 0.3, np.nan])
    res = stats.paired_difference(a, b)
    keep = slice(0, 5)
    assert res["n_pairs"] == 5 and res["reason"] == ""
    assert res["mean_difference"] == pytest.approx(np.mean(a[keep] - b[keep]))
    assert res["p_wilcoxon"] == pytest.approx(scipy_stats.wilcoxon(a[keep], b[keep]).pvalue)
    assert res["ci_low"] < res["mean_difference"] < res["ci_high"]


def test_paired_difference_constant_shift_has_a_point_interval_and_the_exact_p() -> None:
    b = np.linspace(0.1, 0.6, 8)
    res = stats.paired_difference(b + 0.1, b)
    assert res["ci_low"] == pytest.approx(0.1) and res["ci_high"] == pytest.approx(0.1)
    assert res["p_wilcoxon"] == pytest.approx(2 / 2**8)  # all 8 signs positive: the exact two-sided minimum


def test_paired_difference_when_no_test_can_run() -> None:
    zero = stats.paired_difference([0.5, 0.6, 0.7], [0.5, 0.6, 0.7])
    assert zero["mean_difference"] == 0 and math.isnan(zero["p_wilcoxon"]) and "zero" in zero["reason"]
    assert zero["ci_low"] == 0 and zero["ci_high"] == 0
    one = stats.paired_difference([0.5, np.nan], [0.4, 0.3])
    assert (
        one["n_pairs"] == 1 and one["mean_difference"] == pytest.approx(0.1) and "one pair" in one["reason"]
    )
    none = stats.paired_difference([np.nan], [0.3])
    assert (
        none["n_pairs"] == 0 and math.isnan(none["mean_difference"]) and none["reason"] == "no complete pairs"
    )
    with pytest.raises(ValueError, match="paired"):
        stats.paired_difference([0.1, 0.2], [0.1])


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
