"""Tests of hie_core.methods and of the study's methods: grids, networks and outside predictions.

Method ids and labels, the grid options (``--grid``, ``--archs``, ``--external``) and their
errors, the grid's run folders, and the reports of a hand-made study folder of several methods.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hie_core import study
from hie_core.errors import ConfigError
from hie_core.methods import (
    config_of_id,
    grid_keys_of,
    is_seed_method,
    label_of_id,
    method_id,
    method_label,
    sort_methods,
)
from hie_core.report.analysis import results
from hie_core.report.analysis.runs import find_runs
from hie_core.report.pages import results_page
from hie_core.report.viewers import charts
from hie_core.study.grid import plan_grid
from tests.report_fixtures import write_study

pytestmark = pytest.mark.usefixtures("few_resamples")  # tests/conftest.py


@pytest.mark.parametrize(
    ("config", "keys", "expected_id", "expected_label"),
    [
        ({"loss": "dice"}, (), "dice", "Dice"),
        ({"loss": "dice", "arch": "unet3d"}, (), "dice", "Dice"),
        ({"loss": "tversky_hdt", "arch": "segresnet"}, (), "tversky_hdt@segresnet", "Tversky+HDT · SegResNet"),
        ({"loss": "tversky_hdt", "hybrid_weight": 0.3}, ("hybrid_weight",), "tversky_hdt+hybrid_weight=0.3",
         "Tversky+HDT (w 0.3)"),
        ({"loss": "tversky_hdt", "hybrid_weight": 0.1}, ("hybrid_weight",), "tversky_hdt+hybrid_weight=0.1",
         "Tversky+HDT (w 0.1)"),  # the seed's value: named by the grid, not by loss_label
        ({"loss": "dice", "arch": "dynunet", "lr": 0.001, "patch_shape": [16, 48, 48]}, ("patch_shape", "lr"),
         "dice@dynunet+lr=0.001+patch_shape=16x48x48", "Dice · DynUNet (lr 0.001, patch_shape 16x48x48)"),
        ({"loss": "my.pkg:SmallLesionLoss", "arch": "segresnet"}, (), "SmallLesionLoss@segresnet",
         "SmallLesionLoss · SegResNet"),
        ({"external": True, "label": "nnunet", "loss": "external"}, (), "nnunet", "nnunet"),
        ({"config": {"loss": "hdt", "arch": "swinunetr"}, "seed": 0}, (), "hdt@swinunetr", "HausdorffDT · SwinUNETR"),
    ],
)  # fmt: skip
def test_method_ids_and_labels(config, keys, expected_id, expected_label) -> None:
    assert method_id(config, keys) == expected_id
    assert method_label(config, keys) == expected_label
    if not config.get("external") and "config" not in config and ":" not in config["loss"]:
        assert label_of_id(expected_id) == expected_label  # the id alone spells the same name
        assert sorted(grid_keys_of(expected_id)) == sorted(k for k in keys if k != "arch")


def test_an_arch_grid_key_is_shown_once_as_the_network() -> None:
    config = {"loss": "dice", "arch": "segresnet"}
    assert method_id(config, ["arch"]) == "dice@segresnet"
    assert method_label(config, ["arch"]) == "Dice · SegResNet"
    assert config_of_id("dice@segresnet+lr=0.003") == {"loss": "dice", "arch": "segresnet", "lr": 0.003}


def test_methods_sort_losses_first_then_by_loss_network_grid_then_outside() -> None:
    methods = ["mine", "tversky_hdt+hybrid_weight=0.5", "tversky_hdt@segresnet", "tversky_hdt+hybrid_weight=0.1",
               "dice@segresnet", "tversky_hdt", "dice", "dice+hybrid_weight=0.5", "hdt"]  # fmt: skip
    assert sort_methods(methods, ["mine"]) == [
        "dice", "hdt", "tversky_hdt", "dice+hybrid_weight=0.5", "dice@segresnet", "tversky_hdt+hybrid_weight=0.1",
        "tversky_hdt+hybrid_weight=0.5", "tversky_hdt@segresnet", "mine",
    ]  # fmt: skip
    assert is_seed_method("dice") and not is_seed_method("dice@segresnet") and not is_seed_method("mine")


def test_grid_options_parse_into_values_and_combinations() -> None:
    grid = study.parse_grid(["hybrid_weight=0.1,0.5", "patch_shape=[8, 16, 16],[16, 32, 32]"],
                            archs="unet3d,segresnet")  # fmt: skip
    assert grid == {"hybrid_weight": [0.1, 0.5], "patch_shape": [[8, 16, 16], [16, 32, 32]],
                    "arch": ["unet3d", "segresnet"]}  # fmt: skip
    combos = study.grid_combinations(grid)
    assert len(combos) == 8 and combos[0] == {
        "hybrid_weight": 0.1,
        "patch_shape": [8, 16, 16],
        "arch": "unet3d",
    }
    assert study.grid_combinations({}) == [{}]


@pytest.mark.parametrize(
    ("items", "archs", "fixed", "message"),
    [
        (["nope=1,2"], "", (), "--grid nope: not a configuration field"),
        (["seed=1,2"], "", (), "--grid seed: set by the study itself"),
        (["lr"], "", (), "expected KEY=V1,V2"),
        (["lr=0.1,,0.2"], "", (), "an empty value"),
        (["lr=0.1,0.1"], "", (), "a value appears twice"),
        (["lr=0.1", "lr=0.2"], "", (), "--grid lr: already given by --grid"),
        (["lr=0.1,0.2"], "", ("lr",), "--grid lr: already given by --set"),
        (["arch=unet3d"], "segresnet", (), "--archs arch: already given by --archs and --grid"),
    ],
)  # fmt: skip
def test_grid_option_errors_are_one_line(items, archs, fixed, message) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        study.parse_grid(items, archs, fixed)
    assert "\n" not in str(info.value)


def test_the_grid_runs_every_combination_with_every_loss_and_seed(tmp_path: Path) -> None:
    combos = study.grid_combinations({"hybrid_weight": [0.1, 0.5], "arch": ["unet3d", "segresnet"]})
    runs = plan_grid(tmp_path, ["dice", "tversky_hdt"], seeds=2, combos=combos)
    assert len(runs) == 2 * 4 * 2
    assert [r.name for r in runs[:4]] == ["dice+hybrid_weight=0.1/seed0", "dice+hybrid_weight=0.1/seed1",
                                          "dice@segresnet+hybrid_weight=0.1/seed0", "dice@segresnet+hybrid_weight=0.1/seed1"]  # fmt: skip
    run = runs[-1]
    assert run.run_dir == tmp_path / "tversky_hdt@segresnet+hybrid_weight=0.5" / "seed1"
    assert run.notebook_parameters == {"hybrid_weight": 0.5, "arch": "segresnet", "loss": "tversky_hdt", "seed": 1,
                                       "output_dir": str(run.run_dir)}  # fmt: skip
    archs_only = plan_grid(
        tmp_path, ["dice"], seeds=1, combos=study.grid_combinations({"arch": ["unet3d", "segresnet"]})
    )
    assert [r.name for r in archs_only] == [
        "dice/seed0",
        "dice@segresnet/seed0",
    ]  # the seed's network: the loss name
    fixed_arch = plan_grid(tmp_path, ["dice"], seeds=1, base={"arch": "segresnet"})  # --set arch=segresnet
    assert [r.name for r in fixed_arch] == ["dice@segresnet/seed0"]


def test_a_grid_value_the_configuration_rejects_stops_the_study_before_anything_runs(
    tiny_synthetic, tmp_path, capsys
):
    runs_dir = tmp_path / "runs"
    code = study.main(["--data-dir", str(tiny_synthetic), "--runs-dir", str(runs_dir), "--preset", "quick",
                       "--device", "cpu", "--seeds", "1", "--grid", "lr=0.001,-1", "--no-book"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "--grid lr=-1:" in err and len(err.strip().splitlines()) == 1
    assert not runs_dir.exists()
    code = study.main(["--data-dir", str(tiny_synthetic), "--runs-dir", str(runs_dir), "--preset", "quick",
                       "--device", "cpu", "--grid", "nope=1,2"])  # fmt: skip
    assert code == 2 and "--grid nope" in capsys.readouterr().err


def test_plan_counts_every_combination_and_outside_folder(tmp_path, capsys) -> None:
    preds = tmp_path / "preds"
    preds.mkdir()
    code = study.main(["--plan", "--runs-dir", str(tmp_path / "runs"), "--preset", "quick", "--device", "cpu",
                       "--losses", "dice,tversky_hdt", "--seeds", "2", "--grid", "lr=0.001,0.003,0.01",
                       "--external", f"mine={preds}"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "[plan] 12 runs: 2 losses x 3 grid combinations x 2 seeds x 1 fold" in out
    assert "[plan] methods: 6 trained + 1 folder of outside predictions" in out
    assert not (tmp_path / "runs").exists()


def test_external_options_are_checked(tmp_path: Path) -> None:
    preds = tmp_path / "preds"
    preds.mkdir()
    assert study.parse_externals([f"mine={preds}"]) == (("mine", preds.resolve()),)
    for item, message in [("mine", "expected NAME=FOLDER"), (f"a/b={preds}", "a name of letters"),
                          (f"dice={preds}", "already a loss"), (f"results={preds}", "already a loss"),
                          (f"dice@segresnet={preds}", "a name of letters"),
                          (f"mine={tmp_path / 'absent'}", "no such folder")]:  # fmt: skip
        with pytest.raises(ConfigError, match=message):
            study.parse_externals([item], taken=["dice+lr=0.1"])
    with pytest.raises(ConfigError, match="already"):
        study.parse_externals([f"m={preds}", f"m={preds}"])


def test_finish_study_adds_outside_predictions_before_the_results(tmp_path, monkeypatch) -> None:
    from hie_core.study import RunOutcome
    from hie_core.training import experiment

    calls = []
    monkeypatch.setattr(experiment, "run_baseline", lambda *a, **k: calls.append("baseline"))
    monkeypatch.setattr(experiment, "run_ceiling", lambda *a, **k: calls.append("ceiling"))
    monkeypatch.setattr(study.finish, "_add_external", lambda s, name, folder: calls.append(f"external {name}"))
    from hie_core.report.analysis import results as results_module

    monkeypatch.setattr(results_module, "write_results", lambda *a, **k: calls.append("results"))
    config = type("C", (), {"folds": 0})()
    ran = [RunOutcome("dice/seed0", True, 1.0, tmp_path / "n.ipynb", None)]
    steps = study.finish_study(tmp_path, tmp_path / "study", tmp_path / "data", config, ran, book=False,
                               externals=[("mine", tmp_path / "preds")])  # fmt: skip
    assert calls == ["baseline", "ceiling", "external mine", "results"]
    assert [s.name for s in steps] == ["baseline", "ceiling", "external mine", "results"]


@pytest.fixture
def methods_study(tmp_path: Path) -> Path:
    """Two losses on two networks, a grid value, outside predictions, baseline and ceiling."""
    base = np.round(np.linspace(0.30, 0.74, 12), 3)
    jitter = 0.001 * np.arange(12)
    return write_study(tmp_path / "study", {
        "tversky_hdt@segresnet": [base + 0.05 + jitter, base + 0.06 + jitter],
        "dice": [base, base + 0.01],
        "tversky_hdt": [base + 0.1 + jitter, base + 0.12 + jitter],
        "tversky_hdt+hybrid_weight=0.3": [base + 0.02 + jitter, base + 0.03 + jitter],
        "dice@segresnet": [base - 0.05 + jitter, base - 0.04 + jitter],
        "mine": [base + 0.2 + 2 * jitter],
        "baseline": [base - 0.2 - jitter],
        "ceiling": [np.full(12, 0.9)],
    }, external=["mine"])  # fmt: skip


ORDER = [
    "dice",
    "tversky_hdt",
    "dice@segresnet",
    "tversky_hdt+hybrid_weight=0.3",
    "tversky_hdt@segresnet",
    "mine",
]


def test_every_method_folder_is_read_in_table_order(methods_study: Path) -> None:
    (methods_study / "hdt" / "notes").mkdir(parents=True)  # a folder without seed runs is no method
    runs = find_runs(methods_study)
    assert runs.methods == ORDER
    assert (
        runs.losses == ORDER[:-1]
        and runs.external == ["mine"]
        and runs.seed_methods == ["dice", "tversky_hdt"]
    )
    assert runs.labels["tversky_hdt@segresnet"] == "Tversky+HDT · SegResNet"
    assert runs.labels["tversky_hdt+hybrid_weight=0.3"] == "Tversky+HDT (w 0.3)"
    assert runs.labels["mine"] == "mine" and len(runs.of("mine")) == 1


def test_results_have_one_row_per_method_and_hypotheses_on_the_seeds_losses(methods_study: Path) -> None:
    folder = results.write_results(methods_study)
    info = json.loads((folder / "study.json").read_text())
    assert info["methods"] == ORDER and info["losses"] == ORDER[:-1] and info["external"] == ["mine"]
    assert info["seed_methods"] == ["dice", "tversky_hdt"]
    assert info["method_labels"]["dice@segresnet"] == "Dice · SegResNet"
    assert info["grid"]["arch"] == ["unet3d", "segresnet"] and "hybrid_weight" in info["grid"]
    t1 = pd.read_csv(folder / "table1_test.csv")
    assert t1["method"].tolist() == [*ORDER, "baseline", "ceiling"]
    p_best = t1.set_index("method")["p_rank1_dice"]
    assert p_best[ORDER].notna().all() and p_best[ORDER].sum() == pytest.approx(1.0)
    assert p_best["mine"] > 0.5  # the best Dice: the outside predictions
    comparisons = pd.read_csv(folder / "comparisons_test.csv")
    assert set(comparisons["method"]) == set(ORDER)  # every method against the Dice loss and the baseline
    hyp = pd.read_csv(folder / "hypotheses_test.csv")
    assert set(hyp["method"]) | set(hyp["reference"]) <= {"dice", "tversky_hdt"}
    assert set(hyp["family"]) <= {"primary", "secondary"}
    strata = pd.read_csv(folder / "strata_test.csv")
    assert strata["method"].drop_duplicates().tolist() == [*ORDER, "baseline", "ceiling"]


def test_pages_label_methods_as_study_json_records_them(methods_study: Path) -> None:
    results.write_results(methods_study)
    res = results.read_results(methods_study)
    assert res.methods == ORDER and res.method_labels["mine"] == "mine"
    assert results_page.method_label("tversky_hdt@segresnet", res) == "Tversky+HDT · SegResNet"
    assert results_page.method_label("baseline", res) == "ZADC < -2 (baseline)"
    shown = results_page.table1(res).text  # the plain text: the HTML may break a header inside a word
    for label in ("Dice · SegResNet", "Tversky+HDT (w 0.3)", "mine"):
        assert label in shown
    wide = results_page.per_case_table(res).text
    assert "Tversky+HDT · SegResNet" in wide and "Tversky+HDT (w 0.3)" in wide


def test_training_curves_tell_seeds_apart_and_label_only_decades() -> None:
    epochs = np.arange(1, 6)
    history = pd.DataFrame({"epoch": epochs, "train_loss": 1 / epochs, "selection_loss": 1.2 / epochs,
                            "selection_dice": [0.1, 0.3, 0.5, 0.4, 0.45]})  # fmt: skip
    fig = charts.training_curves_figure({"Dice": {0: history, 1: history}, "Tversky": [history]})
    legend = [t for t in fig.data if t.showlegend]
    assert [t.name for t in legend] == ["Dice, seed 0", "Dice, seed 1", "Tversky, seed 0"]
    assert [t.line.dash for t in legend] == ["solid", "dash", "solid"]
    assert legend[0].line.color == legend[1].line.color != legend[2].line.color
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis.dtick == 1  # one label per decade


def test_a_large_or_small_float_in_an_id_has_no_plus_and_reads_back():
    from hie_core.methods import config_of_id, format_value, method_id

    assert format_value(1e6) == "1e6" and format_value(1e-5) == "1e-05" and format_value(2.5e12) == "2.5e12"
    mid = method_id({"loss": "dice", "lr": 1e6, "hybrid_weight": 0.5}, ["lr"])
    assert mid == "dice+lr=1e6" and grid_keys_of(mid) == ["lr"] and config_of_id(mid)["lr"] == 1e6
