"""Small study folders for the reporting tests, written as the study runner writes them (no training).

:func:`write_study` lays out ``<root>/<method>/seed<k>/`` run folders (config.json, summary.json,
history.csv, metrics.csv), ``baseline/`` and ``ceiling/`` from per-case Dice values given by the
test; MASD and NSD follow from Dice by closed forms, so a test knows every expected number.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

#: Stratum of test case i (cycled): three small, two medium, one large lesion burden.
STRATA_CYCLE = ("<1%", "<1%", "<1%", "1-5%", "1-5%", ">5%")
_BURDEN = {"<1%": 0.5, "1-5%": 3.0, ">5%": 8.0}


def masd_of(dice: np.ndarray) -> np.ndarray:
    """The fixture's MASD (mm) for a Dice: 10 (1 - Dice), undefined (NaN) where Dice is 0."""
    dice = np.asarray(dice, dtype=float)
    return np.where(dice == 0, np.nan, 10.0 * (1.0 - dice))


def nsd_of(dice: np.ndarray) -> np.ndarray:
    """The fixture's NSD for a Dice: (1 + Dice) / 2."""
    return (1.0 + np.asarray(dice, dtype=float)) / 2.0


def _empty_label_row(d: float) -> dict:
    """An empty reference: Dice/NSD 1 and MASD 0 with an empty prediction (d = 1), else 0 / NaN and 28 voxels."""
    hit = d == 1
    return {"burden_percent": 0.0, "stratum": "<1%", "dice": float(hit), "masd_mm": 0.0 if hit else np.nan,
            "nsd": float(hit), "n_pred": 0 if hit else 28, "n_ref": 0, "pred_volume_ml": 0.0 if hit else 0.25,
            "ref_volume_ml": 0.0}  # fmt: skip


def metrics_frame(
    dice_test: Sequence[float],
    dice_val: Sequence[float],
    ids: Mapping[str, Sequence[str]] | None = None,
    empty: Sequence[int] = (),
) -> pd.DataFrame:
    """A ``metrics.csv`` table: test cases ``T00..``, val cases ``V00..`` (or ``ids[split]``).

    Test cases whose index is in ``empty`` have an empty reference label (see :func:`_empty_label_row`).
    """
    rows = []
    for split, values in (("val", dice_val), ("test", dice_test)):
        for i, d in enumerate(values):
            stratum = STRATA_CYCLE[i % len(STRATA_CYCLE)]
            case_id = ids[split][i] if ids else f"{split[0].upper()}{i:02d}"
            row = {"case_id": case_id, "split": split, "burden_percent": _BURDEN[stratum],
                   "stratum": stratum, "dice": d, "masd_mm": float(masd_of([d])[0]), "nsd": float(nsd_of([d])[0]),
                   "n_pred": 100, "n_ref": 90, "pred_volume_ml": 1.0, "ref_volume_ml": 0.9}  # fmt: skip
            if split == "test" and i in empty:
                row.update(_empty_label_row(d))
            rows.append(row)
    return pd.DataFrame(rows)


def write_study(
    root: Path,
    dice: Mapping[str, Sequence[Sequence[float]]],
    data_dir: Path | None = None,
    synthetic: bool = True,
    preset: str = "quick",
    target_shape: Sequence[int] = (16, 64, 64),
    n_val: int = 2,
    fingerprints: Sequence[object] | None = None,
    ids: Mapping[str, Sequence[str]] | None = None,
    empty: Sequence[int] = (),
    best_epochs: Mapping[str, Sequence[int]] | None = None,
    external: Sequence[str] = (),
) -> Path:
    """Write a study folder.

    Args:
        root: The study folder to create.
        dice: Method -> one per-case test Dice list per seed (losses), or a single list in a
            one-element list (``baseline``, ``ceiling``). Val cases take the first ``n_val``.
        data_dir: The data folder the runs name; default ``root.parent / "data"`` (created).
        synthetic: Write the generator's manifest (``SYNTHETIC.json``) into the data folder.
        preset, target_shape: The runs' configuration.
        n_val: Val cases per run.
        fingerprints: Code fingerprint per seed (default the same for all).
        ids: Case ids per split (``test``, ``val``), to match a real data folder.
        empty: Indices of test cases with an empty reference label (their Dice value 1 means an
            empty prediction, anything else 28 false-positive voxels).
        best_epochs: Method -> the best epoch of each seed's run (``summary.json``).
        external: Methods written as outside predictions (``seed0`` only, ``"external": true``,
            no history); a trained method's id gives its run configuration (``tversky_hdt@segresnet``:
            loss ``tversky_hdt``, arch ``segresnet``; :func:`hie_core.methods.config_of_id`).
    """
    from hie_core.methods import config_of_id

    data_dir = data_dir or root.parent / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    if synthetic:
        (data_dir / "SYNTHETIC.json").write_text("{}")
    for method, per_seed in dice.items():
        if method in ("baseline", "ceiling"):
            folder = root / method
            folder.mkdir(parents=True)
            metrics_frame(per_seed[0], per_seed[0][:n_val], ids, empty).to_csv(
                folder / "metrics.csv", index=False
            )
            continue
        if method in external:
            folder = root / method / "seed0"
            folder.mkdir(parents=True)
            info = {"external": True, "label": method, "loss": "external", "data_dir_resolved": str(data_dir)}
            (folder / "config.json").write_text(json.dumps(info))
            (folder / "summary.json").write_text(json.dumps({"external": True}))
            metrics_frame(per_seed[0], per_seed[0][:n_val], ids, empty).to_csv(
                folder / "metrics.csv", index=False
            )
            continue
        for seed, values in enumerate(per_seed):
            folder = root / method / f"seed{seed}"
            folder.mkdir(parents=True)
            config = {**config_of_id(method), "seed": seed, "preset": preset, "target_shape": list(target_shape),
                      "widths": [8, 16, 32, 64], "epochs": 15, "patience": 6, "batch_size": 2, "lr": 1e-3,
                      "augment": "torchio", "prior_probability": 0.01, "l1": 1e-4, "selection_fraction": 0.2}  # fmt: skip
            info = {"config": config, "data_dir_resolved": str(data_dir), "synthetic": False,
                    "device_name": "CPU (test)", "n_cases": {"train": 16, "val": n_val, "test": len(values)},
                    "fingerprint": (fingerprints or ["f0"] * len(per_seed))[seed]}  # fmt: skip
            (folder / "config.json").write_text(json.dumps(info))
            summary = {"selection_cases": ["a", "b", "c"]}
            if best_epochs and method in best_epochs:
                summary["best_epoch"] = int(best_epochs[method][seed])
            (folder / "summary.json").write_text(json.dumps(summary))
            epochs = np.arange(1, 4)
            pd.DataFrame({"epoch": epochs, "train_loss": 1 / epochs, "selection_loss": 1.1 / epochs,
                          "selection_dice": [0.1, 0.3, 0.2], "lr": 1e-3, "seconds": [2.0, 1.0, 1.5 + seed]}).to_csv(
                folder / "history.csv", index=False)  # fmt: skip
            metrics_frame(values, values[:n_val], ids, empty).to_csv(folder / "metrics.csv", index=False)
    return root
