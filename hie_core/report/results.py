"""The study's numbers as files: ``runs/<study>/results/``, written once, read by every page.

:func:`write_results` reads every run folder of a study (``hie_core.report.runs.find_runs``),
computes the tables of :mod:`hie_core.report.tables` and writes, per reported split
(:data:`SPLITS`):

- ``table1_<split>.csv``: one row per method (each loss, ``baseline``, ``ceiling``): n, mean and
  95% CI of Dice, MASD (mm) and NSD, undefined MASD count, challenge ranks, between-seed SD;
- ``comparisons_<split>.csv``: each loss against the Dice loss and the baseline, per metric:
  mean paired difference, paired bootstrap CI, Wilcoxon p, Holm-adjusted p;
- ``strata_<split>.csv``: the same statistics per lesion-burden stratum;
- ``per_case_<split>.csv``: one row per case and method, seeds averaged;

and ``study.json`` (data folder, synthetic, preset, seeds, devices, code fingerprint, the run
configuration). Everything is computed and checked before the first file is written, and each
file is written atomically. A user can cite these files; :func:`read_results` loads them.

Command line: ``python -m hie_core.report.results runs/<study>``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from hie_core.errors import exit_on_user_error
from hie_core.io import atomic_write_text
from hie_core.report import tables
from hie_core.report.runs import REFERENCES, StudyFolderError, StudyRuns, find_runs
from hie_core.report.stats import CONFIDENCE, N_RESAMPLES

__all__ = [
    "COMPARISON_REFERENCES",
    "RESULTS_DIR",
    "SPLITS",
    "StudyResults",
    "read_results",
    "write_results",
    "main",
]

RESULTS_DIR = "results"
#: The reported splits, the test split first, then the official validation split.
SPLITS = ("test", "val")
#: Every loss is compared with these (when present): the Dice loss and the threshold baseline.
COMPARISON_REFERENCES = ("dice", "baseline")
_KINDS = ("table1", "comparisons", "strata", "per_case")
_RUN_KEYS_DROPPED = ("loss", "seed", "output_dir", "device", "data_dir")


def _unique(values: list[Any]) -> Any:
    """The one value if all agree, else the sorted distinct values (None dropped)."""
    distinct = sorted({json.dumps(v, sort_keys=True) for v in values if v is not None})
    loaded = [json.loads(v) for v in distinct]
    return loaded[0] if len(loaded) == 1 else (loaded or None)


def _code_fingerprint(fingerprint: Any) -> Any:
    """The part of a run's fingerprint that names the code: without the configuration hash, which
    differs between runs of one study by design (loss, seed)."""
    if isinstance(fingerprint, dict):
        return {k: v for k, v in fingerprint.items() if k != "config"}
    return fingerprint


def _study_info(runs: StudyRuns) -> dict:
    from hie_core.synthetic import is_synthetic_dir

    configs = runs.configs
    data_dir = configs[0].get("data_dir_resolved") or configs[0].get("config", {}).get("data_dir", "")
    folder = Path(data_dir)
    synthetic = (
        is_synthetic_dir(folder) if folder.is_dir() else any(bool(c.get("synthetic")) for c in configs)
    )
    run_config = {k: v for k, v in configs[0].get("config", {}).items() if k not in _RUN_KEYS_DROPPED}
    fingerprint = _unique([_code_fingerprint(c.get("fingerprint")) for c in configs])
    first = runs.runs[0]
    n_cases = {s: int((first.metrics["split"] == s).sum()) for s in SPLITS}
    n_cases["train"] = configs[0].get("n_cases", {}).get("train")
    n_cases["selection"] = len(first.summary.get("selection_cases", [])) or None
    return {
        "study": runs.study_dir.name, "data_dir": str(data_dir), "synthetic": bool(synthetic),
        "preset": run_config.get("preset"), "seeds": runs.seeds, "losses": runs.losses,
        "references": [r for r in REFERENCES if runs.of(r)], "unfinished": runs.unfinished,
        "device": _unique([c.get("device_name") for c in configs]),
        "fingerprint": fingerprint, "fingerprints_differ": isinstance(fingerprint, list),
        "git_commit": _unique([c.get("git_commit") for c in configs]), "n_cases": n_cases,
        "splits": list(SPLITS), "comparison_references": [r for r in COMPARISON_REFERENCES if runs.of(r)],
        "statistics": {"confidence": CONFIDENCE, "bootstrap_resamples": N_RESAMPLES, "bootstrap": "percentile",
                       "test": "Wilcoxon signed-rank, two-sided", "multiplicity": "Holm, over every test of a split",
                       "ranked": "losses and baseline; the ceiling is shown, not ranked"},
        "run_config": run_config,
    }  # fmt: skip


def compute_results(study_dir: str | Path) -> tuple[dict, dict[str, dict[str, pd.DataFrame]]]:
    """Everything :func:`write_results` writes, in memory: ``(study_json, {split: {kind: table}})``."""
    runs = find_runs(study_dir)
    scores = runs.scores()
    per_case = tables.seed_average(scores)
    methods = [*runs.losses, *REFERENCES]
    out = {}
    for split in SPLITS:
        out[split] = {
            "table1": tables.table1(per_case, scores, split, methods),
            "comparisons": tables.comparisons(per_case, split, runs.losses, COMPARISON_REFERENCES),
            "strata": tables.strata(per_case, split, methods),
            "per_case": per_case[per_case["split"] == split].reset_index(drop=True),
        }
    return _study_info(runs), out


def write_results(study_dir: str | Path) -> Path:
    """Write ``<study_dir>/results/`` (see the module docstring) and return that folder.

    Raises:
        StudyFolderError: The study folder cannot be reported (the message names the file).
    """
    info, computed = compute_results(study_dir)
    folder = Path(study_dir) / RESULTS_DIR
    for split, kinds in computed.items():
        for kind, table in kinds.items():
            atomic_write_text(folder / f"{kind}_{split}.csv", table.to_csv(index=False))
    atomic_write_text(folder / "study.json", json.dumps(info, indent=2, sort_keys=True, default=str) + "\n")
    return folder


@dataclass
class StudyResults:
    """A study's ``results/`` folder, loaded: ``info`` is ``study.json``; tables per split."""

    study_dir: Path
    info: dict
    split_tables: dict[str, dict[str, pd.DataFrame]] = field(repr=False)

    def table(self, kind: str, split: str = "test") -> pd.DataFrame:
        """``kind`` (table1, comparisons, strata, per_case) of ``split``."""
        return self.split_tables[split][kind]

    @property
    def losses(self) -> list[str]:
        return list(self.info["losses"])

    @property
    def synthetic(self) -> bool:
        return bool(self.info["synthetic"])

    def n_cases(self, split: str = "test") -> int:
        return int(self.info["n_cases"].get(split, 0))


def read_results(study_dir: str | Path) -> StudyResults:
    """Load ``<study_dir>/results/``.

    Raises:
        StudyFolderError: The folder or a file is missing (say how to write it).
    """
    folder = Path(study_dir).expanduser() / RESULTS_DIR
    fix = f"write it with `python -m hie_core.report.results {Path(study_dir)}` (the study runner does)"
    paths = [folder / "study.json"] + [folder / f"{k}_{s}.csv" for s in SPLITS for k in _KINDS]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise StudyFolderError(f"{folder}: missing {', '.join(missing)}; {fix}")
    info = json.loads((folder / "study.json").read_text())
    split_tables = {
        s: {k: pd.read_csv(folder / f"{k}_{s}.csv", keep_default_na=True) for k in _KINDS} for s in SPLITS
    }
    for kinds in split_tables.values():  # text columns: an empty cell is "" (no reason, no note), not NaN
        for kind, col in (("comparisons", "reason"), ("comparisons", "favours"), ("strata", "note")):
            text = kinds[kind][col].astype(object)
            kinds[kind][col] = text.where(text.notna(), "")
    return StudyResults(Path(study_dir), info, split_tables)


@exit_on_user_error("hie-results")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hie-results", description="Write runs/<study>/results/ from its run folders."
    )
    parser.add_argument("study_dir", help="a study folder, e.g. runs/quick")
    args = parser.parse_args(argv)
    folder = write_results(args.study_dir)
    print(f"results written to {folder}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
