"""The study's numbers as files: ``runs/<study>/results/``, written once, read by every page.

:func:`write_results` reads every run folder of a study (``hie_core.report.analysis.runs.find_runs``),
computes the tables of :mod:`hie_core.report.analysis.tables` and :mod:`hie_core.report.analysis.hypotheses`
and writes, per reported split (:data:`SPLITS` that the runs scored: ``test``, ``cv`` for the
out-of-fold predictions of a cross-validated study, ``val``):

- ``hypotheses_<split>.csv``: the seed's claims, one row per claim, contrast and metric, with
  estimate, CI, Holm p, margin, minimum detectable difference, verdict and the contrast's
  variance components (case, run, case x run SDs; the SE and df of the mean);
- ``table1_<split>.csv``: one row per method (each loss, network and grid value, outside
  predictions, ``baseline``, ``ceiling``; :mod:`hie_core.methods`): n, mean and
  95% CI of Dice, MASD (mm) and NSD, undefined MASD counts, challenge ranks, P(best Dice),
  between-seed SD, false positives on the cases with an empty label;
- ``comparisons_<split>.csv``: each method against the Dice loss and the baseline, per metric:
  mean paired difference, CI, crossed t p and equivalence p, both Holm-adjusted, Wilcoxon p
  (sensitivity), verdict;
- ``strata_<split>.csv``: the same statistics per lesion-burden stratum, and the empty labels;
- ``per_case_<split>.csv``: one row per case and method, seeds averaged (with the lesion-wise columns);
- ``table1b_<split>.csv``, ``lesion_bands_<split>.csv``, ``lesion_claims_<split>.csv``: lesion-wise
  detection, lesion-wise Dice, volume error, detection by lesion size and claim d on lesions
  (:mod:`hie_core.report.analysis.lesion_tables`; run folders from before the lesion metrics get their
  ``lesions.csv`` from their saved masks first);

and ``study.json`` (data folder, synthetic, preset, seeds, devices, code fingerprint, the run
configuration, the methods in table order with their display names (``methods``,
``method_labels``; ``grid``: each grid parameter's values; ``losses``: the trained ones, ``seed_methods``: the seed's six that ran,
on which the hypotheses are tested; ``external``: outside predictions), the design: folds,
seeds, cases, the primary family, the margins, and per split whether the tests name a best method;
``variance_components``: per split, the components of each primary contrast). Everything is computed and checked before the first file is written, and each
file is written atomically. A user can cite these files; :func:`read_results` loads them.

Command line: ``python -m hie_core.report.analysis.results runs/<study>``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from hie_core.config import DEFAULTS
from hie_core.errors import exit_on_user_error
from hie_core.io import atomic_write_text
from hie_core.report.analysis import hypotheses, lesion_tables, tables
from hie_core.report.analysis.power import ALPHA, POWER, margins_for
from hie_core.report.analysis.runs import REFERENCES, StudyFolderError, StudyRuns, find_runs
from hie_core.report.analysis.seed_study import PRIMARY_CONTRASTS
from hie_core.report.analysis.stats import CONFIDENCE, resamples
from hie_core.report.analysis.study_records import StudyConfig
from hie_core.report.analysis.variance import paired_contrast, variance_components

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
#: The reported splits in page order (each written when the runs scored it), the test split,
#: the out-of-fold predictions of a cross-validated study (``cv``), the official validation split.
SPLITS = ("test", "cv", "val")
#: What every loss is compared with, when present (the Dice loss and the threshold baseline).
COMPARISON_REFERENCES = ("dice", "baseline")
_KINDS = ("hypotheses", "table1", "comparisons", "strata", "per_case", *lesion_tables.LESION_KINDS)
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


def _grid(runs: StudyRuns) -> dict[str, list]:
    """The study's grid (``--grid``, ``--archs``): each parameter a method id names -> its values in the runs."""
    from hie_core.methods import grid_keys_of, run_config

    keys = {k for m in runs.losses for k in grid_keys_of(m)}
    if any("@" in m for m in runs.losses):
        keys.add("arch")
    values: dict[str, list] = {k: [] for k in sorted(keys)}
    for run in runs.runs:
        if run.method in runs.losses:
            config = run_config(run.config)
            for key in values:
                value = config.get(key, DEFAULTS.get(key))  # a field older runs lack: its default
                if value not in values[key]:
                    values[key].append(value)
    return values


def _study_info(runs: StudyRuns, splits: list[str]) -> dict:
    from hie_core.report.analysis.plan import plan_info
    from hie_core.synthetic import is_synthetic_dir

    trained = set(runs.losses)
    configs = [r.config for r in runs.runs if r.config and r.method in trained] or runs.configs
    data_dir = configs[0].get("data_dir_resolved") or configs[0].get("config", {}).get("data_dir", "")
    folder = Path(data_dir)
    synthetic = (
        is_synthetic_dir(folder) if folder.is_dir() else any(bool(c.get("synthetic")) for c in configs)
    )
    run_config = {k: v for k, v in configs[0].get("config", {}).items() if k not in _RUN_KEYS_DROPPED}
    fingerprint = _unique([_code_fingerprint(c.get("fingerprint")) for c in configs])
    first = next(r for r in runs.runs if r.method in trained) if trained else runs.runs[0]
    n_cases = {s: int(first.metrics.loc[first.metrics["split"] == s, "case_id"].nunique()) for s in splits}
    if "cv" in splits:  # each fold run holds only its own fold: count the pool over the first seed's folds
        scores = runs.scores()
        pool = scores[(scores["split"] == "cv") & (scores["method"] == first.method)]
        n_cases["cv"] = int(pool["case_id"].nunique())
    n_cases["train"] = configs[0].get("n_cases", {}).get("train")
    n_cases["selection"] = len(first.summary.get("selection_cases", [])) or None
    return {
        "study": runs.study_dir.name, "data_dir": str(data_dir), "synthetic": bool(synthetic),
        "preset": run_config.get("preset"), "seeds": runs.seeds, "losses": runs.losses,
        "methods": runs.methods, "method_labels": runs.labels, "seed_methods": runs.seed_methods,
        "external": runs.external, "grid": _grid(runs),
        "references": [r for r in REFERENCES if runs.of(r)], "unfinished": runs.unfinished,
        "device": _unique([c.get("device_name") for c in configs]),
        "fingerprint": fingerprint, "fingerprints_differ": isinstance(fingerprint, list),
        "git_commit": _unique([c.get("git_commit") for c in configs]), "n_cases": n_cases,
        "splits": splits, "comparison_references": [r for r in COMPARISON_REFERENCES if runs.of(r)],
        "statistics": {"confidence": CONFIDENCE, "bootstrap_resamples": resamples(),
                       "noise_model": "runs (trained models) crossed with cases: variance components case, run and "
                                      "case x run of each paired difference, by the method of moments of the "
                                      "balanced two-way design without replication",
                       "bootstrap": "percentile pigeonhole bootstrap: cases and runs resampled independently "
                                    "(Owen 2007)",
                       "test": "two-sided t test of the mean paired difference, SE from the variance components, "
                               "Satterthwaite df; fewer than 5 cases: not testable here",
                       "sensitivity": "Wilcoxon signed-rank on run-averaged case differences (p_wilcoxon)",
                       "equivalence": "two one-sided t tests (TOST) of the mean against +-margin, same SE and df",
                       "trend": "claim d: least-squares slope of Dice over the burden strata, t test of the linear "
                                "contrast of stratum means (cases - strata df), pigeonhole CI within strata",
                       "ranks": "rank_masd and rank_mean: each method's MASD mean over its own defined cases (the "
                                "challenge's rule); rank_masd_worst and rank_mean_worst: undefined case-runs "
                                "given the split's largest MASD",
                       "multiplicity": "Holm, within each family: primary (claim a on Dice), secondary (the other "
                                       "claims, on the seed's six losses), exploratory (each method vs the "
                                       "Dice loss and the baseline)",
                       "alpha": ALPHA, "power": POWER,
                       "ranked": "methods and baseline; the ceiling is shown, not ranked"},
        "analysis_plan": plan_info(),  # the plan's version, date and page hash (book/analysis-plan.md)
        "run_config": run_config,
    }  # fmt: skip


def _design(info: dict, runs: StudyRuns, margins: dict) -> dict:
    folds = int(info["run_config"].get("folds") or 0)
    return {"folds": folds, "seeds": len(runs.seeds),
            "n_cases": {s: info["n_cases"][s] for s in info["splits"]},
            "primary_family": [f"{m} - {r} (dice)" for m, r in PRIMARY_CONTRASTS],
            "margins": dict(margins), "alpha": ALPHA, "power": POWER}  # fmt: skip


def best_loss_test(per_case: pd.DataFrame, runs: pd.DataFrame, split: str, losses: list[str]) -> dict:
    """Whether the tests name a best loss on ``split``.

    The candidate is the loss with the highest mean Dice (cases with a lesion). It is named when
    its Dice beats every other loss's in the paired crossed t tests, each at alpha with a positive
    estimate: an intersection-union test (every test must hold), so no multiplicity adjustment,
    and independent of claim a.

    Returns:
        ``candidate``, ``named`` (bool), ``reason`` (words for a reader), ``p`` per rival (unadjusted).
    """
    others = [m for m in losses if m in set(per_case.loc[per_case["split"] == split, "method"])]
    out = {"candidate": None, "named": False, "reason": "", "p": {}}
    if len(others) < 2:
        return {**out, "reason": "fewer than two losses: nothing to choose between"}
    means = {m: per_case[(per_case["method"] == m) & (per_case["split"] == split)
                         & (per_case["stratum"] != tables.EMPTY_STRATUM)]["dice"].mean() for m in others}  # fmt: skip
    candidate = max(means, key=lambda m: (means[m], -others.index(m)))
    rivals = [m for m in others if m != candidate]
    results = {}
    for rival in rivals:
        cases = tables.lesion_cases(per_case, split, [candidate, rival])
        results[rival] = paired_contrast(tables.matrix(runs, candidate, split, "dice", cases),
                                         tables.matrix(runs, rival, split, "dice", cases))  # fmt: skip
    out.update(candidate=candidate, p={r: float(res["p"]) for r, res in results.items()})
    lost = [r for r, res in results.items() if not (res["p"] < ALPHA and res["estimate"] > 0)]
    if not lost:
        return {
            **out,
            "named": True,
            "reason": f"its Dice beats each of the {len(rivals)} other losses (p < {ALPHA:g})",
        }
    return {**out, "reason": f"its Dice is not shown better than {len(lost)} of the {len(rivals)} other losses' "
                             f"(paired t test, p < {ALPHA:g} each)"}  # fmt: skip


def _components(per_case: pd.DataFrame, runs: pd.DataFrame, split: str, losses: list[str]) -> list[dict]:
    """The variance components of each primary contrast on ``split`` (Dice, cases with a lesion)."""
    out = []
    for method, reference in PRIMARY_CONTRASTS:
        if not {method, reference} <= set(losses):
            continue
        cases = tables.lesion_cases(per_case, split, [method, reference])
        a, b = (tables.matrix(runs, m, split, "dice", cases) for m in (method, reference))
        if len(cases) < 2 or a.shape[1] != b.shape[1]:
            continue
        comp = variance_components(a - b).as_dict()
        out.append({"contrast": f"{method} - {reference}", "metric": "dice", **comp})
    return out


def _epochs(runs: StudyRuns) -> pd.DataFrame:
    summaries = [{**r.summary, "method": r.method, "seed": r.seed, "fold": getattr(r, "fold", None),
                  "epochs": (r.config or {}).get("config", {}).get("epochs"),
                  "patience": (r.config or {}).get("config", {}).get("patience")}
                 for r in runs.runs if r.seed is not None]  # fmt: skip
    return hypotheses.epochs_frame(summaries)


def compute_results(
    study_dir: str | Path, margins: dict | None = None
) -> tuple[dict, dict[str, dict[str, pd.DataFrame]]]:
    """Everything :func:`write_results` writes, in memory: ``(study_json, {split: {kind: table}})``."""
    margins = {**tables.MARGINS, **(margins or {})}
    runs = find_runs(study_dir)
    scored = tables.run_scores(runs.scores())
    per_case = tables.seed_average(scored)
    methods = [*runs.methods, *REFERENCES]
    loss_splits = set(scored.loc[scored["method"].isin(runs.losses or runs.methods), "split"])
    splits = [s for s in SPLITS if s in loss_splits]
    epochs = _epochs(runs)
    out, winners, components = {}, {}, {}
    for split in splits:
        hyp = hypotheses.hypotheses(per_case, scored, split, runs.seed_methods, epochs, margins)
        out[split] = {
            "hypotheses": hyp,
            "table1": tables.table1(per_case, scored, split, methods, runs.methods),
            "comparisons": tables.comparisons(
                per_case, scored, split, runs.methods, COMPARISON_REFERENCES, margins
            ),
            "strata": tables.strata(per_case, scored, split, methods),
            "per_case": per_case[per_case["split"] == split].reset_index(drop=True),
        }
        winners[split] = best_loss_test(per_case, scored, split, runs.methods)
        components[split] = _components(per_case, scored, split, runs.seed_methods)
    lesion_tables.add_lesion_results(
        runs, out
    )  # table1b, lesion_bands, lesion_claims; lesion columns per case
    info = _study_info(runs, splits)
    info["design"] = _design(info, runs, margins)
    info["best_loss"] = winners
    info["variance_components"] = components
    info["claims"] = {s: hypotheses.claim_verdicts(out[s]["hypotheses"]) for s in splits}
    return info, out


def write_results(study_dir: str | Path, margins: dict | None = None) -> Path:
    """Write ``<study_dir>/results/`` (see the module docstring) and return that folder.

    Args:
        study_dir: The study folder.
        margins: Equivalence margins per metric (``dice``, ``masd_mm``, ``nsd``) replacing
            :data:`hie_core.report.analysis.tables.MARGINS`.

    Raises:
        StudyFolderError: The study folder cannot be reported (the message names the file).
    """
    lesion_tables.add_lesion_files(
        study_dir, skip_unscorable=True
    )  # older run folders: from their saved masks
    info, computed = compute_results(study_dir, margins)
    folder = Path(study_dir) / RESULTS_DIR
    for split, kinds in computed.items():
        for kind, table in kinds.items():
            atomic_write_text(folder / f"{kind}_{split}.csv", table.to_csv(index=False))
    for stale in (s for s in SPLITS if s not in computed):  # a split this study no longer reports
        for kind in _KINDS:
            (folder / f"{kind}_{stale}.csv").unlink(missing_ok=True)
    atomic_write_text(folder / "study.json", json.dumps(info, indent=2, sort_keys=True, default=str) + "\n")
    return folder


@dataclass
class StudyResults:
    """A study's ``results/`` folder, loaded: ``config`` is ``study.json`` typed (``info`` the dict); tables per split.

    Pages get it from :func:`hie_core.report.analysis.study_model.load_study` (``.results``), which reads it once.
    """

    study_dir: Path
    info: dict
    split_tables: dict[str, dict[str, pd.DataFrame]] = field(repr=False)

    @property
    def config(self) -> StudyConfig:
        """``study.json`` typed (:class:`~hie_core.report.analysis.study_records.StudyConfig`); pages read this, not ``info``."""
        return StudyConfig.from_json(self.info)

    def table(self, kind: str, split: str = "test") -> pd.DataFrame:
        """``kind`` (hypotheses, table1, comparisons, strata, per_case) of ``split``."""
        return self.split_tables[split][kind]

    @property
    def splits(self) -> list[str]:
        """The reported splits, in page order."""
        return list(self.split_tables)

    def has(self, split: str) -> bool:
        return split in self.split_tables

    @property
    def losses(self) -> list[str]:
        """The trained methods in table order (every method but outside predictions)."""
        return list(self.info["losses"])

    @property
    def methods(self) -> list[str]:
        """Every method in table order, the trained ones then outside predictions (no reference)."""
        return list(self.info.get("methods", self.info["losses"]))

    @property
    def method_labels(self) -> dict[str, str]:
        """Each method's display name (:func:`hie_core.methods.method_label`), as ``study.json`` records it."""
        return dict(self.info.get("method_labels") or {})

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
    fix = f"write it with `python -m hie_core.report.analysis.results {Path(study_dir)}` (the study runner does)"
    if not (folder / "study.json").is_file():
        raise StudyFolderError(f"{folder}: missing study.json; {fix}")
    info = json.loads((folder / "study.json").read_text())
    splits = info.get("splits") or []
    missing = [f"{k}_{s}.csv" for s in splits for k in _KINDS if not (folder / f"{k}_{s}.csv").is_file()]
    if missing or "design" not in info:
        raise StudyFolderError(f"{folder}: missing {', '.join(missing) or 'the design in study.json'}; {fix}")
    split_tables = {
        s: {k: pd.read_csv(folder / f"{k}_{s}.csv", keep_default_na=True) for k in _KINDS} for s in splits
    }
    text_columns = (("comparisons", "reason"), ("comparisons", "favours"), ("strata", "note"),
                    ("hypotheses", "reason"), ("hypotheses", "detail"))  # fmt: skip
    for kinds in split_tables.values():  # text columns: an empty cell is "" (no reason, no note), not NaN
        for kind, col in text_columns:
            text = kinds[kind][col].astype(object)
            kinds[kind][col] = text.where(text.notna(), "")
    return StudyResults(Path(study_dir), info, split_tables)


@exit_on_user_error("hie-results")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hie-results", description="Write runs/<study>/results/ from its run folders."
    )
    parser.add_argument("study_dir", help="a study folder, e.g. runs/quick")
    parser.add_argument("--margin", type=float, default=None,
                        help=f"equivalence margin of Dice and NSD (default {tables.MARGINS['dice']})")  # fmt: skip
    args = parser.parse_args(argv)
    folder = write_results(args.study_dir, margins_for(args.margin))
    print(f"results written to {folder}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
