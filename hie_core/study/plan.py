"""The study's plan: every choice checked before anything is written (:func:`plan_study`), the same
code for ``--plan`` (a dry run that generates, trains and writes nothing) and for a study.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hie_core.errors import ConfigError
from hie_core.losses import LOSS_NAMES
from hie_core.run_folder import run_folders
from hie_core.study.checks import check_runs
from hie_core.study.grid import (
    GridRun,
    plan_grid,
)
from hie_core.study.options import (
    STUDY_FOLDERS,
    check_settings_read,
    grid_combinations,
    loss_settings_to_grid,
    method_settings,
    parse_externals,
)
from hie_core.study.options import parse_overrides as _parse_overrides

#: Seeds per loss when ``--seeds`` is not given: the seed protocol's 3 on CUDA; on a CPU as
#: many as fit the main job's time budget (at least 2, for a between-seed spread).
DEFAULT_SEEDS: dict[str, int] = {"cuda": 3, "cpu": 2}


#: ``--design`` choices: ``default`` (folds 0, :data:`DEFAULT_SEEDS`) and ``powered`` (:func:`powered_design`).
DESIGNS = ("default", "powered")


def _runs_dir(given: str) -> Path:
    """``--runs-dir``, else :func:`hie_core.run_folder.runs_root` (``runs/`` or ``$HIE_RUNS_DIR``)."""
    from hie_core.run_folder import runs_root

    return Path(given) if given else runs_root()


@dataclass(frozen=True)
class StudyPlan:
    """A validated study: nothing is written until :func:`hie_core.study.run_study` runs it."""

    root: Path
    study_dir: Path
    data: Path | None  # None in a dry run (``--plan``): nothing is generated
    synthetic: bool
    config: object  # the study's TrainConfig (preset and overrides resolved): the ceiling's grid
    device: str  # where the runs train: "cpu", "cuda" or "cuda:N"
    runs: list[GridRun]
    params: dict
    externals: tuple[tuple[str, Path], ...] = ()  # --external NAME=FOLDER, scored after the runs
    counts: dict = dataclasses.field(default_factory=dict)  # cases per split (None: a folder without splits)
    seeds: int = 0  # seeds per method
    combinations: int = 1  # grid combinations per loss (1 without --grid)


def parse_overrides(items: Sequence[str]) -> dict:
    """``["epochs=1", "patch_shape=[8, 16, 16]"]`` -> values (:func:`hie_core.study.options.parse_overrides`:
    Python literals, else strings; keys are fields of the schema; a key given twice is refused, as for ``--grid``)."""
    return _parse_overrides(items)


def _configure(preset: str, device: str, data_dir: str, overrides: dict, remote_cuda: bool, folds: int,
               synthetic_test_cases: int) -> Callable[[dict], object]:  # fmt: skip
    """``configure(values)``: the TrainConfig of a run of this study with ``values`` set over ``overrides``."""
    return lambda values: _study_config(preset, device, data_dir, {**overrides, **values}, remote_cuda, folds,
                                        synthetic_test_cases)  # fmt: skip


def _method_grid(losses: Sequence[str], grid: dict, overrides: dict) -> tuple[list[dict], dict]:
    """(grid combinations, the other ``--set`` values): ``--set`` loss settings become one-value grid
    keys, applied to the losses that read them only; a setting no loss reads is refused
    (:mod:`hie_core.study.options`)."""
    merged, others = loss_settings_to_grid(dict(grid or {}), dict(overrides or {}))
    check_settings_read(losses, merged, given_by=[k for k in overrides or {} if k not in others])
    return grid_combinations(merged), others


def _check_combinations(combos: list[dict], preset: str, device: str, data_dir: str, overrides: dict,
                        remote_cuda: bool, folds: int, synthetic_test_cases: int) -> None:  # fmt: skip
    """Refuse a grid combination the run configuration rejects, before anything runs (the first one, named)."""
    if combos == [{}]:
        return
    for combo in combos:
        try:
            _study_config(
                preset, device, data_dir, {**overrides, **combo}, remote_cuda, folds, synthetic_test_cases
            )
        except ConfigError as exc:
            named = " ".join(f"{'--archs' if k == 'arch' else '--grid'} {k}={v}" for k, v in combo.items())
            raise ConfigError(f"{named}: {exc}") from None


def _check_writable(folder: Path) -> None:
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{existing}: not a folder, so {folder} cannot be made; choose another --runs-dir")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{existing}: not writable, so {folder} cannot be made; choose another --runs-dir")


def _study_config(preset: str, device: str, data_dir: str, overrides: dict, remote_cuda: bool, folds: int = 0,
                  synthetic_test_cases: int = 0):  # fmt: skip
    """The study's TrainConfig; with ``remote_cuda`` the runs' CUDA is elsewhere (SLURM nodes)."""
    from hie_core.training.config import TrainConfig, make_config

    if folds < 0 or synthetic_test_cases < 0:
        raise ConfigError(f"--folds and --synthetic-test-cases must be at least 0, got {folds} and "
                          f"{synthetic_test_cases}")  # fmt: skip
    if synthetic_test_cases and data_dir:
        raise ConfigError(
            "--synthetic-test-cases sizes the synthetic dataset; it does not apply with --data-dir"
        )
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in overrides.items() if k in fields}
    values.update(folds=folds if folds >= 2 else 0, synthetic_test_cases=synthetic_test_cases)
    if remote_cuda and not (device == "auto" or device == "cuda"):
        raise ConfigError(f"--device {device}: SLURM jobs with GPUs take --device auto or cuda")
    try:
        if remote_cuda:  # resolve "auto" as a GPU node will; nothing here needs CUDA itself
            return make_config(preset="seed" if preset == "auto" else preset, device="cpu", data_dir=data_dir,
                               **values)  # fmt: skip
        return make_config(preset=preset, device=device, data_dir=data_dir, **values)
    except (ValueError, TypeError) as exc:
        raise ConfigError(str(exc)) from None


def _check_losses_seeds(losses: Sequence[str], seeds: int | None, seed_start: int) -> None:
    unknown = [
        s for s in losses if s not in LOSS_NAMES and ":" not in s
    ]  # package.module:Name: a custom loss
    if unknown or not losses:
        raise ConfigError(f"--losses: unknown loss(es) {unknown}; valid: {', '.join(LOSS_NAMES)} or "
                          "package.module:Name (your own loss)")  # fmt: skip
    custom = [s for s in losses if ":" in s]
    if custom:
        from hie_core.losses import check_loss_name

        for name in custom:
            try:
                check_loss_name(name)
            except (ImportError, AttributeError, ValueError, TypeError) as exc:
                raise ConfigError(f"--losses {name}: {exc}") from None
    if (seeds is not None and seeds < 1) or seed_start < 0:
        raise ConfigError(
            f"--seeds must be at least 1 and --seed-start at least 0, got {seeds} and {seed_start}"
        )


def _check_same_design(study_dir: Path, folds: int) -> None:
    """Refuse a study folder whose run folders have another design (plain vs ``folds``-fold runs)."""
    methods = sorted(p for p in study_dir.iterdir() if p.is_dir() and p.name not in STUDY_FOLDERS) \
        if study_dir.is_dir() else []  # fmt: skip
    for method in methods:
        for folder in run_folders(method):
            try:
                info = json.loads((folder / "config.json").read_text())
                if info.get("external"):
                    continue  # outside predictions: one seed0 folder whatever the design
                theirs = info["config"].get("folds", 0)
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                theirs = None  # not started yet: its name tells its kind
            fold_run = "-fold" in folder.name
            if fold_run != (folds >= 2) or (theirs is not None and theirs != folds):
                if theirs:
                    have = f"{theirs}-fold cross-validation"
                else:
                    have = "cross-validation" if fold_run else "plain"
                want = f"--folds {folds}" if folds >= 2 else "runs without folds"
                raise ConfigError(f"{folder}: this study folder holds {have} runs, this study asks for {want}; "
                                  "choose another --study (one study, one design)")  # fmt: skip


def unique_losses(text: str) -> list[str]:
    """``--losses`` as a list, each loss once (a repeated one is dropped with a printed note):
    two runs of one loss and seed would share, and fight over, one run folder."""
    given = [s.strip() for s in text.split(",") if s.strip()]
    losses = list(dict.fromkeys(given))
    repeated = [loss for loss in losses if given.count(loss) > 1]
    if repeated:
        print(f"[study] note: --losses names {', '.join(repeated)} more than once; each loss runs once: "
              f"{','.join(losses)}", flush=True)  # fmt: skip
    return losses


def _pool_size(counts: dict[str, int]) -> int:
    return counts.get("train", 0) + counts.get("val", 0) + counts.get(None, 0)


def plan_study(runs_dir: Path, study: str, losses: Sequence[str], seeds: int | None, seed_start: int = 0,
               data_dir: str = "", preset: str = "auto", device: str = "auto", overrides: dict | None = None,
               remote_cuda: bool = False, folds: int = 0, synthetic_test_cases: int = 0, grid: dict | None = None,
               externals: Sequence[str] = (), dry_run: bool = False) -> StudyPlan:  # fmt: skip
    """Check every choice and the data folder (``load_dataset``) before anything is written.

    ``dry_run=True`` is ``--plan``: the same checks, but the data are neither generated nor read
    (the cases per split come from the synthetic preset or the folder's file names,
    ``_case_counts``), so the outside masks are not checked against them either; nothing
    is written in either case.

    Args:
        runs_dir, study: the study folder is ``runs_dir/study`` (``study=""``: the preset's name,
            with ``-cv<K>`` for folds and ``-test<N>`` for a synthetic test count).
        losses, seeds, seed_start: the grid (``seeds=None``: :data:`DEFAULT_SEEDS` for the device).
        data_dir: a BONBID-HIE folder; ``""`` the synthetic dataset (generated here, into the cache).
        preset, device, overrides: the notebook's parameters for every run.
        remote_cuda: the runs execute on CUDA machines that this one may not be (SLURM with GPUs).
        folds: K >= 2 for K-fold cross-validation over the training and validation cases
            (0 or 1: none).
        synthetic_test_cases: test cases of the synthetic dataset (0: its preset's count).
        grid: ``{parameter: [values]}`` (:func:`parse_grid`): every combination runs with every
            loss and seed, each its own method folder.
        externals: ``--external NAME=FOLDER`` options (:func:`parse_externals`), scored after the runs.
        dry_run: plan without generating or loading the data (``--plan``).

    Raises:
        ConfigError: a bad loss, seed or fold count, parameter, runs folder, or a study folder
            holding runs of another design.
        hie_core.data.DatasetError: the data folder is not usable.
    """
    from hie_core.data import load_dataset
    from hie_core.outputs import Read, check_outputs
    from hie_core.run_folder import project_root, resolve_data_dir
    from hie_core.synthetic import is_synthetic_dir
    from hie_core.training.experiment import default_study_name

    _check_losses_seeds(losses, seeds, seed_start)
    combos, overrides = _method_grid(losses, grid or {}, overrides or {})
    config = _study_config(preset, device, data_dir, overrides, remote_cuda, folds, synthetic_test_cases)
    _check_combinations(combos, preset, device, data_dir, overrides, remote_cuda, folds, synthetic_test_cases)
    configure = _configure(preset, device, data_dir, overrides, remote_cuda, folds, synthetic_test_cases)
    run_device = "cuda" if remote_cuda else config.device
    study_dir = (Path(runs_dir) / (study or default_study_name(config))).expanduser().resolve()
    _check_writable(study_dir)
    _check_same_design(study_dir, config.folds)
    if dry_run:
        data, cases = None, []
        counts, _ = _case_counts(config)
    else:
        data = resolve_data_dir(config)  # the synthetic set is generated once, before any run
        cases, _ = load_dataset(data)
        counts = {s: sum(c.split == s for c in cases) for s in ("train", "val", "test", None)}
    pool = _pool_size(counts)
    if config.folds > pool:
        raise ConfigError(f"--folds {config.folds}: the pool holds {pool} training and validation case(s)")
    seeds = DEFAULT_SEEDS["cuda" if run_device.startswith("cuda") else "cpu"] if seeds is None else seeds
    params = {"data_dir": data_dir, "preset": config.preset, "device": device, **overrides}
    if config.synthetic_test_cases:
        params["synthetic_test_cases"] = config.synthetic_test_cases
    runs = plan_grid(study_dir, losses, seeds, seed_start, config.folds, combos, overrides,
                     reduce=functools.partial(method_settings, configure=configure))  # fmt: skip
    check_runs(runs, configure, memory=not remote_cuda)  # every run's values and loss, before the first run
    outside = parse_externals(externals, [r.method for r in runs])
    root = project_root(Path(__file__).resolve().parent)
    if dry_run:
        return StudyPlan(root, study_dir, None, not config.data_dir, config, run_device, runs, params, outside,
                         counts, seeds, len(combos))  # fmt: skip
    check_outputs("hie-study", [study_dir], [Read(data, "data folder"), *(Read(f, "mask folder") for _, f in outside)],
                  own=lambda path: True)  # the study folder outside what it reads  # fmt: skip
    if outside:  # every mask checked before any run starts: one error lists every problem of every folder
        from hie_core.study.external import check_predictions

        test_cases = [c for c in cases if c.split == "test"]
        for _, folder in outside:
            check_predictions(folder, test_cases, {c.case_id for c in cases})
    return StudyPlan(root, study_dir, data, is_synthetic_dir(data), config, run_device, runs, params, outside,
                     counts, seeds, len(combos))  # fmt: skip


def reported_splits(counts: dict, folds: int) -> dict[str, int]:
    """Cases per reported split: ``cv`` (the pool) and ``test`` with folds >= 2, else ``val`` and ``test``."""
    if folds >= 2:
        return {"cv": _pool_size(counts), "test": counts.get("test", 0)}
    return {"val": counts.get("val", 0), "test": counts.get("test", 0)}


def _case_counts(config) -> tuple[dict, str]:
    """Cases per split (``None``: a folder without splits) without writing anything, and the data's name.

    The synthetic set's counts come from its preset (it is not generated); a real folder's from
    its file names (:func:`hie_core.data.discover_cases` reads nothing else).
    """
    if config.data_dir:
        from hie_core.data import discover_cases

        cases = discover_cases(Path(config.data_dir).expanduser())
        counts = {s: sum(c.split == s for c in cases) for s in ("train", "val", "test", None)}
        return counts, f"folder {config.data_dir}"
    from hie_core.synthetic import PRESETS

    counts = dict(PRESETS[config.synthetic_preset])
    counts["test"] = config.synthetic_test_cases or counts["test"]
    return counts, f"the SYNTHETIC '{config.synthetic_preset}' set"
