"""Calibration of the crossed noise model (hie_core.report.analysis.variance, hie_core.report.analysis.stats).

Simulated per-case, per-run score tables with known case, run and case x run SDs (no training):
the method-of-moments components come back within tolerance, and the pigeonhole (crossed)
intervals of a known difference cover it in at least 90% of 200 simulated studies, while the
old nested bootstrap (cases, then runs within each case) does not when the run SD is large.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from hie_core.report.analysis import power, stats, variance

B = 299  # resamples per simulated study: coverage needs the 2.5% and 97.5% quantiles only roughly


@pytest.fixture(autouse=True)
def _few_resamples(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(stats.RESAMPLES_ENV, "499")


def _simulate(rng: np.random.Generator, n: int, r: int, sds: tuple[float, float, float], mean: float = 0.0):
    """``(n, r)`` differences ``mean + c_i + u_j + e_ij`` with the given SDs of c, u and e."""
    case, run, case_run = sds
    return mean + rng.normal(0, case, (n, 1)) + rng.normal(0, run, (1, r)) + rng.normal(0, case_run, (n, r))


def _nested_ci(d: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """The replaced two-level bootstrap: cases drawn, then within each drawn case its runs drawn."""
    n, r = d.shape
    cases = rng.integers(0, n, (B, n))
    runs = rng.integers(0, r, (B, n, r))
    means = d[cases[..., None], runs].mean(axis=(1, 2))
    return tuple(np.quantile(means, [0.025, 0.975]))


def test_components_are_recovered_from_a_large_simulated_table() -> None:
    rng = np.random.default_rng(1)
    sds = (0.03, 0.02, 0.06)
    estimates = np.array([[getattr(variance.variance_components(_simulate(rng, 300, 30, sds)), k)
                           for k in ("sd_case", "sd_run", "sd_case_run")] for _ in range(20)])  # fmt: skip
    np.testing.assert_allclose(estimates.mean(axis=0), sds, rtol=0.12)
    np.testing.assert_allclose(np.median(estimates[:, 2]), 0.06, rtol=0.01)  # 8,671 df: tight


def test_components_closed_forms_and_edge_cases() -> None:
    d = np.array([[1.0, 3.0], [2.0, 4.0], [6.0, 8.0]])  # case + run effects, no interaction
    c = variance.variance_components(d)
    assert c.sd_case_run == 0 and c.sd_run == pytest.approx(
        math.sqrt(2.0)
    )  # run means 3, 5: MS_run 3 x 2 = 6, / 3 cases
    assert c.sd_case == pytest.approx(np.std([2, 3, 7], ddof=1))
    # Var(mean) = sd_case^2 / n + sd_run^2 / r; Satterthwaite over the case (2 df) and run (1 df) mean squares
    assert c.se == pytest.approx(math.sqrt(c.sd_case**2 / 3 + c.sd_run**2 / 2))
    ms_case, ms_run = 2 * np.var([2, 3, 7], ddof=1), 6.0
    assert c.df == pytest.approx((ms_case + ms_run) ** 2 / (ms_case**2 / 2 + ms_run**2 / 1))
    one_run = variance.variance_components(d[:, :1])  # one run: the paired t test of the cases
    assert (
        math.isnan(one_run.sd_run)
        and one_run.df == 2
        and one_run.se == pytest.approx(np.std(d[:, 0], ddof=1) / math.sqrt(3))
    )
    res = variance.paired_contrast(
        d, np.zeros((3, 1)), margin=1.0
    )  # a one-run reference: subtracted from each run
    assert res["estimate"] == pytest.approx(d.mean()) and res["n_seeds"] == 2
    with pytest.raises(ValueError, match="finite"):
        variance.variance_components(np.array([[1.0, np.nan], [2.0, 3.0]]))


def test_crossed_intervals_cover_and_nested_ones_do_not_when_the_run_sd_is_large() -> None:
    rng = np.random.default_rng(7)
    n, r, truth = 30, 10, 0.01
    sds = (0.03, 0.04, 0.05)  # the run SD is large: a model's shift is shared by every case
    crossed = nested = tested = 0
    for k in range(200):
        d = _simulate(rng, n, r, sds, truth)
        low, high = stats.crossed_ci(d, n_resamples=B, seed=k)
        crossed += low <= truth <= high
        low, high = _nested_ci(d, rng)
        nested += low <= truth <= high
        comp = variance.variance_components(d)
        res = variance.crossed_test(d - truth, n_resamples=99, seed=k)
        tested += res["p"] >= 0.05  # the t test of the true difference keeps its level
        assert res["df"] == pytest.approx(comp.df)
    assert crossed >= 180, crossed
    assert nested < 150, nested
    assert tested >= 180, tested


def test_resample_count_is_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    d = np.arange(12.0).reshape(6, 2)
    assert stats.pigeonhole_means(d, n_resamples=123).shape == (123,)
    monkeypatch.setenv(stats.RESAMPLES_ENV, "150")
    assert stats.resamples() == 150 and stats.pigeonhole_means(d).shape == (150,)
    monkeypatch.delenv(stats.RESAMPLES_ENV)
    assert stats.resamples() == stats.DEFAULT_RESAMPLES == 9999
    monkeypatch.setenv(stats.RESAMPLES_ENV, "many")
    with pytest.raises(ValueError, match="HIE_BOOTSTRAP_RESAMPLES"):
        stats.resamples()
    with pytest.raises(ValueError, match="at least 99"):
        stats.resamples(10)


def test_pigeonhole_resamples_cases_and_runs_and_skips_undefined_cells() -> None:
    d = np.array([[0.0, 10.0], [0.0, 10.0], [0.0, 10.0]])  # all spread is between the two runs
    means = stats.pigeonhole_means(d, n_resamples=999, seed=0)
    assert set(np.round(means, 9)) == {0.0, 5.0, 10.0}  # run draws (0,0), (0,1)/(1,0), (1,1)
    assert np.mean(means == 5.0) == pytest.approx(0.5, abs=0.05)
    assert np.allclose(stats.pigeonhole_means(d[:, :1], n_resamples=99), 0.0)  # one run: nothing to resample
    with_nan = np.array([[1.0, np.nan], [1.0, 1.0]])
    drawn = stats.pigeonhole_means(with_nan, n_resamples=999)
    assert np.allclose(drawn[~np.isnan(drawn)], 1.0)  # a resample's mean is that of its defined cells
    assert np.isnan(drawn).mean() == pytest.approx(1 / 16, abs=0.03)  # only the undefined cell drawn: no mean
    grouped = stats.pigeonhole_means(np.array([[1.0], [1.0], [5.0], [5.0]]), 99, groups=[0, 0, 1, 1])
    assert grouped.shape == (99, 2) and np.allclose(grouped, [1.0, 5.0])  # cases drawn within their group
    shares = stats.p_rank_first({"a": d + 1, "b": d, "c": np.full((3, 1), -1.0)}, n_resamples=99)
    assert shares == {"a": 1.0, "b": 0.0, "c": 0.0}


def test_plan_components_t_quantiles_and_the_case_floor() -> None:
    noise = power.NoiseModel(0.05, 0.0, 0.0, "cases only")
    se, df = power.se_df(noise, 16, 3)
    assert se == pytest.approx(0.05 / 4) and df == pytest.approx(15)
    from scipy.stats import t

    expected = (t.ppf(1 - 0.05 / 4, 15) + t.ppf(0.8, 15)) * 0.05 / 4
    assert power.mdd(noise, 16, 3, n_tests=2) == pytest.approx(expected)
    assert power.case_floor(noise, 16, n_tests=2) == pytest.approx(
        expected
    )  # no run noise: seeds do not matter
    default = power.default_noise()
    assert (default.sd_case, default.sd_run, default.sd_case_run) == (0.026, 0.011, 0.065)
    by_seeds = [power.mdd(default, 44, s, n_tests=2) for s in (2, 5, 10, 20, 100)]
    assert by_seeds == sorted(by_seeds, reverse=True) and by_seeds[-1] > power.case_floor(default, 44, 2)
    assert power.mdd(default, 89, 5, n_tests=2, folds=5) < power.mdd(default, 89, 5, n_tests=2)  # 25 models
    wide = power.NoiseModel(0.06, 0.011, 0.065, "a real case SD")
    assert power.case_floor(wide, 44, 2) > power.TARGET_DICE  # 44 cases cannot reach 0.02 whatever the seeds
    assert math.isnan(power.mdd(default, 1, 5))


def _rejections(n: int, r: int, sds: tuple[float, float, float], studies: int, seed: int) -> float:
    """Share of simulated null studies (true mean 0) whose crossed t test rejects at 5%."""
    from scipy.stats import t

    rng = np.random.default_rng(seed)
    out = 0
    for _ in range(studies):
        c = variance.variance_components(_simulate(rng, n, r, sds))
        out += 2 * t.sf(abs(c.mean) / c.se, c.df) < 0.05
    return out / studies


def test_the_t_test_level_with_two_runs_as_the_variance_docstring_states() -> None:
    """With the quick study's components the two-run test is conservative; with a large run SD it is not."""
    assert _rejections(15, 2, power.DEFAULT_NOISE, 1500, 3) < 0.05
    assert _rejections(15, 2, (0.026, 0.04, 0.065), 1500, 3) > 0.08
    assert abs(_rejections(30, 10, (0.03, 0.04, 0.05), 1500, 3) - 0.05) < 0.02  # enough runs: at its level
