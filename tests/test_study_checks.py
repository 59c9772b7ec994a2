"""The study checks everything before its first run, relays failures in one line, and can be watched.

No training here: plans, parsing, the console and the locks (seconds in all).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from hie_core import study
from hie_core.errors import EXIT_CLOSED_PIPE, ConfigError, exit_on_user_error
from hie_core.progress import format_seconds
from hie_core.study import grid
from hie_core.study.grid import GridRun, RunOutcome
from hie_core.study.progress import StudyProgress, read_outcomes, write_outcome
from hie_core.training.failure import TrainingDivergedError, write_failure

ROOT = Path(__file__).resolve().parent.parent


def _plan(tiny_synthetic, tmp_path, losses, grid_=None, overrides=None):
    return study.plan_study(tmp_path / "runs", "s", losses, 1, data_dir=str(tiny_synthetic), preset="quick",
                            device="cpu", overrides=overrides or {}, grid=grid_ or {})  # fmt: skip


def _params(plan, run):
    return {**plan.params, **run.notebook_parameters}


# ----------------------------------------------------------------------------- settings and the loss


def test_a_grid_key_a_loss_ignores_leaves_it_one_method_and_the_seed_value_is_the_seed_method(tiny_synthetic,
                                                                                              tmp_path):  # fmt: skip
    """The issue's probe: --losses dice,tversky_hdt --grid hybrid_weight=0.1,0.5 made two identical Dice methods."""
    plan = _plan(tiny_synthetic, tmp_path, ["dice", "tversky_hdt"], {"hybrid_weight": [0.1, 0.5]})
    assert [r.method for r in plan.runs] == ["dice", "tversky_hdt", "tversky_hdt+hybrid_weight=0.5"]
    dice, seed, grid_ = (_params(plan, r) for r in plan.runs)
    assert "hybrid_weight" not in dice and "hybrid_weight" not in seed  # at the seed's value, as a plain run
    assert grid_["hybrid_weight"] == 0.5
    from hie_core.methods import is_seed_method, label_of_id

    assert [is_seed_method(r.method) for r in plan.runs] == [True, True, False]
    assert label_of_id("tversky_hdt+hybrid_weight=0.5") == "Tversky+HDT (w 0.5)"


def test_a_set_loss_setting_reaches_only_the_losses_that_read_it(tiny_synthetic, tmp_path):
    plan = _plan(
        tiny_synthetic, tmp_path, ["dice", "tversky_hdt"], overrides={"hybrid_weight": 0.3, "epochs": 2}
    )
    assert [r.method for r in plan.runs] == ["dice", "tversky_hdt+hybrid_weight=0.3"]
    dice, hybrid = (_params(plan, r) for r in plan.runs)
    assert "hybrid_weight" not in dice and hybrid["hybrid_weight"] == 0.3
    assert dice["epochs"] == hybrid["epochs"] == 2  # other settings reach every run


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--losses", "dice", "--grid", "hybrid_weight=0.1,0.5"],
            "--grid hybrid_weight: no loss of this study reads "
            "it (dice); it applies to dice_focal_hdt, tversky_hdt",
        ),
        (
            ["--losses", "dice,tversky", "--set", "focal_gamma=3"],
            "--set focal_gamma: no loss of this study reads it",
        ),
        (
            ["--set", "epochs=1", "--set", "epochs=2"],
            "--set epochs: given twice (1 and '2'); give each parameter once",
        ),
        (
            ["--grid", "patch_shape=16,48,48"],
            "write each as 16x48x48, e.g. --grid patch_shape=16x48x48,24x64x64",
        ),
        (
            ["--losses", "tests.broken_losses:BadInit"],
            "method BadInit: loss 'tests.broken_losses:BadInit': "
            "BadInit(hybrid_weight) failed (ValueError: hybrid_weight must be 0.25)",
        ),
        (
            ["--losses", "tests.broken_losses:PerVoxel"],
            "not a scalar; forward(logits, target, target_dt=None) must",
        ),
        (["--set", "patch_shape=1000x1000x1000"], "needs about"),
    ],
)
def test_every_setting_and_user_loss_is_checked_before_anything_runs(tiny_synthetic, tmp_path, capsys, args,
                                                                    message):  # fmt: skip
    runs_dir = tmp_path / "runs"
    for extra in ([], ["--plan"]):
        code = study.main(["--data-dir", str(tiny_synthetic), "--runs-dir", str(runs_dir), "--device", "cpu",
                           "--preset", "quick", "--no-book", *args, *extra])  # fmt: skip
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("hie-study: error: ") and err.count("\n") == 1, err
        assert message in err, err
        assert not runs_dir.exists()  # no baseline, no ceiling, no run folder


def test_grid_shapes_in_the_documented_syntax_are_one_value_each(tiny_synthetic, tmp_path):
    plan = _plan(tiny_synthetic, tmp_path, ["dice"], {"patch_shape": ["16x48x48", "8x16x16"]})
    assert [r.method for r in plan.runs] == ["dice", "dice+patch_shape=8x16x16"]  # 16x48x48 is the preset's
    assert study.parse_grid(["patch_shape=16x48x48,[24, 64, 64]"]) == {
        "patch_shape": ["16x48x48", [24, 64, 64]]
    }


# ----------------------------------------------------------------------------- one line per failure


def test_a_failed_runs_message_is_its_error_without_ipythons_preamble(tmp_path):
    log = tmp_path / "papermill.log"
    log.write_text(
        "Executing: 100%|##########| 7/7\nTraceback (most recent call last):\n  File x\n"
        "papermill.exceptions.PapermillExecutionError: \n" + "-" * 75 + "\n"
        'Exception encountered at "In [2]":\nAn exception has occurred, use %tb to see the full traceback.\n\n'
        "\x1b[0;31mConfigError\x1b[0m: lr must be a finite number, got 'abc'\n\n"
    )
    assert grid.log_tail(log) == "ConfigError: lr must be a finite number, got 'abc'"
    run = GridRun("dice", 0, tmp_path / "dice" / "seed0")
    run.run_dir.mkdir(parents=True)
    assert grid.run_failure(run, log) == "ConfigError: lr must be a finite number, got 'abc'"
    write_failure(run.run_dir, TrainingDivergedError(2, 7, "training loss", float("nan"), 9e5, "dice"))
    message = grid.run_failure(run, log)
    assert message.startswith("training diverged at epoch 2, step 7: the training loss is nan")
    (outcome,) = grid.gathered_outcomes([run])
    assert not outcome.ok and outcome.message == message


# ----------------------------------------------------------------------------- the console


def test_the_console_shows_each_run_as_it_finishes_with_progress_and_time_left(tmp_path):
    now = [100.0]
    out = io.StringIO()
    progress = StudyProgress(4, stream=out, clock=lambda: now[0], bar=False)
    run_dir = tmp_path / "dice" / "seed0"
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.csv").write_text("case_id,split,dice,n_ref\na,test,0.4,5\nb,test,0.6,9\nc,test,1.0,0\n"
                                         "d,val,0.1,3\n")  # fmt: skip
    now[0] = 160.0
    progress.finished(RunOutcome("dice/seed0", True, 58.5, run_dir / "train.ipynb", None))
    progress.finished(RunOutcome("dice/seed0", True, 58.5, run_dir / "train.ipynb", None))  # told twice: once
    now[0] = 220.0
    progress.finished(RunOutcome("hdt/seed0", False, 3.0, tmp_path / "hdt" / "train.ipynb", None, "diverged"))
    lines = out.getvalue().splitlines()
    assert lines == [
        "[study] dice/seed0                58.5 s  test Dice 0.500  ok",  # the empty-label case left out
        "[study] progress: 1/4 runs done; elapsed 1 min 00 s; about 3 min 00 s left",
        "[study] hdt/seed0                  3.0 s  test Dice  n/a   FAILED: diverged",
        "[study] progress: 2/4 runs done (1 failed); elapsed 2 min 00 s; about 2 min 00 s left",
    ]
    assert format_seconds(3725) == "1 h 02 min"


def test_submitted_jobs_report_each_outcome_through_a_file(tmp_path):
    outcome = RunOutcome("tversky_hdt+hybrid_weight=0.5/seed1", True, 12.0, tmp_path / "a" / "train.ipynb",
                         tmp_path / "a" / "papermill.log")  # fmt: skip
    job = grid.GridJob([], ROOT, {}, outcomes_dir=tmp_path / "outcomes")
    job._report(outcome)
    (tmp_path / "outcomes" / ".tmp-x-half.json").write_text("{")  # a file being written is not read
    assert read_outcomes(tmp_path / "outcomes", RunOutcome) == [outcome]
    assert write_outcome(tmp_path / "o2", outcome).name == "tversky_hdt+hybrid_weight=0.5__seed1.json"


# ----------------------------------------------------------------------------- one study per folder, pipes


def test_a_second_study_beside_a_running_one_stops_at_once_naming_it(tiny_synthetic, tmp_path, capsys):
    from hie_core.training.experiment import run_lock

    study_dir = tmp_path / "runs" / "s"
    cli = ["--losses", "dice", "--seeds", "1", "--data-dir", str(tiny_synthetic), "--runs-dir", str(tmp_path / "runs"),
           "--study", "s", "--preset", "quick", "--device", "cpu", "--no-book", "--set", "epochs=1"]  # fmt: skip
    with run_lock(study_dir):  # as a running study holds it
        code = study.main(cli)
        err = capsys.readouterr().err
        assert sorted(p.name for p in study_dir.iterdir()) == [".lock"]  # no baseline, ceiling or run started
    assert code == 2 and "another study (PID" in err and "is running in this folder now" in err, err


def test_a_closed_console_ends_quietly():
    @exit_on_user_error("prog")
    def main(argv=None) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    assert main() == EXIT_CLOSED_PIPE
    code = (
        "import sys\nfrom hie_core.errors import exit_on_user_error\n"
        "@exit_on_user_error('prog')\ndef main():\n    for i in range(100000):\n        print('line', i)\n    return 0\n"
        "sys.exit(main())\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT
    )
    proc.stdout.readline()
    proc.stdout.close()  # as `| head -1` does
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=30) == EXIT_CLOSED_PIPE and err == "", err


def test_the_study_piped_to_head_ends_quietly(tiny_synthetic, tmp_path):
    cmd = [sys.executable, "-m", "hie_core.study", "--plan", "--losses", "dice", "--data-dir", str(tiny_synthetic),
           "--runs-dir", str(tmp_path / "runs"), "--preset", "quick", "--device", "cpu"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    proc.stdout.close()  # closed before the first line
    err = proc.stderr.read().decode()
    assert (
        proc.wait(timeout=120) == EXIT_CLOSED_PIPE and "Traceback" not in err and "BrokenPipe" not in err
    ), err


def test_plan_grid_without_reduce_keeps_every_key():
    runs = grid.plan_grid(Path("/s"), ["dice"], 1, combos=[{"hybrid_weight": 0.1}, {"hybrid_weight": 0.5}])
    assert [r.method for r in runs] == ["dice+hybrid_weight=0.1", "dice+hybrid_weight=0.5"]
    with pytest.raises(ConfigError):
        study.parse_overrides(["lr=1", "lr=2"])
    assert json.dumps([r.settings for r in runs]) == '[[["hybrid_weight", 0.1]], [["hybrid_weight", 0.5]]]'


def test_the_in_process_engine_prints_each_run_as_it_finishes(tmp_path, monkeypatch, capsys):
    runs = grid.plan_grid(tmp_path, ["dice", "hdt"], 1)
    finished = []

    def fake_run(self, run):  # no notebook: the console only
        finished.append(run.name)
        return RunOutcome(run.name, run.loss == "dice", 1.5, run.run_dir / "train.ipynb", None, "diverged")

    monkeypatch.setattr(grid.GridJob, "_run", fake_run)
    outcomes = grid.run_grid(runs, ROOT, {}, grid.Engine(), tmp_path / "jobs")
    lines = capsys.readouterr().out.splitlines()
    assert [o.name for o in outcomes] == finished == ["dice/seed0", "hdt/seed0"]
    assert lines[0].startswith("[study] dice/seed0") and lines[0].endswith("ok")
    assert lines[1].startswith("[study] progress: 1/2 runs done; elapsed ")
    assert lines[2].endswith("FAILED: diverged") and lines[3].startswith(
        "[study] progress: 2/2 runs done (1 failed)"
    )


def test_on_a_terminal_the_progress_is_a_bar_under_the_run_lines(tmp_path):
    out = io.StringIO()
    progress = StudyProgress(2, stream=out, bar=True)
    progress.finished(RunOutcome("dice/seed0", True, 2.0, tmp_path / "train.ipynb", None))
    progress.close()
    text = out.getvalue()
    assert "[study] dice/seed0" in text and "[study] runs 1/2" in text and "left ~" in text
