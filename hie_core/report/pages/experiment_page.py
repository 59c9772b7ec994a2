"""An experiment page of the book's appendix: one loss, every seed the study ran of it.

The training notebook (``notebooks/train.ipynb``) trains one run; the page it becomes in the
book reports the loss as a whole, read from the run folders of the loss in the study folder
(``<study>/<loss>/seed<k>/``, :func:`hie_core.report.pages.experiment.seed_endpoints` finds them):

- :func:`run_header`: the run in words (data, preset, network, grid, patches, training, device),
  said once, so no caption repeats the device;
- :func:`runs_table`: one row per seed (epochs, best epoch, its selection Dice, training time);
- :func:`curves_figure`: the training curves of every seed, a static figure with tick values;
- :func:`endpoint_table`: Table 1's endpoint per split and seed, and the mean of the seeds;
- :func:`case_table`: every case's scores in every seed, each metric at its own decimals;
- :func:`reproduce_box`: the papermill command of each seed, at the end of the page.

Names, headers and decimals come from the registry in :mod:`hie_core.methods`.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import pandas as pd

from hie_core.config import DEFAULTS
from hie_core.losses import loss_label
from hie_core.methods import COLUMN_LABELS, DECIMALS, UNIT_LABELS
from hie_core.metrics import METRIC_LABELS
from hie_core.model import ARCH_LABELS
from hie_core.report.analysis.study_records import RunConfig
from hie_core.report.pages.experiment import _sibling_runs, seed_endpoints
from hie_core.report.pages.sources import source_of_run
from hie_core.report.viewers import display
from hie_core.run_folder import HISTORY_FILE, read_summary, run_folder_name

__all__ = [
    "case_table",
    "curves_figure",
    "endpoint_table",
    "format_number",
    "label_page",
    "reproduce_box",
    "run_header",
    "runs_table",
    "shape_text",
]

#: Seed colours (Okabe-Ito, colour-blind safe), in seed order.
SEED_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")


def format_number(value, digits: int) -> str:
    """``value`` at ``digits`` decimals; "-" when missing; never "-0.000" (a value that rounds to
    zero is shown unsigned)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)) or pd.isna(value):
        return "-"
    text = f"{float(value):.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def shape_text(values: Sequence, unit: str = "") -> str:
    """``(16, 48, 48)`` as "16 × 48 × 48" (with `` unit`` after it); numbers as ``%g``."""
    text = " × ".join(f"{float(v):g}" for v in values)
    return f"{text} {unit}".rstrip()


def _seconds(total: float) -> str:
    """A duration in words: "52 s", "2 min 52 s", "1 h 3 min"."""
    total = int(round(total))
    if total < 60:
        return f"{total} s"
    if total < 3600:
        return f"{total // 60} min {total % 60} s"
    return f"{total // 3600} h {total % 3600 // 60} min"


def _seeds(result) -> list[int]:
    return sorted({seed for seed, _, _ in _sibling_runs(result)})


def _and(items: Sequence) -> str:
    """ "0", "0 and 1", "0, 1 and 2"."""
    items = [str(i) for i in items]
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


#: Names of the page's captioned tables and figures start with these; :func:`label_page` makes
#: them unique per loss when the book gathers the pages (a label names one target in the book).
LABEL_PREFIXES = ("tbl-exp-", "fig-exp-")


def label_page(nb, method: str):
    """Make an executed training notebook an appendix page of the book (in place; returns ``nb``).

    - Its figure and table names (``tbl-exp-...``, ``fig-exp-...``) and the ``{numref}`` references
      to them become ``tbl-exp-<method>-...``, so the six experiment pages of one book hold no
      duplicate label;
    - the settings line that the configuration cell prints (``notebook_config``: "preset: quick
      ...; patches (16, 48, 48) ...", a code line cut off at 800 px) is dropped from the page: the
      run header in words (:func:`run_header`) says the same. Its other outputs (warnings, errors)
      stay.

    Args:
        nb: The executed notebook (``nbformat`` node).
        method: The method id (its page's file name), e.g. ``"tversky_hdt"``.
    """
    import re

    slug = re.sub(r"[^a-z0-9]+", "-", method.lower()).strip("-")

    def rename(text: str) -> str:
        for prefix in LABEL_PREFIXES:
            text = re.sub(rf"(?<![\w-]){prefix}(?!{slug}-)", f"{prefix}{slug}-", text)
        return text

    for cell in nb.cells:
        figure = cell.get("metadata", {}).get("mystnb", {}).get("figure")
        if figure and "name" in figure:
            figure["name"] = rename(figure["name"])
        if cell.cell_type == "markdown":
            cell.source = rename(cell.source)
        elif cell.cell_type == "code" and "notebook_config(" in cell.source:
            cell.outputs = [o for o in cell.get("outputs", []) if not (o.get("output_type") == "stream"
                                                                       and o.get("name") == "stdout")]  # fmt: skip
    return nb


def run_header(result):
    """The run in words, as Markdown: what was trained, on what, how, and what the page reads.

    Args:
        result: A :class:`hie_core.run_folder.RunResult` (the notebook's run).
    """
    cfg = RunConfig.of_result(result).settings
    source = source_of_run(result.config)
    data = ("the embedded **synthetic** BONBID-like dataset (no patients)" if source.synthetic
            else f"the BONBID-HIE release in `{source.folder}`")  # fmt: skip
    if cfg.get("target_spacing_mm"):
        grid = f"resampled to {shape_text(cfg['target_spacing_mm'], 'mm')} voxels"
    elif cfg.get("target_shape"):
        grid = f"resampled to a {shape_text(cfg['target_shape'])} grid"
    else:
        grid = "on their own grid"
    patches = f"{shape_text(cfg['patch_shape'])}-voxel patches" if cfg.get("patch_shape") else "whole volumes"
    widths = ", ".join(str(w) for w in cfg.get("widths") or [])
    network = ARCH_LABELS.get(cfg.get("arch", DEFAULTS["arch"]), cfg.get("arch"))
    steps = cfg.get("steps_per_epoch")
    per_epoch = (
        f"{display.plural(int(steps), 'step')} per epoch" if steps else "one pass over the cases per epoch"
    )
    seeds = _seeds(result)
    seed_text = (f"seeds {_and(seeds)} were found in the study folder and every table "
                 f"and figure below shows {'both' if len(seeds) == 2 else 'all of them'}" if len(seeds) > 1
                 else f"only seed {seeds[0]} was found in the study folder")  # fmt: skip
    text = (
        f"**{loss_label(cfg)}**, trained on {data} with the `{cfg.get('preset')}` preset: a {network}"
        + (f" (channel widths {widths})" if widths else "")
        + f" on {patches} of the scans {grid}, batch {cfg.get('batch_size')}, {per_epoch}, "
        f"at most {display.plural(int(cfg.get('epochs', 0)), 'epoch')} with early stopping after "
        f"{display.plural(int(cfg.get('patience', 0)), 'epoch')} without a better selection Dice, "
        f"augmentation `{cfg.get('augment')}`, on {RunConfig.of_result(result).device or 'an unknown device'}. "
        f"This page was executed for seed {cfg.get('seed', 0)}; {seed_text}."
    )
    return display.markdown(text)


def _run_row(seed: int, history: pd.DataFrame, summary: dict) -> dict:
    best = summary.get("best_epoch")
    at_best = history.loc[history["epoch"] == best, "selection_dice"] if best is not None else pd.Series([])
    return {
        "seed": str(seed),
        "epochs run": str(summary.get("epochs_run", len(history))),
        "best epoch": "-" if best is None else str(best),
        "selection Dice at the best epoch": format_number(at_best.iloc[0] if len(at_best) else None, 3),
        "training time": _seconds(float(history["seconds"].sum())) if "seconds" in history else "-",
    }


def _fold(result) -> int | None:
    """The fold this run holds out (``config.fold`` of a cross-validation run); None for a plain run.

    The page reports the runs of this fold in every seed, so a fold-1 run's page shows fold 1's models
    (a study runner may execute it before fold 0's run exists)."""
    cfg = result.config["config"]
    return int(cfg.get("fold") or 0) if int(cfg.get("folds") or 0) > 1 else None


def _histories(result) -> dict[int, tuple[pd.DataFrame, dict]]:
    """Seed -> (history, summary) of every run of this loss in the study folder (this run's fold, or none)."""
    from pathlib import Path

    out: dict[int, tuple[pd.DataFrame, dict]] = {}
    parent = Path(result.run_dir).resolve().parent
    this_seed = RunConfig.of_result(result).seed
    out[this_seed] = (result.history, result.summary)
    fold = _fold(result)
    for seed in _seeds(result):
        if seed in out:
            continue
        folds = parent / run_folder_name(seed, 0 if fold is None else fold)
        for folder in (parent / run_folder_name(seed), folds):
            summary = read_summary(folder)
            if (folder / HISTORY_FILE).is_file() and summary is not None:
                out[seed] = (pd.read_csv(folder / HISTORY_FILE), summary)
                break
    return dict(sorted(out.items()))


def runs_table(result):
    """One row per seed: epochs run, best epoch, the selection Dice there and the training time."""
    rows = [_run_row(seed, history, summary) for seed, (history, summary) in _histories(result).items()]
    return display.table(pd.DataFrame(rows), note="Selection Dice: the mean Dice on the selection set "
                         "(cases of the training split held out from fitting), which picks the best epoch.")  # fmt: skip


def curves_figure(result):
    """The training curves of every seed: the training and selection loss (log axis) and the selection
    Dice per epoch, the best epoch marked. A static figure (one PNG, no plotly.js).

    Returns:
        A :class:`hie_core.report.viewers.display.BookFigure` with its alt text and CSV data.
    """
    from matplotlib.ticker import FuncFormatter

    histories = _histories(result)
    label = loss_label(RunConfig.of_result(result).settings)
    fig = display.BookFigure(figsize=(7.0, 3.3), layout="constrained")
    loss_ax, dice_ax = fig.subplots(1, 2)
    frames, best_text = [], []
    for k, (seed, (history, summary)) in enumerate(histories.items()):
        colour = SEED_COLOURS[k % len(SEED_COLOURS)]
        loss_ax.plot(
            history["epoch"],
            history["train_loss"],
            color=colour,
            lw=1,
            ls=":",
            label=f"seed {seed}, training",
        )
        loss_ax.plot(
            history["epoch"], history["selection_loss"], color=colour, lw=2, label=f"seed {seed}, selection"
        )
        dice_ax.plot(history["epoch"], history["selection_dice"], color=colour, lw=2, label=f"seed {seed}")
        best = summary.get("best_epoch")
        if best is not None and (history["epoch"] == best).any():
            dice_ax.plot(
                [best], history.loc[history["epoch"] == best, "selection_dice"], "o", color=colour, ms=6
            )
            best_text.append(f"seed {seed} at epoch {best}")
        frames.append(history[["epoch", "train_loss", "selection_loss", "selection_dice"]].assign(seed=seed))
    loss_ax.set_yscale("log")
    ticks = FuncFormatter(lambda v, _: f"{v:.2g}")  # 0.7, 0.8: values, not powers of ten
    loss_ax.yaxis.set_major_formatter(ticks)
    loss_ax.yaxis.set_minor_formatter(ticks)
    loss_ax.set(xlabel="epoch", ylabel="loss (log axis)", title="training (dotted) and selection loss")
    dice_ax.set(xlabel="epoch", ylabel="selection Dice", title="selection Dice, best epoch marked")
    for ax in (loss_ax, dice_ax):
        ax.title.set_fontsize(10)
        ax.grid(alpha=0.3)
    loss_ax.legend(fontsize=8)
    fig.csv_data = pd.concat(frames, ignore_index=True)
    fig.csv_name = f"training-curves-{result.config['config'].get('loss', 'loss').replace(':', '-')}"
    seeds = _and(list(histories))
    fig.alt = (f"Two line charts of {label}'s training, seeds {seeds}, against epoch: left, the training and "
               f"selection loss on a log axis; right, the selection Dice, with the best epoch marked "
               f"({'; '.join(best_text) or 'none recorded'}).")  # fmt: skip
    return fig


def _ci(row: pd.Series, metric: str) -> str:
    if pd.isna(row[f"{metric}_mean"]):
        return "n/a"
    return display.format_ci(row[f"{metric}_mean"], row[f"{metric}_ci_low"], row[f"{metric}_ci_high"],
                             DECIMALS[metric], html_break=True)  # fmt: skip


def endpoint_table(result):
    """Table 1's endpoint per split and seed, then the mean of the seeds: Dice and NSD over the cases
    with a lesion, MASD (with its count) over those where it is defined, mean [95% CI]; the cases with
    an empty reference label beside them, by their false positives."""
    table = seed_endpoints(result)
    count = lambda v: "-" if pd.isna(v) else str(int(v))  # noqa: E731
    rows = [{
        "split": r["split"], "seed": r["seed"], "cases with a lesion": count(r["n_cases"]),
        METRIC_LABELS["dice"]: _ci(r, "dice"), METRIC_LABELS["masd_mm"]: _ci(r, "masd_mm"),
        "cases with a MASD": f"{count(r['masd_cases'])} of {count(r['n_cases'])}", METRIC_LABELS["nsd"]: _ci(r, "nsd"),
        "empty-label cases with a false positive": (f"{count(r['fp_cases'])} of {count(r['empty_cases'])}"
                                                    if r["empty_cases"] else "none in this split"),
    } for _, r in table.iterrows()]  # fmt: skip
    cfg = RunConfig.of_result(result).settings
    not_run = [] if int(cfg.get("folds") or 0) > 1 else ["no cross-validation was run (split cv)"]
    note = ("Mean [95% bootstrap CI] on each case's native grid, by the code of Table 1 on the Results page. "
            "MASD is undefined where exactly one of prediction and reference is empty (for the mean of seeds: "
            "defined in every seed). A predicted lesion on a case with an empty reference label is a false "
            f"positive. {'; '.join(not_run).capitalize() + '.' if not_run else ''}")  # fmt: skip
    return display.table(pd.DataFrame(rows), note=note.strip(),
                         html_columns=[METRIC_LABELS[m] for m in ("dice", "masd_mm", "nsd")])  # fmt: skip


#: The per-case columns of :func:`case_table`, in order (every run's ``metrics.csv`` has the first ones).
CASE_COLUMNS = ("split", "case_id", "stratum", "burden_percent", "ref_volume_ml", "seed", "dice", "masd_mm", "nsd",
                "pred_volume_ml")  # fmt: skip


def case_table(result):
    """Every case's scores in every seed of this loss: one row per case and seed, each metric at its
    decimals (:data:`hie_core.methods.DECIMALS`), headers from :data:`hie_core.methods.COLUMN_LABELS`.

    Volumes are in mL when the run recorded them (runs before they did: voxel counts).
    """
    this_fold = _fold(result)
    frames = [m.assign(seed=seed) for seed, fold, m in _sibling_runs(result)
              if fold in (None, 0 if this_fold is None else this_fold)]  # fmt: skip
    data = pd.concat(frames, ignore_index=True)  # never empty: this run is its own sibling
    volumes = "ref_volume_ml" in data and "pred_volume_ml" in data
    columns = [c for c in CASE_COLUMNS if c in data] if volumes else [
        c for c in (*CASE_COLUMNS[:4], "n_ref", "seed", *CASE_COLUMNS[6:9], "n_pred") if c in data]  # fmt: skip
    order = {s: i for i, s in enumerate(("test", "cv", "val"))}
    data = data.sort_values(
        ["split", "case_id", "seed"], key=lambda s: s.map(order) if s.name == "split" else s
    )
    shown = pd.DataFrame({
        COLUMN_LABELS[c]: (data[c].map(lambda v, c=c: format_number(v, DECIMALS[c])) if c in DECIMALS
                           else data[c].astype(str)) for c in columns
    })  # fmt: skip
    cases = data.groupby("split")["case_id"].nunique()
    seeds = sorted(data["seed"].unique())
    names = {"test": "test", "val": "validation", "cv": "cross-validation"}
    counts = _and(
        [display.plural(int(cases[s]), f"{names[s]} case") for s in ("test", "cv", "val") if s in cases]
    )
    models = "" if this_fold is None else f" (the models that held out fold {this_fold})"
    note = (f"{counts[0].upper() + counts[1:]}, each in {display.plural(len(seeds), 'seed')}{models}. Lesion burden: lesion volume over brain volume. "
            "MASD is undefined (-) where exactly one of prediction and reference is empty. Volumes in "
            f"{UNIT_LABELS['ml']}.")  # fmt: skip
    return display.table(shown, note=note, scroll=True)


def _command(cfg: dict, seed: int) -> str:
    """The papermill command that reruns this loss's run of ``seed`` (the settings that differ from the
    notebook's defaults), one line to copy.

    The notebook's own parameters (``loss``, ``seed``, ``preset``) go with ``-p``; configuration fields
    it has no parameter for (``folds``, ``fold``, ``synthetic_test_cases``) go in its ``overrides``
    dict as one YAML ``-y`` value, so papermill names no unknown parameter.
    """
    parts = ["papermill notebooks/train.ipynb out.ipynb", f"-p loss {cfg.get('loss')}", f"-p seed {seed}"]
    if cfg.get("preset") and cfg.get("preset") != "auto":
        parts.append(f"-p preset {cfg['preset']}")
    overrides = {}
    if int(cfg.get("folds") or 0) > 1:
        overrides |= {"folds": int(cfg["folds"]), "fold": int(cfg.get("fold") or 0)}
    if cfg.get("synthetic_test_cases"):
        overrides["synthetic_test_cases"] = int(cfg["synthetic_test_cases"])
    if overrides:
        parts.append('-y "overrides: {' + ", ".join(f"{k}: {v}" for k, v in overrides.items()) + '}"')
    return " ".join(parts)


def reproduce_box(result) -> None:
    """The box under the page's "Reproduce this run" heading, at its end: the papermill command of
    each seed on the page, where the run folder goes, and the check that this run's folder is
    complete (:func:`hie_core.report.pages.experiment.check_run_folder`, which raises when it is not)."""
    import contextlib
    import io

    from hie_core.report.pages.experiment import check_run_folder

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        check_run_folder(result)
    checked = printed.getvalue().strip().removeprefix("run folder complete: ")
    cfg = RunConfig.of_result(result).settings
    commands = "<br>".join(f"<code>{html.escape(_command(cfg, seed))}</code>" for seed in _seeds(result))
    data = "" if source_of_run(result.config).synthetic else " -p data_dir YOUR_BONBID_FOLDER"
    text = (f"From the project folder, with its environment active (<code>. .venv/bin/activate</code>), one "
            f"command per seed{' (add' + html.escape(data) + ')' if data else ''}:<br>{commands}<br>"
            "Each writes its run folder under <code>runs/&lt;preset&gt;/&lt;loss&gt;/seed&lt;k&gt;/</code> "
            "(<code>-p output_dir</code> names another) and finds a finished run of the same code and "
            "settings there instead of training again. The notebook's first cell lists every parameter."
            + (f" When this page ran, this seed's run folder was complete ({html.escape(checked)})." if checked else ""))  # fmt: skip
    display.admonition("The commands", text, kind="tip")  # under the page's "Reproduce this run" heading
