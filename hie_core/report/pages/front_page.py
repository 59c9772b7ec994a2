"""The front page's short abstract and headline figure, computed from a study's result files.

:func:`short_abstract` gives the design, the answer and what the design could detect in three
short paragraphs; :func:`headline_figure` the answer at a glance, the primary contrasts in the
Results page's forest plot. Every number comes from ``runs/<study>/results/``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hie_core.report.analysis.results import StudyResults
from hie_core.report.pages.discussion import _ci, _losses, _split, _where
from hie_core.report.pages.prose import _name
from hie_core.report.pages.sources import SYNTHETIC_LABEL
from hie_core.report.viewers.display import BookFigure, plural

__all__ = ["headline_figure", "short_abstract"]


def short_abstract(results: StudyResults) -> str:
    """Design, answer and what the design could detect (Markdown, three labelled paragraphs)."""
    split = _split(results)
    info = results.config
    losses = _losses(results, split)
    n_lesion = int(losses["n_cases"].max()) if len(losses) else 0
    data = ("a synthetic BONBID-like dataset (no patient data: the numbers test the pipeline, not the losses on "
            "real scans)" if results.synthetic else "the BONBID-HIE release")  # fmt: skip
    folds = info.design.folds
    design = (f"**Design.** {plural(len(results.losses), 'loss', 'losses')}, each trained "
              f"{plural(len(info.seeds), 'time')} (seeds){f' in {folds}-fold cross-validation' if folds else ''} "
              f"with the *{info.preset}* preset on {data}, scored {_where(results, split)} "
              f"({n_lesion} with a lesion) with the challenge's metrics on each scan's native grid.")  # fmt: skip
    h = results.table("hypotheses", split)
    primary = h[h["family"] == "primary"]
    verdicts = "; ".join(f"{_name(r['method'], results)} vs {_name(r['reference'], results)}: {r['verdict']} "
                         f"(Dice {r['estimate']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}])"
                         for _, r in primary.iterrows())  # fmt: skip
    best = info.best_loss.get(split, {})
    top = losses.sort_values("dice_mean", ascending=False, kind="stable").iloc[0] if len(losses) else None
    if best.get("named"):
        winner = f"{_name(best['candidate'], results)} had the best Dice, better than every other loss in paired tests."
    elif top is not None:
        winner = (f"No loss was shown best; the highest mean Dice was {_name(top['method'], results)}'s "
                  f"{_ci(top)}.")  # fmt: skip
    else:
        winner = ""
    answer = (
        f"**Answer.** Does a Hausdorff term help its base loss (the primary contrasts)? {verdicts}. {winner}"
    )
    mdd = primary["mdd"][np.isfinite(primary["mdd"])] if len(primary) else pd.Series(dtype=float)
    if len(mdd):
        detect = (f"**What it could detect.** Differences in mean Dice of about {mdd.min():.2f} to {mdd.max():.2f} "
                  f"in the primary contrasts (80% power, Holm over {len(primary)}); a smaller difference, such as most "
                  "of those between the losses here, would go unseen. *Inconclusive* means not detectable, not equal.")  # fmt: skip
    else:
        detect = "**What it could detect.** The design could not measure it (too few cases or runs)."
    return "\n\n".join(p for p in (design, answer, detect) if p)


def headline_figure(results: StudyResults) -> BookFigure:
    """The answer at a glance: the primary contrasts (each hybrid against its base loss, Dice) in the Results
    page's forest plot (:func:`hie_core.report.pages.forest.forest_figure`): difference with its 95% CI, the
    equivalence margin shaded, the detectable difference marked, the verdict in colour, shape and words."""
    from hie_core.report.pages import forest
    from hie_core.report.pages.results_page import method_label

    split = _split(results)
    h = results.table("hypotheses", split)
    primary = h[h["family"] == "primary"]
    rows = forest.forest_data(primary if len(primary) else h, lambda m: method_label(m, results))
    source = SYNTHETIC_LABEL if results.synthetic else "BONBID-HIE data"
    fig = forest.forest_figure(rows, title=f"{source}, {split} split")
    fig.csv_data, fig.csv_name = rows, f"headline-{split}"
    what = (
        "the primary contrasts, each hybrid loss minus its base loss,"
        if len(primary)
        else "the tested claims,"
    )
    fig.alt = (f"Forest plot of {what} as differences with their 95% confidence intervals: "
               + "; ".join(f"{r['contrast']} ({r['metric']}) {r['estimate']:+.3f} (95% CI {r['ci_low']:+.3f} to {r['ci_high']:+.3f}), "
                           f"{r['verdict']}" for _, r in rows.iterrows())
               + "; the equivalence margin is shaded and the detectable difference marked.")  # fmt: skip
    return fig
