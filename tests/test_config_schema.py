"""The configuration schema: one owner of every default, presets as data, one loader of old files."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hie_core.config import (
    CONFIG_VERSION,
    DEFAULTS,
    FIELD_NAMES,
    FIELDS,
    LOSS_SETTINGS,
    NOTEBOOK_PARAMETERS,
    PRESETS,
    SECTIONS,
    check_value,
    notebook_overrides,
    preset_settings,
    preset_values,
    upgrade_config,
    upgrade_model_file,
)
from hie_core.data import discover_cases
from hie_core.errors import ConfigError, UserError
from hie_core.io import read_image
from hie_core.model import UNet3D
from hie_core.study.options import GRID_PARAMETERS, notebook_values, parse_grid, parse_overrides
from hie_core.training import predict
from hie_core.training.checkpoints import load_model_file, model_file_payload, save_checkpoint
from hie_core.training.config import TrainConfig, make_config, run_fingerprint

ROOT = Path(__file__).resolve().parent.parent
#: ``config.json`` of a quick-preset Dice run written before the schema (commit d70ceb4).
OLD_CONFIG_JSON = Path(__file__).parent / "data" / "config_v1_quick_dice_seed0.json"


def test_every_field_carries_its_metadata_and_a_default_the_schema_accepts():
    assert len(FIELDS) == len(FIELD_NAMES) >= 41  # 41 when the schema was written; names are unique
    for field in FIELDS:
        assert field.section in SECTIONS and field.label and 1 <= field.added <= CONFIG_VERSION, field.name
        assert check_value(field.name, field.default) == field.default, field.name
    assert {f.section for f in FIELDS} == set(SECTIONS)
    assert {"tversky_alpha", "tversky_beta", "focal_gamma", "hdt_alpha", "hybrid_weight"} <= set(
        LOSS_SETTINGS
    )
    assert all(f.readers and f.short and f.group for f in LOSS_SETTINGS.values())
    assert [f.name for f in FIELDS if not f.results] == ["data_dir", "device", "output_dir", "num_workers"]
    assert TrainConfig().to_dict() == {k: list(v) if isinstance(v, tuple) else v for k, v in DEFAULTS.items()}


def _bad_values(field) -> list:
    """Values the field's type, choices or range refuse."""
    if field.kind == "str":
        return [5] + (["nope"] if field.choices else [])
    if field.kind == "bool":
        return ["yes", 1]
    if field.kind == "axes":
        return ["3", "2,2"]
    outside = []
    if field.low is not None:
        outside.append(field.low - 1 if field.bounds[0] == "[" else field.low)
    if field.high is not None:
        outside.append(field.high + 1 if field.bounds[1] == "]" else field.high)
    if field.kind in ("ints", "floats"):
        n = field.length or 1
        return ["a,b,c", [1] * (n + 1), *([v] * n for v in outside)]
    return ["high", float("nan"), *([1.5] if field.kind == "int" else []), *outside]


@pytest.mark.parametrize("field", FIELDS, ids=[f.name for f in FIELDS])
def test_choices_and_ranges_refuse_a_bad_value_with_a_user_error_naming_the_field(field):
    for value in _bad_values(field):
        with pytest.raises(UserError, match=rf"^{field.name} must be ") as info:
            check_value(field.name, value)
        assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="unknown configuration field 'lerning_rate'"):
        check_value("lerning_rate", 1e-3)


def test_presets_are_data_that_inherit_from_seed():
    seed, quick = preset_values("seed"), preset_values("quick")
    assert (
        PRESETS["quick"].inherits == PRESETS["native"].inherits == "seed" and PRESETS["seed"].inherits is None
    )
    own = PRESETS["quick"].values
    assert {k for k in FIELD_NAMES if quick[k] != seed[k]} == {k for k in own if own[k] != seed[k]} | {
        "preset"
    }
    # the seed preset is the schema's defaults (the seed's protocol) but for the synthetic set's size
    assert {k for k in FIELD_NAMES if seed[k] != DEFAULTS[k]} == {"synthetic_preset", "preset"}
    assert (
        preset_settings("quick")["synthetic_preset"] == "small"
    )  # quick's own value beats the inherited one
    cuda = preset_values("seed", "cuda")
    assert cuda["amp"] and cuda["compile"] and cuda["augment"] == "batched"
    for name in PRESETS:
        config = make_config(preset=name, device="cpu")
        assert config.preset == name and config.to_dict() == TrainConfig(**preset_values(name)).to_dict()


def test_an_old_config_json_is_upgraded_by_the_one_loader_and_keeps_its_hash():
    stored = json.loads(OLD_CONFIG_JSON.read_text())
    config = TrainConfig.from_dict(stored)  # the whole file or its "config" entry
    assert config == TrainConfig.from_dict(stored["config"])
    assert config.preset == "quick" and config.loss == "dice" and config.widths == (8, 16, 32, 64)
    assert run_fingerprint(config)["config"] == stored["fingerprint"]["config"]
    # older still: written before the fields of schema version 2 existed -> the same configuration
    older = {k: v for k, v in stored["config"].items() if FIELD_NAMES[k].added == 1}
    assert len(older) < len(stored["config"]) and TrainConfig.from_dict(older) == config
    assert upgrade_config({**older, "removed_option": 3}) == upgrade_config(older)  # gone keys are dropped
    with pytest.raises(ConfigError, match="^norm must be one of batch, instance, got 'group'"):
        upgrade_config({**older, "norm": "group"})


def _old_model_file(path: Path, model: torch.nn.Module) -> Path:
    """A model file exactly as the code before the schema wrote it: the weights and 13 keys."""
    payload = {"state_dict": model.state_dict(), "widths": [4, 8, 16, 32], "arch": "unet3d", "arch_options": {},
               "in_channels": 2, "norm": "batch", "target_shape": [8, 16, 16], "target_spacing_mm": None,
               "patch_shape": None, "sw_overlap": 0.5, "mirror_axes": [2], "zadc_norm": "volume", "loss": "dice",
               "epoch": 3}  # fmt: skip
    assert len(payload) - 1 == 13
    return save_checkpoint(path, payload)


def test_an_old_model_file_loads_through_the_loader_and_hie_predict_uses_it(tiny_release, tmp_path):
    torch.manual_seed(0)
    model = UNet3D(in_channels=2, out_channels=1, widths=(4, 8, 16, 32), prior_probability=0.3, dropout=DEFAULTS["dropout"], norm=DEFAULTS["norm"])
    old = _old_model_file(tmp_path / "old" / "model_best.pt", model)
    loaded, meta = load_model_file(old)
    assert meta["config_version"] == 1 and meta["epoch"] == 3 and meta["loss"] == "dice"
    assert (
        meta["mirror_axes"] == (2,)
        and meta["target_shape"] == (8, 16, 16)
        and meta["widths"] == (4, 8, 16, 32)
    )
    assert meta["config"] == upgrade_model_file(torch.load(old, weights_only=True))
    assert meta["config"]["lr"] == DEFAULTS["lr"]  # not in an old file: the schema's default
    # the same weights in today's format: the whole configuration, the same predictions
    config = make_config(preset="seed", device="cpu", loss="dice", widths=(4, 8, 16, 32), target_shape=(8, 16, 16),
                         mirror_axes=(2,))  # fmt: skip
    new = save_checkpoint(
        tmp_path / "new" / "model_best.pt", model_file_payload(model.state_dict(), config.to_dict(), {}, 3)
    )
    assert load_model_file(new)[1]["config"] == upgrade_config(config.to_dict())
    case = discover_cases(tiny_release, splits=["val"])[0]
    masks = []
    for path in (old, new):
        out = tmp_path / path.parent.name / "mask.mha"
        argv = [
            "--checkpoint",
            str(path),
            "--adc",
            str(case.adc),
            "--zadc",
            str(case.zadc),
            "--output",
            str(out),
        ]
        assert predict.main(argv + ["--device", "cpu"]) == 0
        masks.append(read_image(out)[0])
    np.testing.assert_array_equal(masks[0], masks[1])
    np.testing.assert_array_equal(masks[0], predict.predict_pair(loaded, meta, case.adc, case.zadc)[0])


def _text(value) -> str:
    """A value as a --grid or --set option writes it."""
    if isinstance(value, tuple):
        return "x".join(f"{v:g}" for v in value) if value else "none"
    return str(value)


def _candidates(field) -> list:
    """Values to try for a field: its default, the presets', other choices and numbers in its range."""
    values = [field.default, *(preset_values(p)[field.name] for p in PRESETS)]
    if field.choices:
        values += list(field.choices)
    elif field.kind in ("int", "float"):
        base = field.default if field.default else 1
        values += [base * 2, base / 2 if field.kind == "float" else base + 1, 0, 1, 2]
    elif field.kind == "bool":
        values += [True, False]
    elif field.kind == "axes":
        values += [(0,), (1, 2)]
    elif field.kind in ("ints", "floats"):
        values += [tuple(2 * v for v in (field.default or (8, 24, 24))), (24, 64, 64)]
    return [v for v in values if v is not None]


@pytest.mark.parametrize("field", FIELDS, ids=[f.name for f in FIELDS])
def test_every_field_can_be_set_and_gridded_or_has_the_studys_own_option(field):
    if field.name in GRID_PARAMETERS:
        for parse in (
            lambda: parse_overrides([f"{field.name}=1"]),
            lambda: parse_grid([f"{field.name}=1,2"]),
        ):
            with pytest.raises(ConfigError, match=f"{field.name}: set by the study itself; use --"):
                parse()
        return
    accepted = []
    for value in _candidates(field):
        (given,) = parse_overrides([f"{field.name}={_text(value)}"]).values()  # as --set reads it
        try:
            config = make_config(preset="quick", device="cpu", **{field.name: given})
        except ConfigError:
            continue
        if config.to_dict()[field.name] not in [a.to_dict()[field.name] for a in accepted]:
            accepted.append(config)
    assert len(accepted) >= 2, f"{field.name}: no two values the quick preset accepts"
    values = [getattr(c, field.name) for c in accepted[:2]]
    grid = parse_grid([f"{field.name}={','.join(_text(v) for v in values)}"])
    assert len(grid[field.name]) == 2
    for text, expected in zip(grid[field.name], values, strict=True):
        assert (
            getattr(make_config(preset="quick", device="cpu", **{field.name: text}), field.name) == expected
        )
    (set_value,) = parse_overrides([f"{field.name}={_text(values[1])}"]).values()
    assert (
        getattr(make_config(preset="quick", device="cpu", **{field.name: set_value}), field.name) == values[1]
    )
    # the notebook gets it in its overrides (-p NAME VALUE works too: notebook_overrides)
    assert notebook_values({"loss": "dice", field.name: set_value}) == {
        "loss": "dice",
        "overrides": {field.name: set_value},
    }


def test_the_notebook_takes_its_named_parameters_and_overrides_checked_against_the_schema():
    cells = json.loads((ROOT / "notebooks" / "train.ipynb").read_text())["cells"]
    (cell,) = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    names = [t.id for node in ast.parse("".join(cell["source"])).body for t in node.targets]
    assert sorted(names) == sorted([*NOTEBOOK_PARAMETERS, "overrides"])
    namespace = {"loss": "dice", "seed": 3, "hybrid_weight": 0.3, "other": object()}  # -p hybrid_weight 0.3
    assert notebook_overrides({"epochs": 2}, namespace) == {"hybrid_weight": 0.3, "epochs": 2}
    with pytest.raises(ConfigError, match="overrides: unknown field.s. epoch; known:"):
        notebook_overrides({"epoch": 2})
    with pytest.raises(ConfigError, match="hybrid_weight is given both as -p hybrid_weight and in overrides"):
        notebook_overrides({"hybrid_weight": 0.5}, namespace)
