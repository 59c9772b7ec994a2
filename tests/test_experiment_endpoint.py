"""An experiment page's numbers are Table 1's: cases with a lesion, per seed, computed by one code path."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hie_core.report.analysis import tables
from hie_core.report.analysis.runs import find_runs
from hie_core.report.pages import experiment
from hie_core.training.experiment import load_run, summarize_metrics
from tests.report_fixtures import write_study

#: Per-case test Dice of two seeds; case 2 has an empty reference label (Dice 0: a false positive).
DICE = {"dice": [[0.8, 0.6, 0.0, 0.4, 0.7, 0.0], [0.7, 0.5, 0.0, 0.6, 0.9, 0.3]],
        "tversky": [[0.5, 0.5, 1.0, 0.5, 0.5, 0.5], [0.6, 0.4, 1.0, 0.6, 0.4, 0.6]]}  # fmt: skip
EMPTY = (2,)


@pytest.fixture
def study(tmp_path: Path) -> Path:
    """Two losses x two seeds; each summary.json holds the all-case summary a real run writes."""
    root = write_study(tmp_path / "study", DICE, empty=EMPTY)
    for folder in root.glob("*/seed*"):
        summary = json.loads((folder / "summary.json").read_text())
        summary["splits"] = summarize_metrics(pd.read_csv(folder / "metrics.csv"))
        (folder / "summary.json").write_text(json.dumps(summary))
    return root


def _table1_dice(study: Path, method: str, seed: int | None, split: str = "test") -> float:
    """Table 1's Dice of ``method`` from the study's run folders, for one seed (None: all seeds)."""
    runs = tables.run_scores(find_runs(study).scores())
    if seed is not None:
        runs = runs[runs["seed"] == seed]
    table = tables.table1(tables.seed_average(runs), runs, split, [method])
    return float(table.set_index("method").loc[method, "dice_mean"])


@pytest.mark.parametrize("method", sorted(DICE))
@pytest.mark.parametrize("seed", [0, 1])
def test_page_dice_is_table1_dice_of_the_same_seed(study: Path, method: str, seed: int) -> None:
    run = load_run(study / method / f"seed{seed}")
    expected = _table1_dice(study, method, seed)
    lesion = [d for i, d in enumerate(DICE[method][seed]) if i not in EMPTY]
    assert expected == pytest.approx(np.mean(lesion))  # the endpoint: cases with a lesion only
    overview = experiment.run_overview(run)._repr_html_()
    shown = float(re.findall(r"<td[^>]*>([0-9.]+)</td>", overview)[-1])  # the last column: the test Dice
    assert shown == pytest.approx(expected, abs=5e-4)
    page = experiment.seed_endpoints(run).set_index(["split", "seed"])
    assert page.loc[("test", str(seed)), "dice_mean"] == pytest.approx(expected, abs=1e-12)
    assert page.loc[("test", "mean of 2 seeds"), "dice_mean"] == pytest.approx(
        _table1_dice(study, method, None), abs=1e-12
    )
    all_cases = run.summary["splits"]["test"]["dice"]["mean"]  # what the page showed before
    assert not math.isclose(all_cases, expected)


def test_empty_label_stratum_and_masd_counts_beside_the_endpoint(study: Path) -> None:
    run = load_run(study / "dice" / "seed0")
    page = experiment.seed_endpoints(run).set_index(["split", "seed"])
    row = page.loc[("test", "0")]
    assert (row["n_cases"], row["empty_cases"], row["fp_cases"]) == (5, 1, 1)
    # seed 0 has Dice 0 on case 5 (MASD undefined): 4 of 5; seed 1 scores it, so the mean of seeds has 4 too
    assert row["masd_cases"] == 4 and page.loc[("test", "1"), "masd_cases"] == 5
    assert page.loc[("test", "mean of 2 seeds"), "masd_cases"] == 4
    html = experiment.endpoint_table(run)._repr_html_()
    assert "4 of 5" in html and "1 of 1" in html and "Seeds 0, 1 of this loss" in html
    assert "none in this split" in html  # the val split has no empty label


def test_a_lone_run_shows_its_own_seed(tmp_path: Path) -> None:
    root = write_study(tmp_path / "study", {"dice": [DICE["dice"][0]]}, empty=EMPTY)
    run = load_run(root / "dice" / "seed0")
    page = experiment.seed_endpoints(run)
    assert list(page["seed"].unique()) == ["0"]
    assert "Only this seed" in experiment.endpoint_table(run)._repr_html_()


def test_a_sibling_with_another_configuration_is_left_out(study: Path) -> None:
    other = study / "dice" / "seed1" / "config.json"
    info = json.loads(other.read_text())
    info["config"]["lr"] = 0.5
    other.write_text(json.dumps(info))
    page = experiment.seed_endpoints(load_run(study / "dice" / "seed0"))
    assert list(page["seed"].unique()) == ["0"]
