"""One process per run folder: the run folder's lock, and ``--losses`` without repeats."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import pytest

from hie_core.run_folder import LOCK_FILE, LOCK_HOLDER_ENV, RunLockedError, run_lock
from hie_core.study import unique_losses
from hie_core.study.grid import GridJob, GridRun
from hie_core.training.experiment import run_experiment

from .conftest import tiny_config

ROOT = Path(__file__).resolve().parent.parent
HOLD = (
    "import sys, time\nfrom hie_core.training.experiment import run_lock\n"
    "with run_lock(sys.argv[1]):\n    print('locked', flush=True)\n    time.sleep(120)\n"
)


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HIE_CACHE_DIR", str(tmp_path / "cache"))


@contextlib.contextmanager
def held_by_another_process(run_dir: Path):
    """A subprocess holding ``run_dir``'s lock; yields its PID."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_a_second_process_is_refused_with_the_folder_and_the_holders_pid(tmp_path, monkeypatch):
    run_dir = tmp_path / "dice" / "seed0"
    with held_by_another_process(run_dir) as pid:
        assert (run_dir / LOCK_FILE).read_text().strip() == str(pid)
        with pytest.raises(RunLockedError, match=rf"^{run_dir}: another process \(PID {pid}\) is training"):
            with run_lock(run_dir):
                pass
        monkeypatch.setenv(LOCK_HOLDER_ENV, str(pid))  # a notebook started by the holder: its own lock
        with run_lock(run_dir):
            pass
    monkeypatch.delenv(LOCK_HOLDER_ENV)
    with run_lock(run_dir):  # the holder died: the OS released its lock
        assert (run_dir / LOCK_FILE).read_text().strip() != str(pid)


def test_a_folder_made_for_the_lock_alone_is_removed_again(tmp_path):
    with run_lock(tmp_path / "study" / "dice" / "seed0"):
        assert (tmp_path / "study" / "dice" / "seed0" / LOCK_FILE).is_file()
    assert list(tmp_path.iterdir()) == []
    with run_lock(tmp_path / "kept"):
        (tmp_path / "kept" / "config.json").write_text("{}")
    assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == [LOCK_FILE, "config.json"]


def test_a_run_in_a_locked_folder_writes_nothing(tiny_release, tmp_path):
    run_dir = tmp_path / "run"
    with held_by_another_process(run_dir) as pid:
        with pytest.raises(RunLockedError, match=f"PID {pid}"):
            run_experiment(tiny_config(tiny_release, run_dir, epochs=1, patience=1))
    assert [p.name for p in run_dir.iterdir()] == [LOCK_FILE]


def test_the_study_reports_a_locked_run_as_failed_and_leaves_its_files(tmp_path):
    run = GridRun("dice", 0, tmp_path / "dice" / "seed0")
    run.run_dir.mkdir(parents=True)
    (run.run_dir / "papermill.log").write_text("the other study's log\n")
    with held_by_another_process(run.run_dir) as pid:
        outcome = GridJob([run], ROOT, {})._run(run)
    assert not outcome.ok and f"another process (PID {pid})" in outcome.message
    assert (
        str(run.run_dir) in outcome.message
    )  # the study's progress lines print it (tests/test_study_runner.py)
    assert (run.run_dir / "papermill.log").read_text() == "the other study's log\n"
    assert not (run.run_dir / "train.ipynb").exists()


def test_repeated_losses_run_once_with_a_note(capsys):
    assert unique_losses("dice, dice,hdt,dice") == ["dice", "hdt"]
    assert (
        "note: --losses names dice more than once; each loss runs once: dice,hdt" in capsys.readouterr().out
    )
    assert unique_losses("dice,hdt") == ["dice", "hdt"] and capsys.readouterr().out == ""


def test_a_second_study_finishing_the_same_folder_says_so_and_stops(tmp_path, monkeypatch, capsys):
    """Two studies started together: one writes the results and the book, the other says so."""
    from hie_core import study
    from hie_core.training import experiment

    def must_not_run(*args, **kwargs):
        raise AssertionError("the second study wrote results")

    monkeypatch.setattr(experiment, "run_baseline", must_not_run)
    study_dir = tmp_path / "study"
    config = type("Config", (), {"folds": 0})()
    ran = [study.RunOutcome("dice/seed0", True, 1.0, study_dir, None)]
    with held_by_another_process(study_dir / "results") as pid:
        steps = study.finish_study(tmp_path, study_dir, tmp_path / "data", config, ran)
    assert [(s.name, s.ok) for s in steps] == [("results", False)]
    assert "another study is finishing this one now" in steps[0].message and str(pid) in steps[0].message
    assert "another study is finishing this one now" in capsys.readouterr().out
