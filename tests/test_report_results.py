"""Tests of hie_core.report.analysis.results (and runs, tables): the result files of a study folder."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hie_core.report.analysis import results
from hie_core.report.analysis.runs import StudyFolderError, find_runs
from hie_core.report.analysis.stats import holm
from tests.report_fixtures import masd_of, nsd_of, write_study

TABLE1_ISSUE = ["method", "n_cases", "n_runs", "dice_mean", "dice_ci_low", "dice_ci_high", "masd_mm_mean",
                "masd_mm_ci_low", "masd_mm_ci_high", "masd_undefined", "nsd_mean", "nsd_ci_low", "nsd_ci_high",
                "rank_dice", "rank_masd", "rank_nsd", "rank_mean"]  # fmt: skip
HYPOTHESES_ISSUE = ["hypothesis", "contrast", "metric", "n_cases", "n_seeds", "estimate", "ci_low", "ci_high",
                    "p_holm", "margin", "mdd", "verdict"]  # fmt: skip
COMPARISONS_ISSUE = ["method", "reference", "metric", "n_pairs", "mean_difference", "ci_low", "ci_high",
                     "p_wilcoxon", "p_holm"]  # fmt: skip
BASE = np.round(np.linspace(0.30, 0.74, 12), 3)  # 12 test cases, distinct values
JITTER = 0.001 * np.arange(12)  # distinct paired differences: no ties, so Wilcoxon's exact p is fast


@pytest.fixture(autouse=True)
def _few_resamples(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIE_BOOTSTRAP_RESAMPLES", "499")


@pytest.fixture
def study(tmp_path: Path) -> Path:
    """dice (2 seeds), tversky (2 seeds, about +0.1 and +0.2 over dice's first seed), baseline, ceiling."""
    dice_seed1 = BASE.copy()
    dice_seed1[0] = 0.0  # one seed misses case T00: MASD undefined there in that seed only
    return write_study(tmp_path / "study", {
        "dice": [BASE, dice_seed1],
        "tversky": [BASE + 0.1 + JITTER, BASE + 0.2 + JITTER],
        "baseline": [BASE - 0.2 - JITTER],
        "ceiling": [np.full(12, 0.9)],
    })  # fmt: skip


def test_writes_every_file_with_the_issues_columns(study: Path) -> None:
    folder = results.write_results(study)
    assert folder == study / "results"
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(["study.json"] + [f"{k}_{s}.csv" for s in ("test", "val") for k in results._KINDS])
    assert {"hypotheses", "table1", "comparisons", "strata", "per_case"} <= set(results._KINDS)
    t1 = pd.read_csv(folder / "table1_test.csv")
    assert set(TABLE1_ISSUE) <= set(t1.columns) and t1.columns[0] == "method"
    assert (
        list(pd.read_csv(folder / "hypotheses_test.csv").columns[: len(HYPOTHESES_ISSUE)]) == HYPOTHESES_ISSUE
    )
    assert t1["method"].tolist() == ["dice", "tversky", "baseline", "ceiling"]
    assert (
        list(pd.read_csv(folder / "comparisons_test.csv").columns[: len(COMPARISONS_ISSUE)])
        == COMPARISONS_ISSUE
    )
    assert not list(folder.glob("*.tmp*")) and not list(folder.glob(".*"))  # atomic writes leave no debris


def test_per_case_averages_seeds_one_row_per_case(study: Path) -> None:
    results.write_results(study)
    per_case = pd.read_csv(study / "results" / "per_case_test.csv")
    assert len(per_case) == 4 * 12 and not per_case.duplicated(["method", "case_id"]).any()
    dice = per_case[per_case["method"] == "dice"].set_index("case_id")
    assert dice.loc["T00", "dice"] == pytest.approx(BASE[0] / 2)
    assert math.isnan(dice.loc["T00", "masd_mm"])  # undefined in one seed: undefined for the case
    assert dice.loc["T01", "masd_mm"] == pytest.approx(masd_of([BASE[1]])[0])
    assert dice.loc["T00", "masd_undefined_runs"] == 1 and dice.loc["T01", "masd_undefined_runs"] == 0
    assert dice["n_runs"].eq(2).all()
    t1 = pd.read_csv(study / "results" / "table1_test.csv").set_index("method")
    assert t1.loc["dice", "masd_undefined"] == 1 and t1.loc["dice", "masd_undefined_runs"] == 1
    # MASD as the challenge averages it: each method over its own defined cases (dice's miss is dice's alone)
    assert t1.loc["dice", "masd_cases"] == 11 and t1.loc[["tversky", "baseline"], "masd_cases"].eq(12).all()
    assert t1.loc["tversky", "masd_mm_mean"] == pytest.approx(
        np.mean([masd_of(BASE + 0.1 + JITTER), masd_of(BASE + 0.2 + JITTER)])
    )
    assert t1.loc["dice", "masd_mm_mean"] == pytest.approx(masd_of(BASE[1:]).mean())
    assert t1.loc["tversky", "dice_mean"] == pytest.approx(BASE.mean() + 0.15 + JITTER.mean())
    assert t1.loc["tversky", "nsd_mean"] == pytest.approx(nsd_of(BASE + 0.15 + JITTER).mean())
    # between-seed SD of the split mean: seeds' means differ by 0.1 -> sd = 0.1 / sqrt(2)
    assert t1.loc["tversky", "dice_seed_sd"] == pytest.approx(0.1 / math.sqrt(2))
    assert t1.loc["dice", "dice_seed_sd"] == pytest.approx(BASE[0] / 12 / math.sqrt(2))
    assert math.isnan(t1.loc["baseline", "dice_seed_sd"]) and t1.loc["baseline", "n_runs"] == 1


def test_ranks_losses_and_baseline_not_the_ceiling(study: Path) -> None:
    results.write_results(study)
    t1 = pd.read_csv(study / "results" / "table1_test.csv").set_index("method")
    assert t1.loc[["tversky", "dice", "baseline"], "rank_dice"].tolist() == [1, 2, 3]
    assert t1.loc[["tversky", "dice", "baseline"], "rank_masd"].tolist() == [
        1,
        2,
        3,
    ]  # lower MASD ranks first
    assert t1.loc["tversky", "rank_mean"] == 1
    assert t1.loc["ceiling", ["rank_dice", "rank_masd", "rank_nsd", "rank_mean"]].isna().all()
    assert t1.loc["ceiling", "dice_mean"] == pytest.approx(0.9)


def test_comparisons_are_paired_and_holm_adjusted_over_the_split(study: Path) -> None:
    results.write_results(study)
    c = pd.read_csv(study / "results" / "comparisons_test.csv")
    pairs = list(dict.fromkeys(zip(c["method"], c["reference"], strict=True)))
    assert pairs == [("dice", "baseline"), ("tversky", "dice"), ("tversky", "baseline")]
    row = c[(c["method"] == "tversky") & (c["reference"] == "baseline") & (c["metric"] == "dice")].iloc[0]
    assert row["mean_difference"] == pytest.approx(0.35 + 2 * JITTER.mean()) and row["n_pairs"] == 12
    # the one-run baseline is subtracted from each tversky run: differences 0.3 + 2J and 0.4 + 2J, a run
    # shift of +-0.05 shared by every case; the pigeonhole bootstrap draws the runs: its interval spans both
    assert 0.30 <= row["ci_low"] < row["mean_difference"] < row["ci_high"] <= 0.40 + 2 * JITTER.max()
    assert row["sd_run"] == pytest.approx(0.05 * math.sqrt(2)) and row["sd_case_run"] == pytest.approx(
        0, abs=1e-9
    )
    assert row["df"] < 1.1  # two runs: one degree of freedom for the run mean square dominates
    assert (
        row["p_wilcoxon"] == pytest.approx(2 / 2**12) and row["favours"] == "tversky"
    )  # every sign positive
    masd = c[(c["method"] == "dice") & (c["reference"] == "baseline") & (c["metric"] == "masd_mm")].iloc[0]
    assert masd["favours"] == "dice"  # lower MASD is better
    np.testing.assert_allclose(c["p_holm"], holm(c["p"]))  # the crossed t test, not Wilcoxon, is adjusted
    assert len(c) == 9 and c["p_holm"].max() <= 1


def test_strata_counts_and_intervals_only_from_five_cases(study: Path) -> None:
    results.write_results(study)
    s = pd.read_csv(study / "results" / "strata_test.csv", keep_default_na=False, na_values=[""])
    tv = s[s["method"] == "tversky"].set_index("stratum")
    assert tv["n_cases"].to_dict() == {"<1%": 6, "1-5%": 4, ">5%": 2, "empty label": 0}
    assert not math.isnan(tv.loc["<1%", "dice_ci_low"]) and not math.isnan(tv.loc["<1%", "nsd_ci_high"])
    assert math.isnan(tv.loc["1-5%", "dice_ci_low"]) and tv.loc["1-5%", "note"] == "n < 5: no interval"
    assert math.isnan(tv.loc[">5%", "dice_ci_low"]) and tv.loc[">5%", "note"] == "n < 5: no interval"
    assert tv.loc[">5%", "dice_mean"] == pytest.approx(
        (BASE[5] + BASE[11] + JITTER[5] + JITTER[11]) / 2 + 0.15
    )
    val = pd.read_csv(study / "results" / "strata_val.csv", keep_default_na=False, na_values=[""])
    assert (
        val[(val["method"] == "dice") & (val["stratum"] == ">5%")]["note"].iloc[0]
        == "no case in this stratum"
    )


def test_study_json_labels_synthetic_from_the_manifest(study: Path) -> None:
    results.write_results(study)
    info = json.loads((study / "results" / "study.json").read_text())
    assert info["synthetic"] is True  # the runs recorded synthetic: false; the folder's manifest decides
    assert info["seeds"] == [0, 1] and info["losses"] == ["dice", "tversky"] and info["preset"] == "quick"
    assert info["fingerprint"] == "f0" and not info["fingerprints_differ"]
    assert info["n_cases"] == {"test": 12, "val": 2, "train": 16, "selection": 3}
    assert info["references"] == ["baseline", "ceiling"] and info["device"] == "CPU (test)"
    assert info["run_config"]["target_shape"] == [16, 64, 64] and "seed" not in info["run_config"]


def test_real_data_folder_and_mixed_fingerprints(tmp_path: Path) -> None:
    study = write_study(tmp_path / "s", {"dice": [BASE, BASE]}, synthetic=False, fingerprints=["a", "b"])
    (study / "hdt" / "seed0").mkdir(parents=True)  # started, never finished
    results.write_results(study)
    info = json.loads((study / "results" / "study.json").read_text())
    assert info["synthetic"] is False and info["fingerprint"] == ["a", "b"] and info["fingerprints_differ"]
    assert info["unfinished"] == ["hdt/seed0"] and info["references"] == []
    c = pd.read_csv(study / "results" / "comparisons_test.csv")
    assert c.empty  # one loss and no baseline: nothing to compare


def test_the_code_fingerprint_ignores_the_per_run_configuration_hash(tmp_path: Path) -> None:
    prints = [{"code": "c1", "config": "loss-seed-0", "preprocess_version": 1},
              {"code": "c1", "config": "loss-seed-1", "preprocess_version": 1}]  # fmt: skip
    study = write_study(tmp_path / "s", {"dice": [BASE, BASE]}, fingerprints=prints)
    results.write_results(study)
    info = json.loads((study / "results" / "study.json").read_text())
    assert info["fingerprint"] == {"code": "c1", "preprocess_version": 1} and not info["fingerprints_differ"]


def test_bad_metrics_file_is_named_and_nothing_is_written(study: Path) -> None:
    bad = study / "tversky" / "seed1" / "metrics.csv"
    pd.read_csv(bad).drop(columns="nsd").to_csv(bad, index=False)
    with pytest.raises(StudyFolderError, match=r"tversky/seed1/metrics.csv: missing columns \['nsd'\]"):
        results.write_results(study)
    assert not (study / "results").exists()
    frame = pd.read_csv(study / "dice" / "seed0" / "metrics.csv")
    frame.loc[3, "dice"] = 1.5
    frame.to_csv(study / "dice" / "seed0" / "metrics.csv", index=False)
    with pytest.raises(StudyFolderError, match="outside"):
        find_runs(study)


def test_a_study_mixing_data_folders_is_refused(study: Path, tmp_path: Path) -> None:
    cfg_path = study / "tversky" / "seed1" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["data_dir_resolved"] = str(tmp_path / "other")
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(StudyFolderError, match="differ in data folder"):
        results.write_results(study)


def test_missing_study_or_results_say_what_to_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(StudyFolderError, match="no such study folder"):
        results.write_results(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StudyFolderError, match="no finished run folder"):
        results.write_results(tmp_path / "empty")
    with pytest.raises(StudyFolderError, match="hie_core.report.analysis.results"):
        results.read_results(tmp_path / "empty")
    assert results.main([str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hie-results: error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_read_results_round_trip(study: Path) -> None:
    assert results.main([str(study)]) == 0
    loaded = results.read_results(study)
    assert loaded.losses == ["dice", "tversky"] and loaded.synthetic and loaded.n_cases("val") == 2
    assert loaded.table("table1", "val")["n_cases"].tolist() == [2, 2, 2, 2]
    assert loaded.table("comparisons")["reason"].eq("").all()
