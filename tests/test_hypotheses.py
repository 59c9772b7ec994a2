"""Tests of the seed's claims as hypotheses (hie_core.report.analysis.hypotheses) and the study's endpoint rules.

Every study folder is written by the test (no training): per-case Dice per seed, MASD and NSD
from closed forms (tests/report_fixtures.py), so each verdict branch is built on purpose.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hie_core.report.analysis import hypotheses, results
from hie_core.report.analysis.stats import holm
from hie_core.report.analysis.variance import NOT_TESTABLE
from tests.report_fixtures import STRATA_CYCLE, masd_of, write_study

BASE = np.round(np.linspace(0.30, 0.74, 12), 3)
J = 0.001 * np.arange(12)
#: Small paired noise with mean 0 and no ties: not significant, well inside a 0.02 margin.
SMALL = 0.001 * np.array([3, -3.5, 2, -2.5, 4, -4.5, 1, -1.5, 5, -5.5, 6, -4])
#: Large paired noise with mean about 0: not significant, far outside a 0.02 margin.
LARGE = 0.01 * np.array([15, -14, 12, -13, 9, -8, 17, -18, 6, -5, 11, -12])


pytestmark = pytest.mark.usefixtures("few_resamples")  # tests/conftest.py


def _t_p(diff: np.ndarray) -> float:
    """Two-sided p of the one-sample t test of ``diff`` (the crossed test when runs agree exactly)."""
    from scipy import stats

    return float(stats.ttest_1samp(diff, 0.0).pvalue)


def _hyp(study: Path, split: str = "test") -> pd.DataFrame:
    results.write_results(study)
    return pd.read_csv(study / "results" / f"hypotheses_{split}.csv", keep_default_na=True)


def _row(h: pd.DataFrame, contrast: str, metric: str = "dice", family: str | None = None) -> pd.Series:
    rows = h[(h["contrast"] == contrast) & (h["metric"] == metric)]
    if family:
        rows = rows[rows["family"] == family]
    assert len(rows) == 1, (contrast, metric, rows)
    return rows.iloc[0]


@pytest.fixture
def clear_study(tmp_path: Path) -> Path:
    """DiceFocal+HDT clearly above DiceFocal; Tversky+HDT clearly below Tversky; 2 seeds each, runs
    shifted alike on both sides, so each paired difference is the same in both runs."""
    return write_study(tmp_path / "clear", {
        "dice_focal": [BASE, BASE + 0.01], "tversky": [BASE + 0.05, BASE + 0.06],
        "dice_focal_hdt": [BASE + 0.1 + J, BASE + 0.11 + J], "tversky_hdt": [BASE - 0.1 - J, BASE - 0.09 - J],
    }, best_epochs={"dice_focal": [10, 11], "dice_focal_hdt": [12, 14], "tversky": [9, 9], "tversky_hdt": [8, 12]})  # fmt: skip


def test_supported_and_contradicted_primary_contrasts(clear_study: Path) -> None:
    h = _hyp(clear_study)
    primary = h[h["family"] == "primary"]
    assert primary["contrast"].tolist() == ["dice_focal_hdt - dice_focal", "tversky_hdt - tversky"]
    up, down = primary.iloc[0], primary.iloc[1]
    assert up["verdict"] == "supported" and down["verdict"] == "contradicted"
    assert up["estimate"] == pytest.approx(0.1 + J.mean()) and up["n_cases"] == 12 and up["n_seeds"] == 2
    assert up["ci_low"] > 0 and down["ci_high"] < 0
    np.testing.assert_allclose(primary["p_holm"], holm(primary["p"]))  # the primary family is these two alone
    # no run or case x run spread: the crossed test is the paired t test of the cases, 11 df
    assert up["p"] == pytest.approx(_t_p(0.1 + J)) and up["df"] == pytest.approx(11)
    assert up["sd_case"] == pytest.approx(J.std(ddof=1)) and up["sd_run"] == 0
    assert up["sd_case_run"] == pytest.approx(0, abs=1e-12)
    assert up["p_wilcoxon"] == pytest.approx(
        2 / 2**12
    )  # the sensitivity column: every case favours the hybrid
    assert up["seed_estimate"] == pytest.approx(0.4925 - 0.4900)  # from the seed's Table 1
    assert (primary["mdd"] > 0).all() and (primary["margin"] == 0.02).all()
    assert hypotheses.claim_verdicts(h)["a"] == "contradicted"  # "each hybrid beats its base" fails for one


def test_the_run_spread_widens_the_test(tmp_path: Path) -> None:
    """The same per-case differences, once shared by both runs and once with a run shift: fewer df, larger p."""
    shift = [BASE + 0.03 + SMALL, BASE + 0.07 + SMALL]
    study = write_study(tmp_path / "runs", {"dice_focal": [BASE, BASE], "dice_focal_hdt": shift,
                                            "tversky": [BASE, BASE], "tversky_hdt": [BASE + 0.05 + SMALL] * 2})  # fmt: skip
    h = _hyp(study)
    shared, shifted = (
        _row(h, "tversky_hdt - tversky", family="primary"),
        _row(h, "dice_focal_hdt - dice_focal", family="primary"),
    )
    assert shared["estimate"] == pytest.approx(shifted["estimate"])
    assert shifted["sd_run"] == pytest.approx(
        0.02 * math.sqrt(2), rel=0.05
    )  # run means 0.03 and 0.07 (+ SMALL)
    assert shifted["df"] < 2 < 11 == pytest.approx(shared["df"]) and shifted["p"] > 10 * shared["p"]


def test_claims_b_c_d_are_secondary_and_adjusted_together(clear_study: Path) -> None:
    h = _hyp(clear_study)
    secondary = h[(h["family"] == "secondary") & (h["verdict"] != NOT_TESTABLE)]
    tested = secondary["p"].notna()
    np.testing.assert_allclose(secondary.loc[tested, "p_holm"], holm(secondary.loc[tested, "p"]))
    b = h[h["hypothesis"] == "b"]
    assert set(b["metric"]) == {"dice", "nsd"} and len(b) == 2 * 3
    assert (b["verdict"] == "contradicted").all()  # Tversky+HDT is the worst loss here
    c = _row(h, "dice_focal_hdt - dice_focal", "best_epoch")
    assert c["hypothesis"] == "c" and c["estimate"] == pytest.approx(2.5) and c["n_cases"] == 2
    assert c["p"] == pytest.approx(_t_p(np.array([2.0, 3.0])))  # one value per run pair, 1 df
    assert c["seed_estimate"] == 23 and c["verdict"] == "inconclusive"
    d = h[h["hypothesis"] == "d"]
    assert len(d) == 4 and (d["direction"] == 1).all()
    levels = np.array([("<1%", "1-5%", ">5%").index(STRATA_CYCLE[i % 6]) for i in range(12)])
    dice = _row(h, "tversky: trend over <1%, 1-5%, >5%")
    y = BASE + 0.055
    assert dice["estimate"] == pytest.approx(np.polyfit(levels, y, 1)[0]) and dice["df"] == 12 - 3
    assert dice["detail"].startswith(f"<1% {y[levels == 0].mean():.3f} (6), 1-5%")


def test_claim_c_is_not_testable_where_early_stopping_cannot_act(clear_study: Path) -> None:
    for config in clear_study.glob("dice_focal*/seed0/config.json"):
        info = json.loads(config.read_text())
        info["config"]["patience"] = 15
        config.write_text(json.dumps(info))
    h = _hyp(clear_study)
    c = _row(h, "dice_focal_hdt - dice_focal", "best_epoch")
    assert (
        c["verdict"] == NOT_TESTABLE and "patience 15 ≥ 15 epochs" in c["reason"] and math.isnan(c["p_holm"])
    )
    capped = _row(h, "tversky_hdt - tversky", "best_epoch")
    assert capped["verdict"] != NOT_TESTABLE
    summary = clear_study / "tversky_hdt" / "seed1" / "summary.json"
    summary.write_text(json.dumps({**json.loads(summary.read_text()), "best_epoch": 15}))
    capped = _row(_hyp(clear_study), "tversky_hdt - tversky", "best_epoch")
    assert capped["verdict"] == NOT_TESTABLE and "15-epoch cap in 1 of 4 runs" in capped["reason"]
    info = json.loads((clear_study / "results" / "study.json").read_text())
    assert info["claims"]["test"]["c"] == NOT_TESTABLE


def test_a_split_too_small_gets_no_verdict(clear_study: Path) -> None:
    h = _hyp(clear_study, "val")  # 2 validation cases
    cases = h[h["metric"] != "best_epoch"]  # claim c is paired by run, not by case
    assert (cases["verdict"] == NOT_TESTABLE).all() and cases["p_holm"].isna().all()
    assert cases["reason"].str.contains("split too small|strata").all()
    c = pd.read_csv(clear_study / "results" / "comparisons_val.csv")
    assert (c["verdict"] == NOT_TESTABLE).all()


def test_equivalent_and_inconclusive(tmp_path: Path) -> None:
    study = write_study(tmp_path / "close", {
        "dice_focal": [BASE, BASE], "dice_focal_hdt": [BASE + SMALL, BASE + SMALL],
        "tversky": [BASE, BASE], "tversky_hdt": [BASE + LARGE, BASE + LARGE],
    })  # fmt: skip
    h = _hyp(study)
    eq = _row(h, "dice_focal_hdt - dice_focal", family="primary")
    inc = _row(h, "tversky_hdt - tversky", family="primary")
    assert eq["p_holm"] >= 0.05 and eq["p_equivalence_holm"] < 0.05 and eq["verdict"] == "equivalent"
    assert inc["p_holm"] >= 0.05 and inc["p_equivalence_holm"] >= 0.05 and inc["verdict"] == "inconclusive"
    assert inc["mdd"] > 0.1 > eq["mdd"]  # the noisy contrast could only have detected a large difference
    info = json.loads((study / "results" / "study.json").read_text())
    assert (
        info["best_loss"]["test"]["named"] is False
        and "not shown better" in info["best_loss"]["test"]["reason"]
    )
    assert info["claims"]["test"]["a"] == "inconclusive"
    components = info["variance_components"]["test"]
    assert [c["contrast"] for c in components] == ["dice_focal_hdt - dice_focal", "tversky_hdt - tversky"]
    assert components[0]["sd_case"] == pytest.approx(SMALL.std(ddof=1)) and components[0]["n_runs"] == 2


def test_a_best_loss_is_named_only_when_the_tests_support_it(clear_study: Path) -> None:
    results.write_results(clear_study)
    info = json.loads((clear_study / "results" / "study.json").read_text())
    best = info["best_loss"]["test"]
    assert best["candidate"] == "dice_focal_hdt" and best["named"] is True
    assert set(best["p"]) == {"dice_focal", "tversky", "tversky_hdt"} and max(best["p"].values()) < 0.05
    design = info["design"]
    assert design["folds"] == 0 and design["seeds"] == 2 and design["n_cases"] == {"test": 12, "val": 2}
    assert design["primary_family"] == ["dice_focal_hdt - dice_focal (dice)", "tversky_hdt - tversky (dice)"]
    assert design["margins"]["dice"] == 0.02
    assert (
        info["statistics"]["bootstrap_resamples"] == 499 and "pigeonhole" in info["statistics"]["bootstrap"]
    )


def test_the_margin_is_configurable(clear_study: Path) -> None:
    assert results.main([str(clear_study), "--margin", "0.05"]) == 0
    h = pd.read_csv(clear_study / "results" / "hypotheses_test.csv")
    assert (h.loc[(h["metric"] == "dice") & (h["hypothesis"] != "d"), "margin"] == 0.05).all()  # d: no margin
    assert results.main([str(clear_study), "--margin", "3"]) == 2


def test_empty_labels_are_their_own_endpoint(tmp_path: Path) -> None:
    first, second = BASE.copy(), BASE.copy()
    first[0], second[0] = 0.0, 1.0  # T00 has no lesion: seed 0 predicts 28 voxels, seed 1 nothing
    study = write_study(tmp_path / "empty", {"dice": [first, second], "tversky": [BASE + 0.1, BASE + 0.1]},
                        empty=[0])  # fmt: skip
    results.write_results(study)
    t1 = pd.read_csv(study / "results" / "table1_test.csv").set_index("method")
    assert t1.loc["dice", "n_cases"] == 11 and t1.loc["dice", "empty_cases"] == 1
    assert t1.loc["dice", "dice_mean"] == pytest.approx(BASE[1:].mean())  # T00 is out of the Dice mean
    assert t1.loc["dice", "fp_cases"] == 1 and t1.loc["dice", "fp_volume_ml_mean"] == pytest.approx(0.125)
    assert t1.loc["dice", "masd_undefined"] == 0  # an empty-label case is not a MASD case at all
    s = pd.read_csv(study / "results" / "strata_test.csv", keep_default_na=False, na_values=[""])
    empty = s[(s["method"] == "dice") & (s["stratum"] == "empty label")].iloc[0]
    assert empty["n_cases"] == 1 and empty["fp_cases"] == 1 and math.isnan(empty["dice_mean"])
    per_case = pd.read_csv(study / "results" / "per_case_test.csv")
    assert per_case.loc[per_case["case_id"] == "T00", "stratum"].eq("empty label").all()
    c = pd.read_csv(study / "results" / "comparisons_test.csv")
    assert (c["n_pairs"] == 11).all()


def test_masd_is_each_methods_own_mean_with_a_worst_case_sensitivity(tmp_path: Path) -> None:
    hdt0, hdt1 = BASE.copy(), BASE.copy()
    hdt0[[1, 2]] = 0.0  # hdt misses T01 and T02 in seed 0: its MASD is undefined there
    study = write_study(tmp_path / "masd", {"dice": [BASE, BASE], "hdt": [hdt0, hdt1]})
    results.write_results(study)
    t1 = pd.read_csv(study / "results" / "table1_test.csv").set_index("method")
    assert t1.loc["hdt", "masd_undefined"] == 2 and t1.loc["hdt", "masd_undefined_runs"] == 2
    assert (
        t1.loc["hdt", "masd_cases"] == 10 and t1.loc["dice", "masd_cases"] == 12
    )  # hdt's misses stay its own
    own = np.delete(np.arange(12), [1, 2])
    assert t1.loc["dice", "masd_mm_mean"] == pytest.approx(masd_of(BASE).mean())
    assert t1.loc["hdt", "masd_mm_mean"] == pytest.approx(masd_of(BASE[own]).mean())
    worst = masd_of(BASE).max()  # the split's largest MASD, given to each undefined case-run
    runs = np.stack([masd_of(hdt0), masd_of(hdt1)], axis=1)
    assert t1.loc["hdt", "masd_mm_worst_mean"] == pytest.approx(np.where(np.isnan(runs), worst, runs).mean())
    assert t1.loc["hdt", "masd_mm_worst_ci_low"] <= t1.loc["hdt", "masd_mm_worst_mean"]
    assert (
        t1.loc["hdt", "rank_masd"] == 1 and t1.loc["hdt", "rank_masd_worst"] == 2
    )  # the imputation reorders
    c = pd.read_csv(study / "results" / "comparisons_test.csv")
    masd = c[(c["method"] == "hdt") & (c["metric"] == "masd_mm")].iloc[0]
    assert masd["n_pairs"] == 10  # a paired comparison uses the cases defined for both
