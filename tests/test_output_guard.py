"""No command writes onto what it reads: hie-score --out and hie-predict's masks, with file hashes before/after."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from hie_core.io import read_image, read_writer, write_image
from hie_core.outputs import OutputPathError, Read, check_outputs, resolve_option, resolve_path, run_folder_of
from hie_core.study.score import main as score_main
from hie_core.training import predict

from .conftest import write_tiny_case
from .test_checkpoints import write_model_file

CASE = "MGHNICU_200-VISIT_01"


def _hashes(*roots: Path) -> dict[str, str]:
    """SHA-256 of every file under ``roots`` (or of the file itself)."""
    files = [
        p for root in roots for p in ([root] if root.is_file() else sorted(root.rglob("*"))) if p.is_file()
    ]
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture
def scored(tiny_release, tmp_path):
    """(data folder, mask folder of perfect masks, a run folder whose predictions/test holds them too)."""
    preds = tmp_path / "preds"
    preds.mkdir()
    for label in (tiny_release / "BONBID2023_Test" / "3LABEL").glob("*.mha"):
        shutil.copy(label, preds / label.name)
    run = tmp_path / "run"
    shutil.copytree(preds, run / "predictions" / "test")
    (run / "config.json").write_text("{}")
    (run / "metrics.csv").write_text("case_id,dice\n")
    (run / "summary.json").write_text("{}")
    return tiny_release, preds, run


def _refused(capsys, argv: list, *roots: Path, named: str = "") -> str:
    before = _hashes(*roots)
    assert score_main([str(a) for a in argv]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("hie-score: error: ") and captured.err.count("\n") == 1, captured.err
    assert "Traceback" not in captured.err and named in captured.err and captured.out == ""
    assert _hashes(*roots) == before  # every file unchanged
    return captured.err


def test_out_onto_a_reference_label_is_refused(scored, capsys):
    data, preds, run = scored
    label = data / "BONBID2023_Test" / "3LABEL" / f"{CASE}_lesion.mha"
    err = _refused(capsys, [preds, "--data-dir", data, "--out", label], data, preds, run)
    assert f"{label}: is inside the data folder {data}, which hie-score only reads" in err
    assert not label.with_name(label.name + ".hie-score.json").exists()


def test_out_onto_an_input_mask_is_refused(scored, capsys):
    data, preds, run = scored
    mask = preds / f"{CASE}_lesion.mha"
    _refused(
        capsys, [preds, "--data-dir", data, "--out", mask], data, preds, run, named=f"the mask folder {preds}"
    )


def test_out_onto_a_runs_metrics_is_refused(scored, capsys):
    data, preds, run = scored
    masks = run / "predictions" / "test"
    _refused(capsys, [masks, "--data-dir", data, "--out", run / "metrics.csv"], data, preds, run,
             named=f"the run folder {run}")  # fmt: skip
    err = _refused(capsys, [preds, "--data-dir", data, "--out", run / "metrics.csv"], data, preds, run)
    assert (
        f"is inside the run folder {run}, whose files are that run's results" in err
    )  # masks from elsewhere


def test_out_through_a_link_or_dotdot_is_refused(scored, capsys, tmp_path, monkeypatch):
    data, preds, run = scored
    (tmp_path / "link").symlink_to(data / "BONBID2023_Test")
    monkeypatch.chdir(tmp_path)
    _refused(capsys, [preds, "--data-dir", data, "--out", "link/../BONBID2023_Test/scores.csv"], data,
             named="is inside the data folder")  # fmt: skip
    _refused(
        capsys, [preds, "--data-dir", data, "--out", "preds/../preds/x.csv"], preds, named="the mask folder"
    )


def test_out_replaces_its_own_earlier_table_only(scored, capsys, tmp_path):
    data, preds, _ = scored
    out = tmp_path / "scores.csv"
    argv = [str(preds), "--data-dir", str(data), "--out", str(out)]
    assert score_main(argv) == 0 and score_main(argv) == 0  # the second run replaces its own table
    capsys.readouterr()
    out.write_text(out.read_text() + "edited\n")
    err = _refused(capsys, argv, out)
    assert "was not written by hie-score (or was changed since)" in err
    other = tmp_path / "notes.csv"
    other.write_text("mine\n")
    _refused(capsys, [*argv[:-1], other], other, named="exists and was not written by hie-score")


@pytest.fixture
def checkpoint_run(tmp_path):
    """A run folder with its model file (model_best.pt, config.json, summary.json)."""
    run = tmp_path / "run"
    model = write_model_file(run / "model_best.pt")
    (run / "config.json").write_text("{}")
    (run / "summary.json").write_text("{}")
    return model


def _predict_refused(capsys, argv: list, *roots: Path, named: str) -> str:
    before = _hashes(*roots)
    assert predict.main([*map(str, argv), "--device", "cpu"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("hie-predict: error: ") and captured.err.count("\n") == 1, captured.err
    assert named in captured.err and captured.out == ""
    assert _hashes(*roots) == before
    return captured.err


def test_predict_into_the_runs_own_folder_is_refused(checkpoint_run, tmp_path, capsys):
    data = tmp_path / "data"
    write_tiny_case(data / "BONBID2023_Test", CASE, label=None)
    run = checkpoint_run.parent
    _predict_refused(capsys, ["--checkpoint", checkpoint_run, "--data-dir", data, "--output-dir", run / "predictions"],
                     run, data, named=f"is inside the run folder {run}")  # fmt: skip


def test_predict_into_the_data_folder_through_a_link_is_refused(checkpoint_run, tmp_path, capsys):
    data = tmp_path / "data"
    write_tiny_case(data / "BONBID2023_Test", CASE, label=None)
    (tmp_path / "elsewhere").symlink_to(data)
    out = tmp_path / "elsewhere" / "preds"
    _predict_refused(capsys, ["--checkpoint", checkpoint_run, "--data-dir", data, "--output-dir", out], data,
                     named=f"is inside the data folder {data}")  # fmt: skip


def test_predict_replaces_its_own_masks_and_nobody_elses(checkpoint_run, tmp_path, capsys):
    data = tmp_path / "data"
    paths = write_tiny_case(data / "BONBID2023_Test", CASE, label=None)
    out = tmp_path / "preds"
    argv = [
        "--checkpoint",
        str(checkpoint_run),
        "--data-dir",
        str(data),
        "--output-dir",
        str(out),
        "--device",
        "cpu",
    ]
    assert predict.main(argv) == 0 and predict.main(argv) == 0  # again: its own masks are replaced
    capsys.readouterr()
    mask = out / "test" / f"{CASE}_lesion.mha"
    assert read_writer(mask) == "hie-predict"
    array, geometry = read_image(paths["adc"])
    write_image(np.zeros(geometry.shape, np.uint8), geometry, mask)  # a mask from elsewhere, same name
    err = _predict_refused(capsys, argv[:-2], out, named="1 existing file(s) that hie-predict did not write")
    assert mask.name in err


def test_writer_is_recorded_in_mha_and_nifti_headers(tmp_path):
    from hie_core.io import ImageGeometry

    geometry = ImageGeometry((2, 3, 4), (1.0, 1.0, 1.0))
    for name in ("m.mha", "m.nii.gz", "m.nrrd"):
        write_image(np.ones(geometry.shape, np.uint8), geometry, tmp_path / name, writer="hie-predict")
        assert read_writer(tmp_path / name) == "hie-predict"
        write_image(np.ones(geometry.shape, np.uint8), geometry, tmp_path / ("plain-" + name))
        assert read_writer(tmp_path / ("plain-" + name)) is None
    assert read_writer(tmp_path / "missing.mha") is None


def test_check_outputs_for_the_study(tmp_path):
    """The study's check: its folder may not be, or be inside, the data folder or a mask folder."""
    data, masks = tmp_path / "data", tmp_path / "masks"
    data.mkdir()
    masks.mkdir()
    reads = [Read(data, "data folder"), Read(masks, "mask folder")]
    check_outputs("hie-study", [tmp_path / "runs" / "quick"], reads, own=lambda path: True)
    with pytest.raises(
        OutputPathError, match=r"data/BONBID2023_Test: is inside the data folder .*hie-study only reads"
    ):
        check_outputs("hie-study", [data / "BONBID2023_Test"], reads, own=lambda path: True)
    with pytest.raises(OutputPathError) as err:
        check_outputs("hie-study", [data, masks / "x"], reads, own=lambda path: True)
    assert len(err.value.problems) == 2 and f"{data}: is the data folder" in str(err.value)


def test_resolve_path_and_option(tmp_path, monkeypatch):
    real = tmp_path / "real"
    (real / "sub").mkdir(parents=True)
    (tmp_path / "link").symlink_to(real)
    monkeypatch.chdir(tmp_path)
    for typed in ("real", "real/", "./real", "link", "link/", "real/sub/..", "link/sub/..", str(real) + "//"):
        assert resolve_path(typed) == real, typed
    assert resolve_path("link/../x") == tmp_path / "x"  # the link first, then "..": as the OS does
    assert resolve_option("") == "" and resolve_option("link/") == str(real)
    assert run_folder_of(real / "sub") is None
    (real / "config.json").write_text("{}")
    (real / "summary.json").write_text("{}")
    assert run_folder_of("link/sub/deeper") == real


def test_no_output_inside_any_run_folder(scored, capsys, tmp_path):
    """Not only the run whose masks are scored: no run folder takes a file it did not write."""
    data, preds, run = scored
    err = _refused(capsys, [preds, "--data-dir", data, "--out", run / "predictions" / "scores.csv"], run)
    assert f"is inside the run folder {run}, whose files are that run's results" in err


def test_predict_into_another_runs_predictions_is_refused(scored, tmp_path, capsys):
    """The probe: masks of another model in a finished run's predictions/ would no longer match its metrics."""
    data, _, run = scored
    model = write_model_file(tmp_path / "other" / "model_best.pt")
    _predict_refused(capsys, ["--checkpoint", model, "--data-dir", data / "BONBID2023_Test", "--output-dir",
                              run / "predictions"], run, data, named=f"is inside the run folder {run}")  # fmt: skip


@pytest.mark.parametrize("inside", ["data", "masks"])
def test_the_study_folder_is_never_inside_its_data_or_mask_folder(
    tiny_release, tmp_path, monkeypatch, inside
):
    """``--runs-dir`` inside the data folder (or an --external mask folder): refused at plan time, files unchanged."""
    from hie_core import study

    monkeypatch.setenv("HIE_CACHE_DIR", str(tmp_path / "cache"))
    masks = tmp_path / "masks"
    masks.mkdir()
    for label in (tiny_release / "BONBID2023_Test" / "3LABEL").glob("*.mha"):
        shutil.copy(label, masks / label.name)
    runs_dir = (tiny_release / "BONBID2023_Test" if inside == "data" else masks) / "runs"
    before = _hashes(tiny_release, masks)
    with pytest.raises(
        OutputPathError, match=f"is inside the {'data' if inside == 'data' else 'mask'} folder"
    ):
        study.plan_study(runs_dir, "s", ["dice"], 1, data_dir=str(tiny_release), preset="quick", device="cpu",
                         overrides={"target_shape": (8, 16, 16), "patch_shape": "none"},
                         externals=[f"mine={masks}"])  # fmt: skip
    assert _hashes(tiny_release, masks) == before and not runs_dir.exists()
