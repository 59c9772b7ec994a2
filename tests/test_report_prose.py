"""Tests of hie_core.report.pages.prose: every branch of the abstract and the discussion, from small study folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hie_core.report.analysis import power
from hie_core.report.analysis.results import StudyResults, read_results, write_results
from hie_core.report.pages import design_prose, preset_dev, prose
from tests.report_fixtures import write_study

pytestmark = pytest.mark.usefixtures("few_resamples")  # tests/conftest.py


BASE = np.round(np.linspace(0.30, 0.74, 12), 3)
J = 0.001 * np.arange(12)
SMALL = 0.001 * np.array([3, -3.5, 2, -2.5, 4, -4.5, 1, -1.5, 5, -5.5, 6, -4])
LARGE = 0.01 * np.array([15, -14, 12, -13, 9, -8, 17, -18, 6, -5, 11, -12])


def _results(tmp_path: Path, dice: dict, **kwargs) -> StudyResults:
    study = write_study(tmp_path / "study", dice, **kwargs)
    write_results(study)
    return read_results(study)


def test_a_winner_is_named_only_when_the_tests_support_it(tmp_path: Path) -> None:
    r = _results(tmp_path, {"dice_focal": [BASE, BASE + 0.01], "dice_focal_hdt": [BASE + 0.1 + J, BASE + 0.12 + J],
                            "baseline": [BASE - 0.2 - J], "ceiling": [np.full(12, 0.9)]})  # fmt: skip
    text = prose.abstract(r)
    assert text.startswith("On synthetic BONBID-like data (12 test cases, preset quick, 2 seeds per loss):")
    assert "DiceFocal+HDT vs DiceFocal: Dice +0.11" in text and "the hybrid is better" in text
    assert "**DiceFocal+HDT** had the best Dice" in text and "picked on the cases it is scored on" in text
    assert (
        "better than every other loss's in the paired tests (each at the 0.05 level; all had to hold)" in text
    )
    assert "(a) each hybrid beats its standalone base" in text and "**supported**" in text
    assert "(b) Tversky+HDT has the best Dice and NSD of the six losses: **not tested**" in text
    assert "Against the organisers' `ZADC < -2` threshold (mean Dice" in text
    assert "scores a mean Dice of 0.900, an approximate bound for networks trained on that grid" in text
    assert "the mean Dice of the best loss, DiceFocal+HDT, was 71% of it." in text  # 0.636 / 0.9
    assert "not a clinical result" in text
    disc = prose.discussion(r)
    assert "between-seed SD of a loss's mean Dice ranged from" in disc and "(DiceFocal+HDT)" in disc
    assert "The intervals carry this spread" in disc and "resamples runs as well as cases" in disc
    assert "DiceFocal+HDT - DiceFocal: case " in disc and ", case × run " in disc  # the variance components
    assert "(t tests on the mean difference)" in disc
    assert "A test that did not reach significance means the difference was not detectable" in disc
    assert "Averaged over the losses, mean Dice was" in disc and "(n = 6)" in disc
    assert "Strata with fewer than 5 cases have no interval." in disc  # 1-5% has 4 cases, >5% 2
    assert "MASD was defined for every case with a lesion in every run of every method." in disc
    assert "(16 × 64 × 64 voxels) is coarser than the seed's (32 × 192 × 192 voxels)" in disc
    assert (
        "first chosen by comparing variants scored on the synthetic test split" in disc
        and "*quick* preset" in disc
    )
    assert "With 12 cases with a lesion × 2 runs per loss, the 95% CI" in disc
    assert "validation split has 2 cases" in disc and "Synthetic data show" in disc
    assert "different versions of the code" not in disc and "did not finish" not in disc


def test_no_winner_on_noise_and_what_the_design_could_detect(tmp_path: Path) -> None:
    r = _results(tmp_path, {"tversky": [BASE, BASE], "tversky_hdt": [BASE + LARGE, BASE + LARGE],
                            "ceiling": [np.full(12, 0.9)]})  # fmt: skip
    text = prose.abstract(r)
    assert "**" not in text.split("The seed study's claims")[0]  # no loss in bold before the claims
    assert "No loss was distinguishable as the best" in text
    assert "the best loss's" not in text and "though no loss was distinguishable as the best." in text
    assert "the highest mean Dice of any loss, Tversky's 0.520, was 58% of it" in text
    assert "Share of bootstrap resamples in which each loss had the highest mean Dice: " in text
    assert "Tversky+HDT vs Tversky: Dice" in text and "not detectable after Holm (this design detects" in text
    assert "the primary contrasts could detect a Dice difference of about" in text
    assert (
        "A difference smaller than 0.1" in text and "such as the analysis plan's target of 0.02 Dice" in text
    )
    # the same difference in both seeds: no run noise, so more runs cannot help; the case floor says so
    assert "no number of runs reaches it on 12 cases, whose case-to-case spread alone sets a floor of" in text
    assert "--design powered" in text
    assert "The threshold baseline was not evaluated." in text
    assert "no difference" not in text.lower()


def test_an_equivalent_primary_contrast_is_said_to_be_equivalent(tmp_path: Path) -> None:
    r = _results(tmp_path, {"dice_focal": [BASE, BASE], "dice_focal_hdt": [BASE + SMALL, BASE + SMALL]})
    text = prose.abstract(r)
    assert "DiceFocal+HDT vs DiceFocal: Dice" in text and "equivalent within ±0.02" in text
    assert "**equivalent**" in text


def test_real_data_one_seed_and_undefined_masd(tmp_path: Path) -> None:
    six = BASE[:6]
    hdt = np.where(np.arange(6) < 2, 0.0, six - 0.2)
    r = _results(tmp_path, {"dice": [six], "hdt": [hdt], "baseline": [six + 0.1]}, synthetic=False, preset="seed",
                 target_shape=(32, 192, 192))  # fmt: skip
    text = prose.abstract(r)
    assert text.startswith("On the BONBID-HIE release (6 test cases, preset seed, 1 seed per loss):")
    assert "The primary contrasts (each hybrid against its base loss) need" in text
    assert "ZADC < -2` threshold (mean Dice" in text and "clinical" not in text
    disc = prose.discussion(r)
    assert "Each loss ran with one seed" in disc
    assert "HausdorffDT (2 cases, 2 case-runs)" in disc
    assert "its own cases where MASD is defined (Dice 6 of 6, HausdorffDT 4 of 6" in disc
    assert "the intervals carry the case-to-case spread alone" in disc
    assert "worst-case sensitivity analysis" in disc
    assert "coarser" not in disc and "quick" not in disc and "Synthetic" not in disc
    assert "chosen by comparing variants" not in disc  # the seed preset is the seed's own protocol


def test_one_loss_no_reference_one_stratum(tmp_path: Path) -> None:
    r = _results(tmp_path, {"tversky": [BASE[:3]]}, n_val=0)
    text = prose.abstract(r)
    assert "The only loss run, Tversky, scored Dice" in text
    assert "The threshold baseline was not evaluated." in text
    disc = prose.discussion(r)
    assert "No paired test could run" in disc
    assert "All cases with a lesion fall in one lesion-burden stratum (<1%)" in disc
    assert "validation split" not in disc


def test_losses_on_both_sides_of_the_baseline(tmp_path: Path) -> None:
    r = _results(tmp_path, {"dice": [BASE], "tversky": [BASE - 0.3 - J], "baseline": [BASE - 0.15 - 2 * J]})
    assert "1 of 2 losses had a higher Dice and 1 a lower one after the Holm correction (exploratory)." in (
        prose.abstract(r)
    )


def test_empty_labels_and_provenance_warnings(tmp_path: Path) -> None:
    first, clean = BASE.copy(), BASE + 0.1
    first[0], clean[0] = 0.0, 1.0  # T00 has no lesion: Dice predicts 28 voxels in one seed, Tversky none
    r = _results(tmp_path, {"dice": [first, first], "tversky": [clean, clean]}, empty=[0],
                 fingerprints=["a", "b"])  # fmt: skip
    (r.study_dir / "hdt" / "seed0").mkdir(parents=True)
    write_results(r.study_dir)
    r = read_results(r.study_dir)
    disc = prose.discussion(r)
    assert "1 case had an empty reference label" in disc and "Dice 1, Tversky 0" in disc
    assert "With 11 cases with a lesion × 2 runs per loss" in disc  # the empty-label case is not in the means
    assert (
        "different versions of the code" in disc
        and "Runs that did not finish are missing: hdt/seed0." in disc
    )


def test_reach_closed_forms() -> None:
    """Only case noise: runs cannot help and the floor is the detectable difference itself."""
    noise = power.NoiseModel(0.05, 0.0, 0.0, "test")
    need = design_prose.reach(noise, 12, 2, 1)
    assert need["runs"] is None and need["floor"] == pytest.approx(power.mdd(noise, 12, 2), rel=1e-6)
    assert power.mdd(noise, need["cases"], 2) <= 0.02 < power.mdd(noise, need["cases"] - 1, 2)
    interaction = power.NoiseModel(0.0, 0.0, 0.05, "test")  # case x run noise only: more runs help
    runs = design_prose.reach(interaction, 12, 2, 1)["runs"]
    assert power.mdd(interaction, 12, runs) <= 0.02 < power.mdd(interaction, 12, runs - 1)


def test_the_preset_check_on_the_development_set_is_read_from_its_file(tmp_path: Path) -> None:
    rows = [{"variant": v, "loss": "dice", "seed": k, "test_dice_lesion": d, "n_lesion_cases": 15}
            for v, ds in (("(quick preset)", (0.50, 0.54)), ("lr=0.001", (0.49, 0.51))) for k, d in enumerate(ds)]  # fmt: skip
    decision = {"rule": "a rule", "adopted": [], "variants": {
        "(quick preset)": {"dice": [0.50, 0.54], "mean_dice": 0.52, "difference": 0.0},
        "lr=0.001": {"dice": [0.49, 0.51], "mean_dice": 0.50, "difference": -0.02}}}  # fmt: skip
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / preset_dev.DEV_RESULTS).write_text(json.dumps({"rows": rows, "decision": decision}))
    words = preset_dev.dev_check_words(preset_dev.dev_check(tmp_path))
    assert "15 test cases with a lesion, loss dice" in words
    assert "the preset 0.520 (seeds 0.500 / 0.540), the seed's learning rate 1e-3 0.500" in words
    assert "0.500 (seeds 0.490 / 0.510; -0.020 against the preset)" in words
    assert words.endswith("The rule, fixed before these runs: a rule; so the preset's values were kept.")
    assert preset_dev.dev_check(tmp_path / "nowhere") is None and preset_dev.dev_check_words(None) == ""


def test_a_detectable_difference_beyond_the_metric_range_is_called_undetectable() -> None:
    row = pd.Series({"metric": "dice", "mdd": 1.049})
    assert prose._detect(row).startswith("this design cannot detect any possible difference")
    assert "1.049" in prose._detect(row)
    masd = pd.Series({"metric": "masd_mm", "mdd": 3.5})
    assert prose._detect(masd).startswith("this design detects differences of about 3.5")
