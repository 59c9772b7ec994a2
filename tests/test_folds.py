"""Cross-validation: the fold partition, a fold run's reported splits, fold run folders, the options.

The partition tests read the tiny synthetic set only; one test trains a tiny fold run (a few
seconds on CPU); the run-discovery tests use study folders written here (CSV/JSON).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from hie_core.config import FIELDS
from hie_core.data import Case, kfold, load_dataset
from hie_core.errors import ConfigError
from hie_core.report.analysis.runs import StudyFolderError, find_runs
from hie_core.synthetic import PRESETS, ensure_synthetic_dataset, synthetic_cache_dir
from hie_core.training import experiment
from hie_core.training.config import TrainConfig, make_config, run_fingerprint
from hie_core.training.experiment import (
    CV_SPLIT,
    RunFolderError,
    cv_folds,
    design_cases,
    run_baseline,
    run_experiment,
)

from .conftest import tiny_config

#: The fields added after the schema's first version (old runs lack them).
ADDED = tuple(f.name for f in FIELDS if f.added > 1)

# ----------------------------------------------------------------------------- the partition


def _ids(cases) -> list[str]:
    return sorted(c.case_id for c in cases)


def test_the_folds_partition_the_pool_the_same_way_for_every_loss_and_seed(tiny_synthetic, tmp_path):
    cases, report = load_dataset(tiny_synthetic)
    pool = _ids(c for c in cases if c.split in ("train", "val"))
    test = _ids(c for c in cases if c.split == "test")
    held_by: dict[tuple[str, int], list[list[str]]] = {}
    for loss, seed in (("dice", 0), ("dice", 5), ("tversky_hdt", 1)):
        for fold in range(3):
            config = tiny_config(tiny_synthetic, tmp_path / "x", loss=loss, seed=seed, folds=3, fold=fold)
            train, reported = design_cases(cases, report, config)
            held = [c for c in reported if c.split == CV_SPLIT]
            assert _ids(c for c in reported if c.split == "test") == test
            assert {c.split for c in reported} == {CV_SPLIT, "test"}  # the official val split is in the pool
            assert sorted(_ids(train) + _ids(held)) == pool and not set(_ids(train)) & set(_ids(held))
            held_by.setdefault((loss, seed), []).append(_ids(held))
    partitions = list(held_by.values())
    assert all(p == partitions[0] for p in partitions)  # one partition for every loss and seed
    assert sorted(i for fold in partitions[0] for i in fold) == pool  # each pool case held out once
    assert max(map(len, partitions[0])) - min(map(len, partitions[0])) <= 1
    assert [_ids(h) for _, h in cv_folds(cases, report, 3)] == partitions[0]


def test_without_folds_the_training_split_trains_and_val_and_test_are_reported(tiny_synthetic, tmp_path):
    cases, report = load_dataset(tiny_synthetic)
    train, reported = design_cases(cases, report, tiny_config(tiny_synthetic, tmp_path / "x"))
    assert _ids(train) == _ids(c for c in cases if c.split == "train")
    assert [c.split for c in reported] == ["val", "test", "test"]


def test_kfold_strata_are_spread_over_the_folds_whatever_the_input_order():
    cases = [Case(f"C{i:02d}", "train", Path("a"), Path("z")) for i in range(20)]
    strata = {c.case_id: ("big" if i < 6 else "small") for i, c in enumerate(cases)}
    folds = kfold(cases, 3, seed=0, strata=strata)
    again = kfold(list(reversed(cases)), 3, seed=0, strata=strata)
    assert [_ids(h) for _, h in folds] == [_ids(h) for _, h in again]
    assert sorted(i for _, held in folds for i in _ids(held)) == _ids(cases)
    assert sorted(sum(strata[c.case_id] == "big" for c in held) for _, held in folds) == [2, 2, 2]
    assert sorted(len(held) for _, held in folds) == [6, 7, 7]
    with pytest.raises(ValueError, match="no stratum"):
        kfold(cases, 3, strata={})


def test_more_folds_than_pool_cases_is_a_user_error(tiny_synthetic):
    cases, report = load_dataset(tiny_synthetic)
    with pytest.raises(experiment.UserError, match="folds 8: the pool holds 7"):
        cv_folds(cases, report, 8)


# ----------------------------------------------------------------------------- a fold run


def test_a_fold_run_reports_its_held_out_fold_as_cv_and_the_test_split(tiny_synthetic, tmp_path):
    config = tiny_config(tiny_synthetic, tmp_path / "run", epochs=1, patience=1, folds=3, fold=1)
    cases, report = load_dataset(tiny_synthetic)
    held = _ids(cv_folds(cases, report, 3)[1][1])
    result = run_experiment(config)
    metrics = result.metrics
    assert sorted(metrics.loc[metrics["split"] == "cv", "case_id"]) == held
    assert sorted(metrics.loc[metrics["split"] == "test", "case_id"]) == _ids(
        c for c in cases if c.split == "test"
    )
    assert set(metrics["split"]) == {"cv", "test"}
    assert result.summary["fold"] == 1 and result.summary["folds"] == 3 and result.summary["cv_cases"] == held
    assert set(result.summary["splits"]) == {"cv", "test"}
    assert not set(result.summary["selection_cases"]) & set(held)
    assert (
        sorted(p.stem.removesuffix("_lesion") for p in (result.run_dir / "predictions" / "cv").iterdir())
        == held
    )
    info = json.loads((result.run_dir / "config.json").read_text())
    assert info["n_cases"] == {"train": 6, "val": 1, "test": 2}
    assert info["config"]["folds"] == 3 and info["config"]["fold"] == 1


def test_the_baseline_of_a_cv_study_scores_the_pool_as_cv(tiny_synthetic, tmp_path):
    rows = run_baseline(tiny_synthetic, tmp_path / "baseline", cv=True)
    assert rows["split"].value_counts().to_dict() == {"cv": 7, "test": 2}
    plain = run_baseline(tiny_synthetic, tmp_path / "plain")
    assert plain["split"].value_counts().to_dict() == {"test": 2, "val": 1}


# ----------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"folds": 1}, "folds must be 0 (no cross-validation) or at least 2, got 1"),
        ({"folds": -2}, "folds must be >= 0, got -2"),
        ({"folds": 3, "fold": 3}, "fold must be in 0..2 with folds 3, got 3"),
        ({"folds": 3, "fold": -1}, "fold must be >= 0"),
        ({"fold": 1}, "fold 1 needs folds"),
        ({"folds": 2.5}, "folds must be a whole number"),
        ({"synthetic_test_cases": -1}, r"synthetic_test_cases must be in \[0, 499\]"),
        ({"synthetic_test_cases": 500}, r"synthetic_test_cases must be in \[0, 499\]"),
        ({"synthetic_test_cases": 4, "data_dir": "/data"}, "synthetic dataset only"),
    ],
)
def test_fold_and_synthetic_count_settings_are_checked(values, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make_config(preset="quick", device="cpu", **values)


def test_new_fields_at_their_defaults_leave_the_configuration_hash_as_before():
    config = make_config(preset="quick", device="cpu", loss="dice")
    settings = {k: v for k, v in config.to_dict().items()
                if k not in ("output_dir", "device", "num_workers", "data_dir", *ADDED)}  # fmt: skip
    settings["device_type"] = "cpu"
    before = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    assert run_fingerprint(config)["config"] == before
    assert (
        run_fingerprint(make_config(preset="quick", device="cpu", loss="dice", folds=3))["config"] != before
    )


def test_a_run_folder_from_before_the_new_fields_is_the_same_configuration(tiny_synthetic, tmp_path):
    config = tiny_config(tiny_synthetic, tmp_path / "old")
    old = {k: v for k, v in config.to_dict().items() if k not in ADDED}
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "config.json").write_text(
        json.dumps({"config": old, "fingerprint": run_fingerprint(config)})
    )
    assert experiment._run_state(tmp_path / "old", config) == "resume"
    with pytest.raises(RunFolderError, match="folds: 0 -> 3"):
        experiment._run_state(tmp_path / "old", tiny_config(tiny_synthetic, tmp_path / "old", folds=3))


def test_train_config_round_trips_the_new_fields():
    config = make_config(preset="quick", device="cpu", folds=4, fold=3, synthetic_test_cases=44)
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert experiment.default_run_folder(config) == Path("quick-cv4-test44") / config.loss / "seed0-fold3"
    assert experiment.default_run_folder(make_config(preset="quick", device="cpu")) == Path(
        "quick/tversky_hdt/seed0"
    )


# ----------------------------------------------------------------------------- synthetic test count


def test_a_custom_synthetic_count_has_its_own_cache_folder(tmp_path):
    assert synthetic_cache_dir("small", 0, None, tmp_path) == tmp_path / "synthetic" / "small-seed0"
    assert synthetic_cache_dir("small", 0, dict(PRESETS["small"]), tmp_path).name == "small-seed0"
    assert synthetic_cache_dir("small", 0, {"test": 44}, tmp_path).name == "small-seed0-test44"
    assert synthetic_cache_dir("full", 2, {"train": 1, "val": 0}, tmp_path).name == "full-seed2-train1-val0"
    with pytest.raises(ValueError, match="count for 'test'"):
        synthetic_cache_dir("small", 0, {"test": 600}, tmp_path)


def test_a_custom_synthetic_count_never_touches_the_default_folder(tmp_path):
    default = synthetic_cache_dir("small", 0, None, tmp_path)
    default.mkdir(parents=True)
    (default / "SYNTHETIC.json").write_text("{}")  # a stand-in for the preset's own release
    counts = {"train": 1, "val": 0, "test": 2}
    root = ensure_synthetic_dataset("small", 0, tmp_path, counts=counts)
    assert root == synthetic_cache_dir("small", 0, counts, tmp_path) and root != default
    assert (default / "SYNTHETIC.json").read_text() == "{}" and sorted(p.name for p in default.iterdir()) == [
        "SYNTHETIC.json"
    ]
    manifest = json.loads((root / "SYNTHETIC.json").read_text())
    assert manifest["counts"] == counts
    # case i depends on (seed, split, i) only: the test split starts with the default's first cases
    assert [c["case_id"] for c in manifest["cases"] if c["split"] == "test"] == [
        "SYNNICU_501-VISIT_01",
        "SYNNICU_502-VISIT_01",
    ]
    assert ensure_synthetic_dataset("small", 0, tmp_path, counts=counts) == root  # cached


def test_the_run_asks_for_its_synthetic_test_count(monkeypatch, tmp_path):
    asked = {}

    def fake(preset, seed, cache_dir=None, counts=None):
        asked.update(preset=preset, counts=counts)
        return tmp_path

    monkeypatch.setattr("hie_core.synthetic.ensure_synthetic_dataset", fake)
    experiment.resolve_data_dir(make_config(preset="quick", device="cpu", synthetic_test_cases=44))
    assert asked == {"preset": "small", "counts": {"test": 44}}
    experiment.resolve_data_dir(make_config(preset="quick", device="cpu"))
    assert asked == {"preset": "small", "counts": None}


# ----------------------------------------------------------------------------- run discovery


def _write_run(folder: Path, loss: str, seed: int, fold: int | None, cases: dict[str, str]) -> None:
    """A finished run folder as the training writes it (the columns the report reads)."""
    folder.mkdir(parents=True)
    rows = [{"case_id": c, "split": s, "burden_percent": 1.0, "stratum": "1-5%", "dice": 0.5, "masd_mm": 1.0,
             "nsd": 0.5, "n_pred": 10, "n_ref": 10} for c, s in cases.items()]  # fmt: skip
    pd.DataFrame(rows).to_csv(folder / "metrics.csv", index=False)
    config = {
        "loss": loss,
        "seed": seed,
        "preset": "quick",
        "folds": 2 if fold is not None else 0,
        "fold": fold or 0,
    }
    (folder / "config.json").write_text(json.dumps({"config": config, "data_dir_resolved": "/data"}))
    (folder / "summary.json").write_text(
        json.dumps({"best_epoch": 3, "fold": fold, "train_seconds_this_call": 5.0})
    )


def test_fold_run_folders_are_found_with_their_fold(tmp_path):
    for seed in (0, 1):
        for fold, held in ((0, "A"), (1, "B")):
            _write_run(
                tmp_path / "dice" / f"seed{seed}-fold{fold}", "dice", seed, fold, {held: "cv", "T": "test"}
            )
    (tmp_path / "dice" / "seed2-fold0").mkdir()  # unfinished
    runs = find_runs(tmp_path)
    assert [(r.seed, r.fold) for r in runs.runs] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert runs.folds == [0, 1] and runs.seeds == [0, 1] and runs.unfinished == ["dice/seed2-fold0"]
    scores = runs.scores()
    assert {"method", "seed", "fold", "case_id", "split", "dice"} <= set(scores.columns)
    cv = scores[scores["split"] == "cv"]
    assert cv.groupby("seed")["case_id"].apply(sorted).tolist() == [["A", "B"], ["A", "B"]]  # once per seed
    assert cv.set_index(["seed", "case_id"])["fold"].to_dict() == {
        (0, "A"): 0,
        (0, "B"): 1,
        (1, "A"): 0,
        (1, "B"): 1,
    }
    assert runs.runs[0].summary["best_epoch"] == 3


def test_plain_run_folders_have_no_fold(tmp_path):
    _write_run(tmp_path / "dice" / "seed0", "dice", 0, None, {"A": "val", "T": "test"})
    runs = find_runs(tmp_path)
    assert runs.runs[0].fold is None and runs.folds == []
    assert runs.scores()["fold"].isna().all()


def test_a_study_mixing_fold_and_plain_runs_is_refused_naming_both(tmp_path):
    _write_run(tmp_path / "dice" / "seed0", "dice", 0, None, {"A": "val"})
    _write_run(tmp_path / "tversky" / "seed0-fold1", "tversky", 0, 1, {"A": "cv"})
    with pytest.raises(StudyFolderError) as err:
        find_runs(tmp_path)
    message = str(err.value)
    assert (
        str(tmp_path / "dice" / "seed0") in message and str(tmp_path / "tversky" / "seed0-fold1") in message
    )
    assert "mixes" in message
