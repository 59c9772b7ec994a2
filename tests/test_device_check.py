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
        and native["grid"] == "6 x 3 x 3 mm voxels"
    )
    run = report["study"]["runs"][0]
    assert run["status"] == "ok" and [e["epoch"] for e in run["epochs"]] == [1, 2]
    assert run["eval_cases"] == 2 and run["projected_full_run_s"] > 0
    study_target = report["targets"][2]
    assert study_target["value"] > 0 and study_target["met"] is None  # tiny settings are not judged
    assert report["git_commit"] == "abc1234" and report["study"]["protocol"].startswith("reduced")
