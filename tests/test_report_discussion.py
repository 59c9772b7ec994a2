"""Tests of hie_core.report.pages.discussion (the Discussion page and the front page's abstract) on small study folders."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from hie_core.report.analysis import seed_study
from hie_core.report.analysis.results import StudyResults, read_results, write_results
from hie_core.report.book.contents import BOOK_NOTEBOOKS
from hie_core.report.pages import discussion, front_page, mechanism, published
from tests.report_fixtures import write_study

ROOT = Path(__file__).resolve().parents[1]
BASE = np.round(np.linspace(0.40, 0.80, 12), 3)
J = 0.001 * np.arange(12)
LOW = np.array([5, 11])  # the >5% cases of the fixture (tests.report_fixtures.STRATA_CYCLE)


def _results(tmp_path: Path, dice: dict, **kwargs) -> StudyResults:
    study = write_study(tmp_path / "study", dice, **kwargs)
    write_results(study)
    return read_results(study)


def _study(tmp_path: Path, hdt_scale: float = 0.1, synthetic: bool = True) -> StudyResults:
    base = BASE.copy()
    base[LOW] = [0.05, 0.08]  # the two >5% cases fail for every loss
    hdt = np.round(base * hdt_scale, 3)
    hdt[0] = 0.0  # an empty prediction: MASD undefined
    ceiling = np.full(12, 0.9)
    ceiling[5] = 0.3  # the grid loses case 5's lesions
    baseline = base - 0.05
    return _results(tmp_path, {"dice": [base, base + 0.01], "tversky": [base + J, base + 0.01 + J],
                               "hdt": [hdt, hdt + 0.002], "baseline": [baseline], "ceiling": [ceiling]},
                    synthetic=synthetic)  # fmt: skip


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> StudyResults:
    """The default study, written once for the module (writing the results resamples 9,999 times)."""
    return _study(tmp_path_factory.mktemp("discussion"))


@pytest.fixture(scope="module")
def gradients() -> object:
    scene = mechanism.lesion_scene((10, 20, 34), small_radius=1.5, large_radius=3.5, shrink=0.5)
    grads = mechanism.loss_gradients(scene)
    return mechanism.gradient_table(scene, grads, mechanism.loss_gradients(mechanism.near_empty(scene)))


def test_a_collapsed_loss_is_shown_from_the_numbers_and_explained(study: StudyResults, gradients) -> None:
    r = study
    assert discussion.collapsed(r) == ["hdt"]
    t1 = r.table("table1", "test").set_index("method")
    text = discussion.collapse_text(r, gradients)
    assert text.startswith("**HausdorffDT** collapsed on the 12 synthetic test cases: mean Dice ")
    assert f"{t1.loc['hdt', 'dice_mean']:.3f}" in text
    others = t1.loc[["dice", "tversky"], "dice_mean"]
    assert f"against {others.min():.3f} to {others.max():.3f} for the other losses" in text
    assert "its masks hold 111% of the reference volume" in text  # the fixture: 1.0 mL over 0.9 mL
    assert (
        "1 of its 24 case-runs predicted no lesion at all" in text
    )  # seed 0, case 0: Dice 0, MASD undefined
    assert "The mechanism is in {numref}`fig-discussion-gradients`" in text
    hdt_share = gradients.set_index("loss").loc["HausdorffDT", "raise_share_empty"]
    assert f"HausdorffDT spends {hdt_share:.0%} of its gradient raising logits" in text
    assert (
        f"its lowest Dice, {seed_study.SEED_TABLE['hdt'][0]:.2f}" in text and "{cite}`usman2025hie`" in text
    )


def test_no_collapse(tmp_path: Path) -> None:
    r = _study(tmp_path, hdt_scale=0.95)
    assert discussion.collapsed(r) == []
    assert discussion.collapse_text(r).startswith("No loss collapsed on the 12 synthetic test cases")


def test_the_failing_cases_against_their_ceiling_and_baseline(study: StudyResults) -> None:
    r = study
    frame = discussion.failing_cases(r, 2)
    assert list(frame["case_id"]) == ["T05", "T11"]  # collapsed HausdorffDT left out of the mean
    assert frame["ceiling"].tolist() == pytest.approx([0.3, 0.9])
    p = r.table("per_case", "test")
    mean5 = p[(p["case_id"] == "T05") & p["method"].isin(["dice", "tversky"])]["dice"].mean()
    assert frame["dice"].iloc[0] == pytest.approx(mean5)
    assert discussion.worst_case(r) == "T05"
    text = discussion.failing_text(r, 2)
    assert "**T05** (>5%" in text and "the training grid itself loses much of it (ceiling 0.30)" in text
    # T11: the grid keeps it, the threshold scores 0.03 there against its mean: the maps show little contrast
    assert "**T11** (>5%" in text and "the ZADC < -2 threshold scores only 0.03 there" in text
    assert discussion.case_methods(r, "T05") == ["tversky"]  # the best loss on T05
    assert "with the mask of Tversky, the best loss there" in text
    html = discussion.failing_table(r, 2)._repr_html_()
    assert "T05" in html and "0.300" in html and "SYNTHETIC" in html


def test_the_largest_burden_scoring_lowest_is_said_and_qualified(study: StudyResults) -> None:
    r = study
    text = discussion.burden_text(r)
    assert "Averaged over the losses, mean Dice by lesion burden was" in text
    assert "The >5% stratum, not the smallest lesions, scored lowest" in text
    assert "With 2 cases it has no interval" in text


def test_short_abstract_and_what_the_study_can_say(study: StudyResults) -> None:
    r = study
    text = front_page.short_abstract(r)
    assert text.startswith("**Design.** 3 losses, each trained 2 times (seeds) with the *quick* preset on a "
                           "synthetic BONBID-like dataset")  # fmt: skip
    assert "**Answer.**" in text and "**What it could detect.**" in text
    assert "No loss was shown best" in text or "had the best Dice" in text
    said = discussion.can_say(r)
    h = r.table("hypotheses", "test")
    assert said.startswith(f"Of the {len(h)} hypothesis rows tested on the 12 synthetic test cases:")


def test_published_numbers_come_from_the_seed_and_the_cited_papers(
    study: StudyResults, tmp_path: Path
) -> None:
    r = study
    text = published.published_text(r)
    sparseg = published.PUBLISHED[0]
    assert f"reached Dice {sparseg.dice:.3f}" in text and f"{{cite}}`{sparseg.citation}`" in text
    assert "rank correlation of" in text and "synthetic volumes" in text
    bib = (ROOT / "book" / "references.bib").read_text()
    for p in published.PUBLISHED:
        assert f"{{{p.citation}," in bib
    assert f"{{{published.CHALLENGE_SUMMARY[0]}," in bib
    table = published.published_table(r).text
    assert f"{seed_study.SEED_TABLE['tversky'][0]:.3f}" in table and f"{sparseg.dice:.3f}" in table
    real = _study(tmp_path / "real", synthetic=False)
    assert "only this book's test-split Dice is comparable" in published.published_text(real)


def test_headline_figure_is_the_primary_contrasts_forest(tmp_path: Path) -> None:
    r = _results(tmp_path, {"tversky": [BASE, BASE + 0.01], "tversky_hdt": [BASE + 0.05 + J, BASE + 0.06 + J],
                            "baseline": [BASE - 0.1]})  # fmt: skip
    fig = front_page.headline_figure(r)
    assert list(fig.csv_data["contrast"]) == ["Tversky+HDT vs Tversky"] and fig.csv_data[
        "metric"
    ].tolist() == ["dice"]
    assert (
        fig.alt.startswith("Forest plot of the primary contrasts")
        and "Tversky+HDT vs Tversky (dice) +0.05" in fig.alt
    )
    assert fig.get_suptitle().startswith("SYNTHETIC")


def test_the_discussion_notebook_names_what_the_text_refers_to() -> None:
    """Every {numref} target the module writes is a figure or table name in the notebook; the page is
    executed by the study after Results, with the same parameters as the other study pages."""
    nb = json.loads((ROOT / "notebooks" / "discussion.ipynb").read_text())
    names = {c["metadata"].get("mystnb", {}).get("figure", {}).get("name") for c in nb["cells"]}
    targets = set(
        re.findall(r"\{\{?numref\}?\}`([^`]+)`", (ROOT / "hie_core" / "report" / "pages" / "discussion.py").read_text())
    )
    assert targets and targets <= names
    params = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    assert "study_dir = " in "".join(params["source"]) and "preset = " in "".join(params["source"])
    assert all(not c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")
    assert BOOK_NOTEBOOKS.index("discussion") == BOOK_NOTEBOOKS.index("results") + 1
