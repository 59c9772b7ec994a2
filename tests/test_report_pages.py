"""Tests of the study pages' calls (report.results_page, performance_page, experiment, deviations) on small study folders."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from hie_core.data import discover_cases
from hie_core.io import read_image, write_image
from hie_core.report.analysis.results import write_results
from hie_core.report.pages import deviations, experiment, performance_page, prose, results_case, results_page
from hie_core.training.evaluate import prediction_path
from hie_core.training.experiment import load_run
from tests.report_fixtures import write_study

pytestmark = pytest.mark.usefixtures("few_resamples")  # tests/conftest.py


BASE = np.round(np.linspace(0.30, 0.74, 12), 3)
J = 0.001 * np.arange(12)


@pytest.fixture
def shown(monkeypatch: pytest.MonkeyPatch) -> list:
    """What the page functions display (IPython's display, captured)."""
    out: list = []
    monkeypatch.setattr("IPython.display.display", lambda obj, raw=False: out.append(obj))
    return out


def _results(folder: Path):
    study = write_study(folder / "study", {"dice": [BASE, BASE + 0.02], "tversky": [BASE + 0.1 + J, BASE + 0.12 + J],
                                           "baseline": [BASE - 0.2 - J], "ceiling": [np.full(12, 0.9)]})  # fmt: skip
    write_results(study)
    return results_page.open_results(str(study))


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory):
    """A study folder with its results, written once for the tests that only read it (seconds)."""
    return _results(tmp_path_factory.mktemp("pages"))


@pytest.fixture
def own_results(tmp_path: Path):
    """The same study, of the test's own: for a test that changes the folder."""
    return _results(tmp_path)


def test_tables_have_no_index_and_carry_their_provenance(results) -> None:
    t1 = results_page.table1(results)._repr_html_()
    assert "row_heading" not in t1 and "SYNTHETIC BONBID-like data" in t1 and "preset quick" in t1
    assert "CPU (test)" not in t1  # the device is said once, in the page's banner, not under every table
    assert t1.count("<tr>") == 1 + 4 and "ceiling" in t1  # header + dice, tversky, baseline, ceiling
    assert "0.900" in t1 and "<span class=\"hie-ci\">[" in t1  # the ceiling's Dice; the interval a span kept whole
    assert ">ZADC &lt; -2 (baseline)</td>" in t1 and ">label resampled (ceiling)</td>" in t1
    comp = results_page.comparisons_table(results)._repr_html_()
    assert ">Tversky vs ZADC &lt; -2 (baseline)</td>" in comp  # as the reference of a comparison
    assert "Holm-adjusted over the 9 testable rows" in comp
    # Every case has the same sign, but each method's two runs differ by a shift shared by all its cases. Against
    # the one-run baseline that shift is a run component with 1 degree of freedom, so those 6 rows stay
    # inconclusive after Holm (a test conditioning on the runs called them different); Tversky's and Dice's
    # runs shift together, so their 3 rows have no run component and are different.
    rows = [r for r in comp.split("<tr>")[1:] if "</td>" in r]
    verdicts = {("baseline" in r, v) for r in rows for v in ("different", "inconclusive") if f">{v}<" in r}
    assert verdicts == {(True, "inconclusive"), (False, "different")} and len(rows) == 9
    strata = results_page.strata_table(results)._repr_html_()
    assert "n &lt; 5: no interval" in strata and ">empty label<" in strata
    hyp = results_page.hypotheses_table(results)._repr_html_()
    assert ">Tversky<br>trend over &lt;1%, 1-5%, &gt;5% of the brain<br><small>Dice</small>" in hyp
    assert "Verdict: supported or contradicted" in hyp and ">d<br><small>secondary</small></td>" in hyp
    seed = results_page.seed_table(results)._repr_html_()
    assert (
        ">0.5000</td>" in seed and ">Inf</td>" in seed and ">not run</td>" in seed
    )  # Tversky+HDT; HDT's MSD
    # a split the study did not report: no empty numbered table, one sentence that says so
    assert results_page.table1(results, "cv") is None
    said = prose.other_splits(results)
    assert said == (
        "The tables below give the main results on the official validation split (2 cases). This study did not "
        "report the out-of-fold (cross-validation) results: a study run with --folds K reports them."
    )
    per_case = results_page.per_case_table(results)
    assert len(per_case.text.splitlines()) == 1 + 12 + 1  # header, one row per case, the note
    assert "overflow" not in per_case._repr_html_() and "max-height" not in per_case._repr_html_()  # whole


def test_banner_abstract_discussion_and_chart(results, shown: list) -> None:
    results_page.study_banner(results)
    html = shown[0]["text/html"]
    assert "admonition warning" in html and "2 seeds per loss; device: CPU (test)." in html
    assert "test split (12 cases); official validation split (2 cases)" in html
    # no primary pair ran, yet a best loss is named on its own test: Tversky beats Dice in every case and run
    assert "**Tversky** had the best Dice" in results_page.abstract(results).data
    assert (
        "could detect a Dice difference" not in results_page.design_note(results).data
    )  # nor a design figure
    assert not hasattr(results_page, "discussion")  # the Discussion page holds it (test_results_page_points_to_it)
    results_page.table1_chart(results)
    assert 'id="table1-figure"' in shown[1]["text/html"]
    results_case.curves_figure(results)
    assert shown[2]["text/html"].count('"name":"Dice, seed ') >= 2  # both seeds of dice drawn


def test_figure6_shows_the_median_case_with_every_mask(
    tiny_release: Path, tmp_path: Path, shown: list
) -> None:
    cases = [c for c in discover_cases(tiny_release) if c.split in ("test", "val")]
    ids = {s: [c.case_id for c in cases if c.split == s] for s in ("test", "val")}
    study = write_study(tmp_path / "s", {"dice": [[0.2, 0.6]], "tversky": [[0.4, 0.8]], "baseline": [[0.1, 0.1]]},
                        data_dir=tiny_release, synthetic=False, n_val=1, ids=ids)  # fmt: skip
    for folder in [study / "dice" / "seed0", study / "tversky" / "seed0", study / "baseline"]:
        for case in cases:
            label, geometry = read_image(case.label)
            write_image(label, geometry, prediction_path(folder, case))
    write_results(study)
    res = results_page.open_results(str(study))
    arrays = results_case.case_arrays(res)
    assert arrays["case_id"] == ids["test"][0]  # mean Dice 0.3 vs 0.7: the lower median of two
    assert list(arrays["predictions"]) == ["dice", "tversky", "baseline"]
    results_case.figure6(res)
    html = shown[0]["text/html"]
    assert 'id="figure6"' in html and f"{ids['test'][0]} (test)" in html
    viewer = results_case.live_case_viewer(res, ids["test"][1])
    assert viewer.overlay_dropdown.options == (
        "Dice",
        "Tversky",
        "ZADC < -2 (baseline)",
        "reference (expert lesion label)",
        "no overlay",
    )


def test_study_timings_per_loss(results) -> None:
    table = performance_page.study_timings(results.study_dir).set_index("loss")
    assert table.loc["dice", "seeds"] == 2 and table.loc["dice", "epochs (per seed)"] == "3/3"
    assert table.loc["dice", "median s/epoch"] == pytest.approx(1.75)  # 2, 1, 1.5 and 2, 1, 2.5
    assert table.loc["dice", "total train s"] == pytest.approx(10.0) and table.loc["dice", "x dice"] == 1.0
    shown = performance_page.timings_table(results.study_dir)
    assert (
        "device: CPU (test); grid: 16 × 64 × 64 voxels" in shown.text
        and "device" not in shown.text.splitlines()[0]
    )
    assert ">Tversky</td>" in shown.data and ">tversky<" not in shown.data and "time vs Dice" in shown.data


def test_deviations_table_from_a_study_and_from_presets(results) -> None:
    table = deviations.study_deviations(str(results.study_dir)).set_index("aspect")
    assert table.loc["data", "this study"].startswith("synthetic")
    assert table.loc["repeated runs", "this study"].startswith("2 seeds")
    assert table.loc["reported splits", "this study"] == "test (12 cases), official validation (2 cases)"
    assert table.loc["target shape", "this study"] == "16 × 64 × 64 voxels (D × H × W)"
    assert "3 of 16 cases" in table.loc["model selection", "this study"]
    for aspect in ("output-bias prior", "L1 penalty", "hybrid losses", "label resampling", "metrics"):
        assert table.loc[aspect, "why"], aspect
    assert "logit(0.01)" in table.loc["output-bias prior", "this study"]
    assert re.search(r"on the \d+ weight tensors with ndim > 1", table.loc["L1 penalty", "this study"])
    seed = deviations.study_deviations("").set_index("aspect")
    assert (
        "target shape" not in seed.index and "data" not in seed.index
    )  # the seed preset keeps the seed's grid


def test_deviations_name_every_changed_setting() -> None:
    config = {"target_shape": (32, 192, 192), "augment": "batched", "amp": True, "epochs": 100, "patch_shape": (32, 96, 96),
              "widths": (32, 64, 128, 256), "prior_probability": 0.01, "l1": 1e-4, "selection_fraction": 0.2,
              "a_new_setting": 3, "zadc_norm": "atlas", "mirror_axes": [2], "sw_overlap": 0.5}  # fmt: skip
    table = deviations.deviations_table(config).set_index("aspect")
    assert table.loc["mirroring", "seed study"] == "none" and "nnU-Net" in table.loc["mirroring", "why"]
    assert table.loc["mirroring", "this study"].startswith("random left-right (W) flips in training")
    assert table.loc["selection-set scoring", "this study"].endswith("not mirrored")
    assert (
        "mirroring"
        not in deviations.deviations_table({**config, "mirror_axes": []}).set_index("aspect").index
    )
    assert (
        table.loc["ZADC scaling", "this study"].startswith("as given")
        and "atlas" in table.loc["ZADC scaling", "why"]
    )
    assert table.loc["augment", "this study"] == "batched" and table.loc["amp", "why"]
    assert table.loc["patch shape", "seed study"] == "not described"
    assert "epochs" not in table.index  # same as the seed


def test_experiment_page_reads_the_new_history_columns(own_results, shown: list) -> None:
    results = own_results  # a folder of its own: this test changes it
    run_dir = results.study_dir / "dice" / "seed0"
    (run_dir / "model_best.pt").write_bytes(b"")
    (run_dir / "checkpoint_last.pt").write_bytes(b"")
    run = load_run(run_dir)
    assert "CPU (test)" in experiment.run_overview(run)._repr_html_()
    assert "SYNTHETIC" in experiment.endpoint_table(run)._repr_html_()
    experiment.training_curves(run)
    assert 'id="curves-dice"' in shown[0]["text/html"]
    with pytest.raises(RuntimeError, match="0 predictions for 14 evaluated cases"):
        experiment.check_run_folder(run)


def test_study_archs_are_the_networks_its_runs_trained(own_results) -> None:
    results = own_results  # a folder of its own: this test changes it
    from hie_core.report.pages import methods_page

    assert methods_page.study_archs("") == ()
    assert methods_page.study_archs(str(results.study_dir)) == ("unet3d",)  # runs without ``arch``: the U-Net
    config = next(results.study_dir.glob("dice/seed*/config.json"))
    info = json.loads(config.read_text())
    info["config"]["arch"] = "segresnet"
    config.write_text(json.dumps(info))
    assert methods_page.study_archs(str(results.study_dir)) == ("segresnet", "unet3d")


def test_long_paths_and_dotted_names_in_cells_may_break() -> None:
    import pandas as pd

    from hie_core.report.viewers import display

    frame = pd.DataFrame({"why": ["see (benchmarks/results/quick_preset_dev.json)", "0.430 and a_b"]})
    cells = display.table(frame)._repr_html_()
    assert "benchmarks/<wbr>results/<wbr>quick_<wbr>preset_<wbr>dev.<wbr>json" in cells
    assert ">0.430 and a_b<" in cells  # short words stay whole


def test_results_page_points_to_the_discussion_and_shows_no_table_of_an_unreported_split() -> None:
    """The Results notebook: no discussion of its own (one sentence linking the Discussion page, whose
    Limitations it repeated), and no reference to the other splits' tables, which a study may not show."""
    import nbformat

    nb = nbformat.read(Path(__file__).parents[1] / "notebooks" / "results.ipynb", 4)
    text = "\n".join(c.source for c in nb.cells)
    assert "page.discussion(" not in text and "Discussion and limitations" not in text
    assert text.count("{doc}`discussion`") == 1
    assert "{numref}`tbl-results-table1-cv`" not in text and "{numref}`tbl-results-table1-val`" not in text
    assert "prose.other_splits(results)" in text
