"""The seed study's published numbers and claims, as data: what this book checks.

The seed is A. Usman, A. Haseeb, T. Syed, "Multimodal HIE Lesion Segmentation in Neonates: A
Comparative Study of Loss Functions", arXiv:2502.09148 (2025), a tiny paper at the ICLR 2025
AI4CHL workshop, with its code in hase3b/BONBID-HIE-Segmentation. Its Table 1 (its README)
scores each loss on the 4 official validation cases, on the resampled 32 x 192 x 192 grid, with
MSD in voxels, after early stopping on those same 4 cases.

Its claims become the study's pre-specified hypotheses (:data:`CLAIMS`), fixed here before any
run, (a) each hybrid beats its standalone base, the two primary contrasts; (b) Tversky+HDT has
the best Dice and NSD; (c) the hybrids take longer to converge; (d) lesions under 1% of the
brain are the hardest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

__all__ = ["CITATION", "CLAIMS", "PRIMARY_CONTRASTS", "SEED_TABLE", "SEED_TABLE_NOTE", "Claim", "seed_table"]

CITATION = "usman2025hie"
#: The seed's Table 1, loss -> (Dice, MSD in voxels, NSD, epochs to its best epoch), on 4 val cases.
SEED_TABLE: dict[str, tuple[float, float, float, int]] = {
    "dice": (0.3800, 15.0650, 0.3850, 32),
    "dice_focal": (0.4900, 1.7925, 0.5275, 49),
    "tversky": (0.3525, 15.3650, 0.3375, 38),
    "hdt": (0.3300, math.inf, 0.2800, 29),
    "dice_focal_hdt": (0.4925, 1.4225, 0.5300, 72),
    "tversky_hdt": (0.5000, 1.6250, 0.5325, 59),
}
SEED_TABLE_NOTE = (
    "The seed's own numbers (its Table 1): the 4 official validation cases, which also stopped its training "
    "early; scores on the resampled 32 x 192 x 192 grid; MSD in voxels of that grid (not MASD in mm on the "
    "native grid); NSD at its tolerance; epochs: the epoch of its best checkpoint; Inf: an empty prediction "
    "averaged in. Not comparable number for number with this book's tables."
)
#: The primary family of contrasts, each hybrid against its standalone base, on Dice (claim a).
PRIMARY_CONTRASTS: tuple[tuple[str, str], ...] = (
    ("dice_focal_hdt", "dice_focal"),
    ("tversky_hdt", "tversky"),
)


@dataclass(frozen=True)
class Claim:
    """One claim of the seed, as a hypothesis: its key, its words, and the metrics it is about."""

    key: str
    text: str
    metrics: tuple[str, ...]


#: The seed's four claims, fixed as this study's hypotheses before any run.
CLAIMS: tuple[Claim, ...] = (
    Claim("a", "each hybrid beats its standalone base (DiceFocal+HDT > DiceFocal, Tversky+HDT > Tversky)",
          ("dice", "masd_mm", "nsd")),
    Claim("b", "Tversky+HDT has the best Dice and NSD of the six losses", ("dice", "nsd")),
    Claim("c", "the hybrids take longer to converge (a later best epoch than their base)", ("best_epoch",)),
    Claim("d", "lesions under 1% of the brain are the hardest (lower Dice than larger lesions)", ("dice",)),
)  # fmt: skip


def seed_table() -> pd.DataFrame:
    """The seed's Table 1 as a frame: ``method``, ``dice``, ``msd_voxels``, ``nsd``, ``best_epoch``."""
    rows = [{"method": m, "dice": d, "msd_voxels": s, "nsd": n, "best_epoch": e}
            for m, (d, s, n, e) in SEED_TABLE.items()]  # fmt: skip
    return pd.DataFrame(rows)
