"""The study runner: the loss x seed grid, its engines (none, local, slurm), resumption, user errors.

The fast tests need no training. The slow ones (marked ``slow``: not in the unit tier) train
tiny runs (1-3 epochs on the tiny synthetic set, quick preset, CPU) through papermill, some
through submitit's local executor; each costs one or two notebook start-ups (about 10-25 s on
2 cores, 40-50 s with submitit).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import submitit
import torch

from hie_core import study
from hie_core.errors import ConfigError
from hie_core.study import grid
from hie_core.study.grid import Engine, GridJob, GridRun, deal_lanes, plan_grid

ROOT = Path(__file__).resolve().parent.parent


def tiny_params(data_dir: Path, epochs: int = 1) -> dict:
    """Notebook parameters of a tiny run (the grid adds loss, seed and output_dir)."""
    return {
        "data_dir": str(data_dir),
        "preset": "quick",
        "device": "cpu",
        "epochs": epochs,
        "patience": epochs,
    }


def tiny_cli(data_dir: Path, runs_dir: Path, *extra: str) -> list[str]:
    return ["--losses", "dice", "--seeds", "2", "--data-dir", str(data_dir), "--runs-dir", str(runs_dir),
            "--study", "s", "--preset", "quick", "--device", "cpu", "--no-book", "--set", "epochs=1",
            "--set", "steps_per_epoch=2", *extra]  # fmt: skip


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*")) if folder.exists() else []


# ----------------------------------------------------------------------------- the grid, no training


def test_grid_is_loss_major_with_one_folder_per_seed(tmp_path):
    runs = plan_grid(tmp_path, ["dice", "hdt"], seeds=2, seed_start=3)
    assert [r.name for r in runs] == ["dice/seed3", "dice/seed4", "hdt/seed3", "hdt/seed4"]
    assert runs[1].run_dir == tmp_path / "dice" / "seed4"


def test_a_fold_grid_has_one_folder_per_seed_and_fold_and_passes_both_to_the_notebook(tmp_path):
    runs = plan_grid(tmp_path, ["dice", "hdt"], seeds=2, folds=3)
    assert [r.name for r in runs[:4]] == ["dice/seed0-fold0", "dice/seed0-fold1", "dice/seed0-fold2",
                                          "dice/seed1-fold0"]  # fmt: skip
    assert len(runs) == 12 and runs[4].run_dir == tmp_path / "dice" / "seed1-fold1"
    assert runs[4].notebook_parameters == {"loss": "dice", "seed": 1, "output_dir": str(runs[4].run_dir),
                                           "folds": 3, "fold": 1}  # fmt: skip
    plain = plan_grid(tmp_path, ["dice"], seeds=1, folds=1)  # one fold is no cross-validation
    assert [(r.name, r.fold) for r in plain] == [("dice/seed0", None)]
    assert plain[0].notebook_parameters == {
        "loss": "dice",
        "seed": 0,
        "output_dir": str(tmp_path / "dice" / "seed0"),
    }


def test_lanes_deal_runs_round_robin_and_pin_one_gpu_each(tmp_path):
    runs = plan_grid(tmp_path, ["dice", "tversky", "hdt"], seeds=2)
    lanes = deal_lanes(runs, Engine(cluster="local", jobs=2, gpu_ids=(4, 6)))
    assert [[r.name for r in lane] for lane, _ in lanes] == [
        ["dice/seed0", "tversky/seed0", "hdt/seed0"],
        ["dice/seed1", "tversky/seed1", "hdt/seed1"],
    ]
    assert [gpus for _, gpus in lanes] == [(4,), (6,)]
    assert [gpus for _, gpus in deal_lanes(runs[:1], Engine(cluster="local", jobs=8))] == [()]
    assert [len(lane) for lane, _ in deal_lanes(runs, Engine(cluster="slurm", jobs=1))] == [1] * 6


def test_overrides_are_python_literals_and_checked_against_the_schema():
    values = study.parse_overrides(["epochs=2", "lr=1e-4", "augment=none", "batch_size = 1", "widths=[4, 8, 16, 32]"])
    assert values == {"epochs": 2, "lr": 1e-4, "augment": "none", "batch_size": 1, "widths": [4, 8, 16, 32]}
    with pytest.raises(ConfigError, match="--set seed: set by the study itself; use --seeds"):
        study.parse_overrides(["seed=3"])
    with pytest.raises(ConfigError, match="--set width: not a configuration field"):
        study.parse_overrides(["width=[4, 8]"])
    with pytest.raises(ConfigError, match="expected key=value"):
        study.parse_overrides(["epochs"])


def test_papermill_parameters_keep_their_types():
    cmd = grid.papermill_command(Path("in.ipynb"), Path("out.ipynb"), {"lr": 1e-5, "shape": (8, 16, 16), "d": ""},
                                 Path("."))  # fmt: skip
    import yaml

    assert yaml.safe_load(cmd[cmd.index("-y") + 1]) == {"lr": 1e-5, "shape": [8, 16, 16], "d": ""}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--losses", "dice,nope"], "unknown loss(es) ['nope']"),
        (["--seeds", "0"], "--seeds must be at least 1"),
        (["--seeds", "two"], "argument --seeds: invalid int value: 'two'"),
        (["--jobs", "0"], "--jobs must be at least 1"),
        (["--set", "widths=[4]"], "widths must be 4 whole numbers >= 1"),  # checked against the schema
        (["--set", "epochs=0"], "epochs must be >= 1, got 0"),
        (["--no-wait"], "--no-wait applies to --cluster slurm only"),
        (["--device", "cuda:7"], "cuda:7"),
    ],
)
def test_user_errors_are_one_line_exit_2_and_write_nothing(tiny_synthetic, tmp_path, capsys, args, message):
    runs_dir = tmp_path / "runs"
    code = study.main(
        ["--data-dir", str(tiny_synthetic), "--runs-dir", str(runs_dir), "--device", "cpu", *args]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("hie-study: error: ") and err.count("\n") == 1 and message in err, err
    assert not runs_dir.exists()


def test_bad_data_folder_or_runs_folder_is_a_user_error(tiny_synthetic, tmp_path, capsys):
    code = study.main(["--data-dir", str(tmp_path / "missing"), "--runs-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("hie-study: error: ") and str(tmp_path / "missing") in err
    assert not (tmp_path / "runs").exists()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code = study.main(
        ["--data-dir", str(tiny_synthetic), "--runs-dir", str(blocker / "runs"), "--device", "cpu"]
    )
    err = capsys.readouterr().err
    assert code == 2 and f"{blocker}: not a folder" in err and "--runs-dir" in err
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        code = study.main(["--data-dir", str(tiny_synthetic), "--runs-dir", str(locked), "--device", "cpu"])
        assert code == 2 and "not writable" in capsys.readouterr().err
    assert files_under(tmp_path / "runs") == []


def test_slurm_needs_sbatch(tiny_synthetic, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch, no srun
    code = study.main(
        ["--cluster", "slurm", "--data-dir", str(tiny_synthetic), "--runs-dir", str(tmp_path / "r")]
    )
    assert code == 2 and "sbatch and srun not found" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def fake_slurm(bin_dir: Path) -> Path:
    """``sbatch`` that records the script it is given and answers like SLURM; a no-op ``srun``."""
    bin_dir.mkdir()
    record = bin_dir / "sbatch_scripts.txt"
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\ncat "$1" >> {record}\necho "Submitted batch job 4242"\n')
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    for tool in ("sbatch", "srun"):
        (bin_dir / tool).chmod(0o755)
    return record


def test_slurm_submits_one_job_array_then_gathers_from_the_run_folders(tiny_synthetic, tmp_path, monkeypatch,
                                                                      capsys):  # fmt: skip
    record = fake_slurm(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    args = ["--cluster", "slurm", "--losses", "dice,hdt", "--seeds", "2", "--data-dir", str(tiny_synthetic),
            "--runs-dir", str(tmp_path / "runs"), "--partition", "gpu", "--time", "30", "--account", "lab",
            "--cpus-per-job", "4", "--mem-gb", "16", "--set", "epochs=1"]  # fmt: skip
    assert study.main([*args, "--no-wait"]) == 0
    out = capsys.readouterr().out
    script = record.read_text()
    for line in ("--array=0-3%4", "--partition=gpu", "--time=30", "--account=lab", "--gpus-per-node=1",
                 "--cpus-per-task=4", "--mem=16GB", "--signal=USR2@90", "--job-name=hie-seed"):  # fmt: skip
        assert f"#SBATCH {line}\n" in script, line
    study_dir = tmp_path / "runs" / "seed"  # "auto" on GPU nodes is the seed protocol
    jobs = study_dir / "jobs"
    assert sorted(p.name for p in jobs.glob("*_submitted.pkl")) == [
        f"4242_{i}_submitted.pkl" for i in range(4)
    ]
    assert f"logs in {jobs}" in out and "--gather" in out
    assert sorted(p.name for p in study_dir.iterdir()) == [
        ".lock",
        "jobs",
    ]  # nothing ran here (the study's lock)
    # the printed command gathers whatever the jobs left: here, nothing finished
    assert study.main([*args, "--gather"]) == 1
    out = capsys.readouterr().out
    assert out.count("not finished") >= 4 and "no training run finished" in out


def test_no_finished_run_means_no_results_and_exit_1(tiny_synthetic, tmp_path, capsys):
    blocked = tmp_path / "runs" / "s" / "dice"
    blocked.mkdir(parents=True)
    for k in (0, 1):
        (blocked / f"seed{k}").write_text("a file where the run folder should be")
    assert study.main(tiny_cli(tiny_synthetic, tmp_path / "runs")) == 1
    out = capsys.readouterr().out
    assert "dice/seed0" in out and f"cannot write {blocked / 'seed0'}" in out
    assert "no training run finished: no results and no book" in out
    assert not (tmp_path / "runs" / "s" / "results").exists()


# ----------------------------------------------------------------------------- tiny training runs


@pytest.mark.slow
def test_local_cluster_runs_the_grid_through_submitit(tiny_synthetic, tmp_path):
    """The issue's "Done when": --cluster local --losses dice --seeds 2 --no-book."""
    proc = subprocess.run([sys.executable, "-m", "hie_core.study", *tiny_cli(tiny_synthetic, tmp_path, "--cluster",
                           "local", "--jobs", "2")], cwd=ROOT, capture_output=True, text=True, timeout=600)  # fmt: skip
    study_dir = tmp_path / "s"
    for k in (0, 1):
        run = study_dir / "dice" / f"seed{k}"
        assert (run / "summary.json").is_file() and (run / "train.ipynb").is_file(), proc.stdout + proc.stderr
        assert len(pd.read_csv(run / "history.csv")) == 1
    logs = sorted((study_dir / "jobs").glob("*_log.out"))
    assert len(logs) == 2 and len(list((study_dir / "jobs").glob("*_submitted.pkl"))) == 2
    ran = sorted(n for log in logs for n in ("dice/seed0", "dice/seed1") if f"[study] {n}" in log.read_text())
    assert ran == ["dice/seed0", "dice/seed1"]  # one run in each job's log
    assert (study_dir / "baseline" / "metrics.csv").is_file()
    assert "2 local job(s)" in proc.stdout
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (study_dir / "ceiling" / "metrics.csv").is_file() and (study_dir / "results").is_dir()
    assert not (study_dir / "book").exists()  # --no-book


@pytest.mark.slow
def test_a_failed_run_is_reported_and_the_others_still_run(tiny_synthetic, tmp_path, capsys):
    broken = tmp_path / "s" / "dice" / "seed0" / "train.ipynb"
    broken.mkdir(parents=True)  # papermill cannot write the executed notebook there
    assert study.main(tiny_cli(tiny_synthetic, tmp_path)) == 1
    out = capsys.readouterr().out
    log = broken.parent / "papermill.log"
    assert "dice/seed0" in out and "FAILED: " in out  # the live line, with the error it ended with
    assert f"see: {broken}" in out and f"log: {log}" in out  # the closing list of failed runs
    assert "IsADirectoryError" in log.read_text() or "Is a directory" in log.read_text()
    assert (tmp_path / "s" / "dice" / "seed1" / "summary.json").is_file()
    assert "[study] results" in out  # one run finished, so the results step ran
    # --gather reads the same folders without running anything
    assert study.main([*tiny_cli(tiny_synthetic, tmp_path), "--gather"]) == 1
    out = capsys.readouterr().out
    assert "papermill ->" not in out and "[study] results" in out
    assert f"not finished (see {log}" in out and "dice/seed1" in out


@pytest.mark.slow
def test_a_fold_run_through_the_notebook_reports_its_fold_as_cv(tiny_synthetic, tmp_path):
    from hie_core.report.analysis.runs import find_runs

    run = plan_grid(tmp_path / "s", ["dice"], seeds=1, folds=2)[1]
    (outcome,) = GridJob([run], ROOT, {**tiny_params(tiny_synthetic), "steps_per_epoch": 2})()
    assert outcome.ok, outcome.message
    assert run.run_dir == tmp_path / "s" / "dice" / "seed0-fold1"
    summary = json.loads((run.run_dir / "summary.json").read_text())
    assert summary["folds"] == 2 and summary["fold"] == 1
    found = find_runs(tmp_path / "s")
    assert [(r.seed, r.fold) for r in found.runs] == [(0, 1)]
    scores = found.scores()
    assert sorted(scores.loc[scores["split"] == "cv", "case_id"]) == sorted(summary["cv_cases"])
    assert set(scores["split"]) == {"cv", "test"} and (scores["fold"] == 1).all()


def _wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


#: Epochs of the interrupted runs (interrupted after the first).
INTERRUPTED_EPOCHS = 3


def _first_epochs_kept(run_dir: Path, snapshot: dict) -> None:
    """The finished history starts with the epochs the interrupted attempt had saved, unchanged."""
    done = snapshot["epoch"]
    history = pd.read_csv(run_dir / "history.csv")
    assert 1 <= done < INTERRUPTED_EPOCHS and len(history) == INTERRUPTED_EPOCHS
    before = pd.DataFrame(
        snapshot.get("state", snapshot)["history"]
    )  # fit's TrainState, or the older flat dict
    assert history["seconds"].iloc[:done].tolist() == before["seconds"].iloc[:done].tolist()


def _submit_tiny(tmp_path: Path, data_dir: Path) -> tuple[submitit.local.local.LocalJob, GridRun]:
    run = GridRun("dice", 0, tmp_path / "dice" / "seed0")
    executor = submitit.LocalExecutor(folder=tmp_path / "jobs")
    executor.update_parameters(timeout_min=10)
    job = executor.submit(GridJob([run], ROOT, tiny_params(data_dir, epochs=INTERRUPTED_EPOCHS)))
    _wait_for(lambda: (run.run_dir / "checkpoint_last.pt").is_file() or job.done(), 300, "the first epoch")
    assert not job.done(), f"the run ended before its first epoch:\n{job.stdout()}\n{job.stderr()}"
    return job, run


@pytest.mark.slow
def test_a_preempted_job_is_requeued_and_resumes_from_its_checkpoint(tiny_synthetic, tmp_path):
    job, run = _submit_tiny(tmp_path, tiny_synthetic)
    (task,) = grid._child_pids(job._process.pid)  # the job's Python under submitit's local controller
    os.kill(task, signal.SIGUSR2)  # what SLURM sends before preempting or at the time limit
    _wait_for(lambda: "[study] requeued after 0 of 1 run(s)" in (job.stdout() or ""), 60, "the checkpoint")
    snapshot = torch.load(
        run.run_dir / "checkpoint_last.pt", weights_only=True
    )  # before the requeued task runs
    _wait_for(job.done, 300, "the requeued job")
    (outcome,) = job.result()
    assert "Requeued job" in job.stdout()
    _first_epochs_kept(run.run_dir, snapshot)
    assert outcome.ok, outcome.message


def _process_tree(pid: int) -> list[int]:
    children = grid._child_pids(pid)
    return children + [p for c in children for p in _process_tree(c)]


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] in ("Z", "X")
    except OSError:
        return True


@pytest.mark.slow
def test_a_killed_job_resubmitted_finishes_from_its_checkpoint(tiny_synthetic, tmp_path):
    job, run = _submit_tiny(tmp_path, tiny_synthetic)
    tree = _process_tree(job._process.pid)  # task, papermill, kernel
    assert len(tree) >= 3
    # Like a scheduler ending a job (scancel, a node failure): every process of it is killed.
    # Not job.cancel(): its SIGINT is ignored by a process started in the background of a
    # non-interactive shell (nohup ... &), and the run then simply finished.
    for pid in [job._process.pid, *tree]:
        with contextlib.suppress(ProcessLookupError):  # a process that has already ended
            os.kill(pid, signal.SIGKILL)
    _wait_for(lambda: all(_gone(p) for p in tree), 30, "the job's processes to end")
    snapshot = torch.load(run.run_dir / "checkpoint_last.pt", weights_only=True)
    assert not (run.run_dir / "summary.json").exists()
    (outcome,) = grid.run_grid([run], ROOT, tiny_params(tiny_synthetic, epochs=INTERRUPTED_EPOCHS), Engine(cluster="local"),
                               tmp_path / "jobs")  # fmt: skip
    _first_epochs_kept(run.run_dir, snapshot)
    assert outcome.ok, outcome.message


def test_a_failed_results_step_skips_the_book(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """The book must never be built from the previous results/ as if it were this study's."""
    from hie_core.report.analysis import results
    from hie_core.report.book import build as book
    from hie_core.training import experiment

    monkeypatch.setattr(experiment, "run_baseline", lambda *a, **k: None)
    monkeypatch.setattr(experiment, "run_ceiling", lambda *a, **k: None)

    def broken(*args, **kwargs):
        raise results.StudyFolderError(
            "runs/x/dice/seed0/metrics.csv: column 'dice' has values outside [0, 1]"
        )

    def must_not_run(*args, **kwargs):
        raise AssertionError("the book was built after the results step failed")

    monkeypatch.setattr(results, "write_results", broken)
    monkeypatch.setattr(book, "build_book", must_not_run)
    monkeypatch.setattr(study.finish, "_book_notebook", must_not_run)
    config = type("Config", (), {"folds": 0})()
    ran = [study.RunOutcome("dice/seed0", True, 1.0, tmp_path, None)]
    steps = study.finish_study(tmp_path, tmp_path / "study", tmp_path / "data", config, ran)
    names = [(s.name, s.ok) for s in steps]
    assert names == [("baseline", True), ("ceiling", True), ("results", False), ("book", False)]
    assert "skipped: the results step failed" in steps[-1].message
    assert "no book notebooks and no book" in capsys.readouterr().out


# ----------------------------------------------------------------------------- Ctrl-C


def test_an_empty_or_cut_off_executed_notebook_is_removed_and_a_readable_one_kept(tmp_path):
    empty, cut, good = tmp_path / "empty.ipynb", tmp_path / "cut.ipynb", tmp_path / "good.ipynb"
    empty.write_bytes(b"")
    cut.write_text('{"cells": [')
    good.write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    assert grid.remove_broken_notebook(empty) and grid.remove_broken_notebook(cut)
    assert not grid.remove_broken_notebook(good) and not grid.remove_broken_notebook(
        tmp_path / "absent.ipynb"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.ipynb"]


def _as_at_a_terminal() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ctrl-C's default action, as a study started at a terminal has it.

    A shell starts a background job (``cmd &``, ``nohup``, a CI runner's child) with SIGINT
    ignored, and a process inherits that: Python then installs no KeyboardInterrupt handler, and
    the study would never see the test's Ctrl-C.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
def test_ctrl_c_during_a_run_ends_the_study_with_one_line_and_exit_130(tiny_synthetic, tmp_path):
    env = {**os.environ, "HIE_CACHE_DIR": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1"}
    cli = tiny_cli(tiny_synthetic, tmp_path / "runs", "--seeds", "1", "--jobs", "1")  # in this process
    cmd = [sys.executable, "-m", "hie_core.study", *cli]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=_as_at_a_terminal)  # fmt: skip
    try:
        lines = []
        while not any("papermill ->" in line for line in lines):
            line = proc.stdout.readline()
            assert line, "the study ended before its run started: " + "".join(lines)
            lines.append(line)
        time.sleep(3)  # papermill and its kernel starting
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends: the whole process group
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out + err
    assert out.strip().splitlines()[-1] == study.INTERRUPTED and "Traceback" not in out + err, out + err
    notebook = tmp_path / "runs" / "s" / "dice" / "seed0" / "train.ipynb"
    assert not notebook.exists() or json.loads(notebook.read_text())["cells"]


@pytest.mark.slow
def test_ctrl_c_with_local_jobs_ends_every_process_without_a_traceback(tiny_synthetic, tmp_path):
    """The issue's probe: Ctrl-C printed the one line, then submitit's KeyboardInterrupt traceback."""
    env = {**os.environ, "HIE_CACHE_DIR": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1"}
    cli = ["--losses", "dice", "--seeds", "2", "--data-dir", str(tiny_synthetic), "--runs-dir", str(tmp_path / "runs"),
           "--study", "s", "--preset", "quick", "--device", "cpu", "--no-book", "--set", "epochs=50",
           "--jobs", "2"]  # submitit local jobs, runs long enough to be interrupted  # fmt: skip
    cmd = [sys.executable, "-m", "hie_core.study", *cli]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=_as_at_a_terminal)  # fmt: skip
    logs = [tmp_path / "runs" / "s" / "dice" / f"seed{k}" / "papermill.log" for k in (0, 1)]
    try:
        _wait_for(lambda: all(log.is_file() for log in logs), 120, "both runs to start")
        time.sleep(3)  # papermill and its kernels starting
        tree = _process_tree(proc.pid)
        os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C: the whole foreground process group
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out + err
    assert out.strip().splitlines()[-1] == study.INTERRUPTED and err == "", out + err
    _wait_for(lambda: all(_gone(p) for p in tree), 30, "every job process to end")
    assert len(tree) >= 6  # two controllers, two tasks, their papermills (and kernels): all gone


def test_a_repeated_loss_runs_once_with_a_note(tiny_synthetic, tmp_path, capsys):
    args = ["--losses", "dice,dice", "--seeds", "2", "--data-dir", str(tiny_synthetic), "--runs-dir",
            str(tmp_path / "runs"), "--preset", "quick", "--device", "cpu", "--plan"]  # fmt: skip
    assert study.main(args) == 0
    out = capsys.readouterr().out
    assert "note: --losses names dice more than once; each loss runs once: dice" in out
    assert "[plan] 2 runs: 1 loss x 2 seeds" in out


def test_the_study_says_which_runs_changed_data_or_edited_results_retrain(tiny_release, tmp_path, capsys):
    import numpy as np

    from hie_core.data import discover_cases
    from hie_core.fingerprint import data_fingerprint, results_checksums
    from hie_core.io import read_image, write_image

    runs = [GridRun("dice", 0, tmp_path / "dice" / "seed0"), GridRun("dice", 1, tmp_path / "dice" / "seed1")]
    for run in runs:
        run.run_dir.mkdir(parents=True)
        info = {
            "config": {},
            "data_fingerprint": data_fingerprint(tiny_release, discover_cases(tiny_release)).to_dict(),
        }
        (run.run_dir / "config.json").write_text(json.dumps(info))
        for name in ("history.csv", "metrics.csv"):
            (run.run_dir / name).write_text("a,b\n1,2\n")
        (run.run_dir / "summary.json").write_text(json.dumps({"checksums": results_checksums(run.run_dir)}))
    assert study.redo_notes(runs, tiny_release, "it is trained again") == []
    (runs[1].run_dir / "metrics.csv").write_text("a,b\n1,3\n")
    assert study.redo_notes(runs, tiny_release, "it is trained again") == [
        "[study] dice/seed1: metrics.csv changed since the run wrote it (edited or damaged); it is trained again"
    ]
    label = discover_cases(tiny_release, splits=["test"])[0].label
    array, geometry = read_image(label)
    write_image(np.zeros_like(array), geometry, label)
    lines = study.redo_notes(runs, tiny_release, "it is trained again")
    assert len(lines) == 2 and all(
        f"the data changed since this run: 1 file(s) differ, e.g. {label}" in x for x in lines
    )
    assert lines == capsys.readouterr().out.splitlines()[-2:]
