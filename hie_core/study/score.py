"""``hie-score``: a folder of predicted masks scored with the study's metrics and the study's endpoint.

``hie-score PRED_FOLDER [--data-dir DIR] [--split test] [--out scores.csv]`` (also
``python -m hie_core.study.score``) checks every mask (:func:`hie_core.study.external.load_and_check`),
scores each case (:func:`hie_core.study.external.score_predictions`) with a progress line on standard
error, then prints the per-case scores and, per split, the numbers Table 1 of a study would give
these masks (:func:`hie_core.report.analysis.tables.table1`):

- Dice and NSD: the mean and 95% bootstrap CI over the cases **with a lesion**; MASD over those
  of them where it is defined (an empty prediction has none);
- the cases whose reference label is empty, reported apart, in the stratum ``"empty label"``
  (as in ``per_case_<split>.csv``): how many got a false positive, and its mean volume.

``PRED_FOLDER`` holds ``<case_id>_lesion.mha`` files, or its ``3LABEL/`` does, or (a run's
layout, ``<run>/predictions``) its ``<split>/`` subfolders do; a notice says which masks were
scored when a folder holds masks in more than one of these places.

``--out`` writes the per-case scores (a run's ``metrics.csv`` columns, strata named as above)
and a record beside them, ``<out>.hie-score.json`` (what was scored, and the table's SHA-256).
It never lands inside the data folder, the mask folder or a run folder that holds the masks,
nor on an existing file that is not an unchanged earlier ``--out`` of ``hie-score``
(:mod:`hie_core.outputs`); it is checked before anything is scored. Every user error is one
message and exit status 2; a closed pipe (``| head -1``) ends quietly.
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from pathlib import Path

import pandas as pd

from hie_core.errors import exit_on_user_error
from hie_core.outputs import (
    Read,
    check_outputs,
    record_path,
    resolve_path,
    run_folder_of,
    write_record,
)
from hie_core.progress import Progress, Tracked, say
from hie_core.study.external import ExternalPredictionWarning, load_and_check, score_predictions

__all__ = ["endpoint", "endpoint_lines", "main", "with_report_strata"]

PROG = "hie-score"
#: The method name of the scored masks in :func:`endpoint`'s Table 1 row.
_METHOD = "scored"


def with_report_strata(metrics: pd.DataFrame) -> pd.DataFrame:
    """``metrics`` with the report's strata: a case with an empty reference label is ``"empty label"``."""
    from hie_core.report.analysis.tables import EMPTY_STRATUM

    out = metrics.copy()
    out.loc[out["n_ref"] == 0, "stratum"] = EMPTY_STRATUM
    return out


def endpoint(metrics: pd.DataFrame) -> pd.DataFrame:
    """Table 1's row of these masks, per split (:func:`hie_core.report.analysis.tables.table1`, one run).

    Args:
        metrics: :func:`hie_core.study.external.score_predictions` rows.

    Returns:
        One row per split (column ``split`` first, then :data:`hie_core.report.analysis.tables.TABLE1_COLUMNS`):
        Dice and NSD over the cases with a lesion, MASD over those where it is defined,
        ``empty_cases``, ``fp_cases`` and ``fp_volume_ml_mean`` for the empty labels.
    """
    from hie_core.report.analysis.tables import run_scores, seed_average, table1

    runs = run_scores(metrics.assign(method=_METHOD, seed=0))
    per_case = seed_average(runs)
    rows = [table1(per_case, runs, split, [_METHOD]).assign(split=split)
            for split in dict.fromkeys(metrics["split"].dropna())]  # fmt: skip
    table = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    return table[["split", *[c for c in table.columns if c != "split"]]] if len(table) else table


def _mean_ci(row: pd.Series, metric: str, unit: str = "") -> str:
    mean, low, high = (row[f"{metric}_{s}"] for s in ("mean", "ci_low", "ci_high"))
    if not math.isfinite(mean):
        return "n/a"
    ci = f" [{low:.3f}, {high:.3f}]" if math.isfinite(low) and math.isfinite(high) else " (no CI: one case)"
    return f"{mean:.3f}{unit}{ci}"


def endpoint_lines(metrics: pd.DataFrame) -> list[str]:
    """The printed summary: one line per split with the study's endpoint, and the empty labels apart."""
    lines = []
    for _, row in endpoint(metrics).iterrows():
        n, undefined = int(row["n_cases"]), int(row["masd_undefined"])
        masd = f"MASD {_mean_ci(row, 'masd_mm', ' mm')}" + (
            f" over {int(row['masd_cases'])} ({undefined} undefined: an empty prediction)"
            if undefined
            else ""
        )
        line = (f"{row['split']}: {n} case(s) with a lesion, mean [95% bootstrap CI]: Dice {_mean_ci(row, 'dice')}; "
                f"{masd}; NSD {_mean_ci(row, 'nsd')}")  # fmt: skip
        empty = int(row["empty_cases"])
        if empty:
            volume = row["fp_volume_ml_mean"]
            fp = int(row["fp_cases"])
            line += (f"; {empty} case(s) with an empty label, reported apart (not in the means, as in Table 1): "
                     f"{fp} with a false positive" + (f" ({volume:.3g} ml on average)" if fp and math.isfinite(volume)
                                                      else ""))  # fmt: skip
        lines.append(line)
    return lines


def _print_scores(metrics: pd.DataFrame) -> None:
    from hie_core.report.analysis.lesion_tables import score_lines

    shown = with_report_strata(metrics)[
        ["case_id", "split", "stratum", "dice", "masd_mm", "nsd", "n_pred", "n_ref", "n_ref_lesions",
         "n_detected_lesions", "n_fp_lesions", "lesion_dice", "volume_error_ml"]
    ]  # fmt: skip
    say(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}", na_rep="n/a"))
    for line in [*endpoint_lines(metrics), *score_lines(metrics)]:
        say(line)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Score a folder of predicted lesion masks (<case_id>_lesion.mha, 0/1 on each case's native "
        "grid) against BONBID-HIE reference labels with the official metrics (Dice, MASD, NSD at 2 mm).",
    )
    parser.add_argument("pred_folder", help="the masks: in the folder, its 3LABEL/ subfolder, or its <split>/ "
                        "subfolders (a run's predictions/ folder); only read")  # fmt: skip
    parser.add_argument("--data-dir", default="", help="the BONBID-HIE release root or a split folder "
                        "(default: the embedded synthetic dataset of the quick preset)")  # fmt: skip
    parser.add_argument(
        "--split", default="test", help="the split(s) to score, comma-separated (default test)"
    )
    parser.add_argument("--out", default=None, help="also write the per-case scores to this CSV (a run's "
                        "metrics.csv columns) and a record beside it, <out>.hie-score.json")  # fmt: skip
    return parser


def _default_data_dir() -> Path:
    from hie_core.run_folder import resolve_data_dir
    from hie_core.training.config import make_config

    return resolve_data_dir(make_config(preset="quick", device="cpu"))


def _check_out(out: str, data_dir: Path, pred_folder: Path) -> None:
    """``--out`` (and its record) outside what is read, and not on a file hie-score did not write."""
    reads = [Read(data_dir, "data folder"), Read(pred_folder, "mask folder")]
    run = run_folder_of(pred_folder)
    if run is not None:
        reads.append(Read(run, "run folder"))
    check_outputs(PROG, [out], reads)  # its record, <out>.hie-score.json, goes beside it and follows it


def _show_notices(caught: list[warnings.WarningMessage]) -> None:
    for item in caught:
        if issubclass(item.category, ExternalPredictionWarning):
            print(f"{PROG}: note: {item.message}", file=sys.stderr, flush=True)
        else:
            warnings.showwarning(item.message, item.category, item.filename, item.lineno)


@exit_on_user_error(PROG)
def main(argv: list[str] | None = None) -> int:
    """Run ``hie-score``; 0 when scored, 2 (one message, nothing written) on a user error."""
    args = _parser().parse_args(argv)
    data_dir = resolve_path(args.data_dir) if args.data_dir else _default_data_dir()
    pred_folder = resolve_path(args.pred_folder)
    if args.out:
        _check_out(args.out, data_dir, pred_folder)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ExternalPredictionWarning)
        masks, _ = load_and_check(pred_folder, data_dir, args.split)
    _show_notices(caught)
    progress = Progress(len(masks), PROG, stream=sys.stderr)
    metrics = score_predictions(Tracked(masks, progress, lambda mask: mask.case.case_id))
    progress.close()
    if args.out:  # a disk or permission problem is a WriteError: one line, like every other user error
        from hie_core.io import atomic_write_text

        atomic_write_text(args.out, with_report_strata(metrics).to_csv(index=False))
        write_record(args.out, PROG, {"pred_folder": str(pred_folder), "data_dir": str(data_dir),
                                      "split": args.split, "cases": len(metrics)})  # fmt: skip
    _print_scores(metrics)
    if args.out:
        say(f"per-case scores written to {args.out} (record: {record_path(args.out, PROG)})")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
