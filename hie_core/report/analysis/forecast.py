"""What ``--plan`` forecasts: seconds per whole run, and the noise and detectable difference of a design.

- :func:`run_seconds`: seconds per **whole** run (notebook start, training, evaluation): the
  median over a study folder's trained runs of their executed notebook's duration (papermill's
  ``metadata.papermill.duration`` in ``<method>/seed<k>/train.ipynb``), else the entry of
  ``benchmarks/results/run_seconds.json`` for the device kind and preset;
- :func:`study_noise`: the variance components (case, run, case x run) of the primary contrasts
  measured in a study folder (the noisier one at the planned design), else
  :func:`hie_core.report.analysis.power.default_noise`;
- :func:`split_mdd`: the minimum detectable difference of one reported split of a design: the
  ``cv`` split pools out-of-fold predictions (``folds`` models per seed, each scoring its own
  fold's cases); a held-out split of a cross-validated study is scored by every fold model of a
  seed and averaged, so its run and case x run parts shrink by ``sqrt(folds)`` (fold models taken
  as independent trained models).
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

from hie_core.report.analysis.power import NoiseModel, default_noise, mdd, noise_from_matrix
from hie_core.run_folder import SUMMARY_FILE, study_run_folders

__all__ = ["RUN_SECONDS_JSON", "run_seconds", "split_mdd", "split_noise", "study_noise"]

#: Seconds per whole run by device kind and preset, each with its source (``--plan``'s fallback).
RUN_SECONDS_JSON = Path("benchmarks") / "results" / "run_seconds.json"


def _whole_run_seconds(run_dir: Path) -> float | None:
    """The executed notebook's duration when the notebook trained the run (not a reload of a finished one)."""
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
        notebook = json.loads((run_dir / "train.ipynb").read_text())
    except (OSError, ValueError):
        return None
    duration = notebook.get("metadata", {}).get("papermill", {}).get("duration")
    trained = summary.get("train_seconds_this_call")
    if isinstance(duration, (int, float)) and isinstance(trained, (int, float)) and duration >= trained:
        return float(duration)
    return None


def run_seconds(root: Path, study_dir: Path, kind: str, preset: str) -> tuple[float | None, str]:
    """Seconds per whole run and where the number comes from (see the module docstring).

    Args:
        root: The project root (holds ``RUN_SECONDS_JSON``).
        study_dir: The study folder (its finished runs are measured when there are any).
        kind: ``"cpu"`` or ``"cuda"``.
        preset: The runs' preset.
    """
    measured = [
        s for run in study_run_folders(study_dir) if (run / SUMMARY_FILE).is_file() and (s := _whole_run_seconds(run))
    ]
    if measured:
        source = (f"median whole-run time (notebook start, training, evaluation) of "
                  f"{len(measured)} trained run(s) in {study_dir}")  # fmt: skip
        return statistics.median(measured), source
    try:
        entry = json.loads((root / RUN_SECONDS_JSON).read_text())[kind][preset]
        return float(entry["seconds_per_run"]), f"{RUN_SECONDS_JSON} [{kind}][{preset}]: {entry['source']}"
    except (OSError, ValueError, KeyError, TypeError):
        return None, f"no trained run in {study_dir} and no {kind}/{preset} entry in {RUN_SECONDS_JSON}"


def study_noise(study_dir: Path, n_cases: int, seeds: int, n_tests: int) -> NoiseModel:
    """The components of the primary contrasts measured in ``study_dir`` on its test split (else ``cv``, else
    ``val``; the noisier contrast at ``n_cases`` x ``seeds``), else :func:`hie_core.report.analysis.power.default_noise`
    (no run folder, or fewer than 2 cases x 2 runs)."""
    if not any((run / SUMMARY_FILE).is_file() for run in study_run_folders(study_dir)):
        return default_noise()
    from hie_core.report.analysis import tables
    from hie_core.report.analysis.seed_study import PRIMARY_CONTRASTS
    from hie_core.report.analysis.study_model import load_study

    scores = load_study(study_dir).scores()
    per_case = tables.seed_average(scores)
    found = []
    split = next(
        (s for s in ("test", "cv", "val") if s in set(scores["split"])), None
    )  # the largest judged split
    if split is not None:
        for a, b in PRIMARY_CONTRASTS:
            cases = tables.lesion_cases(per_case, split, [a, b])
            if len(cases) < 2:
                continue
            ma, mb = (tables.matrix(scores, m, split, "dice", cases) for m in (a, b))
            if (
                ma.shape != mb.shape
                or ma.shape[1] < 2
                or not (math.isfinite(ma.sum()) and math.isfinite(mb.sum()))
            ):
                continue
            source = f"measured in {study_dir}: {a} - {b} on {split}, {len(cases)} cases x {ma.shape[1]} runs"
            found.append(noise_from_matrix(ma - mb, source))
    if not found:
        return default_noise()
    return max(found, key=lambda n: mdd(n, n_cases, seeds, n_tests))


def split_noise(noise: NoiseModel, split: str, folds: int) -> NoiseModel:
    """The components of a held-out split's fold-averaged scores in a cross-validated study (else ``noise``)."""
    if folds >= 2 and split != "cv":
        k = math.sqrt(folds)
        return NoiseModel(noise.sd_case, noise.sd_run / k, noise.sd_case_run / k,
                          f"{noise.source}; run parts / sqrt({folds}): each seed's {folds} fold models averaged")  # fmt: skip
    return noise


def split_mdd(noise: NoiseModel, split: str, n_cases: int, seeds: int, folds: int, n_tests: int) -> float:
    """Minimum detectable difference of ``split`` at the design (see the module docstring)."""
    if split == "cv" and folds >= 2:
        return mdd(noise, n_cases, seeds, n_tests, folds=folds)
    return mdd(split_noise(noise, split, folds), n_cases, seeds, n_tests)
