"""Tests of the seed's claims as hypotheses (hie_core.report.hypotheses) and the study's endpoint rules.

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

from hie_core.report import hypotheses, power, results
from hie_core.report.stats import holm
from tests.report_fixtures import masd_of, write_study

BASE = np.round(np.linspace(0.30, 0.74, 12), 3)
J = 0.001 * np.arange(12)
#: Small paired noise with mean 0 and no ties: not significant, well inside a 0.02 margin.
SMALL = 0.001 * np.array([3, -3.5, 2, -2.5, 4, -4.5, 1, -1.5, 5, -5.5, 6, -4])
#: Large paired noise with mean about 0: not significant, far outside a 0.02 margin.
LARGE = 0.01 * np.array([15, -14, 12, -13, 9, -8, 17, -18, 6, -5, 11, -12])


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
    """DiceFocal+HDT clearly above DiceFocal; Tversky+HDT clearly below Tversky; 2 seeds each."""
    return write_study(tmp_path / "clear", {
        "dice_focal": [BASE, BASE + 0.01], "tversky": [BASE + 0.05, BASE + 0.06],
        "dice_focal_hdt": [BASE + 0.1 + J, BASE + 0.12 + J], "tversky_hdt": [BASE - 0.1 - J, BASE - 0.08 - J],
    }, best_epochs={"dice_focal": [10, 11], "dice_focal_hdt": [20, 22], "tversky": [9, 9], "tversky_hdt": [8, 12]})  # fmt: skip


def test_supported_and_contradicted_primary_contrasts(clear_study: Path) -> None:
    h = _hyp(clear_study)
    primary = h[h["family"] == "primary"]
    assert primary["contrast"].tolist() == ["dice_focal_hdt - dice_focal", "tversky_hdt - tversky"]
    up, down = primary.iloc[0], primary.iloc[1]
    assert up["verdict"] == "supported" and down["verdict"] == "contradicted"
    assert up["estimate"] == pytest.approx(0.105 + J.mean()) and up["n_cases"] == 12 and up["n_seeds"] == 2
    assert up["ci_low"] > 0 and down["ci_high"] < 0
    np.testing.assert_allclose(primary["p_holm"], holm(primary["p"]))  # the primary family is these two alone
    assert up["p_holm"] == pytest.approx(
        2 * 2 / 2**12
    )  # every case favours the hybrid: Wilcoxon's smallest p, x2
    assert up["seed_estimate"] == pytest.approx(0.4925 - 0.4900)  # from the seed's Table 1
    assert (primary["mdd"] > 0).all() and (primary["margin"] == 0.02).all()
    assert hypotheses.claim_verdicts(h)["a"] == "contradicted"  # "each hybrid beats its base" fails for one


def test_claims_b_c_d_are_secondary_and_adjusted_together(clear_study: Path) -> None:
    h = _hyp(clear_study)
    secondary = h[h["family"] == "secondary"]
    tested = secondary["p"].notna()
    np.testing.assert_allclose(secondary.loc[tested, "p_holm"], holm(secondary.loc[tested, "p"]))
    b = secondary[secondary["hypothesis"] == "b"]
    assert set(b["metric"]) == {"dice", "nsd"} and len(b) == 2 * 3
    assert (b["verdict"] == "contradicted").all()  # Tversky+HDT is the worst loss here
    c = _row(h, "dice_focal_hdt - dice_focal", "best_epoch")
    assert c["hypothesis"] == "c" and c["estimate"] == pytest.approx(10.5) and c["n_cases"] == 2
    assert c["seed_estimate"] == 23 and c["verdict"] == "inconclusive"  # 2 paired runs cannot reach p < 0.05
    d = h[h["hypothesis"] == "d"]
    assert len(d) == 4 and (d["direction"] == -1).all() and (d["estimate"] < 0).all()  # <1% cases are lower


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
        and "no primary contrast" in info["best_loss"]["test"]["reason"]
    )
    assert info["claims"]["test"]["a"] == "inconclusive"


def test_a_best_loss_is_named_only_when_the_tests_support_it(clear_study: Path) -> None:
    results.write_results(clear_study)
    info = json.loads((clear_study / "results" / "study.json").read_text())
    best = info["best_loss"]["test"]
    assert best["candidate"] == "dice_focal_hdt" and best["named"] is True
    assert set(best["p_holm"]) == {"dice_focal", "tversky", "tversky_hdt"}
    design = info["design"]
    assert design["folds"] == 0 and design["seeds"] == 2 and design["n_cases"] == {"test": 12, "val": 2}
    assert design["primary_family"] == ["dice_focal_hdt - dice_focal (dice)", "tversky_hdt - tversky (dice)"]
    assert design["margins"]["dice"] == 0.02


def test_the_margin_is_configurable(clear_study: Path) -> None:
    assert results.main([str(clear_study), "--margin", "0.05"]) == 0
    h = pd.read_csv(clear_study / "results" / "hypotheses_test.csv")
    assert (
        h.loc[(h["metric"] == "dice") & (h["hypothesis"] != "d"), "margin"] == 0.05
    ).all()  # d: unpaired, no margin
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


def test_masd_uses_the_cases_defined_for_every_method_with_a_worst_case_row(tmp_path: Path) -> None:
    hdt0, hdt1 = BASE.copy(), BASE.copy()
    hdt0[[1, 2]] = 0.0  # hdt misses T01 in seed 0 and T02 in seed 0: MASD undefined there
    study = write_study(tmp_path / "masd", {"dice": [BASE, BASE], "hdt": [hdt0, hdt1]})
    results.write_results(study)
    t1 = pd.read_csv(study / "results" / "table1_test.csv").set_index("method")
    assert t1.loc["hdt", "masd_undefined"] == 2 and t1.loc["hdt", "masd_undefined_runs"] == 2
    assert (t1["masd_cases"] == 10).all()  # the common set: every method's mean is over the same 10 cases
    common = np.delete(np.arange(12), [1, 2])
    assert t1.loc["dice", "masd_mm_mean"] == pytest.approx(masd_of(BASE[common]).mean())
    worst = masd_of(BASE).max()  # the split's largest MASD, given to each undefined case-run
    runs = np.stack([masd_of(hdt0), masd_of(hdt1)], axis=1)
    assert t1.loc["hdt", "masd_mm_worst_mean"] == pytest.approx(np.where(np.isnan(runs), worst, runs).mean())
    c = pd.read_csv(study / "results" / "comparisons_test.csv")
    masd = c[(c["method"] == "hdt") & (c["metric"] == "masd_mm")].iloc[0]
    assert masd["n_pairs"] == 10


def test_power_closed_forms() -> None:
    noise = power.default_noise()
    assert noise.paired_sd(2) == pytest.approx(power.DEFAULT_PAIRED_SD)
    # DESIGN.md: about 2.8 x SD / sqrt(n) at alpha 0.05 and 80% power
    assert power.mdd(noise, 16, 2) == pytest.approx(2.8016 * 0.045 / 4, rel=1e-3)
    assert power.mdd(noise, 16, 2, n_tests=33) > power.mdd(noise, 16, 2, n_tests=2) > power.mdd(noise, 16, 2)
    assert power.mdd(noise, 64, 2) == pytest.approx(power.mdd(noise, 16, 2) / 2)
    # all seed noise: 4x the seeds is 4x the cases
    assert power.mdd(noise, 16, 8) == pytest.approx(power.mdd(noise, 64, 2))
    assert 70 < power.required_case_runs(noise, 0.02) < 90  # "about 80 for one pre-specified test"
    assert math.isnan(power.mdd(noise, 0, 2))


def test_noise_from_differences_separates_cases_and_seeds() -> None:
    rng = np.random.default_rng(0)
    case_effect = rng.normal(0, 0.03, 400)
    rows = [{"case_id": c, "seed": s, "difference": case_effect[c] + rng.normal(0, 0.05)}
            for c in range(400) for s in range(3)]  # fmt: skip
    noise = power.noise_from_differences(pd.DataFrame(rows), "test")
    assert noise.case_sd == pytest.approx(0.03, abs=0.006) and noise.seed_sd == pytest.approx(0.05, abs=0.004)
    with pytest.raises(ValueError, match="at least 2 cases"):
        power.noise_from_differences(pd.DataFrame(rows[:3]), "one case")
