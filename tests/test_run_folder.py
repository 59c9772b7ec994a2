"""The run folder's one owner (:mod:`hie_core.run_folder`): its name, its records, its place in a study."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from hie_core import run_folder
from hie_core.config import DEFAULTS, FIELD_NAMES
from hie_core.run_folder import (
    RunFolderError,
    is_finished_run,
    parse_run_folder_name,
    read_config,
    read_failure,
    read_settings,
    read_summary,
    run_folder_name,
    run_folders,
    study_run_folders,
    write_json,
)

PACKAGE = Path(run_folder.__file__).resolve().parent
#: Ways to spell a run folder's name outside its module: an f-string ``seed{...}`` or
#: ``-fold{...}``, a regular expression ``seed(\d+)`` / ``seed\d+``, a glob ``seed*``.
NAME_SPELLINGS = re.compile(r"""(?<![\w-])seed\{\w|-fold\{\w|seed\(?\\d|(?<![\w*-])seed\*""")


def test_name_round_trip() -> None:
    assert run_folder_name(3) == "seed3"
    assert run_folder_name(0, 4) == "seed0-fold4"
    for seed, fold in [(0, None), (12, None), (1, 0), (7, 11)]:
        assert parse_run_folder_name(run_folder_name(seed, fold)) == (seed, fold)
    for other in ["seed", "seedx", "seed1-fold", "seed1-fold2x", "Seed1", "seed-1", "results", "seed1_fold2"]:
        assert parse_run_folder_name(other) is None, other
    with pytest.raises(ValueError):
        run_folder_name(-1)


def test_run_folders_in_seed_then_fold_order(tmp_path: Path) -> None:
    for name in ["seed10", "seed2", "seed2-fold1", "seed2-fold0", "notes", "seed1x"]:
        (tmp_path / "dice" / name).mkdir(parents=True)
    (tmp_path / "dice" / "seed3").write_text("a file, not a run folder")
    (tmp_path / "results").mkdir()
    assert [p.name for p in run_folders(tmp_path / "dice")] == [
        "seed2",
        "seed2-fold0",
        "seed2-fold1",
        "seed10",
    ]
    assert run_folders(tmp_path / "missing") == []
    assert [p.relative_to(tmp_path).as_posix() for p in study_run_folders(tmp_path)][:2] == [
        "dice/seed2",
        "dice/seed2-fold0",
    ]


def test_records_round_trip_and_damage(tmp_path: Path) -> None:
    run = tmp_path / "seed0"
    run.mkdir()
    assert read_config(run) is None and read_settings(run) is None
    assert read_summary(run) is None and read_failure(run) is None
    write_json({"config": {"loss": "dice", "seed": 0}, "synthetic": True}, run / run_folder.CONFIG_FILE)
    write_json({"splits": {"test": {"dice": 0.5}}}, run / run_folder.SUMMARY_FILE)
    assert read_config(run) == {"config": {"loss": "dice", "seed": 0}, "synthetic": True}
    settings = read_settings(run)
    assert settings["loss"] == "dice" and settings["arch"] == DEFAULTS["arch"]  # a missing field: its default
    assert read_summary(run)["splits"]["test"]["dice"] == 0.5
    assert not is_finished_run(run)
    for name in run_folder.RUN_FILES:
        (run / name).touch(exist_ok=True)
    assert is_finished_run(run)
    (run / run_folder.CONFIG_FILE).write_text('{"config": [1, 2]}')
    with pytest.raises(RunFolderError, match="config.json: unreadable; delete"):
        read_config(run)
    (run / run_folder.SUMMARY_FILE).write_text("{half")
    assert read_summary(run) is None
    (run / run_folder.FAILED_FILE).write_text("[]")
    assert "unreadable" in read_failure(run)["message"]
    assert not list(run.glob("*.tmp*")), "atomic writes leave no temporary file"


OLD_STUDY = Path("/tmp/verify/quick")


@pytest.mark.skipif(not OLD_STUDY.is_dir(), reason="no study written before the run-folder module")
def test_run_folders_written_before_still_load() -> None:
    runs = study_run_folders(OLD_STUDY)
    assert runs, OLD_STUDY
    for run in runs:
        info = read_config(run)
        assert info is not None and isinstance(info["config"], dict), run
        assert parse_run_folder_name(run.name) == (info["config"]["seed"], None)
        settings = read_settings(run)  # upgraded by the one loader: every current field
        assert set(settings) == set(FIELD_NAMES) and settings["seed"] == info["config"]["seed"]
        if is_finished_run(run):
            assert run_folder.load_run(run).metrics.shape[0] > 0


def test_the_name_is_spelled_only_in_its_module() -> None:
    """Every other module builds and reads run-folder names through :mod:`hie_core.run_folder`."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == Path(run_folder.__file__).resolve():
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if NAME_SPELLINGS.search(line.split("#")[0]) and "``" not in line:
                found.append(f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}")
    assert not found, "run-folder names spelled outside hie_core/run_folder.py:\n" + "\n".join(found)


def test_pattern_catches_the_old_spellings() -> None:
    """The grep above is not vacuous: it finds each way the name was spelled before."""
    old = [
        'run = f"seed{config.seed}" + (f"-fold{config.fold}" if config.folds else "")',
        '_SEED_DIR = re.compile(r"^seed(\\d+)(?:-fold(\\d+))?$")',
        '_RUN_DIR = re.compile(r"^seed\\d+(-fold\\d+)?$")',
        'for run in (study_dir / loss).glob("seed*"):',
        'sorted(study_dir.glob("*/seed*/summary.json"))',
    ]
    assert all(NAME_SPELLINGS.search(line) for line in old)
    assert not NAME_SPELLINGS.search('return base / "synthetic" / f"{preset}-seed{seed}{custom}"')
    assert not NAME_SPELLINGS.search("f\"command per seed{' (add' + data + ')' if data else ''}\"")
    assert json.loads(json.dumps(run_folder.RUN_FILES)) == [
        "config.json",
        "history.csv",
        "metrics.csv",
        "summary.json",
    ]
