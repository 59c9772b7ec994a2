from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hie_core import synthetic
from hie_core.data import discover_cases, load_dataset
from hie_core.io import read_geometry, read_image
from hie_core.synthetic import (
    GENERATOR_VERSION,
    PRESETS,
    ensure_synthetic_dataset,
    generate_case,
    make_synthetic_dataset,
    sample_case_params,
    synthetic_cache_dir,
)

TINY = {"train": 3, "val": 1, "test": 1}
ID = re.compile(r"^SYNNICU_\d{3}-VISIT_\d{2}$")


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    """A 5-case release with volumes capped at 40 voxels per axis."""
    return make_synthetic_dataset(
        tmp_path_factory.mktemp("tiny") / "release", counts=TINY, seed=3, workers=1, max_size=40
    )


@pytest.fixture(scope="module")
def small_test_split(tmp_path_factory) -> Path:
    """The small preset's test split at full size (same cases: a case depends on (seed, split, index)).

    The cached default set's, where one of this generator version exists (the study's own; that it
    is the committed set, file for file, is ``test_synthetic_digest``'s check), else generated here
    (16 full-size cases: about 20 s of one core).
    """
    cached = synthetic_cache_dir("small", 0)
    try:
        manifest = json.loads((cached / "SYNTHETIC.json").read_text())
    except (OSError, ValueError):
        manifest = {}
    if manifest.get("version") == GENERATOR_VERSION and manifest.get("counts") == PRESETS["small"]:
        return cached / "BONBID2023_Test"
    counts = {"train": 0, "val": 0, "test": PRESETS["small"]["test"]}
    return make_synthetic_dataset(tmp_path_factory.mktemp("small") / "release", counts=counts, seed=0)


def _dice(pred: np.ndarray, ref: np.ndarray) -> float:
    if not pred.any() and not ref.any():
        return 1.0
    return 2.0 * np.logical_and(pred, ref).sum() / (pred.sum() + ref.sum())


def test_layout_names_and_manifest(tiny_root):
    assert sorted(p.name for p in tiny_root.iterdir()) == [
        "BONBID2023_Test", "BONBID2023_Train", "BONBID2023_Val", "SYNTHETIC.json",
    ]  # fmt: skip
    manifest = json.loads((tiny_root / "SYNTHETIC.json").read_text())
    assert manifest["version"] == GENERATOR_VERSION and manifest["seed"] == 3 and manifest["counts"] == TINY
    cases = discover_cases(tiny_root)
    assert [c.split for c in cases] == ["train"] * 3 + ["val", "test"]
    assert [c.case_id for c in cases] == [r["case_id"] for r in manifest["cases"]]
    for case in cases:
        assert ID.match(case.case_id)
        assert case.adc == tiny_root / case.adc.parent.parent.name / "1ADC_ss" / f"{case.case_id}-ADC_ss.mha"
        assert case.zadc.name == f"Zmap_{case.case_id}-ADC_smooth2mm_clipped10.mha"
        assert case.label.name == f"{case.case_id}_lesion.mha" and case.label.parent.name == "3LABEL"
    _, report = load_dataset(tiny_root)  # the project's own validator accepts it
    assert len(report.cases) == 5


def test_files_geometry_types_and_values(tiny_root):
    manifest = {r["case_id"]: r for r in json.loads((tiny_root / "SYNTHETIC.json").read_text())["cases"]}
    for case in discover_cases(tiny_root):
        geometries = {read_geometry(p) for p in case.files}
        assert len(geometries) == 1
        adc, geom = read_image(case.adc)
        zadc, _ = read_image(case.zadc)
        label, _ = read_image(case.label)
        assert (adc.dtype, zadc.dtype, label.dtype) == (np.float32, np.float32, np.uint8)
        assert set(np.unique(label)) <= {0, 1}
        brain = adc > 0
        assert not zadc[~brain].any() and not label[~brain].any()
        assert np.abs(zadc).max() <= 10.0
        assert 1100 < adc[brain].mean() < 1700 and 300 < adc[brain].std() < 600
        assert np.percentile(adc[brain], 99) > 2500  # CSF
        record = manifest[case.case_id]
        assert record["lesion_voxels"] == int(label.sum()) and record["brain_voxels"] == int(brain.sum())
        assert list(geom.spacing_mm) == pytest.approx(record["spacing_mm"])


def test_files_equal_in_memory_cases_and_do_not_depend_on_counts(tiny_root):
    case = discover_cases(tiny_root, splits=["train"])[2]
    mem = generate_case(3, "train", 2, max_size=40)
    assert mem.params.case_id == case.case_id
    assert np.array_equal(read_image(case.adc)[0], mem.adc)
    assert np.array_equal(read_image(case.zadc)[0], mem.zadc)
    assert np.array_equal(read_image(case.label)[0], mem.label)


def test_deterministic_by_seed_and_seeds_differ():
    a, b = generate_case(7, "test", 1, max_size=40), generate_case(7, "test", 1, max_size=40)
    for key in ("adc", "zadc", "label"):
        assert getattr(a, key).tobytes() == getattr(b, key).tobytes()
    c = generate_case(8, "test", 1, max_size=40)
    assert a.params != c.params
    assert a.adc.shape != c.adc.shape or not np.array_equal(a.adc, c.adc)


def test_real_geometry_ranges():
    params = [sample_case_params(0, s, i) for s, n in PRESETS["full"].items() for i in range(n)]
    assert len({p.case_id for p in params}) == 133
    for p in params:
        d, h, w = p.shape
        assert h == w and h in (128, 160, 256) and 16 <= d <= 64
        assert 0.70 <= p.spacing_mm[1] == p.spacing_mm[2] <= 2.0 and 2.2 <= p.spacing_mm[0] <= 3.0
        assert 150 <= h * p.spacing_mm[1] <= 205
        assert np.allclose(np.reshape(p.direction, (3, 3)) @ np.reshape(p.direction, (3, 3)).T, np.eye(3))
    assert {p.shape[1] for p in params} == {128, 160, 256}


def test_burden_distribution_of_full_preset():
    params = [sample_case_params(0, s, i) for s, n in PRESETS["full"].items() for i in range(n)]
    burden = np.array([p.target_burden for p in params])
    empty = burden == 0
    assert (burden < 0.01).mean() > 0.5 and ((burden > 0) & (burden < 0.01)).mean() > 0.5
    assert 0.1 < ((burden >= 0.01) & (burden <= 0.05)).mean() < 0.35
    assert 0.08 < (burden > 0.05).mean() < 0.3
    assert 2 <= empty.sum() <= 0.1 * len(params)


@pytest.mark.parametrize("split", ["train", "test"])
def test_small_preset_splits_cover_every_stratum(split):
    strata = {sample_case_params(0, split, i).stratum for i in range(PRESETS["small"][split])}
    assert strata == {"empty", "<1%", "1-5%", ">5%"}


def test_rendered_burden_matches_target_and_lesions_have_low_adc():
    case = generate_case(0, "train", 5)
    assert case.params.target_burden > 0
    assert case.lesion_burden == pytest.approx(case.params.target_burden, rel=0.02, abs=2 / case.brain_voxels)
    lesion, brain = case.label > 0, case.adc > 0
    assert np.median(case.adc[lesion]) < np.median(case.adc[brain & ~lesion & (case.adc < 2000)])
    assert np.median(case.zadc[lesion]) < -1.0 < np.median(case.zadc[brain & ~lesion])


def test_threshold_baseline_dice_on_small_test_split(small_test_split):
    cases = discover_cases(small_test_split)
    assert len(cases) == PRESETS["small"]["test"]
    dices = []
    for case in cases:
        adc, zadc, label = (read_image(p)[0] for p in case.files)
        dices.append(_dice((zadc < -2) & (adc > 0), label > 0))
    assert 0.3 <= np.mean(dices) <= 0.6
    assert min(dices) < 0.2 and max(dices) > 0.6  # neither trivially solved nor hopeless


def test_refuses_to_overwrite(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        make_synthetic_dataset(out, counts={"train": 1, "val": 0, "test": 0}, max_size=16, workers=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary folder left
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    with pytest.raises(ValueError, match="preset"):
        make_synthetic_dataset(tmp_path / "x", preset="huge")
    with pytest.raises(ValueError, match="'tset'"):
        make_synthetic_dataset(tmp_path / "x", counts={"tset": 1})


def test_ensure_caches_replaces_stale_and_tolerates_a_race(tmp_path, monkeypatch):
    monkeypatch.setitem(PRESETS, "small", {"train": 1, "val": 0, "test": 0})
    root = ensure_synthetic_dataset(cache_dir=tmp_path)
    assert root == tmp_path / "synthetic" / "small-seed0"
    stamp = (root / "SYNTHETIC.json").stat().st_mtime_ns
    assert ensure_synthetic_dataset(cache_dir=tmp_path) == root
    assert (root / "SYNTHETIC.json").stat().st_mtime_ns == stamp
    manifest = json.loads((root / "SYNTHETIC.json").read_text())
    (root / "SYNTHETIC.json").write_text(json.dumps({**manifest, "version": "0"}))
    assert ensure_synthetic_dataset(cache_dir=tmp_path) == root
    assert json.loads((root / "SYNTHETIC.json").read_text())["version"] == GENERATOR_VERSION

    real_make, winner = synthetic.make_synthetic_dataset, root

    def lose_the_race(out, **kwargs):  # another process renames its copy in first
        winner.rename(out)
        return real_make(out, **kwargs)

    monkeypatch.setattr(synthetic, "make_synthetic_dataset", lose_the_race)
    other = tmp_path / "other"
    (other / "synthetic").mkdir(parents=True)
    assert ensure_synthetic_dataset(cache_dir=other) == other / "synthetic" / "small-seed0"
    assert (other / "synthetic" / "small-seed0" / "SYNTHETIC.json").is_file()


def test_cli(tmp_path):
    out = tmp_path / "cli"
    cmd = [sys.executable, "-m", "hie_core.synthetic", str(out), "--train", "1", "--val", "0", "--test", "1"]
    cmd += ["--max-size", "24", "--workers", "1", "--seed", "5"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).parent.parent, check=False)
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(
        r"wrote 2 synthetic cases \(train 1, val 0, test 1; seed 5\) to .+ in [\d.]+ s\n", done.stdout
    )
    assert [c.case_id for c in discover_cases(out)] == ["SYNNICU_001-VISIT_01", "SYNNICU_501-VISIT_01"]
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).parent.parent, check=False)
    assert again.returncode == 2 and "refusing to overwrite" in again.stderr
