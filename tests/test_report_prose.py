"""Tests of hie_core.report.prose: every branch of the abstract and the discussion, from small study folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hie_core.report import prose
from hie_core.report.results import StudyResults, read_results, write_results
from tests.report_fixtures import write_study

BASE = np.round(np.linspace(0.30, 0.74, 12), 3)
J = 0.001 * np.arange(12)


def _results(tmp_path: Path, dice: dict, **kwargs) -> StudyResults:
    study = write_study(tmp_path / "study", dice, **kwargs)
    write_results(study)
    return read_results(study)


def test_a_clear_winner_over_dice_and_baseline_on_synthetic_data(tmp_path: Path) -> None:
    r = _results(tmp_path, {"dice": [BASE, BASE + 0.01 * J], "tversky": [BASE + 0.1 + J, BASE + 0.2 + J],
                            "baseline": [BASE - 0.2 - J], "ceiling": [np.full(12, 0.9)]})  # fmt: skip
    text = prose.abstract(r)
    assert text.startswith("On synthetic BONBID-like data (12 test cases, preset quick, 2 seeds per loss)")
    assert "**tversky** ranked first of 2 losses" in text and "picked on the same test cases" in text
    assert "Against the Dice loss, after the Holm correction: Dice +0.15" in text and "MASD -1.5" in text
    assert "2 of 2 losses had a higher Dice and 0 a lower one" in text
    assert "scores a mean Dice of 0.900: the grid alone costs 0.100" in text
    assert "not a clinical result" in text and "came first" not in text
    disc = prose.discussion(r)
    assert "to 0.071 (tversky)" in disc and "tversky and dice, differ by 0.15" in disc
    assert "beyond twice the larger of their two SDs (0.071)" in disc
    assert "9 of the 9 paired tests on the Results page remain significant" in disc
    assert (
        "For tversky, mean Dice was" in disc
        and "(n = 6)" in disc
        and "where the threshold baseline scored" in disc
    )
    assert "Strata with fewer than 3 cases have no interval." in disc  # >5% has 2 cases
    assert "MASD was defined for every test case of every method." in disc
    assert "(16 x 64 x 64 voxels) is coarser than the seed's (32 x 192 x 192 voxels)" in disc
    assert "(the ceiling row of the main results table)" in disc and "*quick* preset" in disc
    assert "With 12 test cases, the 95% CI of a loss's mean Dice is up to" in disc
    assert "validation split has 2 cases" in disc and "Synthetic data show" in disc
    assert "different versions of the code" not in disc and "did not finish" not in disc


def test_the_dice_loss_wins_and_the_threshold_ranks_first_on_real_data(tmp_path: Path) -> None:
    six = BASE[:6]
    hdt = np.where(np.arange(6) < 2, 0.0, six - 0.2)
    r = _results(tmp_path, {"dice": [six], "hdt": [hdt], "baseline": [six + 0.1]}, synthetic=False, preset="seed",
                 target_shape=(32, 192, 192))  # fmt: skip
    text = prose.abstract(r)
    assert text.startswith("On the BONBID-HIE release (6 test cases, preset seed, 1 seed per loss)")
    assert "The Dice loss itself ranked first; no other loss differs from it on any metric" in text
    assert "none of the 2 losses differs in Dice" in text
    assert "On the challenge's ranking the threshold itself came first" in text
    assert "grid alone" not in text and "clinical" not in text
    disc = prose.discussion(r)
    assert "Each loss ran with one seed" in disc
    assert (
        "smallest p-value a two-sided Wilcoxon test can reach is 0.031" in disc
        and "could have been significant" in disc
    )
    assert "undefined for test cases of hdt (2)" in disc
    assert "coarser" not in disc and "quick" not in disc and "Synthetic" not in disc


def test_a_winner_that_does_not_survive_holm(tmp_path: Path) -> None:
    six = BASE[:6]
    r = _results(
        tmp_path, {"dice": [six], "tversky": [six + np.array([0.02, -0.01, 0.03, 0.01, -0.02, 0.04])]}
    )
    text = prose.abstract(r)
    assert "**tversky** ranked first" in text
    assert (
        "Against the Dice loss, no difference survives the Holm correction on any metric (paired Dice +0.012"
        in text
    )
    assert "The threshold baseline was not evaluated." in text


def test_one_loss_no_reference_one_stratum(tmp_path: Path) -> None:
    r = _results(tmp_path, {"tversky": [BASE[:3]]}, n_val=0)
    text = prose.abstract(r)
    assert "the only loss run, **tversky**, scored Dice" in text
    assert "The Dice loss was not run" in text and "The threshold baseline was not evaluated." in text
    disc = prose.discussion(r)
    assert "No paired test could run" in disc
    assert "All test cases fall in one lesion-burden stratum (<1%)" in disc
    assert "validation split" not in disc


def test_dice_wins_and_other_losses_differ(tmp_path: Path) -> None:
    r = _results(tmp_path, {"dice": [BASE + 0.2], "tversky": [BASE - J], "baseline": [BASE - 0.1 - 2 * J]})
    assert (
        "The Dice loss itself ranked first; after the Holm correction tversky differ(s) from it"
        in prose.abstract(r)
    )


def test_losses_on_both_sides_of_the_baseline(tmp_path: Path) -> None:
    r = _results(tmp_path, {"dice": [BASE], "tversky": [BASE - 0.3 - J], "baseline": [BASE - 0.15 - 2 * J]})
    assert (
        "1 of 2 losses had a higher Dice and 1 a lower one after the Holm correction; the other 0"
        in prose.abstract(r)
    )


def test_close_losses_within_the_seed_spread_and_provenance_warnings(tmp_path: Path) -> None:
    r = _results(tmp_path, {"dice": [BASE, BASE + 0.2], "tversky": [BASE + 0.11 + J / 10, BASE + 0.1 + J / 10]},
                 fingerprints=["a", "b"])  # fmt: skip
    (r.study_dir / "hdt" / "seed0").mkdir(parents=True)
    write_results(r.study_dir)
    r = read_results(r.study_dir)
    disc = prose.discussion(r)
    assert "differ by 0.006 in mean Dice, within twice the larger of their two SDs (0.141)" in disc
    assert (
        "different versions of the code" in disc
        and "Runs that did not finish are missing: hdt/seed0." in disc
    )
