"""The study's lesion-wise results: Table 1b, detection by lesion size, claim d on lesions.

Pure functions of the run folders' scores (:class:`hie_core.report.analysis.runs.StudyRuns`), like
:mod:`hie_core.report.analysis.tables`, for the lesion-wise metrics of :mod:`hie_core.lesions`
(26-connected components on the native grid, any-overlap matching, lesion-wise Dice). Written
by :func:`hie_core.report.analysis.results.write_results` per reported split:

- ``table1b_<split>.csv`` (:data:`TABLE1B_COLUMNS`): per method, over the cases with a lesion,
  the mean per case (runs averaged) and 95% CI of lesion sensitivity, lesion F1, lesion-wise
  Dice, false-positive lesions, signed and absolute volume error (mL); and, on the cases with an
  empty reference label (the empty-label endpoint), the false-positive lesions and their volume;
- ``lesion_bands_<split>.csv`` (:data:`BAND_COLUMNS`): per method and lesion size band
  (:data:`hie_core.lesions.SIZE_BANDS`, then all sizes), the share of reference lesions detected,
  pooled over the lesions of the cases and runs, and its 95% CI; the false-positive lesions of
  that size per case;
- ``lesion_claims_<split>.csv`` (the columns of ``hypotheses_<split>.csv``): claim d restated on
  lesions, one row per seed loss: within each case that has lesions under 0.1 mL and lesions of
  at least 0.1 mL, the detected share of the small ones minus that of the larger ones, paired by
  case and run; its own Holm family, with the detectable difference at the family's first step;
- lesion columns in ``per_case_<split>.csv`` (:func:`with_lesion_columns`).

Intervals come from the study's resampling (:mod:`hie_core.report.analysis.stats`: cases and runs
resampled independently). A pooled share is a ratio of sums: the detected and the reference
lesion counts are resampled with the same draws, and each resample's ratio enters the interval.

Run folders written before the lesion metrics get their ``lesions.csv`` from their saved masks:
:func:`add_lesion_files`, also ``python -m hie_core.report.analysis.lesion_tables runs/<study>``.

The computations are in :mod:`hie_core.report.analysis.lesion_stats` (pure functions of the score tables);
this module assembles them into the results, scores old run folders' masks and is the command
line. Every name below is importable from here.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import pandas as pd

from hie_core.errors import UserError, exit_on_user_error
from hie_core.report.analysis import lesion_stats as _stats
from hie_core.report.analysis.lesion_stats import (
    SMALL_LESION_ML as SMALL_LESION_ML,  # claim d's size edge (mL), read by the lesion figures
)
from hie_core.report.analysis.lesion_stats import (
    band_counts,
    lesion_bands,
    lesion_claims,
    lesion_run_scores,
    ratio_ci,
    table1b,
    with_lesion_columns,
)

__all__ = [
    "ALL_SIZES",
    "CONNECTIVITY_WORDS",
    "BAND_COLUMNS",
    "LESION_KINDS",
    "PER_CASE_LESION_COLUMNS",
    "TABLE1B_COLUMNS",
    "add_lesion_files",
    "add_lesion_results",
    "band_counts",
    "lesion_bands",
    "lesion_claims",
    "lesion_run_scores",
    "main",
    "ratio_ci",
    "score_lines",
    "table1b",
    "with_lesion_columns",
]

# The constants again under this module's name, with the documentation they are read by.
#: The result files this module adds per split (``<kind>_<split>.csv``).
LESION_KINDS: tuple[str, ...] = _stats.LESION_KINDS
#: The band row of every lesion, whatever its size.
ALL_SIZES: str = _stats.ALL_SIZES
#: Lesion columns added to ``per_case_<split>.csv`` (runs averaged), with the reference volume.
PER_CASE_LESION_COLUMNS: tuple[str, ...] = _stats.PER_CASE_LESION_COLUMNS
#: Columns of ``table1b_<split>.csv``.
TABLE1B_COLUMNS: tuple[str, ...] = _stats.TABLE1B_COLUMNS
#: Columns of ``lesion_bands_<split>.csv``.
BAND_COLUMNS: tuple[str, ...] = _stats.BAND_COLUMNS
#: How a reader reads what a lesion is.
CONNECTIVITY_WORDS: str = _stats.CONNECTIVITY_WORDS


def add_lesion_results(runs, out: dict[str, dict[str, pd.DataFrame]]) -> None:
    """Add the lesion-wise tables of every split of ``out`` (``compute_results``' tables), in place.

    Adds :data:`LESION_KINDS` per split and :data:`PER_CASE_LESION_COLUMNS` to its ``per_case``.

    Args:
        runs: The study's :class:`hie_core.report.analysis.runs.StudyRuns`.
        out: ``{split: {kind: table}}``.
    """
    from hie_core.report.analysis.runs import REFERENCES

    scores = runs.scores()
    scored = lesion_run_scores(scores)
    counts = band_counts(runs.lesions(), scored)
    methods = [*runs.methods, *REFERENCES]
    scored_any = scored.groupby(["method", "split"])["n_ref_lesions"].apply(lambda v: bool(v.notna().any()))
    for split, kinds in out.items():
        with_rows = [
            m for m in methods if scored_any.get((m, split), False)
        ]  # a run folder without lesion scores: none
        kinds["per_case"] = with_lesion_columns(kinds["per_case"], scores)
        kinds["table1b"] = table1b(scored, split, methods)
        kinds["lesion_bands"] = lesion_bands(counts, split, with_rows)
        kinds["lesion_claims"] = lesion_claims(
            counts, split, [m for m in runs.seed_methods if m in with_rows]
        )


def _format(row: pd.Series, metric: str, digits: int = 3) -> str:
    mean, low, high = (row[f"{metric}_{s}"] for s in ("mean", "ci_low", "ci_high"))
    if not math.isfinite(mean):
        return "n/a"
    interval = f" [{low:.{digits}f}, {high:.{digits}f}]" if math.isfinite(low) and math.isfinite(high) else ""
    return f"{mean:.{digits}f}{interval}"


def score_lines(metrics: pd.DataFrame) -> list[str]:
    """``hie-score``'s lesion-wise summary: per split, Table 1b's row of one set of masks (one run).

    Args:
        metrics: :func:`hie_core.study.external.score_predictions` rows (a run's ``metrics.csv`` columns).
    """
    runs = lesion_run_scores(metrics.assign(method="scored", seed=0))
    lines = []
    for split in dict.fromkeys(metrics["split"].dropna()):
        row = table1b(runs, split, ["scored"]).iloc[0]
        line = (f"{split}: lesions ({CONNECTIVITY_WORDS}), {int(row['n_cases'])} case(s) with a lesion, "
                f"{row['n_ref_lesions']} reference lesion(s), mean per case [95% CI]: sensitivity "
                f"{_format(row, 'lesion_sensitivity')}; F1 {_format(row, 'lesion_f1')}; lesion-wise Dice "
                f"{_format(row, 'lesion_dice')}; false-positive lesions {_format(row, 'n_fp_lesions', 2)}; volume "
                f"error (predicted - reference) {_format(row, 'volume_error_ml', 2)} mL, absolute "
                f"{_format(row, 'abs_volume_error_ml', 2)} mL")  # fmt: skip
        if row["empty_cases"]:
            line += (f"; {int(row['empty_cases'])} empty label(s): {row['empty_fp_lesions_mean']:.2f} false-positive "
                     f"lesion(s), {row['empty_fp_lesion_volume_ml_mean']:.3g} mL per case")  # fmt: skip
        lines.append(line)
    return lines


def _data_dir(runs) -> Path:
    from hie_core.report.analysis.runs import StudyFolderError

    for run in runs.runs:
        folder = run.config.get("data_dir_resolved") if run.config else None
        if folder and Path(folder).is_dir():
            return Path(folder)
    raise StudyFolderError(f"{runs.study_dir}: no run names a data folder that exists (data_dir_resolved in its "
                           "config.json); the lesion metrics need the reference labels: restore the data folder")  # fmt: skip


def add_lesion_files(
    study_dir: str | Path, force: bool = False, skip_unscorable: bool = False
) -> dict[str, float]:
    """Write ``lesions.csv`` into every finished run folder (and baseline, ceiling) of a study that lacks one.

    Each scored case's saved mask (``predictions/<split>/<case>_lesion.mha``) is scored against
    its reference label with :func:`hie_core.lesions.lesion_metrics`; the run's ``metrics.csv``
    is not touched (its checksum stays valid), and :mod:`hie_core.report.analysis.runs` reads the lesion
    columns from ``lesions.csv`` when ``metrics.csv`` has none.

    Args:
        study_dir: The study folder.
        force: Rewrite every ``lesions.csv``, also those the runs wrote.
        skip_unscorable: Leave a folder without ``lesions.csv`` when its masks or the data folder
            are missing, instead of raising (its lesion columns stay NaN; the results step does this).

    Returns:
        ``folders`` written, ``cases`` scored, ``skipped`` folders and ``seconds`` spent.

    Raises:
        StudyFolderError: A run's saved mask or the data folder is missing (named in the message).
    """
    from hie_core.data import discover_cases
    from hie_core.report.analysis.runs import LESIONS_CSV, find_runs
    from hie_core.run_folder import write_lesions

    t0 = time.perf_counter()
    runs = find_runs(study_dir)
    todo = [r for r in runs.runs if force or not (r.path / LESIONS_CSV).is_file()]
    done = {"folders": 0, "cases": 0, "skipped": 0, "seconds": 0.0}
    try:
        cases = {c.case_id: c for c in discover_cases(_data_dir(runs))} if todo else {}
    except UserError:  # no data folder, or one that is not a BONBID-HIE folder
        if not skip_unscorable:
            raise
        todo, done["skipped"] = [], len(todo)
    references: dict[str, tuple] = {}
    for run in todo:
        try:
            rows = _lesion_rows(run, cases, references)
        except UserError:  # a mask or label missing or unreadable
            if not skip_unscorable:
                raise
            done["skipped"] += 1
            continue
        write_lesions(rows, run.path)
        done["folders"] += 1
        done["cases"] += len(run.metrics)
    return {**done, "seconds": time.perf_counter() - t0}


def _lesion_rows(run, cases: dict, references: dict[str, tuple]) -> list[dict]:
    """The ``lesions.csv`` rows of one run folder from its saved masks (``references``: a cache of labels)."""
    import dataclasses

    from hie_core.io import read_image
    from hie_core.lesions import lesion_metrics
    from hie_core.report.analysis.runs import StudyFolderError, load_prediction
    from hie_core.run_folder import prediction_path

    rows = []
    for case_id, split in zip(run.metrics["case_id"], run.metrics["split"], strict=True):
        if case_id not in cases or cases[case_id].label is None:
            raise StudyFolderError(f"{run.path / 'metrics.csv'}: case {case_id} has no reference label in the data "
                                   "folder; restore the data folder the study used")  # fmt: skip
        case = dataclasses.replace(cases[case_id], split=None if pd.isna(split) else str(split))
        pred = load_prediction(run.path, case)
        if pred is None:
            raise StudyFolderError(f"{prediction_path(run.path, case)}: missing; the lesion metrics of "
                                   f"{run.path} are computed from its saved masks: run the study again "
                                   "with the same options to redo that run")  # fmt: skip
        if case_id not in references:
            label, geometry = read_image(case.label)
            references[case_id] = (label > 0, geometry.spacing_mm)
        ref, spacing = references[case_id]
        rows += lesion_metrics(pred, ref, spacing).rows(case_id, case.split)
    return rows


@exit_on_user_error("hie-lesions")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hie-lesions",
        description="Write lesions.csv (lesion-wise metrics from the saved masks) into the run folders of a study "
        "that lack one; then `python -m hie_core.report.analysis.results` reports them.",
    )
    parser.add_argument("study_dir", help="a study folder, e.g. runs/quick")
    parser.add_argument(
        "--force", action="store_true", help="rewrite every lesions.csv, also those the runs wrote"
    )
    args = parser.parse_args(argv)
    done = add_lesion_files(args.study_dir, args.force)
    per_case = done["seconds"] / done["cases"] if done["cases"] else 0.0
    print(f"lesions.csv written in {done['folders']} run folder(s): {done['cases']} case(s) scored in "
          f"{done['seconds']:.1f} s ({per_case:.3f} s per case)")  # fmt: skip
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
