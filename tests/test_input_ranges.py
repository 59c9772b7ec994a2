"""Swapped ADC and ZADC maps are refused where they are read (data layer, hie-predict), naming file and range."""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest

from hie_core.data import DatasetError, discover_cases, load_dataset
from hie_core.io import read_image, write_image
from hie_core.ranges import ADC_MIN_P99, ZADC_LIMIT, range_problem
from hie_core.training import predict

from .conftest import TINY_GEOMETRY, write_tiny_case
from .test_checkpoints import write_model_file


def test_tiny_cases_and_edge_values_pass():
    rng = np.random.default_rng(0)
    adc = rng.uniform(800, 2000, (6, 12, 10)).astype(np.float32)
    adc[:, :2] = 0
    adc[0, 2, 0] = 4800  # CSF
    adc[0, 2, 1] = -20  # fitting noise at the edge
    zadc = np.clip(rng.normal(0, 4, adc.shape), -10, 10)
    assert range_problem("ADC", adc, "a.mha") is None and range_problem("ZADC", zadc, "z.mha") is None
    assert range_problem("ZADC", np.full(adc.shape, ZADC_LIMIT), "z.mha") is None  # constant: data warns
    assert range_problem("ADC", np.zeros(adc.shape), "a.mha") is None
    assert range_problem("label", adc, "l.mha") is None


def test_swapped_maps_are_named_with_their_range():
    rng = np.random.default_rng(1)
    adc = rng.uniform(800, 2000, (6, 12, 10)).astype(np.float32)
    zadc = np.clip(rng.normal(0, 2, adc.shape), -10, 10).astype(np.float32)
    as_zadc = range_problem("ZADC", adc, "adc.mha")
    assert (
        as_zadc.startswith("adc.mha: not a ZADC map: its values span 802.5 to 1999,")
        and "[-10, 10]" in as_zadc
    )
    as_adc = range_problem("ADC", zadc, "zadc.mha")
    assert as_adc.startswith("zadc.mha: not an ADC map in 10^-6 mm^2/s") and "swapped" in as_adc
    assert range_problem("ADC", adc / 1000, "mm2.mha") is not None  # 10^-3 mm^2/s: "multiplied by 1000"
    signed = adc - 1500  # a signed map, half negative
    assert "never widely negative" in range_problem("ADC", signed, "s.mha")
    assert range_problem("ADC", np.full(adc.shape, ADC_MIN_P99 * 2) + zadc, "ok.mha") is None


def _swap(paths: dict) -> None:
    """Exchange the contents of the ADC and ZADC files (as a user who swapped them would get)."""
    adc, zadc = paths["adc"].read_bytes(), paths["zadc"].read_bytes()
    paths["adc"].write_bytes(zadc)
    paths["zadc"].write_bytes(adc)


def test_load_dataset_refuses_a_swapped_case_naming_both_files(tiny_release):
    case = discover_cases(tiny_release, splits=["val"])[0]
    _swap({"adc": case.adc, "zadc": case.zadc})
    with pytest.raises(DatasetError) as err:
        load_dataset(tiny_release)
    assert len(err.value.problems) == 2
    assert f"{case.adc}: not an ADC map" in str(err.value) and f"{case.zadc}: not a ZADC map" in str(
        err.value
    )


def test_hie_predict_refuses_swapped_inputs(tiny_release, tmp_path, capsys):
    case = discover_cases(tiny_release, splits=["val"])[0]
    model = write_model_file(tmp_path / "model_best.pt")
    out = tmp_path / "out" / "mask.mha"
    before = hashlib.sha256(case.adc.read_bytes() + case.zadc.read_bytes()).hexdigest()
    argv = ["--checkpoint", model, "--adc", case.zadc, "--zadc", case.adc, "--output", out, "--device", "cpu"]
    assert predict.main(list(map(str, argv))) == 2
    err = capsys.readouterr().err
    assert err.startswith("hie-predict: error: 2 problems, nothing was written")
    assert f"{case.zadc}: not an ADC map" in err and f"{case.adc}: not a ZADC map: its values span" in err
    assert (
        not out.exists()
        and hashlib.sha256(case.adc.read_bytes() + case.zadc.read_bytes()).hexdigest() == before
    )


def test_predict_pair_checks_ranges_too(tiny_release, tmp_path):
    from hie_core.training.checkpoints import load_model_file

    case = discover_cases(tiny_release, splits=["val"])[0]
    model, meta = load_model_file(write_model_file(tmp_path / "model_best.pt"))
    with pytest.raises(predict.PredictError, match="not an ADC map"):
        predict.predict_pair(model, meta, case.zadc, case.adc)


def test_folder_mode_names_the_swapped_case(tmp_path, capsys):
    data = tmp_path / "data" / "BONBID2023_Test"
    _swap(write_tiny_case(data, "MGHNICU_001-VISIT_01", label=None))
    write_tiny_case(data, "MGHNICU_002-VISIT_01", seed=2, label=None)
    model = write_model_file(tmp_path / "model_best.pt")
    argv = ["--checkpoint", model, "--data-dir", data, "--output-dir", tmp_path / "preds", "--device", "cpu"]
    assert predict.main(list(map(str, argv))) == 2
    err = capsys.readouterr().err
    assert "MGHNICU_001-VISIT_01-ADC_ss.mha: not an ADC map" in err and "MGHNICU_002" not in err
    assert not (tmp_path / "preds").exists()


def test_the_synthetic_dataset_passes(tiny_synthetic, tmp_path):
    """Every map of the synthetic set is in range (load_dataset reads and checks each one)."""
    cases, _ = load_dataset(tiny_synthetic)
    for case in cases:
        for kind, path in (("ADC", case.adc), ("ZADC", case.zadc)):
            assert range_problem(kind, read_image(path)[0], path) is None
    copy = shutil.copytree(tiny_synthetic, tmp_path / "copy")
    case = discover_cases(copy)[0]
    array, geometry = read_image(case.zadc)
    write_image(array * 300, geometry, case.zadc)  # a ZADC scaled like an ADC
    with pytest.raises(DatasetError, match="not a ZADC map"):
        load_dataset(copy)
    assert TINY_GEOMETRY.shape  # the tiny cases of conftest pass in the other tests of this file
