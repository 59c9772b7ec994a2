"""The main job end to end: the quick study on the synthetic data (its run folders).

The study itself runs once per test session (``main_study`` in ``conftest.py``), as the
README's main job does without its set-up; ``tests/test_book.py`` checks the book it built.
"""

from __future__ import annotations

import json

import pandas as pd

from hie_core.losses import LOSS_NAMES


def test_every_loss_and_the_baseline_has_a_run_folder(main_study):
    for loss in LOSS_NAMES:
        run = main_study.study_dir / loss
        for name in (
            "config.json",
            "history.csv",
            "model_best.pt",
            "metrics.csv",
            "summary.json",
            "train.ipynb",
        ):
            assert (run / name).is_file(), run / name
        info = json.loads((run / "config.json").read_text())
        assert info["synthetic"] is True and info["config"]["preset"] == "quick"
    base = pd.read_csv(main_study.study_dir / "baseline" / "metrics.csv")
    dice = pd.read_csv(main_study.study_dir / "dice" / "metrics.csv")
    assert sorted(base["case_id"]) == sorted(dice["case_id"])
    assert 0.3 <= base.loc[base["split"] == "test", "dice"].mean() <= 0.6
