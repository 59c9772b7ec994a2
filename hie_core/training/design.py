"""Which cases a run trains on and which it reports: the study design's split of the data.

Without folds, the training split trains (its selection set for early stopping is carved out
later) and the validation and test splits are reported. With ``folds`` K, the training and
validation cases form the pool; fold ``fold`` of it (:func:`cv_folds`, the same for every loss
and seed) is reported as split :data:`CV_SPLIT`, the rest trains, and the test split is
reported as always. The reference methods (threshold baseline, resampling ceiling) score the
reported splits of the same design.
"""

from __future__ import annotations

import dataclasses

from hie_core.data import Case, ValidationReport, kfold
from hie_core.errors import UserError
from hie_core.training.config import TrainConfig

__all__ = ["FOLD_SEED", "CV_SPLIT", "POOL_SPLITS", "cv_folds", "design_cases", "reference_cases"]

#: Seed of the cross-validation partition, one partition for every loss and seed, so that the
#: losses are compared case by case (each case scored by models that never saw it).
FOLD_SEED = 0
#: The split name of held-out fold cases in ``metrics.csv``.
CV_SPLIT = "cv"
#: Splits pooled for cross-validation (``None``: a folder without split folders).
POOL_SPLITS = ("train", "val", None)


def _strata(report: ValidationReport) -> dict[str, str]:
    """Case id -> lesion-burden stratum (``"empty"``, or the challenge's), for stratified folds."""
    from hie_core.metrics import burden_stratum

    return {r.case.case_id: "empty" if not r.lesion_voxels else burden_stratum(r.burden_percent or 0.0)
            for r in report.cases}  # fmt: skip


def cv_folds(cases: list[Case], report: ValidationReport, folds: int) -> list[tuple[list[Case], list[Case]]]:
    """The cross-validation partition of the pool (training and validation cases): ``folds`` pairs.

    Each pair is (training cases, held-out fold), by :func:`hie_core.data.kfold` with
    :data:`FOLD_SEED`, stratified by lesion burden. It depends on the data only, never on the
    loss or the run's seed: every case is held out by exactly one fold, for every loss.

    Args:
        cases, report: from :func:`hie_core.data.load_dataset`.
        folds: K >= 2.
    """
    pool = [c for c in cases if c.split in POOL_SPLITS]
    if not 2 <= folds <= len(pool):
        raise UserError(f"folds {folds}: the pool holds {len(pool)} training and validation case(s); "
                        f"use 2 to {len(pool)} folds")  # fmt: skip
    return kfold(pool, folds, FOLD_SEED, strata=_strata(report))


def design_cases(
    cases: list[Case], report: ValidationReport, config: TrainConfig
) -> tuple[list[Case], list[Case]]:
    """(training cases, reported cases) of a run, as the module docstring says.

    The selection set for early stopping is carved out of the training cases later. Held-out
    fold cases are returned with split :data:`CV_SPLIT` (so they are scored and saved as such).
    """
    test = [c for c in cases if c.split == "test"]
    if config.folds >= 2:
        train, held = cv_folds(cases, report, config.folds)[config.fold]
        return train, [dataclasses.replace(c, split=CV_SPLIT) for c in held] + test
    return [c for c in cases if c.split in ("train", None)], [c for c in cases if c.split in ("val", "test")]


def reference_cases(cases: list[Case], cv: bool) -> list[Case]:
    """The cases a reference method (baseline, ceiling) scores: a run's reported splits.

    With ``cv`` every pool case counts as split :data:`CV_SPLIT` (a reference has no training,
    so no case is held out from it), then the test split.
    """
    if cv:
        pool = [dataclasses.replace(c, split=CV_SPLIT) for c in cases if c.split in POOL_SPLITS]
        return pool + [c for c in cases if c.split == "test"]
    return [c for c in cases if c.split in ("val", "test")]
