"""This study's numbers beside the seed study's and the published results on the BONBID-HIE test set.

:data:`PUBLISHED` holds the published test-set results the book cites, each with its reference in
``book/references.bib``; the seed's numbers come from :mod:`hie_core.report.analysis.seed_study`.
:func:`published_table` and :func:`published_text` set them beside a study's and say why they
cannot be compared number for number.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from hie_core.report.analysis import seed_study
from hie_core.report.analysis.results import StudyResults
from hie_core.report.pages.discussion import _ci, _losses, _split, _where
from hie_core.report.pages.prose import _name
from hie_core.report.pages.sources import SYNTHETIC_LABEL
from hie_core.report.viewers.display import table

__all__ = ["CHALLENGE_SUMMARY", "PUBLISHED", "Published", "published_table", "published_text"]


@dataclass(frozen=True)
class Published:
    """A published result on the 44-case BONBID-HIE 2023 test set (means over the cases)."""

    method: str
    citation: str
    source: str
    dice: float
    masd_mm: float
    nsd: float
    note: str


#: Published results on the BONBID-HIE test set, each from its cited paper.
PUBLISHED: tuple[Published, ...] = (
    Published("SPARSeg (2D UNet++, Tversky + log-Hausdorff + Focal)", "rao2025sparseg", "Rao et al., MICCAI 2025", 0.6060, 2.6484, 0.7477,
              "the best published result on the test set"),
)  # fmt: skip
#: The organisers' summary of the published state of the art (Dice "around 0.5") on their challenge page.
CHALLENGE_SUMMARY = ("bonbid2023challenge", 0.5)


def published_table(results: StudyResults):
    """This study's Dice per loss beside the seed's (its 4 validation cases) and the published test-set results."""
    split = _split(results)
    losses = _losses(results, split)
    where = f"this study ({'synthetic ' if results.synthetic else ''}{split}, {results.n_cases(split)} cases)"
    rows = [{"method": _name(r["method"], results), where: _ci(r),
             "seed study (4 validation cases)": f"{seed_study.SEED_TABLE[r['method']][0]:.3f}"
             if r["method"] in seed_study.SEED_TABLE else "-"} for _, r in losses.iterrows()]  # fmt: skip
    for p in PUBLISHED:
        rows.append({"method": f"{p.method}, published (44 test cases)", where: "-",
                     "seed study (4 validation cases)": "-", "published test set": f"{p.dice:.3f}"})  # fmt: skip
    frame = pd.DataFrame(rows).fillna("-")
    note = (f"Mean Dice over cases with a lesion. {SYNTHETIC_LABEL + '. ' if results.synthetic else ''}"
            f"Seed: {seed_study.SEED_TABLE_NOTE} Published: " + "; ".join(f"{p.method}, {p.source}" for p in PUBLISHED)
            + ".")  # fmt: skip
    return table(frame, note=note, csv_name=f"published-{split}")


def published_text(results: StudyResults) -> str:
    """How these numbers relate to the seed's and the challenge's published ones (Markdown)."""
    split = _split(results)
    losses = _losses(results, split).set_index("method")
    seed = {m: v[0] for m, v in seed_study.SEED_TABLE.items() if m in losses.index}
    parts = []
    if len(seed) >= 2:
        ours = losses.loc[list(seed), "dice_mean"]
        rho = pd.Series(seed).rank().corr(ours.rank(), method="spearman")
        seed_top, our_top = max(seed, key=seed.get), ours.idxmax()
        seed_low, our_low = min(seed, key=seed.get), ours.idxmin()
        parts.append(
            f"The seed study {{cite}}`{seed_study.CITATION}` ranked {_name(seed_top, results)} first and "
            f"{_name(seed_low, results)} last by Dice on its 4 validation cases; {_where(results, split)} the highest "
            f"mean Dice is {_name(our_top, results)}'s and the lowest {_name(our_low, results)}'s, a rank correlation "
            f"of {rho:.2f} over the {len(seed)} losses. The seed's Dice ranged from {min(seed.values()):.2f} to "
            f"{max(seed.values()):.2f}; here from {ours.min():.2f} to {ours.max():.2f}.")  # fmt: skip
    cite, dice = CHALLENGE_SUMMARY
    pub = "; ".join(f"{p.method} reached Dice {p.dice:.3f}, MASD {p.masd_mm:.2f} mm and NSD {p.nsd:.3f} {{cite}}`{p.citation}`, "
                    f"{p.note}" for p in PUBLISHED)  # fmt: skip
    parts.append(f"On the real 44-case test set, the organisers put U-Net and the other published methods at a Dice of "
                 f"about {dice:.1f} {{cite}}`{cite}`; {pub}.")  # fmt: skip
    if results.synthetic:
        parts.append("None of these numbers can be set against this book's: they were computed on synthetic volumes whose "
                     "lesions are drawn by a generator, with known truth and none of the real scans' variation. Only the "
                     "order of the losses, and whether a loss collapses, can be compared, and only as a check of the "
                     "pipeline.")  # fmt: skip
    else:
        parts.append("The seed's numbers are on 4 validation cases and a resampled grid in voxels, the published ones on "
                     "the 44 test cases: only this book's test-split Dice is comparable with the published Dice, and the "
                     "2023 leaderboard's surface distances may carry the evaluator's axis-order error.")  # fmt: skip
    return " ".join(parts)
