"""Paths resolved once: a data folder typed differently, linked, relative or moved is the same dataset."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from hie_core.data import discover_cases
from hie_core.fingerprint import data_fingerprint
from hie_core.io import read_image, write_image

from .conftest import tiny_config


def _started_run(data, run):
    """A run folder as a started run leaves it: config.json with the configuration and both fingerprints."""
    from hie_core.training.config import run_fingerprint

    config = tiny_config(data, run)
    run.mkdir(parents=True)
    info = {"config": config.to_dict(), "fingerprint": run_fingerprint(config),
            "data_fingerprint": data_fingerprint(data, discover_cases(data)).to_dict()}  # fmt: skip
    (run / "config.json").write_text(json.dumps(info))
    return config


def test_a_moved_or_retyped_dataset_is_the_same_dataset(tiny_release, tmp_path):
    """Before: another data_dir string made "a run with another configuration" (delete the folder)."""
    from hie_core.training.config import run_fingerprint
    from hie_core.training.experiment import _run_state

    run = tmp_path / "run"
    config = _started_run(tiny_release, run)
    moved = shutil.copytree(tiny_release, tmp_path / "moved" / "release")
    (tmp_path / "link").symlink_to(moved)
    for typed in (str(tiny_release) + "/", moved, tmp_path / "link"):
        other = tiny_config(typed, run)
        assert run_fingerprint(other) == run_fingerprint(config)
        current = data_fingerprint(moved, discover_cases(moved))
        assert _run_state(run, other, current) == "resume"  # not refused, not retrained
    label = next((moved / "BONBID2023_Test" / "3LABEL").glob("*.mha"))
    array, geometry = read_image(label)
    write_image(np.zeros_like(array), geometry, label)  # other files: other data, retrained with the reason
    assert _run_state(run, tiny_config(moved, run), data_fingerprint(moved, discover_cases(moved))) == "data"


def test_relative_data_dir_for_hie_score_and_hie_predict(tiny_release, tmp_path, monkeypatch, capsys):
    from hie_core.study.score import main as score_main
    from hie_core.training import predict

    from .test_checkpoints import write_model_file

    preds = tmp_path / "preds"
    preds.mkdir()
    for label in (tiny_release / "BONBID2023_Test" / "3LABEL").glob("*.mha"):
        shutil.copy(label, preds / label.name)
    model = write_model_file(tmp_path / "model" / "model_best.pt")
    monkeypatch.chdir(tmp_path)
    assert score_main(["preds/", "--data-dir", "release/", "--out", "scores.csv"]) == 0
    assert (tmp_path / "scores.csv").is_file()
    argv = ["--checkpoint", "model/model_best.pt", "--data-dir", "release/BONBID2023_Test/../BONBID2023_Test/",
            "--output-dir", "out", "--device", "cpu"]  # fmt: skip
    assert predict.main(argv) == 0
    assert len(list((tmp_path / "out" / "test").glob("*_lesion.mha"))) == 2
    assert model.is_file()
    capsys.readouterr()


@pytest.mark.parametrize("typed", ["release", "release/", "./link/"])
def test_the_study_resolves_data_dir_once(tiny_release, tmp_path, monkeypatch, typed):
    """The study passes the resolved folder on (a relative path works in every run, whatever its folder)."""
    from hie_core import study

    (tmp_path / "link").symlink_to(tiny_release)
    monkeypatch.chdir(tmp_path)
    seen = {}

    def plan_study(runs_dir, name, losses, seeds, seed_start, data_dir, *args, **kwargs):
        seen.update(data_dir=data_dir, runs_dir=runs_dir)
        raise SystemExit(0)

    monkeypatch.setattr(study.cli, "plan_study", plan_study)  # the command line's call
    with pytest.raises(SystemExit):
        study.main(["--data-dir", typed, "--runs-dir", "runs/", "--losses", "dice", "--preset", "quick",
                    "--device", "cpu"])  # fmt: skip
    assert seen["data_dir"] == str(tiny_release) and str(seen["runs_dir"]) == str(tmp_path / "runs")
