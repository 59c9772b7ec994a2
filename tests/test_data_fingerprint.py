"""Runs tied to the data they read: the data fingerprint, its hash cache, and retraining on a change."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import hie_core.fingerprint as fingerprint
from hie_core.data import discover_cases
from hie_core.io import write_image
from hie_core.training.experiment import run_experiment

from .conftest import TINY_GEOMETRY, tiny_config

VAL_LABEL = ("BONBID2023_Val", "3LABEL", "MGHNICU_100-VISIT_01_lesion.mha")


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Every cache (preprocessed cases, file hashes) in this test's folder, never the repository's."""
    monkeypatch.setenv("HIE_CACHE_DIR", str(tmp_path / "cache"))


def _counting_hash(monkeypatch) -> list:
    calls = []
    real = fingerprint.file_sha256

    def counted(path):
        calls.append(path)
        return real(path)

    monkeypatch.setattr(fingerprint, "file_sha256", counted)
    return calls


def test_the_fingerprint_covers_every_file_and_follows_their_contents(tiny_release):
    cases = discover_cases(tiny_release)
    first = fingerprint.data_fingerprint(tiny_release, cases)
    assert len(first.files) == sum(len(c.files) for c in cases) == 18  # 6 cases x ADC, ZADC, label
    assert "/".join(VAL_LABEL) in first.files and len(first.digest) == 64
    assert fingerprint.describe_change(first.to_dict(), first) is None
    label = np.zeros(TINY_GEOMETRY.shape, np.uint8)
    label[1:3, 2:5, 2:5] = 1
    write_image(label, TINY_GEOMETRY, tiny_release.joinpath(*VAL_LABEL))
    second = fingerprint.data_fingerprint(tiny_release, cases)
    assert second.digest != first.digest and second.differing(first.files) == ["/".join(VAL_LABEL)]
    assert fingerprint.describe_change(first.to_dict(), second) == (
        f"the data changed since this run: 1 file(s) differ, e.g. {tiny_release.joinpath(*VAL_LABEL)}"
    )
    assert "records no data fingerprint" in fingerprint.describe_change(None, second)


def test_unchanged_files_are_not_read_again(tiny_release, tmp_path, monkeypatch):
    calls = _counting_hash(monkeypatch)
    cases = discover_cases(tiny_release)
    first = fingerprint.data_fingerprint(tiny_release, cases)
    assert len(calls) == 18 and fingerprint.hash_cache_path().is_file()
    assert fingerprint.hash_cache_path().is_relative_to(tmp_path / "cache")  # never beside the data
    calls.clear()
    again = fingerprint.data_fingerprint(tiny_release, cases)  # a new cache object: read from the JSON file
    assert calls == [] and again.digest == first.digest
    write_image(np.zeros(TINY_GEOMETRY.shape, np.uint8), TINY_GEOMETRY, tiny_release.joinpath(*VAL_LABEL))
    assert fingerprint.data_fingerprint(tiny_release, cases).digest != first.digest
    assert [p.name for p in calls] == [VAL_LABEL[-1]]


def test_an_unreadable_hash_cache_is_rebuilt(tiny_release):
    fingerprint.hash_cache_path().parent.mkdir(parents=True, exist_ok=True)
    fingerprint.hash_cache_path().write_text("{not json")
    cases = discover_cases(tiny_release)
    digest = fingerprint.data_fingerprint(tiny_release, cases).digest
    assert json.loads(fingerprint.hash_cache_path().read_text())["version"] == fingerprint.CACHE_VERSION
    assert fingerprint.data_fingerprint(tiny_release, cases).digest == digest


def test_a_corrected_label_retrains_the_run_and_scores_against_it(tiny_release, tmp_path, capsys):
    config = tiny_config(tiny_release, tmp_path / "run", epochs=1, patience=1)
    first = run_experiment(config)
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())["data_fingerprint"]
    assert len(recorded["files"]) == 18 and len(recorded["digest"]) == 64
    before = (tmp_path / "run" / "model_best.pt").stat().st_mtime_ns
    capsys.readouterr()

    again = run_experiment(config)  # unchanged data: loaded
    assert "loading it, not retraining" in capsys.readouterr().out
    assert (tmp_path / "run" / "model_best.pt").stat().st_mtime_ns == before
    pd.testing.assert_frame_equal(again.metrics, first.metrics)

    label = np.zeros(TINY_GEOMETRY.shape, np.uint8)
    label[1:5, 2:9, 2:8] = 1  # 168 voxels, where the old label had 18
    write_image(label, TINY_GEOMETRY, tiny_release.joinpath(*VAL_LABEL))
    redone = run_experiment(config)
    out = capsys.readouterr().out
    assert (
        f"the data changed since this run: 1 file(s) differ, e.g. {tiny_release.joinpath(*VAL_LABEL)}; "
        "training it again"
    ) in out
    val = lambda m: m.set_index("case_id").loc["MGHNICU_100-VISIT_01"]  # noqa: E731
    assert val(first.metrics)["n_ref"] == 18 and val(redone.metrics)["n_ref"] == 168
    assert pd.read_csv(tmp_path / "run" / "metrics.csv").equals(redone.metrics)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["data_fingerprint"] != recorded


def test_a_run_folder_without_a_data_fingerprint_is_trained_again(tiny_release, tmp_path, capsys):
    config = tiny_config(tiny_release, tmp_path / "run", epochs=1, patience=1)
    run_experiment(config)
    info_path = tmp_path / "run" / "config.json"
    info = json.loads(info_path.read_text())
    del info["data_fingerprint"]  # as written before runs recorded their data
    info_path.write_text(json.dumps(info))
    capsys.readouterr()
    run_experiment(config)
    assert "records no data fingerprint" in capsys.readouterr().out
    assert "data_fingerprint" in json.loads(info_path.read_text())
