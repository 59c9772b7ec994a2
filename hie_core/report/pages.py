"""Prose and banners of the book's study pages, written from the numbers.

The abstract's answer and the discussion are generated from a study's run folders, so
they say what this run found (or that it found no difference), never what we hoped.
"""

from __future__ import annotations

import math
from pathlib import Path

from hie_core.report.results import BASELINE, Study, load_study, strata_table, table1, wilcoxon_table

__all__ = ["open_study", "source_banner", "show_figure", "abstract", "discussion", "study_dir_for"]


def _markdown(text: str):
    try:
        from IPython.display import Markdown

        return Markdown(text)
    except ImportError:  # pragma: no cover
        return text


def study_dir_for(study_dir: str = "", preset: str = "auto") -> Path:
    """``study_dir``, or ``runs/<preset>`` under the project root when empty."""
    from hie_core.training.config import make_config
    from hie_core.training.experiment import project_root

    if study_dir:
        return Path(study_dir)
    return project_root() / "runs" / make_config(preset=preset).preset


def open_study(study_dir: str = "", preset: str = "auto") -> Study:
    """Load a finished study (see :func:`study_dir_for`); a clear error if there is none."""
    path = study_dir_for(study_dir, preset)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no study folder; run `python -m hie_core.study` first")
    return load_study(path)


def source_banner(study: Study):
    """A visible statement of the data source, hardware and what is missing."""
    n = {split: int((study.first.metrics["split"] == split).sum()) for split in ("val", "test")}
    lines = [f"**Source of every number on this page:** {study.source}. "
             f"Reported splits: test ({n['test']} cases), official validation ({n['val']} cases)."]  # fmt: skip
    if study.synthetic:
        lines.append("**These data are synthetic** (a BONBID-like generator with known lesions): "
                     "the numbers test the pipeline, they say nothing about patients.")  # fmt: skip
    if study.missing:
        lines.append(f"Runs that did not finish and are absent here: {', '.join(study.missing)}.")
    return _markdown("\n\n".join(lines))


def show_figure(fig, div_id: str) -> None:
    """Display a plotly figure as HTML that the static book keeps (plotly.js is vendored)."""
    from hie_core.report.viewers import show

    show(fig, div_id=div_id, plotly_mime=False)


def _ranked(study: Study, split: str = "test"):
    t = table1(study, split, n_boot=2000)
    losses = t[t["method"] != BASELINE].sort_values("_dice", ascending=False, kind="stable")
    base = t[t["method"] == BASELINE]
    return t, losses, (float(base["_dice"].iloc[0]) if len(base) else math.nan)


def abstract(study: Study):
    """The answer paragraph: best loss, its Dice with CI, the runner-up, the baseline."""
    _, losses, base = _ranked(study)
    best, second = losses.iloc[0], losses.iloc[1] if len(losses) > 1 else None
    data = "synthetic BONBID-like data" if study.synthetic else "the BONBID-HIE release"
    text = (f"On {data} ({best['cases']} test cases, preset {study.first.config['config']['preset']}), "
            f"**{best['method']}** gave the highest mean test Dice, {best['Dice']} (mean [95% CI]), "
            f"MASD {best['MASD mm']} mm and NSD {best['NSD @2mm']}.")  # fmt: skip
    if second is not None:
        text += f" The runner-up, {second['method']}, reached {second['Dice']}."
    if not math.isnan(base):
        text += f" The organisers' `ZADC < -2` threshold scored a mean Dice of {base:.3f}"
        beaten = int((losses["_dice"] > base).sum())
        text += (": no loss beat it in this run." if beaten == 0
                 else f"; {beaten} of {len(losses)} losses beat it.")  # fmt: skip
    w = wilcoxon_table(study)
    dice_p = w[(w["metric"] == "dice") & (w["method"] == best["method"])]
    if len(dice_p) and best["method"] != "dice":
        p = dice_p["p"].iloc[0]
        text += (f" Against the Dice loss, the paired Wilcoxon test on test Dice gives p = {p:.3g} "
                 f"(n = {int(dice_p['n pairs'].iloc[0])}).") if p == p else ""  # fmt: skip
    if study.synthetic:
        text += (
            " These numbers come from synthetic data and check the pipeline; they are not a clinical result."
        )
    return _markdown(text)


def _overlap(losses) -> str:
    if len(losses) < 2:
        return ""
    best, second = losses.iloc[0], losses.iloc[1]
    if best["_dice_low"] <= second["_dice_high"]:
        return (f"The confidence intervals of the two best losses ({best['method']} and {second['method']}) "
                "overlap: this study cannot rank them with confidence.")  # fmt: skip
    return f"The interval of {best['method']} lies above that of {second['method']}."


def discussion(study: Study):
    """Discussion and limitations, from the numbers of this study."""
    t, losses, base = _ranked(study)
    strata = strata_table(study)
    parts = [_overlap(losses)]
    if not math.isnan(base):
        beat = losses[losses["_dice"] > base]["method"].tolist()
        parts.append(f"{len(beat)} of {len(losses)} losses beat the `ZADC < -2` baseline in mean test Dice"
                     f"{' (' + ', '.join(beat) + ')' if beat else ''}.")  # fmt: skip
    small = [c for c in strata.columns if c.startswith("<1%")]
    if small:
        col = small[0]
        row = strata.set_index("method")[col].drop(BASELINE, errors="ignore")
        parts.append(f"Small lesions remain the hard part: in the {col} stratum the best mean Dice is "
                     f"{row.max():.3f} ({row.idxmax()}), against {strata.set_index('method')[col].get(BASELINE, math.nan):.3f} "
                     "for the threshold baseline.")  # fmt: skip
    skipped = t.set_index("method")["MASD n/a"]
    worst = skipped.idxmax()
    if skipped.max() > 0:
        parts.append(f"MASD is undefined when exactly one of prediction and reference is empty; {worst} had "
                     f"{int(skipped.max())} such test case(s), skipped in its mean and counted in Table 1 "
                     "(the seed study averaged an Inf here).")  # fmt: skip
    limits = ["Limitations: one training run per loss (one seed), so the run-to-run variance of each number is "
              "not measured; the test split is small for paired tests; the preprocessing grid of the seed "
              "(192 x 192 x 32) coarsens some native scans and bounds the Dice of small lesions (see Methods)."]  # fmt: skip
    cfg = study.first.config["config"]
    if cfg["preset"] == "quick":
        limits.append("This study used the *quick* preset (a small U-Net on a coarse grid for a CPU run), not the "
                      "seed protocol: its numbers show that the pipeline works end to end, not how well the losses "
                      "can do.")  # fmt: skip
    if study.synthetic:
        limits.append("What synthetic data can show: that every step runs, that metrics and splits are handled "
                      "correctly, and how the losses behave on lesions with known truth. What it cannot show: how "
                      "they compare on real neonatal scans, whose anatomy, artefacts and lesion patterns the "
                      "generator only imitates. Run the study on the BONBID-HIE release for that.")  # fmt: skip
    return _markdown("\n\n".join([p for p in parts if p] + limits))


def study_timings(study: Study):
    """Measured training speed of this study's runs, from their history and config files."""
    import pandas as pd

    rows = []
    for loss, run in study.runs.items():
        cfg = run.config["config"]
        hist = run.history
        epoch_s = float(hist["seconds"].median())
        rows.append({"loss": loss, "device": run.config.get("device_name"), "grid": "x".join(map(str, cfg["target_shape"])),
                     "widths": "-".join(map(str, cfg["widths"])), "epochs": len(hist),
                     "median s/epoch": round(epoch_s, 2), "total train s": round(float(hist["seconds"].sum()), 1),
                     "x dice (s/epoch)": None})  # fmt: skip
    table = pd.DataFrame(rows)
    if "dice" in study.runs:
        ref = table.loc[table["loss"] == "dice", "median s/epoch"].iloc[0]
        table["x dice (s/epoch)"] = (table["median s/epoch"] / ref).round(2)
    return table


def benchmark_results(root: Path | None = None):
    """Every benchmark JSON kept under ``benchmarks/results/``, as (name, table) pairs."""
    import json

    import pandas as pd

    from hie_core.training.experiment import project_root

    folder = (root or project_root()) / "benchmarks" / "results"
    out = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        data = json.loads(path.read_text())
        rows = data.get("rows") or data.get("results") or []
        out.append((path.name, data.get("device", {}), pd.DataFrame(rows)))
    return out


def show_benchmarks(root: Path | None = None) -> None:
    """Display the kept benchmark results, or say that there are none."""
    from IPython.display import display

    results = benchmark_results(root)
    if not results:
        display(_markdown("No benchmark result is kept under `benchmarks/results/` yet: run "
                          "`python benchmarks/bench_pipeline.py` on a GPU to add one."))  # fmt: skip
    for name, device, table in results:
        display(
            _markdown(
                f"**{name}** - device: {device.get('name', device) if isinstance(device, dict) else device}"
            )
        )
        display(table)
