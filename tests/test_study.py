"""The main job end to end: the quick study on the synthetic data (its study folder).

The study itself runs once per test session (``main_study`` in ``conftest.py``), as the
README's main job does without its set-up; ``tests/test_book.py`` checks the book it built.
Here: the folder contract, one run folder per loss and seed, the baseline, the resampling
ceiling and the result files, all labelled synthetic.
"""

from __future__ import annotations

import json

import pandas as pd

from hie_core.losses import LOSS_NAMES
from hie_core.study import DEFAULT_SEEDS

SEEDS = range(DEFAULT_SEEDS["cpu"])  # the main job on a CPU runs the default seeds


def test_every_loss_and_seed_has_a_run_folder(main_study):
    for loss in LOSS_NAMES:
        for seed in SEEDS:
            run = main_study.study_dir / loss / f"seed{seed}"
            for name in ("config.json", "history.csv", "model_best.pt", "checkpoint_last.pt", "metrics.csv",
                         "summary.json", "train.ipynb", "papermill.log"):  # fmt: skip
                assert (run / name).is_file(), run / name
            info = json.loads((run / "config.json").read_text())
            assert info["synthetic"] is True and info["config"]["preset"] == "quick"
            assert info["config"]["seed"] == seed and info["config"]["loss"] == loss
    assert not (main_study.study_dir / "dice" / f"seed{len(SEEDS)}").exists()


def test_baseline_and_ceiling_score_the_same_cases_as_the_runs(main_study):
    dice = pd.read_csv(main_study.study_dir / "dice" / "seed0" / "metrics.csv")
    for method in ("baseline", "ceiling"):
        rows = pd.read_csv(main_study.study_dir / method / "metrics.csv")
        assert list(rows.columns) == list(dice.columns)
        assert sorted(rows["case_id"]) == sorted(dice["case_id"]), method
    base = pd.read_csv(main_study.study_dir / "baseline" / "metrics.csv")
    assert 0.3 <= base.loc[base["split"] == "test", "dice"].mean() <= 0.6
    ceiling = pd.read_csv(main_study.study_dir / "ceiling" / "metrics.csv")
    assert ceiling["dice"].mean() > base["dice"].mean()  # the reference label, only resampled


def test_results_files_cover_every_method_and_say_synthetic(main_study):
    results = main_study.study_dir / "results"
    for split in ("test", "val"):
        for table in ("table1", "comparisons", "strata", "per_case"):
            assert (results / f"{table}_{split}.csv").is_file(), f"{table}_{split}.csv"
        table1 = pd.read_csv(results / f"table1_{split}.csv")
        assert set(table1["method"]) == {*LOSS_NAMES, "baseline", "ceiling"}
        assert (table1.set_index("method").loc[list(LOSS_NAMES), "n_runs"] == len(SEEDS)).all()
    assert json.loads((results / "study.json").read_text())["synthetic"] is True
