"""``python -m hie_core.study --plan`` and the named designs: counted, projected, powered; nothing written.

No training here: the plans read the synthetic presets' counts, a tiny data folder's file
names, or study folders written by the test (CSV/JSON).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from hie_core import study
from hie_core.errors import ConfigError
from hie_core.report.analysis.forecast import split_mdd
from hie_core.report.analysis.power import case_floor, default_noise
from hie_core.synthetic import PRESETS

ROOT = Path(__file__).resolve().parent.parent


def snapshot(*folders: Path) -> dict:
    """Every path under the folders, with size and modification time (empty when absent)."""
    return {
        str(p): (p.stat().st_size, p.stat().st_mtime_ns)
        for folder in folders
        if folder.exists()
        for p in sorted(folder.rglob("*"))
    }


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty synthetic cache: --plan must not generate anything into it."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("HIE_CACHE_DIR", str(folder))
    return folder


def _plan(capsys, *args: str) -> str:
    assert study.main(["--plan", "--device", "cpu", *args]) == 0
    return capsys.readouterr().out


def _numbers(out: str) -> dict:
    runs = int(re.search(r"\[plan\] (\d+) runs", out).group(1))
    hours = float(re.search(r"= ([\d.]+) h on this device", out).group(1))
    mdds = {
        m[0]: float(m[1]) for m in re.findall(r"\[plan\]\s+(cv|test|val)\s+\d+ cases? x [^:]+: ([\d.]+)", out)
    }
    return {"runs": runs, "hours": hours, "mdd": mdds}


def test_plan_prints_runs_hours_and_detectable_difference_and_writes_nothing(tmp_path, cache, capsys):
    """The issue's "Done when": --plan --folds 5 --seeds 3."""
    runs_dir = tmp_path / "runs"
    out = _plan(capsys, "--folds", "5", "--seeds", "3", "--runs-dir", str(runs_dir), "--jobs", "2")
    found = _numbers(out)
    assert found["runs"] == 6 * 3 * 5
    seconds = json.loads((ROOT / study.RUN_SECONDS_JSON).read_text())["cpu"]["quick"]["seconds_per_run"]
    assert found["hours"] == pytest.approx(90 * seconds / 2 / 3600, abs=0.01)
    assert "benchmarks/results/run_seconds.json" in out and "noise: default" in out
    pool, test = PRESETS["small"]["train"] + PRESETS["small"]["val"], PRESETS["small"]["test"]
    assert found["mdd"] == {
        "cv": pytest.approx(split_mdd(default_noise(), "cv", pool, 3, 5, n_tests=2), abs=1e-4),
        "test": pytest.approx(split_mdd(default_noise(), "test", test, 3, 5, n_tests=2), abs=1e-4),
    }
    assert f"cv     {pool} cases x 15 fold models out of fold" in out and "each 5 fold models averaged" in out
    assert "reaches 0.02 Dice in cv and test: no" in out
    assert not runs_dir.exists() and not cache.exists()


def test_plan_as_a_command_exits_0(tmp_path):
    env_cache = tmp_path / "cache"
    proc = subprocess.run([sys.executable, "-m", "hie_core.study", "--plan", "--folds", "5", "--seeds", "3", "--device",
                           "cpu", "--runs-dir", str(tmp_path / "runs")], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "HIE_CACHE_DIR": str(env_cache)}, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "90 runs" in proc.stdout and " h on this device" in proc.stdout and "cv " in proc.stdout
    assert list(tmp_path.iterdir()) == []


def test_plan_of_a_real_folder_reads_its_names_only(tiny_synthetic, tmp_path, cache, capsys):
    before = snapshot(tiny_synthetic)
    out = _plan(capsys, "--data-dir", str(tiny_synthetic), "--folds", "3", "--seeds", "2", "--losses", "dice,tversky",
                "--runs-dir", str(tmp_path / "runs"))  # fmt: skip
    found = _numbers(out)
    assert found["runs"] == 2 * 2 * 3
    assert re.search(r"cv\s+7 cases", out) and re.search(r"test\s+2 cases", out)
    assert snapshot(tiny_synthetic) == before and not (tmp_path / "runs").exists() and not cache.exists()


def test_plan_without_folds_reports_val_and_test_and_judges_test(tmp_path, cache, capsys):
    out = _plan(capsys, "--seeds", "2", "--runs-dir", str(tmp_path / "runs"))
    assert _numbers(out)["runs"] == 12
    assert "(not judged: the official validation split)" in out and "reaches 0.02 Dice in test: no" in out
    assert "--design powered, 5 folds x" in out
    test = PRESETS["small"]["test"]
    floor = case_floor(default_noise(), test, n_tests=2)
    assert floor > 0.02 and f"case floor (any number of seeds) {floor:.4f}" in out
    assert f"{test} cases cannot reach 0.02 whatever the seeds (case SD 0.026)" in out


def _write_run(folder: Path, dice: dict[str, float], seconds: float, whole: float | None = None) -> None:
    folder.mkdir(parents=True)
    rows = [{"case_id": c, "split": "test", "burden_percent": 1.0, "stratum": "1-5%", "dice": d, "masd_mm": 1.0,
             "nsd": 0.5, "n_pred": 10, "n_ref": 10} for c, d in dice.items()]  # fmt: skip
    pd.DataFrame(rows).to_csv(folder / "metrics.csv", index=False)
    (folder / "config.json").write_text(
        json.dumps({"config": {"preset": "quick"}, "data_dir_resolved": "/d"})
    )
    (folder / "summary.json").write_text(json.dumps({"best_epoch": 2, "train_seconds_this_call": seconds}))
    notebook = {
        "metadata": {"papermill": {"duration": seconds + 20 if whole is None else whole}},
        "cells": [],
    }
    (folder / "train.ipynb").write_text(json.dumps(notebook))  # papermill's record of the whole run


def test_plan_measures_seconds_and_noise_in_the_study_folder(tmp_path, cache, capsys):
    study_dir = tmp_path / "runs" / "mine"
    cases = [f"C{i}" for i in range(6)]
    for seed in (0, 1):
        _write_run(study_dir / "dice_focal" / f"seed{seed}", dict.fromkeys(cases, 0.5), 100.0)
        _write_run(study_dir / "dice_focal_hdt" / f"seed{seed}",
                   {c: 0.5 + 0.05 * ((i + seed) % 3 - 1) for i, c in enumerate(cases)}, 300.0)  # fmt: skip
    _write_run(
        study_dir / "tversky" / "seed0", dict.fromkeys(cases, 0.5), 90.0, whole=5.0
    )  # a reload: not counted
    before = snapshot(study_dir)
    out = _plan(
        capsys, "--seeds", "2", "--runs-dir", str(tmp_path / "runs"), "--study", "mine", "--jobs", "1"
    )
    assert (
        f"median whole-run time (notebook start, training, evaluation) of 4 trained run(s) in {study_dir}"
        in out
    )
    assert _numbers(out)["hours"] == pytest.approx(12 * 220 / 3600, abs=0.01)  # median of 120, 120, 320, 320
    assert f"noise: measured in {study_dir}: dice_focal_hdt - dice_focal on test, 6 cases x 2 runs" in out
    assert "noise: default" not in out
    assert snapshot(study_dir) == before


def test_the_powered_design_detects_the_target_on_bonbid_sizes():
    folds, seeds = study.powered_design()
    assert folds == study.POWERED_FOLDS and seeds >= study.POWERED_MIN_SEEDS
    splits = study.reported_splits(study.BONBID_COUNTS, folds)
    assert splits == {"cv": 89, "test": 44}
    for split, n in splits.items():
        assert (
            split_mdd(default_noise(), split, n, seeds, folds, n_tests=len(study.PRIMARY_CONTRASTS)) <= 0.02
        )
    if seeds > study.POWERED_MIN_SEEDS:  # the fewest seeds that reach it
        assert max(split_mdd(default_noise(), s, n, seeds - 1, folds, 2) for s, n in splits.items()) > 0.02
    # the crossed model with t quantiles (Satterthwaite df), default noise: 89 cases x 25 fold models out of fold
    assert split_mdd(default_noise(), "cv", 89, 5, 5, 2) == pytest.approx(0.0149, abs=5e-4)


def test_design_powered_sets_folds_and_seeds_unless_given(tmp_path, cache, capsys):
    folds, seeds = study.powered_design()
    out = _plan(capsys, "--design", "powered", "--runs-dir", str(tmp_path / "r"))
    assert f"6 losses x {seeds} seeds x {folds} folds" in out
    out = _plan(
        capsys, "--design", "powered", "--seeds", "2", "--folds", "3", "--runs-dir", str(tmp_path / "r")
    )
    assert "6 losses x 2 seeds x 3 folds" in out
    out = _plan(
        capsys, "--design", "powered", "--synthetic-test-cases", "44", "--runs-dir", str(tmp_path / "r")
    )
    assert re.search(r"test\s+44 cases x 5 seeds, each 5 fold models averaged", out)
    pool = (
        PRESETS["small"]["train"] + PRESETS["small"]["val"]
    )  # the synthetic pool is smaller than BONBID-HIE's 89
    reached = split_mdd(default_noise(), "cv", pool, seeds, folds, 2) <= 0.02
    assert f"reaches 0.02 Dice in cv and test: {'yes' if reached else 'no'}" in out
    assert "quick-cv5-test44" in out  # its own study folder by default
    assert not (tmp_path / "r").exists() and not cache.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--synthetic-test-cases", "30", "--data-dir", "{data}"],
            "--synthetic-test-cases sizes the synthetic",
        ),
        (["--synthetic-test-cases", "-1"], "must be at least 0"),
        (["--folds", "-1"], "--folds must be 0 or 1"),
        (["--folds", "8", "--data-dir", "{data}"], "--folds 8: the pool holds 7"),
        (["--design", "big"], "invalid choice: 'big'"),
        (["--set", "folds=3"], "--set folds: set by the study itself"),
        (["--plan", "--gather"], "--plan runs nothing"),
    ],
)
def test_design_errors_are_one_line_and_write_nothing(tiny_synthetic, tmp_path, cache, capsys, args, message):
    runs_dir = tmp_path / "runs"
    args = [a.replace("{data}", str(tiny_synthetic)) for a in args]
    for plan in ([], ["--plan"]):
        code = study.main(["--runs-dir", str(runs_dir), "--device", "cpu", *plan, *args])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("hie-study: error: ") and err.count("\n") == 1, err
        assert message in err, err
    assert not runs_dir.exists() and not cache.exists()


def test_a_study_folder_of_another_design_is_refused(tiny_synthetic, tmp_path, capsys):
    plain = tmp_path / "s" / "dice" / "seed0"
    plain.mkdir(parents=True)
    with pytest.raises(ConfigError, match=f"{plain}: this study folder holds plain runs.*--folds 3"):
        study.plan_study(tmp_path, "s", ["dice"], 1, data_dir=str(tiny_synthetic), preset="quick", device="cpu",
                         folds=3)  # fmt: skip
    folded = tmp_path / "t" / "dice" / "seed0-fold0"
    folded.mkdir(parents=True)
    (folded / "config.json").write_text(json.dumps({"config": {"folds": 5, "fold": 0}}))
    with pytest.raises(
        ConfigError, match="holds 5-fold cross-validation runs, this study asks for --folds 3"
    ):
        study.plan_study(tmp_path, "t", ["dice"], 1, data_dir=str(tiny_synthetic), preset="quick", device="cpu",
                         folds=3)  # fmt: skip
    assert study.main(["--plan", "--runs-dir", str(tmp_path), "--study", "t", "--device", "cpu"]) == 2
    assert "runs without folds" in capsys.readouterr().err


def test_a_fold_study_plans_fold_runs_and_default_study_names(tiny_synthetic, tmp_path):
    plan = study.plan_study(tmp_path, "", ["dice", "hdt"], 2, data_dir=str(tiny_synthetic), preset="quick",
                            device="cpu", folds=3)  # fmt: skip
    assert plan.study_dir == tmp_path / "quick-cv3" and plan.config.folds == 3
    assert [r.name for r in plan.runs][:4] == ["dice/seed0-fold0", "dice/seed0-fold1", "dice/seed0-fold2",
                                               "dice/seed1-fold0"]  # fmt: skip
    assert len(plan.runs) == 12 and "folds" not in plan.params
    plain = study.plan_study(tmp_path, "", ["dice"], 1, data_dir=str(tiny_synthetic), preset="quick", device="cpu",
                             folds=1)  # fmt: skip
    assert plain.study_dir == tmp_path / "quick" and [r.name for r in plain.runs] == ["dice/seed0"]
    assert plain.config.folds == 0


def test_plan_is_a_dry_run_of_the_study_s_own_planning(tiny_synthetic, tmp_path, cache, monkeypatch):
    """``--plan`` and a study go through one ``plan_study``: the same runs, settings and counts; the
    dry run alone reads no scan and writes nothing."""
    from hie_core.study import cli

    args = (tmp_path / "runs", "", ["dice", "tversky"], 2)
    kwargs = {"data_dir": str(tiny_synthetic), "preset": "quick", "device": "cpu", "folds": 2,
              "grid": {"lr": [1e-3, 3e-3]}}  # fmt: skip
    before = snapshot(tmp_path)
    dry = study.plan_study(*args, dry_run=True, **kwargs)
    assert snapshot(tmp_path) == before and dry.data is None
    real = study.plan_study(*args, **kwargs)
    assert [(r.name, r.settings) for r in dry.runs] == [(r.name, r.settings) for r in real.runs]
    assert len(dry.runs) == 2 * 2 * 2 * 2 and dry.combinations == 2 and dry.seeds == real.seeds == 2
    assert dry.counts == real.counts and dry.study_dir == real.study_dir and dry.params == real.params
    calls = []
    monkeypatch.setattr(cli, "plan_study", lambda *a, **k: calls.append(k["dry_run"]) or dry)
    assert study.main(["--plan", "--device", "cpu", "--data-dir", str(tiny_synthetic), "--losses", "dice"]) == 0
    assert calls == [True]
    with pytest.raises(ConfigError, match="--folds 99: the pool holds"):
        study.plan_study(*args, dry_run=True, **{**kwargs, "folds": 99})
