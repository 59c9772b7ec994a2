"""The command line of ``hie-study`` / ``python -m hie_core.study``: the options, the design they
name, ``--plan`` (the plan's dry run, then the forecast) and the exit status.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import time

from hie_core.errors import ConfigError, exit_on_user_error
from hie_core.losses import LOSS_NAMES
from hie_core.report.analysis.power import margins_for
from hie_core.study.checks import study_lock
from hie_core.study.engine import _check_engine_options, _slurm_gpus, make_engine, run_study
from hie_core.study.forecast import powered_design, print_plan
from hie_core.study.grid import (
    SLURM_DEFAULT_TIME_MIN,
    Engine,
    RunOutcome,
)
from hie_core.study.options import (
    parse_grid,
)
from hie_core.study.plan import (
    DEFAULT_SEEDS,
    DESIGNS,
    StudyPlan,
    _runs_dir,
    parse_overrides,
    plan_study,
    unique_losses,
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, like every other user error of the command
        raise ConfigError(message)


def _parser() -> argparse.ArgumentParser:
    from hie_core import study  # the package's docstring describes the command

    p = _Parser(prog="hie-study", description=study.__doc__.split("\n\n")[0])
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


def _print_forecast(args: argparse.Namespace, plan: StudyPlan, losses: list[str]) -> int:
    """``--plan``: the plan's dry run (:func:`hie_core.study.plan.plan_study`), then its forecast; writes nothing."""
    lanes = make_engine(args, plan.device, plan.study_dir.name).jobs
    design = {"losses": losses, "seeds": plan.seeds,
              "folds": plan.config.folds, "combinations": plan.combinations,
              "methods": len({r.method for r in plan.runs}), "externals": len(plan.externals)}  # fmt: skip
    print_plan(design, dataclasses.replace(plan.config, device=plan.device), plan.study_dir, lanes, plan.root)
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
    overrides = parse_overrides(args.set)
    grid = parse_grid(args.grid, args.archs, fixed=list(overrides))
    losses = unique_losses(args.losses)
    remote_cuda = args.cluster == "slurm" and _slurm_gpus(args) > 0
    folds, seeds = _design(args)
    plan = plan_study(_runs_dir(args.runs_dir), args.study, losses, seeds, args.seed_start, args.data_dir,
                      args.preset, args.device, overrides, remote_cuda, folds, args.synthetic_test_cases, grid,
                      args.external, dry_run=args.plan)  # fmt: skip
    if args.plan:
        return _print_forecast(args, plan, losses)
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
