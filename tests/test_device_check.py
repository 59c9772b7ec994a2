"""The one-call device check, tested here without a GPU: its dry run, its import budget, its report.

``benchmarks/device_check.sh`` runs on a lent GPU machine; what can be checked on a CPU is
checked here: the dry run lists what a call carries against the 64 MiB limit and runs
nothing, the training imports stay free of SimpleITK (so the wheel budget holds), the
report evaluates the targets from the stages' files, and a rehearsal of the study stage on
tiny settings writes a JSON that the book's Performance page can read.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "device_check.sh"


def _device_check():
    spec = importlib.util.spec_from_file_location("device_check", ROOT / "benchmarks" / "device_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(args: list[str], **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=ROOT, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def test_dry_run_lists_what_travels_and_runs_nothing(tmp_path):
    wheels, work = tmp_path / "whl", tmp_path / "work"
    wheels.mkdir()
    (wheels / "demo-1.0-py3-none-any.whl").write_bytes(b"\0" * 123_456)
    proc = _run(["--dry-run"], HIE_WHEEL_DIR=str(wheels), HIE_CHECK_WORK=str(work))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "123456  demo-1.0-py3-none-any.whl" in out and "of the 64 MiB a call may carry" in out
    for stage in ("install", "tests", "bench", "study", "baseline", "report"):
        assert f"  {stage}" in out
    assert "pytest -v -m cuda tests/test_cuda.py" in out and "--pipelines ours --losses all" in out
    assert "timeout_s=540" in out and out.rstrip().endswith("READY") and not work.exists()
    tree = int(out.split("(tracked + untracked not ignored): ")[1].split()[0])
    total = int(out.split("  total: ")[1].split()[0])
    assert tree > 100_000 and total == tree + 123_456


def test_dry_run_flags_missing_wheels_and_the_size_limit(tmp_path):
    proc = _run(["--dry-run"], HIE_WHEEL_DIR=str(tmp_path / "absent"))
    assert proc.returncode == 0 and "MISSING" in proc.stdout and "NOT READY" in proc.stdout
    big = tmp_path / "big"
    big.mkdir()
    with open(big / "huge-1.0-py3-none-any.whl", "wb") as fh:  # sparse: 65 MiB apparent, no disk used
        fh.truncate(65 * 2**20)
    proc = _run(["--dry-run"], HIE_WHEEL_DIR=str(big))
    assert proc.returncode == 0 and "OVER the limit" in proc.stdout and "NOT READY" in proc.stdout
    bad = _run(["--bogus"])
    assert bad.returncode == 2 and "unknown argument --bogus" in bad.stderr


def test_training_imports_do_not_pull_simpleitk_nibabel_or_torchio():
    """The device carries SimpleITK only for the baseline and the study: training must not need it."""
    code = ("import sys, hie_core.training.step, hie_core.training.fit, hie_core.losses, hie_core.metrics, "
            "hie_core.model, hie_core.augment.batched, hie_core.distance; "
            "print(sorted(m for m in ('SimpleITK', 'nibabel', 'torchio') if m in sys.modules))")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_pytest_log_parsing_survives_a_cut_log():
    log = ("tests/test_cuda.py::test_a PASSED [ 10%]\ntests/test_cuda.py::test_b[0-x] FAILED [ 20%]\n"
           "tests/test_cuda.py::test_c SKIPPED (needs an NVIDIA GPU) [ 30%]\ntests/test_cuda.py::test_d ")  # fmt: skip
    parsed = _device_check().parse_pytest_log(log)
    assert (parsed["passed"], parsed["failed"], parsed["skipped"]) == (1, 1, 1)
    assert parsed["failures"] == ["tests/test_cuda.py::test_b[0-x]"] and parsed["summary"] is None
    full = _device_check().parse_pytest_log(log + "\n==== 1 failed, 1 passed, 1 skipped in 3.20s ====\n")
    assert full["summary"] == "1 failed, 1 passed, 1 skipped"


def _bench(vol: float, hybrid_ratio: float, shape=(32, 192, 192)) -> dict:
    rows = [{"pipeline": "ours", "loss": "dice", "vol_per_s": vol, "ratio_to_dice": 1.0},
            {"pipeline": "ours", "loss": "tversky_hdt", "vol_per_s": vol / hybrid_ratio, "ratio_to_dice": hybrid_ratio},
            {"pipeline": "ours", "loss": "dice_focal_hdt", "vol_per_s": vol, "ratio_to_dice": 1.0},
            {"pipeline": "baseline", "loss": "dice", "vol_per_s": 5.0, "ratio_to_dice": 9.0}]  # fmt: skip
    return {"rows": rows, "settings": {"shape": list(shape), "widths": [32, 64, 128, 256], "batch": 4},
            "summary": {"ours": {"study_hours": 0.1}, "baseline": {"study_hours": 4.0}}}  # fmt: skip


def test_targets_from_bench_and_study():
    dc = _device_check()
    study = {"protocol": "seed", "projection": {"study_minutes": 12.5}}
    vol, ratio, minutes = dc.evaluate_targets(_bench(130.0, 1.05), study)
    assert (vol["value"], vol["met"]) == (130.0, True)
    assert (ratio["value"], ratio["met"]) == (1.05, True)  # the max over the two hybrids
    assert (minutes["value"], minutes["met"], minutes["monai_torchio_minutes"]) == (12.5, False, 240.0)
    vol, ratio, minutes = dc.evaluate_targets(_bench(90.0, 1.3), None)
    assert vol["met"] is False and ratio["met"] is False
    assert minutes["value"] == pytest.approx(6.0) and minutes["met"] is True  # bench projection when no study
    small = dc.evaluate_targets(_bench(500.0, 1.0, shape=(16, 32, 32)), {"protocol": "reduced", "projection":
                                                                           {"study_minutes": 1.0}})  # fmt: skip
    assert [t["met"] for t in small] == [None, None, None] and all(t["value"] is not None for t in small)
    assert [t["met"] for t in dc.evaluate_targets(None, None)] == [None, None, None]


def test_the_two_benchmark_runs_merge_into_one_report():
    dc = _device_check()
    ours, base = _bench(120.0, 1.05), _bench(1.0, 1.0)
    ours["rows"], base["rows"] = ours["rows"][:3], [dict(r, pipeline="baseline") for r in base["rows"][:2]]
    ours["summary"] = {"ours": {"study_hours": 0.1, "augment_vol_per_s": 800.0}}
    base["summary"] = {"baseline": {"study_hours": 4.0, "augment_vol_per_s": 16.0}}
    merged = dc.merge_benchmarks(ours, base)
    assert len(merged["rows"]) == 5 and set(merged["summary"]) == {"ours", "baseline", "speedup"}
    speed = merged["summary"]["speedup"]
    assert speed["train_dice"] == pytest.approx(120.0) and speed["study"] == pytest.approx(40.0)
    assert speed["augment"] == pytest.approx(50.0) and "train_dice_focal_hdt" not in speed
    assert [t["met"] for t in dc.evaluate_targets(merged, None)] == [True, True, True]
    assert dc.merge_benchmarks(None, base)["rows"] == base["rows"] and dc.merge_benchmarks(None, None) is None


def test_projection_of_one_loss_closed_form():
    dc = _device_check()
    run = {"wall_s": 30.0, "eval_s": 4.0, "eval_cases": 8,
           "epochs": [{"seconds": 20.0}, {"seconds": 1.0}, {"seconds": 3.0}, {"seconds": 1.0}]}  # fmt: skip
    # overhead 30 - 25 - 4 = 1; first epoch 20; 99 steady epochs of 1 s; 48 cases at 0.5 s
    assert dc.project_loss_seconds(run) == pytest.approx(1 + 20 + 99 + 24)
    assert dc.project_loss_seconds({**run, "epochs": run["epochs"][:1]}) is None
    assert dc.device_slug("NVIDIA H200") == "nvidia-h200" and dc.device_slug("") == "unknown-device"


@pytest.mark.slow
def test_rehearsal_of_the_study_stage_writes_a_readable_report(tmp_path):
    """The real script, stage 'study' only, on tiny settings on the CPU; results outside the repo."""
    out, results = tmp_path / "out", tmp_path / "results"
    out.mkdir()
    study_args = ("--epochs 2 --device cpu --counts 5 1 1 --max-size 24 --target-shape 8 16 16 "
                  "--widths 4 8 16 32 --losses dice")  # fmt: skip
    native_args = "--epochs 2 --device cpu --spacing-mm 6 3 3 --patch-shape 8 16 8 --widths 4 8 16 32 --steps-per-epoch 3"
    proc = _run(["--stages", "study,native"], OUT=str(out), HIE_CHECK_WORK=str(tmp_path / "work"),
                HIE_CHECK_RESULTS_DIR=str(results), HIE_CHECK_STUDY_ARGS=study_args, HIE_CHECK_NATIVE_ARGS=native_args,
                HIE_DEVICE_NAME="Rehearsal CPU", HIE_GIT_COMMIT="abc1234")  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((results / "rehearsal-cpu.json").read_text())
    assert json.loads((out / "rehearsal-cpu.json").read_text()) == report and (out / "study.log").exists()
    assert report["device"]["name"] == "Rehearsal CPU" and isinstance(
        report["rows"], list
    )  # the book reads these
    assert [s["name"] for s in report["stages"]] == ["study", "native"] and report["stages"][0]["rc"] == 0
    native = report["native"]["runs"][
        0
    ]  # the native preset's machinery: patches, sliding window, its own folder
    assert (
        native["status"] == "ok"
        and native["patch_shape"] == [8, 16, 8]
        and native["grid"] == "6 × 3 × 3 mm voxels"
    )
    run = report["study"]["runs"][0]
    assert run["status"] == "ok" and [e["epoch"] for e in run["epochs"]] == [1, 2]
    assert run["eval_cases"] == 2 and run["projected_full_run_s"] > 0
    study_target = report["targets"][2]
    assert study_target["value"] > 0 and study_target["met"] is None  # tiny settings are not judged
    assert report["git_commit"] == "abc1234" and report["study"]["protocol"].startswith("reduced")


# -- benchmarks/device_study.sh: the GPU study of issue 20 in one call ------------------------

STUDY_SCRIPT = ROOT / "benchmarks" / "device_study.sh"


def _device_study():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("device_study", ROOT / "benchmarks" / "device_study.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _study(args: list[str], **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(STUDY_SCRIPT), *args], cwd=ROOT, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_device_study_dry_run_lists_stages_carry_and_the_call(tmp_path):
    archive, work = tmp_path / "site" / "site-cp312.tar.xz", tmp_path / "work"
    archive.parent.mkdir()
    archive.write_bytes(b"\0" * 54_321)
    proc = _study(["--dry-run"], HIE_SITE_ARCHIVE=str(archive), HIE_STUDY_WORK=str(work))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for stage in ("unpack", "tests", "study", "bench", "seedrun", "profile", "report"):
        assert f"  {stage}" in out
    assert "pytest -v -p no:cacheprovider -m cuda tests/test_cuda.py" in out
    assert "-m hie_core.study --preset seed --device cuda --seeds 1" in out and "--no-book" in out
    assert "ipykernel install --prefix" in out and "device_study.py profile" in out
    assert f'carry=["{archive.parent}"], timeout_s=595' in out and out.rstrip().endswith("READY")
    assert "(site-cp312.tar.xz: 54321)" in out and not work.exists()
    missing = _study(["--dry-run"], HIE_SITE_ARCHIVE=str(tmp_path / "absent.tar.xz"))
    assert (
        missing.returncode == 0 and "NOT READY" in missing.stdout and "pack_device_site.sh" in missing.stdout
    )
    with open(archive, "wb") as fh:  # sparse: 65 MiB apparent
        fh.truncate(65 * 2**20)
    over = _study(["--dry-run"], HIE_SITE_ARCHIVE=str(archive))
    assert "NOT READY: over 64 MiB" in over.stdout
    assert _study(["--device", "tpu"]).returncode == 2 and _study(["--bogus"]).returncode == 2


def test_pack_device_site_dry_run_fetches_nothing(tmp_path):
    dest = tmp_path / "site"
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "pack_device_site.sh"), "--dry-run", "--dest", str(dest)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "Python 3.12 (cp312)" in out and "nothing packed yet" in out and not dest.exists()
    for package in ("SimpleITK==", "monai==", "papermill==", "ipykernel==", "pyzmq==", "submitit=="):
        assert package in out
    removed = out.split("removed: ")[1]
    assert "torch " in removed and "numpy " in removed and "debugpy" in removed and "papermill" not in removed


def _notebook(path: Path, duration: float | None, exception: bool = False) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["papermill"] = {"duration": duration, "exception": exception}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def _work(tmp_path: Path) -> Path:
    """The files the stages of device_study.sh leave in its work folder, small and made up."""
    import pandas as pd

    work, runs = tmp_path / "work", tmp_path / "runs"
    work.mkdir()
    bench = _bench(106.5, 1.39)
    bench["device"] = {"name": "NVIDIA H200", "type": "cuda"}
    (work / "bench.json").write_text(json.dumps(bench))
    (work / "env.json").write_text(json.dumps({"name": "NVIDIA H200"}))
    (work / "tests.log").write_text("tests/test_cuda.py::test_a PASSED\ntests/test_cuda.py::test_b FAILED\n")
    (work / "stages.jsonl").write_text(
        '{"name": "tests", "rc": 1, "seconds": 50.0, "limit_s": 90, "timed_out": false}\n'
    )
    for loss, failed in (("dice", False), ("tversky_hdt", True)):
        run = runs / "study" / loss / "seed0"
        _notebook(run / "train.ipynb", 12.5, exception=failed)
        (run / "summary.json").write_text(
            json.dumps({"epochs_run": 3, "best_epoch": 2, "train_seconds_this_call": 4.0})
        )
        pd.DataFrame({"epoch": [1, 2, 3], "seconds": [9.0, 1.0, 2.0]}).to_csv(
            run / "history.csv", index=False
        )
        pd.DataFrame({"split": ["test", "test", "val"], "dice": [0.5, 0.7, 0.1]}).to_csv(
            run / "metrics.csv", index=False
        )
    (runs / "study" / "results").mkdir()
    (runs / "study" / "results" / "table1.csv").write_text("x\n")
    _notebook(tmp_path / "seed" / "seedrun" / "dice" / "seed0" / "train.ipynb", 95.0)
    ds = _device_study()
    (work / "study_runs.json").write_text(json.dumps(ds.summarize_runs(runs)))
    (work / "seed_run.json").write_text(json.dumps(ds.summarize_runs(tmp_path / "seed")))
    (work / "profile.json").write_text(
        json.dumps({"losses": {"dice": {"ms_per_step_profiled": 40.0, "top": []}}})
    )
    return work


def _final_json(tmp_path: Path) -> Path:
    """``device_study.py finish`` on :func:`_work`'s files, checked; returns the root it wrote into."""
    ds = _device_study()
    work = _work(tmp_path)
    study = json.loads((work / "study_runs.json").read_text())["study"]
    assert study["finished"] == 1 and study["results_files"] == ["results/table1.csv"]
    dice = next(r for r in study["runs"] if r["loss"] == "dice")
    assert (dice["status"], dice["papermill_s"], dice["median_epoch_s"], dice["epochs_run"]) == (
        "ok",
        12.5,
        2.0,
        3,
    )
    assert dice["test_dice_mean"] == pytest.approx(0.6)
    out, results = tmp_path / "out", tmp_path / "repo" / "benchmarks" / "results"
    out.mkdir()
    results.mkdir(parents=True)
    args = ds.parse_args(["finish", "--work", str(work), "--out-dir", str(results), "--copy-to", str(out)])
    report = ds.finish(args)
    assert json.loads((results / "nvidia-h200.json").read_text()) == json.loads(
        (out / "nvidia-h200.json").read_text()
    )
    assert report["seed_run"]["seconds_per_run"] == 95.0 and report["profile"]["losses"]["dice"]
    assert report["papermill_study"]["study"]["finished"] == 1 and report["tests"]["failed"] == 1
    assert [t["met"] for t in report["targets"][:2]] == [False, False]
    assert report["check"]["script"] == "benchmarks/device_study.sh"
    return results.parent.parent


def test_runs_summary_and_the_final_json(tmp_path):
    _final_json(tmp_path)


def test_performance_page_shows_the_device_json_and_says_when_there_is_none(tmp_path, monkeypatch):
    from hie_core.report.pages import performance_page as page

    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(str(getattr(obj, "data", obj))))
    root = tmp_path / "none"
    (root / "benchmarks" / "results").mkdir(parents=True)
    (root / "benchmarks" / "results" / "run_seconds.json").write_text(json.dumps({"cuda": {}}))
    # a preset comparison (rows and its decision) is the Methods page's: no table here, numbered or not
    preset = {"rows": [{"variant": "(quick preset)", "loss": "dice", "test_dice": 0.5}], "decision": {"adopted": []}}
    (root / "benchmarks" / "results" / "quick_preset_dev.json").write_text(json.dumps(preset))
    assert page.benchmark_results(root) == []  # the --plan timings are not a benchmark
    page.show_benchmarks(root)
    assert len(shown) == 1 and "No GPU benchmark of the current code is committed" in shown[0]
    assert "<table" not in shown[0]

    root = _final_json(tmp_path)
    shown.clear()
    page.show_benchmarks(root)
    prose = shown[0]
    assert "`nvidia-h200.json`: measured on NVIDIA H200 on 20" in prose and "not met" in prose
    assert "Training vol/s with augmentation (seed grid, Dice): 106 vol/s, target >= 115 (not met)" in prose
    assert "Hausdorff-hybrid step / Dice step: 1.39 x, target <= 1.1 (not met)" in prose
    assert (
        "CUDA tests: 1 passed, 1 failed, 0 skipped (tests/test_cuda.py::test_b)" in prose
        and "1 of 2 runs finished, 1 results files" in prose
    )
    assert "to early stopping: 95 s" in prose
    table = page._device_table(json.loads((root / "benchmarks" / "results" / "nvidia-h200.json").read_text()))
    assert list(table["loss"]) == ["Dice", "Tversky+HDT", "DiceFocal+HDT"]
    assert list(table["target"]) == [">= 115 vol/s", "<= 1.10 x Dice", "<= 1.10 x Dice"]
    assert "No GPU benchmark" not in " ".join(shown)


def test_profile_writes_the_top_ops_per_loss(tmp_path):
    ds = _device_study()
    path = tmp_path / "profile.json"
    args = ds.parse_args(["profile", "--device", "cpu", "--shape", "8", "16", "16", "--widths", "2", "4", "8", "16",
                          "--batch", "2", "--steps", "1", "--warmup", "0", "--json", str(path)])  # fmt: skip
    ds.run_profile(args)
    report = json.loads(path.read_text())
    assert set(report["losses"]) == {"dice", "tversky_hdt"} and report["sort_key"] == "self CPU time"
    top = report["losses"]["tversky_hdt"]["top"]
    assert 0 < len(top) <= ds.TOP_OPS and top[0]["self_ms_per_step"] >= top[-1]["self_ms_per_step"] > 0
