"""The experiment page (hie_core.report.pages.experiment_page): every seed of a loss, in words and numbers."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from hie_core.report.book.copy_check import aliases_in_page, copy_slips
from hie_core.report.pages import experiment_page as page
from hie_core.training.experiment import load_run, summarize_metrics
from tests.report_fixtures import write_study

DICE = {
    "dice": [[0.8, 0.6, 0.0, 0.4], [0.7, 0.5, 0.0, 0.6]],
    "hdt": [[0.2, 0.1, 1.0, 0.3], [0.1, 0.0, 1.0, 0.2]],
}


@pytest.fixture
def study(tmp_path: Path) -> Path:
    root = write_study(tmp_path / "study", DICE, empty=(2,))
    for folder in root.glob("*/seed*"):
        summary = json.loads((folder / "summary.json").read_text())
        summary["splits"] = summarize_metrics(pd.read_csv(folder / "metrics.csv"))
        summary["best_epoch"] = 2
        (folder / "summary.json").write_text(json.dumps(summary))
    return root


def test_format_number_and_shapes() -> None:
    assert page.format_number(-0.0004, 3) == "0.000" and page.format_number(-0.0006, 3) == "-0.001"
    assert page.format_number(float("nan"), 2) == "-" and page.format_number(1.23456, 2) == "1.23"
    assert (
        page.shape_text((16, 48, 48)) == "16 × 48 × 48"
        and page.shape_text([4.0, 2, 2], "mm") == "4 × 2 × 2 mm"
    )


def test_header_and_tables_show_every_seed(study: Path) -> None:
    run = load_run(study / "dice" / "seed0")
    header = page.run_header(run).data
    assert "seeds 0 and 1 were found" in header and "(16, 48, 48)" not in header
    runs = page.runs_table(run).text
    assert len(runs.splitlines()) == 1 + 2 + 1  # header, two seeds, note
    cases = page.case_table(run)
    html = cases._repr_html_()
    # every case of both seeds; seed 1's Dice of the fourth test case (0.600) is on the page, not only seed 0's
    rows = sum(len(pd.read_csv(study / "dice" / f"seed{s}" / "metrics.csv")) for s in (0, 1))
    assert html.count("<tr") == 1 + rows and "0.600" in html and "0.400" in html
    assert "n_pred" not in html and "masd_mm" not in html and "Dice" in html
    assert "reference volume (mL)" in html  # a header never breaks inside its unit (no "m<wbr>L")
    assert aliases_in_page(html) == [] and copy_slips(html) == []
    endpoint = page.endpoint_table(run)._repr_html_()
    assert "mean of 2 seeds" in endpoint and "No cross-validation was run" in endpoint
    assert "x86_64" not in endpoint


def test_curves_figure_has_every_seed_and_alt_text(study: Path) -> None:
    run = load_run(study / "hdt" / "seed1")
    fig = page.curves_figure(run)
    assert "seeds 0 and 1" in fig.alt and "seed 1 at epoch 2" in fig.alt and "/" not in fig.alt
    assert sorted(fig.csv_data["seed"].unique()) == [0, 1]
    assert len(fig.axes[1].lines) == 2 + 2  # a Dice line and a best-epoch dot per seed


def test_reproduce_box_names_each_seed_and_checks_the_run_folder(study: Path) -> None:
    run = load_run(study / "dice" / "seed1")
    with pytest.raises(RuntimeError, match="0 predictions"):  # the folder holds no prediction yet
        page.reproduce_box(run)
    for case, split in zip(run.metrics["case_id"], run.metrics["split"], strict=True):
        (run.run_dir / "predictions" / split).mkdir(parents=True, exist_ok=True)
        (run.run_dir / "predictions" / split / f"{case}_lesion.mha").write_bytes(b"")
    shown = []
    import IPython.display

    original = IPython.display.display
    IPython.display.display = lambda obj, raw=False: shown.append(obj)
    try:
        page.reproduce_box(run)
    finally:
        IPython.display.display = original
    box = shown[0]["text/html"]
    assert "The commands" in box and "-p loss dice -p seed 0" in box and "-p seed 1" in box
    assert f"run folder was complete (4 files, {len(run.metrics)} native-grid predictions)" in box


def test_label_page_makes_names_unique_per_loss() -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("{numref}`tbl-exp-runs` and {numref}`fig-exp-curves`"),
                nbformat.v4.new_code_cell("x", metadata={"mystnb": {"figure": {"caption": "c", "name": "tbl-exp-runs"}}})]  # fmt: skip
    config = nbformat.v4.new_code_cell("config = notebook_config(loss=loss)", outputs=[
        nbformat.v4.new_output("stream", name="stdout", text="preset: quick; patches (16, 48, 48)\n"),
        nbformat.v4.new_output("stream", name="stderr", text="UserWarning: a warning the reader sees\n")])  # fmt: skip
    nb.cells.append(config)
    page.label_page(nb, "tversky_hdt@segresnet")
    page.label_page(nb, "tversky_hdt@segresnet")  # idempotent
    assert [o["name"] for o in config.outputs] == ["stderr"]
    assert (
        nb.cells[0].source
        == "{numref}`tbl-exp-tversky-hdt-segresnet-runs` and {numref}`fig-exp-tversky-hdt-segresnet-curves`"
    )
    assert nb.cells[1].metadata["mystnb"]["figure"]["name"] == "tbl-exp-tversky-hdt-segresnet-runs"


def test_a_fold_runs_page_reports_that_fold_with_a_val_split_only(tmp_path: Path) -> None:
    """A cross-validation study's fold-1 run (trained before any fold-0 run exists, its metrics the
    val split only): the page's tables show that fold's runs, not an empty concatenation."""
    root = write_study(tmp_path / "study", {"dice": DICE["dice"]})
    for folder in sorted(root.glob("dice/seed*")):
        info = json.loads((folder / "config.json").read_text())
        info["config"] |= {"folds": 3, "fold": 1}
        (folder / "config.json").write_text(json.dumps(info))
        metrics = pd.read_csv(folder / "metrics.csv")
        metrics[metrics["split"] == "val"].to_csv(folder / "metrics.csv", index=False)
        folder.rename(folder.parent / f"{folder.name}-fold1")
    run = load_run(root / "dice" / "seed0-fold1")
    html = page.case_table(run)._repr_html_()
    assert html.count("<tr") == 1 + 2 * 2  # two val cases in each of two seeds
    assert "2 validation cases, each in 2 seeds (the models that held out fold 1)" in html
    assert len(page.runs_table(run).text.splitlines()) == 1 + 2 + 1  # both seeds' fold-1 runs
    assert "seeds 0 and 1" in page.curves_figure(run).alt


def test_command_passes_only_the_notebooks_parameters() -> None:
    """The rerun command of a fold run: settings without a notebook parameter go in ``overrides`` (one
    YAML value), so papermill accepts every name (it warns about any the parameters cell lacks)."""
    import shlex

    import papermill
    import yaml

    cfg = {"loss": "dice", "preset": "quick", "folds": 3, "fold": 1, "synthetic_test_cases": 20}
    command = page._command(cfg, 1)
    assert "-p folds" not in command and "\n" not in command
    args = shlex.split(command)
    names = [args[i + 1] for i, a in enumerate(args) if a == "-p"]
    values = [yaml.safe_load(args[i + 1]) for i, a in enumerate(args) if a == "-y"]
    assert values == [{"overrides": {"folds": 3, "fold": 1, "synthetic_test_cases": 20}}]
    declared = set(papermill.inspect_notebook(str(Path(__file__).parents[1] / "notebooks" / "train.ipynb")))
    assert {*names, "overrides"} <= declared and names == ["loss", "seed", "preset"]
    assert "-y" not in page._command({"loss": "dice", "preset": "quick"}, 0)
