"""The study in one command: a grid of method x seed, then the baseline, ceiling, results and book.

``python -m hie_core.study`` (or ``hie-study``) runs ``notebooks/train.ipynb`` with papermill
once per grid cell (loss, seed) into ``runs/<study>/<loss>/seed<k>/`` (the executed notebook
and ``papermill.log`` beside the run's files), then scores the organisers' ``ZADC < -2``
baseline (``baseline/``) and the resampling ceiling (``ceiling/``), writes the result tables
(``results/``), executes the book's study notebooks (``book/``) and builds the book. A failed
run is reported with the paths of its executed notebook and log, the other runs still run,
the command exits 1; the results and the book are made when at least one run finished.

Where the runs execute is ``--cluster`` (``none``: in this process, one after another;
``local``: submitit's local executor, ``--jobs`` at a time, one GPU each; ``slurm``: one
SLURM job per run, as a job array); one engine runs them all, :mod:`hie_core.study.grid`.
A run stopped by its scheduler is requeued and resumes from its last epoch. Job logs and
submitit's pickles go to ``runs/<study>/jobs/``. Whatever ran the runs, the results are
gathered from the run folders by the same code; ``--gather`` does only that (after
``--cluster slurm --no-wait``). ``--no-book`` stops after the results files.

The design: ``--losses`` x ``--seeds`` runs, or with ``--folds K`` (K >= 2) K-fold
cross-validation over the training and validation cases (the pool): each loss and seed is K
runs ``runs/<study>/<loss>/seed<k>-fold<f>/``, each trained on the other K-1 folds and
scored on its held-out fold (split ``"cv"``) and on the test split; the fold partition is the
same for every loss and seed (``hie_core.training.experiment.cv_folds``). ``--design
powered`` chooses the folds and seeds that detect 0.02 Dice in the primary contrasts on
BONBID-HIE's sizes (``powered_design``; explicit ``--folds``/``--seeds`` win).
``--synthetic-test-cases N`` sizes the synthetic test split (its own cached copy).

Methods (:mod:`hie_core.methods`): ``--grid KEY=V1,V2`` (repeatable, any parameter of
``notebooks/train.ipynb``) and ``--archs unet3d,segresnet`` (the grid over ``arch``) run every
combination with every loss and seed, each its own method folder ``runs/<study>/<method>/``
(``tversky_hdt@segresnet``, ``tversky_hdt+hybrid_weight=0.3``); ``--external NAME=FOLDER``
(repeatable) scores a folder of outside predictions after the runs
(:func:`hie_core.study.external.add_external`) into ``runs/<study>/<NAME>/seed0/``, a method with one
seed in every table. ``--plan``
prints the run count, the projected hours on this device and the minimum detectable
difference of the design, then exits; it runs, generates and writes nothing.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hie_core.errors import ConfigError, exit_on_user_error
from hie_core.losses import LOSS_NAMES
from hie_core.report.display import plural
from hie_core.report.power import TARGET_DICE, margins_for
from hie_core.run_folder import run_folders
from hie_core.report.seed_study import PRIMARY_CONTRASTS
from hie_core.study.checks import check_runs, study_lock
from hie_core.study.grid import (
    SLURM_DEFAULT_TIME_MIN,
    Engine,
    GridJob,
    GridRun,
    RunOutcome,
    gathered_outcomes,
    log_tail,
    papermill_command,
    plan_grid,
    print_outcome,
    run_grid,
)
from hie_core.study.options import (
    GRID_PARAMETERS,
    STUDY_FOLDERS,
    check_settings_read,
    grid_combinations,
    loss_settings_to_grid,
    method_settings,
    parse_externals,
    parse_grid,
)
from hie_core.study.options import parse_overrides as _parse_overrides

__all__ = ["DEFAULT_SEEDS", "RunOutcome", "GridRun", "GridJob", "Engine", "StudyPlan", "plan_study", "run_study",
           "finish_study", "redo_notes", "main", "DESIGNS", "PRIMARY_CONTRASTS", "TARGET_DICE", "BONBID_COUNTS", "powered_design",
           "reported_splits", "print_plan", "unique_losses", "parse_grid", "grid_combinations", "parse_externals",
           "GRID_PARAMETERS", "STUDY_FOLDERS"]  # fmt: skip

#: Seeds per loss when ``--seeds`` is not given: the seed protocol's 3 on CUDA; on a CPU as
#: many as fit the main job's time budget (at least 2, for a between-seed spread).
DEFAULT_SEEDS: dict[str, int] = {"cuda": 3, "cpu": 2}
#: At most this many runs at a time on a CPU by default (each with its share of the cores).
CPU_LANES_MAX = 4
#: ``--design`` choices: ``default`` (folds 0, :data:`DEFAULT_SEEDS`) and ``powered`` (:func:`powered_design`).
DESIGNS = ("default", "powered")
#: BONBID-HIE's case counts (Part I, Zenodo record 10602767), the sizes ``--design powered`` is chosen for.
BONBID_COUNTS = {"train": 85, "val": 4, "test": 44}
#: Folds of the powered design, and its fewest seeds; an effect of one training run, shared by
#: all its cases, does not shrink with more cases, only with more runs (the Analysis plan, ``book/analysis-plan.md``).
POWERED_FOLDS, POWERED_MIN_SEEDS = 5, 5
#: Seconds per whole run by device kind and preset, each with its source (``--plan``'s fallback).
RUN_SECONDS_JSON = (
    Path("benchmarks") / "results" / "run_seconds.json"
)  # = hie_core.report.forecast.RUN_SECONDS_JSON


def _step(name: str, where: Path, action: Callable[[], object]) -> RunOutcome:
    """One study step after the grid; a failure is reported like a failed run, the study goes on."""
    start = time.perf_counter()
    try:
        action()
        ok, message = True, ""
    except Exception as exc:  # reported in the summary
        ok, message = False, (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    outcome = RunOutcome(name, ok, time.perf_counter() - start, where, None, message)
    print(f"[study] {name:<22} {outcome.seconds:7.1f} s  {'ok' if ok else 'FAILED: ' + message}", flush=True)
    return outcome


def _book_notebook(root: Path, study_dir: Path, name: str) -> RunOutcome:
    out, log = study_dir / "book" / f"{name}.ipynb", study_dir / "book" / f"{name}.log"
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = papermill_command(root / "notebooks" / f"{name}.ipynb", out, {"study_dir": str(study_dir)}, root)
    start = time.perf_counter()
    with open(log, "w") as fh:
        code = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=root).returncode
    outcome = RunOutcome(
        name, code == 0, time.perf_counter() - start, out, log, "" if code == 0 else log_tail(log)
    )
    print_outcome(outcome)
    return outcome


def finish_study(root: Path, study_dir: Path, data: Path, config, outcomes: list[RunOutcome],
                 book: bool = True, margins: dict | None = None,
                 externals: Sequence[tuple[str, Path]] = ()) -> list[RunOutcome]:  # fmt: skip
    """Baseline, ceiling and outside predictions; then, when a run finished, the results files, book notebooks and book.

    ``externals``: ``(name, folder)`` of each ``--external``, scored into ``<study>/<name>/seed0/``
    by :func:`hie_core.study.external.add_external` (a failure is reported like a failed run).

    The book is made only from results written by this call: when the results step fails, the
    book step is skipped (and says so), so the previous book is never presented as this study's.
    ``margins``: equivalence margins for :func:`hie_core.report.results.write_results`. One
    process at a time finishes a study (a lock on ``<study>/results``): a second one started
    together says so and stops after its runs.
    """
    from hie_core.training.experiment import RunLockedError, run_lock

    try:
        with run_lock(study_dir / "results"):
            return _finish_locked(root, study_dir, data, config, outcomes, book, margins, externals)
    except RunLockedError as exc:
        message = f"another study is finishing this one now ({exc}); it writes the results and the book"
        print(f"[study] {message}", flush=True)
        return [RunOutcome("results", False, 0.0, study_dir / "results", None, message)]


def _add_external(study_dir: Path, name: str, folder: Path) -> None:
    from hie_core.study.external import add_external  # imported here: only a study with --external needs it

    add_external(study_dir, name, folder)


def _finish_locked(root: Path, study_dir: Path, data: Path, config, outcomes: list[RunOutcome], book: bool,
                   margins: dict | None, externals: Sequence[tuple[str, Path]] = ()) -> list[RunOutcome]:  # fmt: skip
    from hie_core.training import experiment

    cv = config.folds >= 2  # the references report the runs' splits: the pool as "cv", and test
    steps = [
        _step(
            "baseline",
            study_dir / "baseline",
            lambda: experiment.run_baseline(data, study_dir / "baseline", cv=cv),
        ),
        _step(
            "ceiling",
            study_dir / "ceiling",
            lambda: experiment.run_ceiling(data, study_dir / "ceiling", config),
        ),
    ]
    steps += [_step(f"external {name}", study_dir / name, functools.partial(_add_external, study_dir, name, folder))
              for name, folder in externals]  # fmt: skip
    if not any(o.ok for o in outcomes):
        print("[study] no training run finished: no results and no book", flush=True)
        return steps
    from hie_core.report import results

    steps.append(_step("results", study_dir / "results", lambda: results.write_results(study_dir, margins)))
    if book and not steps[-1].ok:
        print("[study] the results step failed: no book notebooks and no book (the previous book, if any, is "
              "left as it was and is not this study's)", flush=True)  # fmt: skip
        steps.append(RunOutcome("book", False, 0.0, _book_index(root), None,
                                "skipped: the results step failed"))  # fmt: skip
    elif book:
        from hie_core.report.book import BOOK_NOTEBOOKS, build_book

        steps += [_book_notebook(root, study_dir, name) for name in BOOK_NOTEBOOKS]
        steps.append(_step("book", _book_index(root), lambda: build_book(root, study_dir)))
    return steps


def _runs_dir(given: str) -> Path:
    """``--runs-dir``, else :func:`hie_core.training.experiment.runs_root` (``runs/`` or ``$HIE_RUNS_DIR``)."""
    from hie_core.training.experiment import runs_root

    return Path(given) if given else runs_root()


def _book_index(root: Path) -> Path:
    """The built book's front page: under ``$HIE_BOOK_DIR`` when set, else the project's ``_build``."""
    from hie_core.report.book import book_dir

    out = book_dir()
    return (out / "html" if out else root / "_build" / "html") / "index.html"


@dataclass(frozen=True)
class StudyPlan:
    """A validated study: nothing is written until :func:`run_study` runs it."""

    root: Path
    study_dir: Path
    data: Path
    synthetic: bool
    config: object  # the study's TrainConfig (preset and overrides resolved): the ceiling's grid
    device: str  # where the runs train: "cpu", "cuda" or "cuda:N"
    runs: list[GridRun]
    params: dict
    externals: tuple[tuple[str, Path], ...] = ()  # --external NAME=FOLDER, scored after the runs


def notebook_parameters(notebook: Path) -> tuple[str, ...]:
    """The names assigned in a notebook's ``parameters`` cell."""
    for cell in json.loads(notebook.read_text())["cells"]:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            tree = ast.parse("".join(cell["source"]))
            return tuple(t.id for node in tree.body if isinstance(node, ast.Assign)
                         for t in node.targets if isinstance(t, ast.Name))  # fmt: skip
    return ()


def parse_overrides(items: Sequence[str], allowed: Sequence[str]) -> dict:
    """``["epochs=1", "patch_shape=[8, 16, 16]"]`` -> values (:func:`hie_core.study.options.parse_overrides`:
    Python literals, else strings; a key given twice is refused, as for ``--grid``)."""
    return _parse_overrides(items, allowed)


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
               externals: Sequence[str] = ()) -> StudyPlan:  # fmt: skip
    """Check every choice and the data folder (``load_dataset``) before anything is written.

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

    Raises:
        ConfigError: a bad loss, seed or fold count, parameter, runs folder, or a study folder
            holding runs of another design.
        hie_core.data.DatasetError: the data folder is not usable.
    """
    from hie_core.data import load_dataset
    from hie_core.outputs import Read, check_outputs
    from hie_core.synthetic import is_synthetic_dir
    from hie_core.training.experiment import default_study_name, project_root, resolve_data_dir

    _check_losses_seeds(losses, seeds, seed_start)
    combos, overrides = _method_grid(losses, grid or {}, overrides or {})
    config = _study_config(preset, device, data_dir, overrides, remote_cuda, folds, synthetic_test_cases)
    _check_combinations(combos, preset, device, data_dir, overrides, remote_cuda, folds, synthetic_test_cases)
    configure = _configure(preset, device, data_dir, overrides, remote_cuda, folds, synthetic_test_cases)
    run_device = "cuda" if remote_cuda else config.device
    study_dir = (Path(runs_dir) / (study or default_study_name(config))).expanduser().resolve()
    _check_writable(study_dir)
    _check_same_design(study_dir, config.folds)
    data = resolve_data_dir(config)  # the synthetic set is generated once, before any run
    cases, _ = load_dataset(data)
    pool = _pool_size({s: sum(c.split == s for c in cases) for s in ("train", "val", None)})
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
    check_outputs("hie-study", [study_dir], [Read(data, "data folder"), *(Read(f, "mask folder") for _, f in outside)],
                  own=lambda path: True)  # the study folder outside what it reads  # fmt: skip
    if outside:  # every mask checked before any run starts: one error lists every problem of every folder
        from hie_core.study.external import check_predictions

        test_cases = [c for c in cases if c.split == "test"]
        for _, folder in outside:
            check_predictions(folder, test_cases, {c.case_id for c in cases})
    return StudyPlan(project_root(Path(__file__).resolve().parent), study_dir, data, is_synthetic_dir(data),
                     config, run_device, runs, params, outside)  # fmt: skip


@functools.cache
def powered_design() -> tuple[int, int]:
    """(folds, seeds) of ``--design powered``: ``POWERED_FOLDS`` folds and the fewest seeds,
    at least ``POWERED_MIN_SEEDS``, whose minimum detectable difference on BONBID-HIE's sizes
    (:data:`BONBID_COUNTS`), with :func:`hie_core.report.power.default_noise` (the crossed model, t
    quantiles; :func:`hie_core.report.forecast.split_mdd`), is at most
    :data:`hie_core.report.power.TARGET_DICE` in both the ``cv`` and the ``test`` split (Holm over
    :data:`hie_core.report.seed_study.PRIMARY_CONTRASTS`)."""
    from hie_core.report.forecast import split_mdd
    from hie_core.report.power import default_noise

    splits = reported_splits(BONBID_COUNTS, POWERED_FOLDS)
    for seeds in range(POWERED_MIN_SEEDS, 1000):
        if all(split_mdd(default_noise(), split, n, seeds, POWERED_FOLDS, len(PRIMARY_CONTRASTS)) <= TARGET_DICE
               for split, n in splits.items()):  # fmt: skip
            return POWERED_FOLDS, seeds
    raise RuntimeError("no seed count reaches the powered design's target")  # pragma: no cover


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


def print_plan(plan_args: dict, config, study_dir: Path, lanes: int, root: Path) -> bool:
    """Print the design's run count, projected hours (whole-run seconds), the noise, each split's minimum
    detectable difference and its case floor (:mod:`hie_core.report.forecast`); write nothing.

    Args:
        plan_args: ``losses``, ``seeds``, ``folds`` of the design; optionally ``combinations``
            (grid combinations per loss, 1 without a grid) and ``externals`` (outside methods).
        config: the study's TrainConfig (preset, device, data; nothing is generated).
        study_dir: the study folder (read, when it exists, for measured seconds and noise).
        lanes: runs at a time (``--jobs``, or the engine's default).
        root: the project root (holds ``RUN_SECONDS_JSON``).

    Returns:
        Whether every judged split (``cv`` and ``test``) reaches :data:`hie_core.report.power.TARGET_DICE`.
    """
    from hie_core.report.forecast import run_seconds, split_mdd, study_noise
    from hie_core.report.power import ALPHA, POWER, case_floor

    losses, seeds, folds = plan_args["losses"], plan_args["seeds"], plan_args["folds"]
    combinations, externals = plan_args.get("combinations", 1), plan_args.get("externals", 0)
    counts, data = _case_counts(config)
    methods = plan_args.get(
        "methods", len(losses) * combinations
    )  # a grid point equal to the plain run is that method
    n_runs = methods * seeds * max(folds, 1)
    pool = f" (cross-validation over {_pool_size(counts)} training + validation cases)" if folds >= 2 else ""
    grid = f" x {plural(combinations, 'grid combination')}" if combinations > 1 else ""
    if (
        methods != len(losses) * combinations
    ):  # settings a loss does not read, grid points at the plain values
        grid += f" ({plural(methods, 'distinct method')})"
    print(f"[plan] {plural(n_runs, 'run')}: {plural(len(losses), 'loss', 'losses')}{grid} x {plural(seeds, 'seed')} x "
          f"{plural(max(folds, 1), 'fold')}{pool}; "
          f"preset {config.preset}, device {config.device}; study folder {study_dir}")  # fmt: skip
    if combinations > 1 or externals:
        outside = (
            f" + {plural(externals, 'folder')} of outside predictions (scored, not trained)"
            if externals
            else ""
        )
        print(f"[plan] methods: {methods} trained{outside}")
    print(f"[plan] data: {data}: train {counts['train'] + counts.get(None, 0)} / val {counts['val']} / test "
          f"{plural(counts['test'], 'case')}")  # fmt: skip
    kind = "cuda" if config.device.startswith("cuda") else "cpu"
    seconds, source = run_seconds(root, study_dir, kind, config.preset)
    print(f"[plan] seconds per whole run: {'unknown' if seconds is None else f'{seconds:.0f}'} ({source})")
    if seconds is not None:
        hours = n_runs * seconds / lanes / 3600
        print(
            f"[plan] projected: {plural(n_runs, 'run')} x {seconds:.0f} s / {plural(lanes, 'lane')} = "
            f"{hours:.2f} h on this device"
        )
    splits = reported_splits(counts, folds)
    n_tests = len(PRIMARY_CONTRASTS)
    noise = study_noise(study_dir, splits.get("test", 0), seeds, n_tests)
    print(f"[plan] noise: {noise.source} (SDs of a paired Dice difference: case {noise.sd_case:.4f}, run "
          f"{noise.sd_run:.4f}, case x run {noise.sd_case_run:.4f})")  # fmt: skip
    contrasts = ", ".join(f"{a} vs {b}" for a, b in PRIMARY_CONTRASTS)
    print(f"[plan] minimum detectable difference in mean Dice ({POWER:.0%} power, t quantiles on Satterthwaite df, "
          f"Holm at {ALPHA:g} over the {n_tests} primary contrasts: {contrasts}):")  # fmt: skip
    reached = True
    for split, n in splits.items():
        value = split_mdd(noise, split, n, seeds, folds, n_tests)
        floor = case_floor(noise, n, n_tests)
        judged = split != "val"  # the official validation split (4 cases) is reported, not powered
        reached &= (value <= TARGET_DICE) or not judged
        note = "" if judged else "  (not judged: the official validation split)"
        how = (
            f"{plural(seeds * folds, 'fold model')} out of fold"
            if split == "cv" and folds >= 2
            else (f"{plural(seeds, 'seed')}" + (f", each {folds} fold models averaged" if folds >= 2 else ""))
        )
        print(f"[plan]   {split:<5} {plural(n, 'case'):>9} x {how}: {value:.4f}; case floor (any number of seeds) "
              f"{floor:.4f}{note}")  # fmt: skip
        if judged and floor > TARGET_DICE:
            print(f"[plan]   {plural(n, 'case')} cannot reach {TARGET_DICE} whatever the seeds (case SD "
                  f"{noise.sd_case:.3f})")  # fmt: skip
    judged = " and ".join(s for s in splits if s != "val")
    print(f"[plan] reaches {TARGET_DICE} Dice in {judged}: {'yes' if reached else 'no'}")
    if not reached:
        powered_folds, powered_seeds = powered_design()
        train, val, test = (BONBID_COUNTS[s] for s in ("train", "val", "test"))
        print(f"[plan] (--design powered, {powered_folds} folds x {powered_seeds} seeds, reaches it on "
              f"BONBID-HIE's {train} + {val} pool and {test} test cases with the default noise)")  # fmt: skip
    return reached


def redo_notes(runs: Sequence[GridRun], data: Path, action: str) -> list[str]:
    """Say which existing run folders no longer match their data or their own results, before the grid runs.

    A run whose recorded data fingerprint differs from ``data``'s now (a corrected label), or
    whose result files changed after it wrote them, is trained again by its notebook; this
    prints one ``[study]`` line per such run, so the study says why, not only the run's notebook.

    Returns:
        The lines printed.
    """
    from hie_core.data import discover_cases
    from hie_core.fingerprint import data_fingerprint, describe_change, edited_results

    lines, current = [], None
    for run in runs:
        try:
            info = json.loads((run.run_dir / "config.json").read_text())
            summary = (
                json.loads((run.run_dir / "summary.json").read_text())
                if (run.run_dir / "summary.json").is_file()
                else {}
            )
        except (OSError, ValueError):
            continue  # no run here yet, or one the notebook reports itself
        if current is None:
            current = data_fingerprint(data, discover_cases(data))
        why = describe_change(info.get("data_fingerprint") if isinstance(info, dict) else None, current)
        changed = edited_results(run.run_dir, summary) if not why and isinstance(summary, dict) else []
        if changed:
            why = f"{', '.join(changed)} changed since the run wrote it (edited or damaged)"
        if why:
            lines.append(f"[study] {run.name}: {why}; {action}")
            print(lines[-1], flush=True)
    return lines


def run_study(plan: StudyPlan, engine: Engine = Engine(), book: bool = True, gather: bool = False,
              margins: dict | None = None):  # fmt: skip
    """Run the grid (or read it, ``gather``), then :func:`finish_study`.

    Returns:
        list[RunOutcome]: one per run, then one per step; ``None`` when the jobs were
        submitted without waiting (``engine.wait=False``).
    """
    folds = f" x {plural(plan.config.folds, 'fold')}" if plan.config.folds else ""
    n_losses, n_seeds = len({r.loss for r in plan.runs}), len({r.seed for r in plan.runs})
    n_methods = len({r.method for r in plan.runs})
    grid = f" ({plural(n_methods, 'method')})" if n_methods != n_losses else ""
    print(f"[study] {plural(len(plan.runs), 'run')}: {plural(n_losses, 'loss', 'losses')}{grid} x {plural(n_seeds, 'seed')}"
          f"{folds}; preset {plan.config.preset}, device {plan.device}; "
          f"data {plan.data}{' (SYNTHETIC)' if plan.synthetic else ''}; into {plan.study_dir}", flush=True)  # fmt: skip
    if gather:
        redo_notes(plan.runs, plan.data, "run the study without --gather to train it again")
        outcomes = gathered_outcomes(plan.runs)
    else:
        gpus = f", GPUs {list(engine.gpu_ids)}" if engine.gpu_ids else ""
        at_a_time = (
            "one job per run"
            if engine.cluster == "slurm"
            else f"{plural(engine.jobs, 'run')} at a time{gpus}"
        )
        print(f"[study] engine: --cluster {engine.cluster}, {at_a_time}", flush=True)
        redo_notes(plan.runs, plan.data, "it is trained again")
        outcomes = run_grid(plan.runs, plan.root, plan.params, engine, plan.study_dir / "jobs")
        if outcomes is None:
            return None
    return outcomes + finish_study(plan.root, plan.study_dir, plan.data, plan.config, outcomes, book=book,
                                   margins=margins, externals=plan.externals)  # fmt: skip


def _visible_gpus() -> tuple[int, ...]:
    """Indices to pin jobs to: ``CUDA_VISIBLE_DEVICES`` entries when numeric, else 0..n-1."""
    import torch

    count = torch.cuda.device_count()
    listed = [s.strip() for s in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if s.strip()]
    if listed and all(s.isdigit() for s in listed):
        return tuple(int(s) for s in listed[:count])
    return tuple(range(count))


def _check_engine_options(args: argparse.Namespace) -> None:
    if args.plan and (args.gather or args.no_wait):
        raise ConfigError("--plan runs nothing; it excludes --gather and --no-wait")
    if args.gather and args.no_wait:
        raise ConfigError("--gather and --no-wait exclude each other")
    if args.no_wait and args.cluster != "slurm":
        raise ConfigError("--no-wait applies to --cluster slurm only")
    for name in ("jobs", "time", "cpus_per_job", "mem_gb"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.gpus_per_job is not None and args.gpus_per_job < 0:
        raise ConfigError(f"--gpus-per-job must be at least 0, got {args.gpus_per_job}")
    missing = [tool for tool in ("sbatch", "srun") if shutil.which(tool) is None]
    if args.cluster == "slurm" and missing and not args.gather and not args.plan:
        raise ConfigError(f"--cluster slurm: {' and '.join(missing)} not found; run on a SLURM login node, "
                          "or use --cluster local")  # fmt: skip


def _slurm_gpus(args: argparse.Namespace) -> int:
    """GPUs per SLURM job: as asked, else 1 (none with ``--device cpu``)."""
    return args.gpus_per_job if args.gpus_per_job is not None else int(args.device != "cpu")


def make_engine(args: argparse.Namespace, run_device: str, study: str) -> Engine:
    """The engine the options ask for (``run_device``: where the runs train, resolved)."""
    gpus = _visible_gpus() if args.cluster != "slurm" and run_device.startswith("cuda") else ()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    # On a CPU, lanes of one thread each beat one lane of all threads for these small networks
    # (kernel start, evaluation and metrics are serial): measured 1.3x more volumes/s on 2 cores.
    jobs = args.jobs or (
        max(len(gpus), 1) if gpus or run_device.startswith("cuda") else min(cores, CPU_LANES_MAX)
    )
    threads = None if gpus or args.cluster == "slurm" else max(1, cores // jobs)
    if run_device.startswith("cuda:") and (args.cluster != "none" or jobs > 1):
        raise ConfigError(f"--device {run_device}: jobs are pinned to one GPU each; use --device cuda")
    return Engine(cluster=args.cluster, jobs=jobs, threads=threads, gpu_ids=gpus, time_min=args.time, partition=args.partition,
                  account=args.account, gpus_per_job=_slurm_gpus(args), cpus_per_job=args.cpus_per_job,
                  mem_gb=args.mem_gb, wait=not args.no_wait, job_name=f"hie-{study}")  # fmt: skip


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, like every other user error of the command
        raise ConfigError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="hie-study", description=__doc__.split("\n\n")[0])
    p.add_argument("--losses", default=",".join(LOSS_NAMES), help="comma-separated subset of the six losses")
    p.add_argument("--seeds", type=int, default=None, help=f"seeds per loss (default {DEFAULT_SEEDS})")
    p.add_argument("--seed-start", type=int, default=0, help="first seed: runs seed<k> for k from here")
    p.add_argument("--folds", type=int, default=None,
                   help="K-fold cross-validation over the training and validation cases (0 or 1: none)")  # fmt: skip
    p.add_argument("--design", choices=DESIGNS, default="default",
                   help="powered: the folds and seeds that detect 0.02 Dice on BONBID-HIE (see --plan)")  # fmt: skip
    p.add_argument("--synthetic-test-cases", type=int, default=0, metavar="N",
                   help="test cases of the synthetic dataset (default: its preset's)")  # fmt: skip
    p.add_argument("--plan", action="store_true",
                   help="print the run count, projected hours and detectable difference; run nothing")  # fmt: skip
    p.add_argument("--study", default="", help="study name: runs/<study>/ (default: the preset name)")
    p.add_argument("--runs-dir", default="", help="parent folder of the study folders (default: runs/ in the "
                   "project, or $HIE_RUNS_DIR)")  # fmt: skip
    p.add_argument("--data-dir", default="", help="BONBID-HIE folder; empty = the synthetic dataset")
    p.add_argument("--preset", default="auto", help="seed, quick, or auto (seed with CUDA, else quick)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="another notebooks/train.ipynb parameter for every run (each key once), e.g. epochs=1; "
                        "a loss setting reaches only the losses that read it")  # fmt: skip
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                   help="run every value (every combination, with several) as its own method, e.g. "
                        "hybrid_weight=0.1,0.3; a list value is written 16x48x48 (patch_shape=16x48x48,24x64x64); "
                        "a loss setting applies to the losses that read it, and a value equal to the plain run's "
                        "is the plain method")  # fmt: skip
    p.add_argument("--archs", default="", metavar="A,B",
                   help="the networks to run, each its own method (the grid over arch), e.g. unet3d,segresnet")  # fmt: skip
    p.add_argument("--external", action="append", default=[], metavar="NAME=FOLDER",
                   help="score a folder of outside predicted masks as the method NAME, after the runs")  # fmt: skip
    p.add_argument(
        "--no-book", action="store_true", help="stop after the results files: no book notebooks, no book"
    )
    p.add_argument("--margin", type=float, default=None,
                   help="equivalence margin of the Dice and NSD comparisons (default 0.02)")  # fmt: skip
    p.add_argument(
        "--gather", action="store_true", help="run nothing: gather finished run folders into results"
    )
    g = p.add_argument_group("where the runs execute")
    g.add_argument("--cluster", choices=("none", "local", "slurm"), default="none",
                   help="none: this process; local: submitit local jobs; slurm: a SLURM job array")  # fmt: skip
    g.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="none/local: runs at a time (default: one per GPU; on a CPU one per core, at most 4)",
    )
    g.add_argument(
        "--time", type=int, default=None, help=f"minutes per job (slurm default {SLURM_DEFAULT_TIME_MIN})"
    )
    g.add_argument("--partition", default=None, help="slurm: partition")
    g.add_argument("--account", default=None, help="slurm: account")
    g.add_argument(
        "--gpus-per-job", type=int, default=None, help="slurm: GPUs per job (default 1; 0 with --device cpu)"
    )
    g.add_argument("--cpus-per-job", type=int, default=8, help="slurm: CPUs per job")
    g.add_argument("--mem-gb", type=int, default=32, help="slurm: memory per job, GB")
    g.add_argument("--no-wait", action="store_true", help="slurm: submit, print how to gather later, exit")
    return p


def _summary(outcomes: list[RunOutcome], seconds: float) -> int:
    failed = [o for o in outcomes if not o.ok]
    print(f"[study] done in {seconds:.1f} s: {len(outcomes) - len(failed)} ok, {len(failed)} failed")
    for o in failed:
        places = (("see", o.notebook), ("log", o.log), ("job log", o.job_log))
        where = ", ".join(f"{label}: {path}" for label, path in places if path)
        print(f"[study]   {o.name}: {o.message}  ({where})")
    return 1 if failed else 0


def _design(args: argparse.Namespace) -> tuple[int, int | None]:
    """(folds, seeds) from ``--design`` and the explicit ``--folds``/``--seeds`` (which win)."""
    folds, seeds = args.folds, args.seeds
    if args.design == "powered":
        powered_folds, powered_seeds = powered_design()
        folds = powered_folds if folds is None else folds
        seeds = powered_seeds if seeds is None else seeds
    if folds is not None and folds < 0:
        raise ConfigError(f"--folds must be 0 or 1 (no cross-validation) or at least 2, got {folds}")
    return (folds if folds and folds >= 2 else 0), seeds


def _plan_only(args: argparse.Namespace, losses: list[str], folds: int, seeds: int | None, overrides: dict,
               remote_cuda: bool, grid: dict) -> int:  # fmt: skip
    """``--plan``: check the options as a study would, print :func:`print_plan`; write nothing."""
    from hie_core.training.experiment import default_study_name, project_root

    _check_losses_seeds(losses, seeds, args.seed_start)
    combos, overrides = _method_grid(losses, grid, overrides)
    config = _study_config(args.preset, args.device, args.data_dir, overrides, remote_cuda, folds,
                           args.synthetic_test_cases)  # fmt: skip
    run_device = "cuda" if remote_cuda else config.device
    config = dataclasses.replace(config, device=run_device)
    study_dir = (_runs_dir(args.runs_dir) / (args.study or default_study_name(config))).expanduser().resolve()
    _check_same_design(study_dir, config.folds)
    _check_combinations(combos, args.preset, args.device, args.data_dir, overrides, remote_cuda, folds,
                        args.synthetic_test_cases)  # fmt: skip
    configure = _configure(args.preset, args.device, args.data_dir, overrides, remote_cuda, folds,
                           args.synthetic_test_cases)  # fmt: skip
    runs = plan_grid(study_dir, losses, 1, 0, 0, combos, overrides,
                     reduce=functools.partial(method_settings, configure=configure))  # fmt: skip
    check_runs(runs, configure, memory=not remote_cuda)
    externals = parse_externals(args.external, [r.method for r in runs])
    counts, _ = _case_counts(config)
    if config.folds > _pool_size(counts):
        raise ConfigError(
            f"--folds {config.folds}: the pool holds {_pool_size(counts)} training and validation case(s)"
        )
    seeds = DEFAULT_SEEDS["cuda" if run_device.startswith("cuda") else "cpu"] if seeds is None else seeds
    lanes = make_engine(args, run_device, study_dir.name).jobs
    root = project_root(Path(__file__).resolve().parent)
    print_plan({"losses": losses, "seeds": seeds, "folds": config.folds, "combinations": len(combos),
                "methods": len({r.method for r in runs}), "externals": len(externals)}, config, study_dir, lanes,
               root)  # fmt: skip
    return 0


#: What a Ctrl-C ends the study with (exit status :data:`EXIT_INTERRUPTED`).
INTERRUPTED = "[study] interrupted; rerun the same command to resume"
#: The exit status of a study ended by Ctrl-C (128 + SIGINT, as a shell reports it).
EXIT_INTERRUPTED = 130


@exit_on_user_error("hie-study")
def main(argv: list[str] | None = None) -> int:
    """``hie-study``: exit 0 when every run and step finished, 1 when one failed, 2 on a user error,
    130 on Ctrl-C (one line, no traceback: the running notebook is stopped, its run resumes next time)."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print(INTERRUPTED, flush=True)
        return EXIT_INTERRUPTED


def _main(argv: list[str] | None) -> int:
    from hie_core.outputs import resolve_option

    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    # resolved once (links, "..", a trailing slash, relative to here) before anything compares or passes them on
    args.data_dir, args.runs_dir = resolve_option(args.data_dir), resolve_option(args.runs_dir)
    _check_engine_options(args)
    margins = margins_for(args.margin)
    train_notebook = project_root(Path(__file__).resolve().parent) / "notebooks" / "train.ipynb"
    allowed = notebook_parameters(train_notebook)
    overrides = parse_overrides(args.set, allowed)
    grid = parse_grid(args.grid, allowed, args.archs, fixed=list(overrides))
    losses = unique_losses(args.losses)
    remote_cuda = args.cluster == "slurm" and _slurm_gpus(args) > 0
    folds, seeds = _design(args)
    if args.plan:
        return _plan_only(args, losses, folds, seeds, overrides, remote_cuda, grid)
    plan = plan_study(_runs_dir(args.runs_dir), args.study, losses, seeds, args.seed_start, args.data_dir,
                      args.preset, args.device, overrides, remote_cuda, folds, args.synthetic_test_cases, grid,
                      args.external)  # fmt: skip
    engine = Engine() if args.gather else make_engine(args, plan.device, plan.study_dir.name)
    start = time.perf_counter()
    with study_lock(
        plan.study_dir
    ):  # one study per folder at a time: a second one stops here, naming the first
        outcomes = run_study(plan, engine, book=not args.no_book, gather=args.gather, margins=margins)
    if outcomes is None:
        again = [a for a in argv if a != "--no-wait"] + ["--gather"]
        print("[study] submitted without waiting. When every job has finished (squeue --me), gather with:\n"
              f"  {shlex.join([sys.executable, '-m', 'hie_core.study', *again])}")  # fmt: skip
        return 0
    return _summary(outcomes, time.perf_counter() - start)
