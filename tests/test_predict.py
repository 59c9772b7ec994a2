"""``hie-predict``: masks on the native grid, and every user fault in one message with nothing written."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hie_core.config import DEFAULTS
from hie_core.data import discover_cases
from hie_core.io import ImageGeometry, read_image, write_image
from hie_core.training import predict
from hie_core.training.checkpoints import load_model_file, save_checkpoint

from .conftest import TINY_GEOMETRY, write_tiny_case
from .test_checkpoints import training_payload, write_model_file

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def checkpoint(tmp_path):
    return write_model_file(tmp_path / "run" / "model_best.pt")


def _snapshot(root: Path) -> dict:
    """Every file and folder under ``root`` with its content hash (folders: None)."""
    return {
        p.relative_to(root): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None
        for p in sorted(root.rglob("*"))
    }


def _fails(argv: list[str], capsys, root: Path, *named: object) -> str:
    """Run hie-predict: exit 2, one ``hie-predict: error:`` message naming each of ``named``, nothing written."""
    before = _snapshot(root)
    code = predict.main([*map(str, argv), "--device", "cpu"])
    captured = capsys.readouterr()
    assert code == 2, captured
    assert captured.err.startswith("hie-predict: error: ") and captured.err.count("hie-predict: error") == 1
    assert "Traceback" not in captured.err and captured.out == ""
    for item in named:
        assert str(item) in captured.err, (item, captured.err)
    assert _snapshot(root) == before
    return captured.err


def _split_with_cases(folder: Path, n: int) -> list[dict[str, Path]]:
    return [write_tiny_case(folder, f"MGHNICU_{i:03d}-VISIT_01", seed=i, label=None) for i in range(n)]


def _container(root: Path, cases: list[tuple[Path, Path]]) -> Path:
    """A challenge container input folder with the given (ADC, ZADC) files under uuid-like names."""
    for i, (adc, zadc) in enumerate(cases):
        (root / predict.CONTAINER_ADC).mkdir(parents=True, exist_ok=True)
        (root / predict.CONTAINER_ZADC).mkdir(parents=True, exist_ok=True)
        (root / predict.CONTAINER_ADC / f"MGHNICU_{i:03d}-VISIT_01-adc.mha").write_bytes(adc.read_bytes())
        (root / predict.CONTAINER_ZADC / f"MGHNICU_{i:03d}-VISIT_01-zadc.mha").write_bytes(zadc.read_bytes())
    return root


def test_predict_single_pair_keeps_native_geometry(tiny_release, checkpoint, tmp_path):
    case = discover_cases(tiny_release, splits=["val"])[0]
    out = tmp_path / "out" / "mask.mha"
    argv = [
        "--checkpoint",
        str(checkpoint),
        "--adc",
        str(case.adc),
        "--zadc",
        str(case.zadc),
        "--output",
        str(out),
    ]
    assert predict.main(argv + ["--device", "cpu"]) == 0
    mask, geometry = read_image(out)
    assert geometry.same_grid(read_image(case.adc)[1]) and set(np.unique(mask)) <= {0, 1}
    model, meta = load_model_file(checkpoint)
    expected, _ = predict.predict_pair(model, meta, case.adc, case.zadc)
    np.testing.assert_array_equal(mask, expected)
    assert [p.name for p in out.parent.iterdir()] == ["mask.mha"]  # no probe or temporary file left


def test_predict_with_a_model_file_of_another_arch(tiny_release, tmp_path):
    """hie-predict rebuilds the recorded network (DynUNet, nnU-Net's strides for the 8 x 16 x 16 grid)."""
    import torch

    from hie_core.model import arch_options, build_model

    options = arch_options("dynunet", [4, 8, 16, 32], (8, 16, 16))
    torch.manual_seed(0)
    model = build_model("dynunet", 2, [4, 8, 16, 32], prior_probability=0.3, options=options, dropout=DEFAULTS["dropout"], norm=DEFAULTS["norm"])
    path = write_model_file(tmp_path / "model_best.pt", state_dict=model.state_dict(), arch="dynunet",
                            arch_options=options)  # fmt: skip
    case = discover_cases(tiny_release, splits=["val"])[0]
    out = tmp_path / "out" / "mask.mha"
    argv = ["--checkpoint", str(path), "--adc", str(case.adc), "--zadc", str(case.zadc), "--output", str(out)]
    assert predict.main(argv + ["--device", "cpu"]) == 0
    mask, geometry = read_image(out)
    assert geometry.same_grid(read_image(case.adc)[1])
    loaded, meta = load_model_file(path)
    assert meta["arch"] == "dynunet" and type(loaded).__name__ == "DynUNet"
    np.testing.assert_array_equal(mask, predict.predict_pair(loaded, meta, case.adc, case.zadc)[0])


def test_prediction_scales_zadc_as_the_model_was_trained(tiny_release, tmp_path, monkeypatch, capsys):
    import hie_core.preprocess as pp

    case = discover_cases(tiny_release, splits=["val"])[0]
    seen = []
    real = pp.preprocess_arrays
    monkeypatch.setattr(pp, "preprocess_arrays", lambda *a, **k: seen.append(k["zadc_norm"]) or real(*a, **k))
    for name, extra in (("old.pt", {}), ("atlas.pt", {"zadc_norm": "atlas"})):
        model, meta = load_model_file(write_model_file(tmp_path / name, **extra))
        predict.predict_pair(model, meta, case.adc, case.zadc)
    assert seen == ["volume", "atlas"]  # a file from before the option gets the seed's scaling
    bad = write_model_file(tmp_path / "bad" / "model_best.pt", zadc_norm="raw")
    _fails(["--checkpoint", bad, "--adc", case.adc, "--zadc", case.zadc, "--output", tmp_path / "o.mha"], capsys,
           tmp_path, bad, "zadc_norm 'raw'")  # fmt: skip


def test_predict_folder_and_container_layouts(tiny_release, checkpoint, tmp_path):
    assert predict.main(["--checkpoint", str(checkpoint), "--data-dir", str(tiny_release / "BONBID2023_Test"),
                         "--output-dir", str(tmp_path / "preds"), "--device", "cpu"]) == 0  # fmt: skip
    assert len(list((tmp_path / "preds").rglob("*_lesion.mha"))) == 2
    inp = tmp_path / "input"
    case = discover_cases(tiny_release, splits=["test"])[0]
    adc, g = read_image(case.adc)
    write_image(adc, g, inp / predict.CONTAINER_ADC / "abc-uuid.mha")
    write_image(read_image(case.zadc)[0], g, inp / predict.CONTAINER_ZADC / "def-uuid.mha")
    out = tmp_path / "output"
    argv = ["--checkpoint", str(checkpoint), "--container", "--input", str(inp), "--output", str(out)]
    assert predict.main(argv + ["--device", "cpu"]) == 0
    assert read_image(out / predict.CONTAINER_OUT / "abc-uuid.mha")[1].same_grid(g)


def test_predict_ignores_broken_labels_of_the_data_folder(tmp_path, checkpoint):
    (paths,) = _split_with_cases(tmp_path / "data" / "BONBID2023_Test", 1)
    broken = paths["adc"].parent.parent / "3LABEL" / "MGHNICU_000-VISIT_01_lesion.mha"
    broken.parent.mkdir()
    broken.write_bytes(b"not needed for prediction")
    out = tmp_path / "preds"
    argv = [
        "--checkpoint",
        checkpoint,
        "--data-dir",
        tmp_path / "data",
        "--output-dir",
        out,
        "--device",
        "cpu",
    ]
    assert predict.main(list(map(str, argv))) == 0
    assert (out / "test" / "MGHNICU_000-VISIT_01_lesion.mha").is_file()


@pytest.mark.parametrize("kind", ["garbage", "empty", "truncated", "checkpoint_last.pt", "missing"])
def test_bad_model_file_is_named_and_nothing_is_written(tiny_release, tmp_path, capsys, kind):
    case = discover_cases(tiny_release, splits=["val"])[0]
    run = tmp_path / "run"
    path = write_model_file(run / "model_best.pt")
    if kind == "garbage":
        path.write_bytes(b"\x80\x04garbage")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(path.read_bytes()[:2000])
    elif kind == "checkpoint_last.pt":
        path = save_checkpoint(run / "checkpoint_last.pt", training_payload())
    else:
        path = run / "none.pt"
    argv = [
        "--checkpoint",
        path,
        "--adc",
        case.adc,
        "--zadc",
        case.zadc,
        "--output",
        tmp_path / "out" / "m.mha",
    ]
    err = _fails(argv, capsys, tmp_path, f"{path}: ")
    if kind == "checkpoint_last.pt":
        assert f"this is a training checkpoint (checkpoint_last.pt); pass {run / 'model_best.pt'}" in err


def test_data_dir_with_a_truncated_fourth_case_writes_no_mask(tmp_path, checkpoint, capsys):
    cases = _split_with_cases(tmp_path / "BONBID2023_Test", 5)
    fourth = cases[3]["zadc"]
    fourth.write_bytes(fourth.read_bytes()[:-30])
    argv = [
        "--checkpoint",
        checkpoint,
        "--data-dir",
        tmp_path / "BONBID2023_Test",
        "--output-dir",
        tmp_path / "p",
    ]
    err = _fails(argv, capsys, tmp_path, f"{fourth}: cannot read image")
    assert err.count("\n") == 1 and err.rstrip().endswith("(nothing was written)")
    assert not (tmp_path / "p").exists()


def test_output_folder_that_cannot_be_written(tiny_release, checkpoint, tmp_path, capsys, monkeypatch):
    case = discover_cases(tiny_release, splits=["val"])[0]
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    argv = [
        "--checkpoint",
        checkpoint,
        "--adc",
        case.adc,
        "--zadc",
        case.zadc,
        "--output",
        blocker / "sub" / "m.mha",
    ]
    _fails(argv, capsys, tmp_path, f"{blocker / 'sub'}: cannot write masks here: {blocker} is a file")
    locked = tmp_path / "locked"
    locked.mkdir()

    def denied(*args, dir=None, **kwargs):  # what mkstemp does in a folder without write permission
        raise PermissionError(13, "Permission denied", str(dir))

    monkeypatch.setattr(predict.tempfile, "mkstemp", denied)
    argv[-1] = locked / "out" / "m.mha"
    _fails(argv, capsys, tmp_path, f"cannot create files in {locked} (Permission denied)")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into a read-only folder")
def test_output_folder_without_write_permission(tiny_release, checkpoint, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        argv = ["--checkpoint", checkpoint, "--data-dir", tiny_release, "--output-dir", locked]
        _fails(argv, capsys, tmp_path, f"cannot create files in {locked} (Permission denied)")
    finally:
        locked.chmod(0o755)


def test_single_pair_inputs_and_outputs_are_all_checked_first(tiny_release, tmp_path, capsys):
    case = discover_cases(tiny_release, splits=["val"])[0]
    other = ImageGeometry((6, 12, 10), (3.0, 1.0, 1.0))
    bad_zadc = write_image(np.zeros(other.shape, np.float32), other, tmp_path / "z.mha")
    model = write_model_file(tmp_path / "model_best.pt")
    argv = ["--checkpoint", model, "--adc", case.adc, "--zadc", bad_zadc, "--output", tmp_path / "m.mha"]
    _fails(argv, capsys, tmp_path, f"{bad_zadc}: ZADC is not on the ADC grid", "spacing_mm")
    argv = ["--checkpoint", model, "--adc", case.adc, "--zadc", case.zadc, "--output", case.adc]
    _fails(argv, capsys, tmp_path, f"{case.adc}: output would overwrite an input image")
    argv[-1] = tmp_path / "mask.txt"
    _fails(argv, capsys, tmp_path, f"{tmp_path / 'mask.txt'}: the --output mask file must end in one of .mha")
    argv[-1] = tmp_path
    _fails(argv, capsys, tmp_path, f"{tmp_path}: is a folder")
    label = tiny_release / "BONBID2023_Val" / "3LABEL" / f"{case.case_id}_lesion.mha"
    argv[-1] = label
    _fails(argv, capsys, tmp_path, f"{label.parent}: a BONBID-HIE data folder of reference labels")


def test_every_problem_at_once(tiny_release, tmp_path, capsys):
    """A corrupt model, a NaN input, a broken input and an unwritable output: one message lists all four."""
    model = tmp_path / "model_best.pt"
    model.write_bytes(b"")
    adc = tmp_path / "adc.mha"
    array = np.full(TINY_GEOMETRY.shape, 1000.0, np.float32)
    array[0, 0, 0] = np.inf
    write_image(array, TINY_GEOMETRY, adc)
    zadc = tmp_path / "zadc.mha"
    zadc.write_bytes(b"garbage")
    (tmp_path / "blocker").write_text("x")
    argv = ["--checkpoint", model, "--adc", adc, "--zadc", zadc, "--output", tmp_path / "blocker" / "m.mha"]
    err = _fails(argv, capsys, tmp_path, f"{model}: model file is empty", f"{adc}: ADC has 1 non-finite voxel",
                 f"{zadc}: cannot read image", f"{tmp_path / 'blocker'}: cannot write masks here")  # fmt: skip
    assert err.startswith("hie-predict: error: 4 problems, nothing was written\n  - ")


def test_container_problems_are_listed_together(tiny_release, checkpoint, tmp_path, capsys):
    cases = discover_cases(tiny_release, splits=["train"])
    inp = _container(tmp_path / "input", [(c.adc, c.zadc) for c in cases])
    lone = inp / predict.CONTAINER_ZADC / "MGHNICU_001-VISIT_01-zadc.mha"
    lone.rename(inp / predict.CONTAINER_ZADC / "MGHNICU_009-VISIT_01-zadc.mha")
    truncated = inp / predict.CONTAINER_ADC / "MGHNICU_002-VISIT_01-adc.mha"
    truncated.write_bytes(truncated.read_bytes()[:-30])
    out = tmp_path / "output"
    argv = ["--checkpoint", checkpoint, "--container", "--input", inp, "--output", out]
    err = _fails(argv, capsys, tmp_path, "MGHNICU_001-VISIT_01-adc.mha: no ZADC map with case id MGHNICU_001",
                 "MGHNICU_009-VISIT_01-zadc.mha: no ADC map", f"{truncated}: cannot read image")  # fmt: skip
    assert "3 problems" in err and not out.exists()
    _fails(["--checkpoint", checkpoint, "--container", "--input", tmp_path / "none", "--output", out], capsys,
           tmp_path, f"{tmp_path / 'none' / predict.CONTAINER_ADC}: input folder not found")  # fmt: skip


def test_command_line_entry_point_prints_one_line_without_traceback(tmp_path):
    """The real program (a fresh interpreter): a truncated model file ends in one line and exit 2."""
    (paths,) = _split_with_cases(tmp_path / "data", 1)
    model = write_model_file(tmp_path / "model_best.pt")
    model.write_bytes(model.read_bytes()[:3000])
    out = tmp_path / "out.mha"
    cmd = [sys.executable, "-m", "hie_core.training.predict", "--checkpoint", str(model), "--adc",
           str(paths["adc"]), "--zadc", str(paths["zadc"]), "--output", str(out), "--device", "cpu"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [
        f"hie-predict: error: {model}: model file is truncated or corrupt (PytorchStreamReader failed reading "
        "zip archive: failed finding central directory); pass the model_best.pt of a finished training run "
        "(nothing was written)"
    ]
    assert not out.exists()


@pytest.mark.parametrize("modality", ["3LABEL", "1ADC_ss", "2Z_ADC"])
def test_masks_are_never_written_into_a_data_folder(tmp_path, checkpoint, capsys, modality):
    """A mask in 3LABEL would be read back as ground truth; in 1ADC_ss/2Z_ADC as an input map."""
    cases = _split_with_cases(tmp_path / "BONBID2023_Test", 2)  # unlabelled: no 3LABEL yet
    target = cases[0]["adc"].parent.parent / modality
    err = _fails(["--checkpoint", checkpoint, "--data-dir", tmp_path / "BONBID2023_Test", "--output-dir", target],
                 capsys, tmp_path, target.name, "would be read back as")  # fmt: skip
    assert err.count("\n") == 1 and not (target / "test").exists()
    single = target / "sub" / "mask.mha"
    _fails(["--checkpoint", checkpoint, "--adc", cases[0]["adc"], "--zadc", cases[0]["zadc"], "--output", single],
           capsys, tmp_path, modality)  # fmt: skip
