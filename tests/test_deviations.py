"""Tests of report.deviations: every row says what the configuration makes true."""

from __future__ import annotations

import pytest

from hie_core.report.pages import deviations
from hie_core.training.config import PRESETS, make_config


def _table(preset: str, **kwargs) -> object:
    config = make_config(preset=preset, device="cpu").to_dict()
    return config, deviations.deviations_table(config, **kwargs).set_index("aspect")


@pytest.mark.parametrize(
    ("epochs", "patience", "can_stop"),
    [(15, 15, False), (15, 20, False), (15, 14, False), (15, 13, True), (100, 10, True)],
)
def test_early_stopping_words_follow_epochs_and_patience(epochs: int, patience: int, can_stop: bool) -> None:
    # the first epoch always sets the best Dice: after epoch e at most e - 1 epochs were worse,
    # so the run can end early only when patience + 1 < epochs
    words = deviations.early_stopping_words({"epochs": epochs, "patience": patience})
    assert ("cannot end a run before its last epoch" not in words) == can_stop
    assert "the epoch with the best selection Dice is kept" in words
    if can_stop:
        assert (
            f"stops after {patience} epochs without a better selection Dice (at most {epochs} epochs)"
            in words
        )
    else:
        assert f"every run trains all {epochs} epochs" in words


@pytest.mark.parametrize("preset", list(PRESETS))
def test_patience_and_epochs_rows_are_computed_from_the_preset(preset: str) -> None:
    config, table = _table(preset)
    for field in ("epochs", "patience"):
        assert (field in table.index) == (config[field] != deviations.SEED_PROTOCOL[field]), field
    if "patience" in table.index:
        assert "time budget" not in table.loc["patience", "why"]
        assert table.loc["patience", "why"].startswith(deviations.early_stopping_words(config))
    if config["patience"] >= config["epochs"] - 1:
        assert "cannot end a run before its last epoch" in table.loc["model selection", "why"]
    if "epochs" in table.index and config.get("steps_per_epoch"):
        steps = config["epochs"] * config["steps_per_epoch"]
        assert f"{steps} steps per run" in table.loc["epochs", "why"]


def test_the_quick_presets_early_stopping_never_fires() -> None:
    _, table = _table("quick")
    assert PRESETS["quick"]["patience"] >= PRESETS["quick"]["epochs"]
    assert "every run trains all 15 epochs" in table.loc["patience", "why"]


@pytest.mark.parametrize("preset", list(PRESETS))
def test_model_selection_and_how_the_preset_was_chosen(preset: str) -> None:
    _, table = _table(preset)
    selection = table.loc["model selection"]
    assert "no reported case may pick the model" not in selection["why"]
    assert selection["why"].startswith("no reported case picks the epoch that is kept")
    chosen = table.loc["how the preset was chosen"]
    if preset == "seed":
        assert chosen["this study"] == "the seed's own protocol"
        assert "how the preset was chosen" not in selection["why"]
    else:
        assert (
            "chosen by measurement on the synthetic test split that the book reports" in chosen["this study"]
        )
        assert (
            "benchmarks/README.md" in chosen["this study"] and "flatter the preset slightly" in chosen["why"]
        )
        # the development-set check, read from its committed file (hie_core.report.pages.preset_dev)
        assert "then checked on a development set that no reported split touches" in chosen["this study"]
        assert "On the development set (the synthetic set of generator seed 1" in chosen["why"]
        assert "see how the preset was chosen" in selection["why"]
        for words in ("ZADC scaling", "mirroring", "normalisation"):
            assert words in chosen["this study"], words
    if preset == "quick":
        for words in ("learning rate", "epochs", "patience"):
            assert words in chosen["this study"], words
    if preset == "native":
        assert "taken over from the quick preset" in chosen["this study"]


def test_how_the_preset_was_chosen_on_real_data_does_not_flatter_it() -> None:
    _, table = _table("quick", synthetic=False)
    chosen = table.loc["how the preset was chosen"]
    assert "not these data" in chosen["this study"] and "do not flatter" in chosen["why"]
    assert deviations.preset_choice({"target_shape": (32, 192, 192)}) is None  # no preset recorded: no row


@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_row_has_a_reason_and_the_ceiling_is_an_approximate_bound(preset: str) -> None:
    _, table = _table(preset, synthetic=True, n_seeds=2, n_cases={"test": 16, "val": 4})
    assert (table["why"].str.len() > 0).all(), table.index[table["why"].str.len() == 0].tolist()
    for aspect, why in table["why"].items():
        if "ceiling" in why:
            assert "approximate bound for networks trained on that grid" in why, aspect
            assert "baseline, scored on the native grid, can beat it on a case" in why, aspect


@pytest.mark.parametrize("preset", list(PRESETS))
def test_rows_follow_the_configuration(preset: str) -> None:
    config, table = _table(preset)
    # patches are centred on lesions only where there are patches
    assert ("foreground fraction" in table.index) == bool(config["patch_shape"])
    widths = table.loc["U-Net widths"]
    assert widths["this study"] == " - ".join(map(str, config["widths"]))
    expected = {(32, 64, 128, 256): "doubling from 32", (8, 16, 32, 64): "a quarter of the seed preset's"}
    assert expected[tuple(config["widths"])] in widths["why"]
    for aspect, field in (("norm", "norm"), ("ZADC scaling", "zadc_norm"), ("mirroring", "mirror_axes")):
        differs = tuple(config[field]) if field == "mirror_axes" else config[field]
        seed = deviations.SEED_PROTOCOL[field]
        assert (aspect in table.index) == (differs != seed), aspect
        if aspect in table.index:
            measured_here = "measured on the quick preset: benchmarks/README.md"
            assert (measured_here in table.loc[aspect, "why"]) == (preset == "quick"), aspect
            assert ("not measured here" in table.loc[aspect, "why"]) == (preset == "native"), aspect
    if config["target_shape"] is None:
        assert table.loc["target shape", "this study"].startswith("none: a fixed spacing")
        assert table.loc["target spacing mm", "seed study"].startswith("none: each scan's spacing rescaled")


def test_widths_other_than_the_presets_are_named_as_this_studys() -> None:
    config = {**make_config(preset="seed", device="cpu").to_dict(), "widths": (16, 32, 64, 128)}
    table = deviations.deviations_table(config).set_index("aspect")
    assert table.loc["U-Net widths", "why"].startswith("set for this study")


LOSS_ASPECTS = ("Tversky weights", "focal gamma", "Hausdorff DT alpha", "hybrid weight", "loss", "network")


@pytest.mark.parametrize("preset", list(PRESETS))
def test_the_seeds_loss_settings_give_no_loss_rows(preset: str) -> None:
    _, table = _table(preset)
    assert not set(LOSS_ASPECTS) & set(table.index)
    assert table.loc["hybrid losses", "this study"] == "0.9 × base + 0.1 × log(1 + HDT)"
    assert not table.index.str.contains("tversky|gamma|hdt|hybrid weight").any()  # no generic field rows


def test_each_loss_setting_that_differs_from_the_seeds_has_its_row() -> None:
    config = make_config(preset="quick", device="cpu", loss="tversky", tversky_alpha=0.5, tversky_beta=0.5,
                         hdt_alpha=1.0, hybrid_weight=0.3).to_dict()  # fmt: skip
    table = deviations.deviations_table(config).set_index("aspect")
    tversky = table.loc["Tversky weights"]
    assert (tversky["seed study"], tversky["this study"]) == ("alpha 0.3 / beta 0.7", "alpha 0.5 / beta 0.5")
    assert "tversky_alpha, tversky_beta" in tversky["why"] and "Tversky, Tversky+HDT" in tversky["why"]
    assert tuple(table.loc["Hausdorff DT alpha", ["seed study", "this study"]]) == ("HDT alpha 2", "HDT alpha 1")
    assert tuple(table.loc["hybrid weight", ["seed study", "this study"]]) == ("w 0.1", "w 0.3")
    assert table.loc["hybrid losses", "this study"] == "0.7 × base + 0.3 × log(1 + HDT)"
    assert "focal gamma" not in table.index and "loss" not in table.index
    only_beta = {**config, "tversky_alpha": 0.3, "tversky_beta": 0.9}
    table = deviations.deviations_table(only_beta).set_index("aspect")
    assert table.loc["Tversky weights", "this study"] == "alpha 0.3 / beta 0.9"


def test_a_researchers_own_loss_is_named_as_not_the_seeds() -> None:
    name = "hie_core.contrib.small_lesion:TverskyHDTFocal"
    config = make_config(preset="quick", device="cpu", loss=name, focal_gamma=1.0).to_dict()
    table = deviations.deviations_table(config).set_index("aspect")
    loss = table.loc["loss"]
    assert (
        loss["this study"]
        == f"Tversky+Focal+HDT (exploratory) (gamma 1) ({name}): a researcher's own loss, not in the seed"
    )
    assert loss["seed study"].startswith("six losses: Dice, DiceFocal") and "exploratory" in loss["why"]
    assert tuple(table.loc["focal gamma", ["seed study", "this study"]]) == ("gamma 2", "gamma 1")
    gone = deviations.deviations_table({**config, "loss": "a_module_that_is_gone:Mine"}).set_index("aspect")
    assert gone.loc["loss", "this study"].startswith("Mine (a_module_that_is_gone:Mine)")
