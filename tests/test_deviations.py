"""Tests of report.deviations: every row says what the configuration makes true."""

from __future__ import annotations

import pytest

from hie_core.report import deviations
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
            "benchmarks/README.md" in chosen["this study"] and "flatters the preset slightly" in chosen["why"]
        )
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
