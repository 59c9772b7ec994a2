"""The results model (hie_core.report.analysis.study_model): built once per study, typed, read by every page.

A tiny study written here with closed-form scores (tests/report_fixtures.py), and a copy of the
finished quick study at /tmp/verify/quick when the machine has one (made by the code before the
model existed: old run folders must keep loading). A source test checks that the report's pages
read the study only through the model.
"""

from __future__ import annotations

import ast
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from hie_core.report.analysis import study_model
from hie_core.report.analysis.results import write_results
from hie_core.report.analysis.runs import StudyFolderError
from hie_core.report.analysis.study_model import Study, load_study
from hie_core.report.analysis.study_records import RunConfig, StudyConfig
from tests.report_fixtures import write_study

ROOT = Path(__file__).resolve().parents[1]
OLD_STUDY = Path("/tmp/verify/quick")


@pytest.fixture(autouse=True)
def _few_resamples(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIE_BOOTSTRAP_RESAMPLES", "199")
    study_model.clear_cache()


def _tiny(tmp_path: Path) -> Path:
    return write_study(tmp_path / "tiny", {"dice": [[0.2, 0.4, 0.6], [0.3, 0.5, 0.7]],
                                           "tversky@segresnet": [[0.1, 0.2, 0.3], [0.2, 0.3, 0.4]],
                                           "baseline": [[0.05, 0.05, 0.05]]},
                       best_epochs={"dice": [2, 3]}, n_val=1)  # fmt: skip


def test_tiny_study_before_and_after_its_results(tmp_path: Path) -> None:
    folder = _tiny(tmp_path)
    study = load_study(folder)
    assert study.results is None and study.config is None  # not written yet: the runs answer
    assert study.data_dir == str(tmp_path / "data") and study.run_settings["preset"] == "quick"
    assert study.archs == ("segresnet", "unet3d") and study.synthetic is False
    configs = study.run_configs()
    assert [(c.method, c.seed, c.arch, c.loss) for c in configs] == [
        ("dice", 0, "unet3d", "dice"), ("dice", 1, "unet3d", "dice"),
        ("tversky@segresnet", 0, "segresnet", "tversky"), ("tversky@segresnet", 1, "segresnet", "tversky")]  # fmt: skip
    assert all(isinstance(c, RunConfig) and c.device == "CPU (test)" for c in configs)
    # the per-case per-run score matrix: cases x seeds, the fixture's Dice values
    np.testing.assert_allclose(
        study.score_matrix("dice", "test", "dice"), [[0.2, 0.3], [0.4, 0.5], [0.6, 0.7]]
    )
    assert study.score_matrix("baseline", "test", "dice").shape == (3, 1)
    assert study.best_epochs("dice") == [2, 3] and study.best_epochs("tversky@segresnet") == []
    assert load_study(folder) is study  # nothing changed: the same object, nothing read again

    write_results(folder)
    fresh = load_study(folder)  # study.json appeared: a new model
    assert fresh is not study and isinstance(fresh.config, StudyConfig)
    assert fresh.config.seeds == (0, 1) and fresh.config.design.folds == 0 and fresh.config.preset == "quick"
    assert fresh.config.methods == ("dice", "tversky@segresnet") and fresh.config.references == ("baseline",)
    assert fresh.config.design.margins["dice"] == 0.02 and fresh.config.devices == "CPU (test)"
    assert fresh.data_dir == fresh.config.data_dir == str(tmp_path / "data")
    assert fresh.labels == {"dice": "Dice", "tversky@segresnet": "Tversky · SegResNet"}


def test_histories_are_read_when_asked_and_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    study = load_study(_tiny(tmp_path))
    reads = []
    original = study.runs.runs[0].history.__func__

    def counting(run):
        reads.append(run.path.name)
        return original(run)

    monkeypatch.setattr(type(study.runs.runs[0]), "history", counting)
    assert reads == []  # loading the study read no history
    first = study.history("dice", 0)
    assert study.history("dice", 0) is first and reads == ["seed0"]
    assert list(first["seconds"]) == [2.0, 1.0, 1.5]
    assert sorted(study.histories("dice")) == [0, 1] and reads == ["seed0", "seed1"]
    with pytest.raises(KeyError, match="dice/seed7"):
        study.history("dice", 7)


def test_runs_are_read_once_per_folder_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _tiny(tmp_path)
    calls = []
    real = study_model.find_runs
    monkeypatch.setattr(study_model, "find_runs", lambda p: calls.append(p) or real(p))
    for _ in range(3):
        assert load_study(folder).runs.losses == ["dice", "tversky@segresnet"]
        load_study(str(folder) + "/").run_configs()
    assert len(calls) == 1
    metrics = folder / "dice" / "seed1" / "metrics.csv"
    metrics.write_text(metrics.read_text() + "\n")  # a record changed: read again
    assert load_study(folder).runs.seeds == [0, 1]
    assert len(calls) == 2


def test_missing_folder_and_study_without_runs(tmp_path: Path) -> None:
    with pytest.raises(StudyFolderError, match="no such study folder"):
        load_study(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    study = load_study(tmp_path / "empty")
    assert study.synthetic is None and study.recorded_configs == []
    with pytest.raises(StudyFolderError, match="no finished run"):
        _ = study.data_dir


@pytest.mark.skipif(
    not OLD_STUDY.is_dir(), reason="no finished quick study at /tmp/verify/quick on this machine"
)
def test_old_quick_study_loads(tmp_path: Path) -> None:
    """Run folders and results written before the model keep loading (a copy: the original is read only)."""
    folder = tmp_path / "quick"
    shutil.copytree(OLD_STUDY, folder, ignore=shutil.ignore_patterns("book", "*.pt", "jobs", "*.ipynb"))
    study = load_study(folder)
    info = study.config
    assert info.preset == "quick" and info.synthetic and info.seeds == (0, 1) and info.splits[0] == "test"
    assert len(info.seed_methods) == 6 and info.design.primary_family
    assert set(info.best_loss) == set(info.splits) and info.run_config["preset"] == "quick"
    runs = study.run_configs()
    assert len(runs) == 12 and {c.arch for c in runs} == {"unet3d"} and all(c.synthetic for c in runs)
    m = study.score_matrix("dice", "test", "dice")
    assert m.shape == (info.n_cases["test"], 2) and np.all((m >= 0) & (m <= 1))
    per_case = study.results.table("per_case", "test")
    dice = per_case[per_case["method"] == "dice"].set_index("case_id")["dice"]
    np.testing.assert_allclose(
        m.mean(axis=1), dice.to_numpy(), atol=1e-9
    )  # the model's runs agree with the table
    assert len(study.history("dice", 0)) >= 1 and study.data_dir == info.data_dir


# The modules that may read study records themselves: the model, the readers and writer under it,
# and the analysis that writes the lesion files before any result exists.
_READERS = {"analysis/study_model.py", "analysis/study_records.py", "analysis/runs.py", "analysis/results.py",
            "analysis/lesion_tables.py"}
# JSON read by pages that is not a study record: benchmark result files, a figure's own JSON,
# inline icons, the forecast's run timings read before a study is reportable (study --plan).
_OTHER_JSON = {"pages/performance_page.py", "pages/preset_dev.py", "viewers/display.py", "book/weight.py",
               "analysis/forecast.py"}


def _in_report(path: Path) -> str:
    """``hie_core/report/pages/prose.py`` -> ``pages/prose.py``."""
    return path.relative_to(ROOT / "hie_core" / "report").as_posix()


def _calls(path: Path) -> list[tuple[str, int]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            owner = f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else ""
            if name == "find_runs" or (owner == "json" and name in ("load", "loads")):
                out.append((f"{owner + '.' if owner else ''}{name}", node.lineno))
    return out


def test_report_pages_read_the_study_only_through_the_model() -> None:
    offenders = []
    for path in sorted((ROOT / "hie_core" / "report").rglob("*.py")):
        if _in_report(path) in _READERS:
            continue
        for name, line in _calls(path):
            if name == "find_runs" or _in_report(path) not in _OTHER_JSON:
                offenders.append(f"{path.relative_to(ROOT)}:{line} {name}")
    assert not offenders, "read the study with hie_core.report.analysis.study_model.load_study instead: " + ", ".join(
        offenders
    )


def test_report_pages_read_study_json_typed() -> None:
    """``results.info`` is the file as a dict: pages read ``results.config`` (StudyConfig) instead."""
    offenders = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path in sorted((ROOT / "hie_core" / "report").rglob("*.py"))
        if _in_report(path) not in _READERS
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute) and node.attr == "info"
    ]
    assert not offenders, "read results.config (typed) instead of results.info: " + ", ".join(offenders)


def test_the_source_check_finds_a_call(tmp_path: Path) -> None:
    page = tmp_path / "page.py"
    page.write_text("import json\nfrom x import find_runs\nfind_runs('a')\njson.loads('{}')\n")
    assert _calls(page) == [("find_runs", 3), ("json.loads", 4)]


def test_study_object_is_plain(tmp_path: Path) -> None:
    assert repr(Study(tmp_path)) == f"Study({str(tmp_path)!r})" and os.fspath(Study(tmp_path).path) == str(
        tmp_path
    )


def test_run_config_of_a_run_folder_or_a_notebooks_own_folder(tmp_path: Path) -> None:
    """A run page's run: seed and fold from ``<method>/seed<k>-fold<f>``, else from its settings."""
    config = {"config": {"loss": "tversky", "seed": 3, "folds": 5, "fold": 2, "preset": "quick"},
              "device_name": "CPU (test)", "data_dir_resolved": "/data"}  # fmt: skip
    in_study = RunConfig.of_run(tmp_path / "tversky+hybrid_weight=0.3" / "seed3-fold2", config)
    assert (in_study.method, in_study.seed, in_study.fold) == ("tversky+hybrid_weight=0.3", 3, 2)
    elsewhere = RunConfig.of_run(tmp_path / "out", config)
    assert (elsewhere.method, elsewhere.seed, elsewhere.fold, elsewhere.loss) == ("tversky", 3, 2, "tversky")
    assert (elsewhere.arch, elsewhere.device, elsewhere.data_dir, elsewhere.preset) == (
        "unet3d",
        "CPU (test)",
        "/data",
        "quick",
    )
    plain = RunConfig.of_run(tmp_path / "out", {"config": {"loss": "dice", "data_dir": "/raw"}})
    assert (plain.seed, plain.fold, plain.data_dir, plain.device, plain.external) == (
        0,
        None,
        "/raw",
        None,
        False,
    )
