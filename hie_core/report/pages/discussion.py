"""The Discussion page, computed from a study's result files.

Every number comes from ``runs/<study>/results/`` (:class:`~hie_core.report.analysis.results.StudyResults`:
``study.json``, Table 1, the hypotheses, the strata and the per-case scores), from the seed
study's published Table 1 (:mod:`hie_core.report.analysis.seed_study`) or from the loss-gradient figure
computed on the page (:mod:`hie_core.report.pages.mechanism`). Each sentence says where its numbers come
from, and on synthetic data each says so. The page's other parts: the published results
(:mod:`hie_core.report.pages.published`) and the front page's abstract (:mod:`hie_core.report.pages.front_page`).

- :func:`can_say`: the verdicts, and the differences the design could and could not detect;
- :func:`collapsed` and :func:`collapse_text`: a loss whose Dice collapses, shown from its
  predicted volumes and empty predictions, explained with the gradient figure;
- :func:`failing_cases`, :func:`failing_table`, :func:`failing_text` and :func:`case_figure`: the
  lowest-Dice cases against their resampling ceiling, the threshold baseline and their lesions;
- :func:`burden_text`: the lesion-burden strata, when the largest burden scores lowest;
- :func:`limitations`: the study's limitations.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from hie_core.report.analysis import seed_study
from hie_core.report.analysis.results import StudyResults
from hie_core.report.pages.prose import _limitations, _name
from hie_core.report.pages.sources import SYNTHETIC_LABEL
from hie_core.report.viewers.display import BookFigure, format_ci, plural, table

__all__ = [
    "burden_text",
    "can_say",
    "case_figure",
    "case_methods",
    "collapse_text",
    "collapsed",
    "failing_cases",
    "failing_table",
    "failing_text",
    "limitations",
    "worst_case",
]

_METRICS = {"dice": "Dice", "masd_mm": "MASD", "nsd": "NSD"}
#: A loss has collapsed when its mean Dice is below this fraction of the median of the other losses'.
COLLAPSE_FRACTION = 0.5
#: A case's ceiling or baseline Dice counts as "high" at or above this value, "low" below it.
HIGH_DICE = 0.5


def _split(results: StudyResults) -> str:
    return "test" if results.has("test") else results.splits[0]


def _where(results: StudyResults, split: str) -> str:
    """ "on the 16 synthetic test cases": where a sentence's numbers come from."""
    kind = {"test": "test", "cv": "out-of-fold", "val": "official validation"}.get(split, split)
    data = "synthetic " if results.synthetic else "BONBID-HIE "
    return f"on the {results.n_cases(split)} {data}{kind} cases"


def _losses(results: StudyResults, split: str) -> pd.DataFrame:
    t = results.table("table1", split)
    return t[t["method"].isin(results.losses)].reset_index(drop=True)


def _ci(row: pd.Series, metric: str = "dice", digits: int = 3) -> str:
    return format_ci(row[f"{metric}_mean"], row[f"{metric}_ci_low"], row[f"{metric}_ci_high"], digits)


# --- what the study can and cannot say -----------------------------------------------------------


def can_say(results: StudyResults) -> str:
    """The verdicts by claim, what was decided, and the detectable differences (Markdown)."""
    split = _split(results)
    h = results.table("hypotheses", split)
    counts = h["verdict"].value_counts()
    summary = ", ".join(f"{plural(int(c), 'row')} {v}" for v, c in counts.items())
    decided = h[h["verdict"].isin(["supported", "contradicted", "equivalent"])]
    parts = [f"Of the {plural(len(h), 'hypothesis row')} tested {_where(results, split)}: {summary}."]
    if len(decided):
        rows = "; ".join(f"{_name(r['method'], results)} vs {_name(r['reference'], results)} on {_METRICS.get(r['metric'], r['metric'])} "
                         f"({r['estimate']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]): {r['verdict']}"
                         for _, r in decided.iterrows())  # fmt: skip
        parts.append(f"What the study can say: {rows}.")
    else:
        parts.append("The study decided no hypothesis either way.")
    open_rows = h[(h["verdict"] == "inconclusive") & (h["metric"] == "dice") & np.isfinite(h["mdd"])]
    if len(open_rows):
        observed = open_rows["estimate"].abs()
        parts.append(f"What it cannot say: in the {plural(len(open_rows), 'inconclusive Dice contrast')} the observed "
                     f"differences were {observed.min():.3f} to {observed.max():.3f}, while the design could detect "
                     f"only {open_rows['mdd'].min():.2f} or more, so whether the losses differ by that much is open; "
                     "it would take more cases and runs (the Analysis plan's page gives the designs that would).")  # fmt: skip
    untestable = h[h["verdict"] == "not testable here"]
    if len(untestable):
        reasons = "; ".join(dict.fromkeys(r for r in untestable["reason"] if r))
        parts.append(f"{plural(len(untestable), 'row')} could not be tested with this design ({reasons}).")
    return " ".join(parts)


# --- a loss that collapses -----------------------------------------------------------------------


def collapsed(results: StudyResults, split: str | None = None) -> list[str]:
    """Losses whose mean Dice is below ``COLLAPSE_FRACTION`` of the median of the others'."""
    split = split or _split(results)
    losses = _losses(results, split).set_index("method")["dice_mean"]
    return [
        m for m in losses.index if len(losses) > 2 and losses[m] < COLLAPSE_FRACTION * losses.drop(m).median()
    ]


def _volume_share(per_case: pd.DataFrame, method: str) -> tuple[float, int, int]:
    """Predicted over reference lesion volume summed over the cases with a lesion; case-runs with an
    empty prediction (from ``masd_undefined_runs``, undefined exactly when one mask is empty); case-runs."""
    rows = per_case[(per_case["method"] == method) & (per_case["n_ref"] > 0)]
    ratio = float(rows["pred_volume_ml"].sum() / rows["ref_volume_ml"].sum()) if len(rows) else float("nan")
    return ratio, int(rows["masd_undefined_runs"].sum()), int(rows["n_runs"].sum())


def collapse_text(results: StudyResults, gradients: pd.DataFrame | None = None) -> str:
    """Each collapsed loss shown from the numbers, and the mechanism from the gradient table (Markdown).

    Args:
        results: The study's results.
        gradients: :func:`hie_core.report.pages.mechanism.gradient_table` of the page's figure (optional).
    """
    split = _split(results)
    which = collapsed(results, split)
    losses = _losses(results, split).set_index("method")
    if not which:
        return (f"No loss collapsed {_where(results, split)}: every loss's mean Dice was at least "
                f"{COLLAPSE_FRACTION:.0%} of the median of the others'.")  # fmt: skip
    per_case = results.table("per_case", split)
    others = losses.drop(which)
    share = {m: _volume_share(per_case, m) for m in losses.index}
    texts = []
    for m in which:
        ratio, empty, total = share[m]
        other_ratios = [share[o][0] for o in others.index]
        texts.append(f"**{_name(m, results)}** collapsed {_where(results, split)}: mean Dice {_ci(losses.loc[m])}, "
                     f"against {others['dice_mean'].min():.3f} to {others['dice_mean'].max():.3f} for the other losses. "
                     f"It draws too little lesion rather than the wrong lesion: summed over the cases with a lesion, its "
                     f"masks hold {ratio:.0%} of the reference volume (the other losses {min(other_ratios):.0%} to "
                     f"{max(other_ratios):.0%}), and {empty} of its {plural(total, 'case-run')} predicted no lesion at all.")  # fmt: skip
    if gradients is not None and len(gradients):
        g = gradients.set_index("loss")
        labels = [_name(m, results) for m in which if _name(m, results) in g.index]
        region = [x for x in g.index if x not in labels and "HDT" not in x and "Hausdorff" not in x]
        if labels and region:
            texts.append(
                f"The mechanism is in {{numref}}`fig-discussion-gradients`. "
                f"At a near-empty prediction, {', '.join(labels)} spends {g.loc[labels[0], 'raise_share_empty']:.0%} of "
                f"its gradient raising logits (finding the lesions) and the rest lowering them, where the region losses "
                f"spend {g.loc[region, 'raise_share_empty'].min():.0%} to {g.loc[region, 'raise_share_empty'].max():.0%} "
                "raising them. Its loss is a squared error over every voxel, weighted by the squared distance to the "
                "boundaries: each background voxel pushes down in proportion to its squared distance from the lesion, so "
                "the many far background voxels outweigh the few lesion voxels, and once no voxel exceeds 0.5 the "
                "prediction has no boundary of its own to weigh. An empty prediction is where it pulls, not a state it "
                "escapes.")  # fmt: skip
    seed = seed_study.SEED_TABLE
    for m in which:
        if m in seed:
            rank = sorted(seed, key=lambda k: seed[k][0]).index(m) + 1
            texts.append(f"The seed study saw the same: {_name(m, results)} had its "
                         f"{'lowest' if rank == 1 else f'{rank}th lowest'} Dice, {seed[m][0]:.2f}, and an infinite mean "
                         f"surface distance, an empty prediction averaged in {{cite}}`{seed_study.CITATION}`.")  # fmt: skip
    return "\n\n".join(texts)


# --- the cases that fail -------------------------------------------------------------------------


def failing_cases(results: StudyResults, n: int = 3, split: str | None = None) -> pd.DataFrame:
    """The ``n`` cases with a lesion with the lowest Dice averaged over the losses (collapsed ones left out).

    Columns: ``case_id``, ``stratum``, ``burden_percent``, ``ref_volume_ml``, ``n_ref_lesions``,
    ``dice`` (mean over the losses), ``best_loss_dice`` (the best loss's), ``ceiling``, ``baseline``,
    ``volume_ratio`` (predicted over reference volume, mean over the losses) and
    ``lesion_sensitivity`` (share of reference lesions detected, mean over the losses).
    """
    split = split or _split(results)
    p = results.table("per_case", split)
    p = p[p["n_ref"] > 0]
    keep = [m for m in results.losses if m not in collapsed(results, split)] or results.losses
    losses = p[p["method"].isin(keep)]
    by_case = losses.groupby("case_id").agg(
        dice=("dice", "mean"), best_loss_dice=("dice", "max"), pred=("pred_volume_ml", "mean"),
        lesion_sensitivity=("lesion_sensitivity", "mean"))  # fmt: skip
    first = p.drop_duplicates("case_id").set_index("case_id")
    out = by_case.join(first[["stratum", "burden_percent", "ref_volume_ml", "n_ref_lesions"]])
    for ref in ("ceiling", "baseline"):
        out[ref] = p[p["method"] == ref].set_index("case_id")["dice"].reindex(out.index)
    out["volume_ratio"] = out["pred"] / out["ref_volume_ml"]
    out = out.sort_values("dice", kind="stable").head(n).reset_index()
    return out[["case_id", "stratum", "burden_percent", "ref_volume_ml", "n_ref_lesions", "dice", "best_loss_dice",
                "ceiling", "baseline", "volume_ratio", "lesion_sensitivity"]]  # fmt: skip


def worst_case(results: StudyResults) -> str:
    """The case with a lesion with the lowest mean Dice over the (non-collapsed) losses."""
    return str(failing_cases(results, 1)["case_id"].iloc[0])


def case_methods(results: StudyResults, case_id: str) -> list[str]:
    """The loss with the highest Dice on the case (collapsed losses left out): the one the case figure shows."""
    split = _split(results)
    p = results.table("per_case", split)
    keep = [m for m in results.losses if m not in collapsed(results, split)] or results.losses
    on_case = p[(p["case_id"] == case_id) & p["method"].isin(keep)].sort_values(
        "dice", ascending=False, kind="stable"
    )
    return [str(on_case["method"].iloc[0])] if len(on_case) else []


def case_figure(results: StudyResults, case_id: str | None = None) -> BookFigure:
    """The failing case, still: the best loss's mask (first seed) against the reference over ZADC, on the slices
    with reference or prediction (``hie_core.report.viewers.stills.agreement_montage``).

    A still, not the slice viewer: the viewer of one case weighs 1-4 MB with plotly.js, more than a page may.
    """
    from hie_core.report.pages.results_case import case_arrays
    from hie_core.report.viewers.stills import agreement_montage

    split = _split(results)
    case_id = case_id or worst_case(results)
    v = case_arrays(results, case_id, split)
    method = next((m for m in case_methods(results, case_id) if m in v["predictions"]), None)
    if method is None:
        raise ValueError(f"{case_id}: no saved mask of a loss to show")
    p = results.table("per_case", split)
    row = p[(p["case_id"] == case_id) & (p["method"] == method)].iloc[0]
    source = "SYNTHETIC data" if results.synthetic else "BONBID-HIE data"
    title = f"{case_id}, {source}\n{_name(method, results)}'s mask over ZADC, Dice {row['dice']:.3f} (mean of its runs)"
    fig = agreement_montage(v["zadc"], v["label"], v["predictions"][method], v["geometry"].spacing_mm, n=4, ncols=2,
                            title=title)  # fmt: skip
    fig.csv_data = p[p["case_id"] == case_id].reset_index(drop=True)
    fig.csv_name = f"case-{case_id}"
    fig.alt = (f"Four axial slices of case {case_id} over its ZADC map, each voxel coloured by agreement between "
               f"{_name(method, results)}'s mask and the reference: true positives, misses and false positives.")  # fmt: skip
    return fig


def failing_table(results: StudyResults, n: int = 3):
    """:func:`failing_cases` as a book table, with its source in the note."""
    frame = failing_cases(results, n)
    shown = pd.DataFrame({
        "case": frame["case_id"], "burden (% of brain)": frame["burden_percent"].map(lambda v: f"{v:.2f}"),
        "lesions": frame["n_ref_lesions"].map(lambda v: f"{v:.0f}"),
        "volume (mL)": frame["ref_volume_ml"].map(lambda v: f"{v:.1f}"),
        "Dice, mean of losses": frame["dice"].map(lambda v: f"{v:.3f}"),
        "best loss": frame["best_loss_dice"].map(lambda v: f"{v:.3f}"),
        "ceiling": frame["ceiling"].map(lambda v: "-" if not math.isfinite(v) else f"{v:.3f}"),
        "baseline": frame["baseline"].map(lambda v: "-" if not math.isfinite(v) else f"{v:.3f}"),
        "predicted / reference volume": frame["volume_ratio"].map(lambda v: f"{v:.0%}"),
        "lesions detected": frame["lesion_sensitivity"].map(lambda v: f"{v:.0%}"),
    })  # fmt: skip
    split = _split(results)
    note = (f"{SYNTHETIC_LABEL if results.synthetic else 'BONBID-HIE data'}; {split} split; from "
            f"results/per_case_{split}.csv. Dice, volume and detection: means over the losses and their runs"
            f"{', collapsed losses left out' if collapsed(results, split) else ''}; ceiling: the reference label "
            "sent to the training grid and back; baseline: ZADC < -2.")  # fmt: skip
    return table(shown, note=note, data=frame, csv_name=f"failing-cases-{split}")


def _diagnosis(row: pd.Series, baseline_mean: float) -> str:
    """Why a case fails: the grid (its ceiling), the maps (the threshold's Dice there against its mean), or the
    models; then whether they under-draw it or draw it in the wrong places."""
    ceiling, baseline = row["ceiling"], row["baseline"]
    if math.isfinite(ceiling) and ceiling < HIGH_DICE:
        size = row["ref_volume_ml"] / max(row["n_ref_lesions"], 1)
        cause = (f"the training grid itself loses much of it (ceiling {ceiling:.2f}): {row['n_ref_lesions']:.0f} "
                 f"lesions in {row['ref_volume_ml']:.1f} mL, about {size:.2f} mL each")  # fmt: skip
    elif math.isfinite(baseline) and math.isfinite(baseline_mean) and baseline < 0.5 * baseline_mean:
        cause = (f"the grid keeps it (ceiling {ceiling:.2f}), but the ZADC < -2 threshold scores only {baseline:.2f} "
                 f"there (its mean over the cases: {baseline_mean:.2f}), so the lesion shows little of the low-ZADC "
                 "contrast the networks learn to find")  # fmt: skip
    else:
        cause = (f"the grid keeps it (ceiling {ceiling:.2f}) and the threshold scores {baseline:.2f} there (its mean: "
                 f"{baseline_mean:.2f}): the trained models, not the data, fail here")  # fmt: skip
    if row["volume_ratio"] < HIGH_DICE:
        drawn = f"the losses draw only {row['volume_ratio']:.0%} of its volume"
    else:
        drawn = f"the losses draw {row['volume_ratio']:.0%} of its volume, but largely in the wrong places"
    return f"{cause}; {drawn}, and detect {row['lesion_sensitivity']:.0%} of its {row['n_ref_lesions']:.0f} lesions"


def failing_text(results: StudyResults, n: int = 3) -> str:
    """Why each of the lowest-Dice cases fails, from its ceiling, its baseline and its lesions (Markdown)."""
    frame = failing_cases(results, n)
    split = _split(results)
    parts = [f"{{numref}}`tbl-discussion-failing` lists the {plural(len(frame), 'case')} with the lowest Dice "
             f"{_where(results, split)}, averaged over the losses. "]  # fmt: skip
    t1 = results.table("table1", split).set_index("method")
    baseline_mean = float(t1.loc["baseline", "dice_mean"]) if "baseline" in t1.index else float("nan")
    for _, r in frame.iterrows():
        parts.append(f"**{r['case_id']}** ({r['stratum']}, Dice {r['dice']:.3f}, best loss {r['best_loss_dice']:.3f}): "
                     f"{_diagnosis(r, baseline_mean)}.")  # fmt: skip
    shown = " and ".join(_name(m, results) for m in case_methods(results, str(frame["case_id"].iloc[0])))
    parts.append(f"{{numref}}`fig-discussion-case` shows the first of them, {frame['case_id'].iloc[0]}, with the mask of "
                 f"{shown}, the best loss there: what it found, missed and added.")  # fmt: skip
    return "\n\n".join([parts[0] + parts[1], *parts[2:]]) if len(parts) > 1 else parts[0]


# --- lesion burden -------------------------------------------------------------------------------


def burden_text(results: StudyResults) -> str:
    """The strata by mean Dice over the (non-collapsed) losses; why the lowest one is lowest (Markdown)."""
    split = _split(results)
    s = results.table("strata", split)
    keep = [m for m in results.losses if m not in collapsed(results, split)] or results.losses
    rows = s[s["method"].isin(keep) & (s["stratum"] != "empty label") & (s["n_cases"] > 0)]
    if rows["stratum"].nunique() < 2:
        return "All cases with a lesion fall in one lesion-burden stratum, so the strata cannot be compared."
    means = rows.groupby("stratum", sort=False)["dice_mean"].mean()
    counts = rows.groupby("stratum", sort=False)["n_cases"].max()
    ceil = s[s["method"] == "ceiling"].set_index("stratum")["dice_mean"]
    lowest = str(means.idxmin())
    text = ("Averaged over the losses, mean Dice by lesion burden was "
            + ", ".join(f"{means[k]:.3f} in {k} ({plural(int(counts[k]), 'case')})" for k in means.index) + ".")  # fmt: skip
    if lowest != "<1%":
        p = results.table("per_case", split)
        cases = p[(p["stratum"] == lowest) & p["method"].isin(keep)]
        ratio = float(cases["pred_volume_ml"].sum() / cases["ref_volume_ml"].sum())
        ceiling = f" where the grid's ceiling is {ceil[lowest]:.3f}" if lowest in ceil.index else ""
        text += (f" The {lowest} stratum, not the smallest lesions, scored lowest{ceiling}: the losses' masks there hold "
                 f"{ratio:.0%} of the reference volume, so its large lesions are under-drawn rather than missed.")  # fmt: skip
        if int(counts[lowest]) < 5:
            text += (f" With {plural(int(counts[lowest]), 'case')} it has no interval: a pattern to check on more "
                     "cases, not a finding.")  # fmt: skip
    return text


def limitations(results: StudyResults) -> str:
    """The study's limitations (Markdown list), as :mod:`hie_core.report.pages.prose` computes them."""
    return _limitations(results, _split(results)).removeprefix("**Limitations.**\n\n")
