"""Seeded, deterministic selection sets carved out of the training split
(:func:`~hie_core.data.carve_validation`, :func:`~hie_core.data.kfold`), so that reported
validation and test cases are never used for model selection.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from hie_core.data.layout import Case

__all__ = ["carve_validation", "kfold"]


def _seeded_order(cases: Sequence[Case], seed: int) -> list[Case]:
    ordered = sorted(cases, key=lambda c: c.case_id)
    rng = np.random.default_rng(seed)
    return [ordered[i] for i in rng.permutation(len(ordered))]


def carve_validation(
    cases: Sequence[Case], fraction: float = 0.2, seed: int = 0, n_val: int | None = None
) -> tuple[list[Case], list[Case]]:
    """Split training cases into (fit, selection) sets for early stopping.

    The result depends only on the case ids and the seed, not on the input order.

    Args:
        cases: the training cases (never pass reported validation or test cases).
        fraction: share of cases for the selection set (ignored if ``n_val`` is given).
        seed: the split seed.
        n_val: exact number of selection cases.

    Returns:
        ``(fit_cases, selection_cases)``, each sorted by id.
    """
    if n_val is None:
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"fraction must be in (0, 1), got {fraction}")
        n_val = max(1, round(fraction * len(cases)))
    if not 0 < n_val < len(cases):
        raise ValueError(f"cannot carve {n_val} selection case(s) out of {len(cases)} training case(s)")
    order = _seeded_order(cases, seed)
    by_id = lambda cs: sorted(cs, key=lambda c: c.case_id)  # noqa: E731
    return by_id(order[n_val:]), by_id(order[:n_val])


def kfold(
    cases: Sequence[Case], k: int = 5, seed: int = 0, strata: Mapping[str, str] | None = None
) -> list[tuple[list[Case], list[Case]]]:
    """Seeded k-fold partition of training cases: ``k`` (fit, selection) pairs.

    Every case is in exactly one selection set; fold sizes differ by at most one. The result
    depends only on the case ids, ``seed`` and ``strata``, not on the input order.

    Args:
        cases: the cases to partition.
        k: the number of folds (2 to ``len(cases)``).
        seed: the partition seed.
        strata: optional case id -> stratum (e.g. the lesion-burden stratum): each stratum's
            cases are then spread over the folds as evenly as the fold sizes allow.
    """
    if not 2 <= k <= len(cases):
        raise ValueError(f"k must be between 2 and the number of cases ({len(cases)}), got {k}")
    order = _seeded_order(cases, seed)
    if strata is not None:
        missing = [c.case_id for c in cases if c.case_id not in strata]
        if missing:
            raise ValueError(f"strata has no stratum for case(s) {missing[:3]}")
        names = sorted({strata[c.case_id] for c in cases})
        order = [c for name in names for c in order if strata[c.case_id] == name]  # dealt stratum by stratum
    folds = [order[i::k] for i in range(k)]
    out = []
    for i in range(k):
        fit = [c for j, f in enumerate(folds) if j != i for c in f]
        out.append((sorted(fit, key=lambda c: c.case_id), sorted(folds[i], key=lambda c: c.case_id)))
    return out
