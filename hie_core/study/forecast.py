"""What a design will cost and detect before it runs: ``--design powered`` (:func:`powered_design`) and
the ``--plan`` report (:func:`print_plan`: runs, time, and the minimum detectable difference per split).
"""

from __future__ import annotations

import functools
from pathlib import Path

from hie_core.report.analysis.power import TARGET_DICE
from hie_core.report.analysis.seed_study import PRIMARY_CONTRASTS
from hie_core.report.viewers.display import plural
from hie_core.study.plan import _case_counts, _pool_size, reported_splits

#: BONBID-HIE's case counts (Part I, Zenodo record 10602767), the sizes ``--design powered`` is chosen for.
BONBID_COUNTS = {"train": 85, "val": 4, "test": 44}


#: Folds of the powered design, and its fewest seeds; an effect of one training run, shared by
#: all its cases, does not shrink with more cases, only with more runs (the Analysis plan, ``book/analysis-plan.md``).
POWERED_FOLDS, POWERED_MIN_SEEDS = 5, 5


#: Seconds per whole run by device kind and preset, each with its source (``--plan``'s fallback).
RUN_SECONDS_JSON = (
    Path("benchmarks") / "results" / "run_seconds.json"
)  # = hie_core.report.analysis.forecast.RUN_SECONDS_JSON


@functools.cache
def powered_design() -> tuple[int, int]:
    """(folds, seeds) of ``--design powered``: ``POWERED_FOLDS`` folds and the fewest seeds,
    at least ``POWERED_MIN_SEEDS``, whose minimum detectable difference on BONBID-HIE's sizes
    (:data:`BONBID_COUNTS`), with :func:`hie_core.report.analysis.power.default_noise` (the crossed model, t
    quantiles; :func:`hie_core.report.analysis.forecast.split_mdd`), is at most
    :data:`hie_core.report.analysis.power.TARGET_DICE` in both the ``cv`` and the ``test`` split (Holm over
    :data:`hie_core.report.analysis.seed_study.PRIMARY_CONTRASTS`)."""
    from hie_core.report.analysis.forecast import split_mdd
    from hie_core.report.analysis.power import default_noise

    splits = reported_splits(BONBID_COUNTS, POWERED_FOLDS)
    for seeds in range(POWERED_MIN_SEEDS, 1000):
        if all(split_mdd(default_noise(), split, n, seeds, POWERED_FOLDS, len(PRIMARY_CONTRASTS)) <= TARGET_DICE
               for split, n in splits.items()):  # fmt: skip
            return POWERED_FOLDS, seeds
    raise RuntimeError("no seed count reaches the powered design's target")  # pragma: no cover


def print_plan(plan_args: dict, config, study_dir: Path, lanes: int, root: Path) -> bool:
    """Print the design's run count, projected hours (whole-run seconds), the noise, each split's minimum
    detectable difference and its case floor (:mod:`hie_core.report.analysis.forecast`); write nothing.

    Args:
        plan_args: ``losses``, ``seeds``, ``folds`` of the design; optionally ``combinations``
            (grid combinations per loss, 1 without a grid) and ``externals`` (outside methods).
        config: the study's TrainConfig (preset, device, data; nothing is generated).
        study_dir: the study folder (read, when it exists, for measured seconds and noise).
        lanes: runs at a time (``--jobs``, or the engine's default).
        root: the project root (holds ``RUN_SECONDS_JSON``).

    Returns:
        Whether every judged split (``cv`` and ``test``) reaches :data:`hie_core.report.analysis.power.TARGET_DICE`.
    """
    from hie_core.report.analysis.forecast import run_seconds, split_mdd, study_noise
    from hie_core.report.analysis.power import ALPHA, POWER, case_floor

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
