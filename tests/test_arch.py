"""The networks of ``arch``: logits of the right shape, the prior bias, window rules, cost, a tiny run."""

from __future__ import annotations

import math

import pytest
import torch

from hie_core.config import DEFAULTS
from hie_core.errors import ConfigError, UserError
from hie_core.model import (
    ARCHS,
    SWIN_DIVISOR,
    UNet3D,
    arch_divisors,
    arch_options,
    build_model,
    check_arch,
    count_parameters,
    forward_flops,
    output_conv,
    training_memory_bytes,
)

from .conftest import tiny_config

SMALL = (4, 8, 16, 32)
#: A window every network takes (SwinUNETR needs sides divisible by 32).
WINDOW = (32, 32, 32)


@pytest.mark.parametrize("arch", ARCHS)
def test_every_arch_returns_one_logit_per_voxel_at_the_prior(arch):
    torch.manual_seed(0)
    model = build_model(arch, 2, SMALL, prior_probability=0.01, window_shape=WINDOW, dropout=DEFAULTS["dropout"], norm=DEFAULTS["norm"]).eval()
    with torch.no_grad():
        logits = model(torch.zeros(1, 2, *WINDOW))
    assert logits.shape == (1, 1, *WINDOW) and logits.dtype == torch.float32
    bias = output_conv(model).bias
    assert bias.shape == (1,) and float(bias.detach()) == pytest.approx(math.log(0.01 / 0.99))


@pytest.mark.parametrize("arch", ["segresnet", "dynunet"])
def test_convolutional_archs_train_on_a_small_window(arch):
    """A backward pass with instance norm on a window of the quick preset's kind (16 x 48 x 48 scaled)."""
    model = build_model(arch, 2, SMALL, norm="instance", window_shape=(8, 16, 24), spacing_mm=(4.0, 2.0, 2.0), dropout=DEFAULTS["dropout"])
    logits = model(torch.randn(2, 2, 8, 16, 24))
    logits.mean().backward()
    assert logits.shape == (2, 1, 8, 16, 24)
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_unet3d_is_the_seeds_network():
    model = build_model("unet3d", 2, SMALL, norm="instance", prior_probability=0.3, dropout=DEFAULTS["dropout"])
    assert isinstance(model, UNet3D) and model.widths == SMALL and model.norm == "instance"
    assert arch_options("unet3d", SMALL, WINDOW) == {}


def test_widths_set_each_networks_size():
    assert build_model("segresnet", 2, (8, 16, 32, 64), dropout=DEFAULTS["dropout"], norm=DEFAULTS["norm"]).init_filters == 8
    assert arch_options("swinunetr", (32, 64, 128, 256))["feature_size"] == 36
    assert arch_options("swinunetr", SMALL)["feature_size"] == 12  # at least 12: heads 3, 6, 12, 24
    plan = arch_options("dynunet", (32, 64, 128, 256), (32, 192, 192))
    assert plan["strides"] == [[1, 1, 1]] + [[2, 2, 2]] * 3
    assert build_model("dynunet", 2, SMALL, options=plan, dropout=DEFAULTS["dropout"], norm=DEFAULTS["norm"]).filters == list(SMALL)


def test_dynunet_plans_anisotropic_kernels_and_strides_the_nnunet_way():
    # native preset: 2.5 x 1 x 1 mm. D is neither convolved nor halved until H and W reach 2 mm.
    plan = arch_options("dynunet", (32, 64, 128, 256), (32, 128, 128), (2.5, 1.0, 1.0))
    assert plan["strides"] == [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2]]
    assert plan["kernel_size"] == [[1, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3]]
    # quick preset: a side under 8 voxels is not halved again.
    plan = arch_options("dynunet", SMALL, (16, 48, 48), (4.0, 2.0, 2.0))
    assert plan["strides"] == [[1, 1, 1], [2, 2, 2], [2, 2, 2], [1, 2, 2]]
    assert arch_divisors("dynunet", SMALL, (16, 48, 48), (4.0, 2.0, 2.0)) == (4, 8, 8)
    # a window too small for three halvings gets fewer levels, and the first widths
    plan = arch_options("dynunet", SMALL, (16, 16, 16))
    assert plan["strides"] == [[1, 1, 1], [2, 2, 2], [2, 2, 2]]
    assert build_model("dynunet", 2, SMALL, options=plan, dropout=DEFAULTS["dropout"], norm=DEFAULTS["norm"]).filters == [4, 8, 16]
    with pytest.raises(
        ConfigError, match=r"'dynunet' needs a window it can halve at least twice.*\(8, 8, 8\)"
    ):
        check_arch("dynunet", SMALL, (8, 8, 8), None, "batch")
    with pytest.raises(ValueError, match="window shape"):
        build_model("dynunet", 2, SMALL, dropout=DEFAULTS["dropout"], norm=DEFAULTS["norm"])


@pytest.mark.parametrize(
    ("arch", "window", "norm", "message"),
    [
        ("swinunetr", (16, 48, 48), "batch", "needs every side divisible by 32"),
        ("swinunetr", (32, 32, 32), "instance", "bottleneck of at least 2 voxels"),
        ("segresnet", (12, 16, 16), "batch", "sides divisible by (8, 8, 8)"),
        ("unet3d", (8, 8, 8), "instance", "bottleneck of at least 2 voxels"),
        ("resnet", (32, 32, 32), "batch", "is not one of unet3d, segresnet"),
    ],
)
def test_check_arch_names_the_window_and_the_rule(arch, window, norm, message):
    with pytest.raises(ConfigError) as err:
        check_arch(arch, SMALL, window, None, norm)
    assert isinstance(err.value, UserError) and message in str(err.value)
    if arch != "resnet":
        assert str(window) in str(err.value)
    check_arch("swinunetr", SMALL, (32, 64, 64), None, "instance")  # 1 x 2 x 2 at the bottleneck
    assert arch_divisors("swinunetr", SMALL) == (SWIN_DIVISOR,) * 3


def test_config_refuses_a_window_the_arch_cannot_take(tiny_synthetic, tmp_path):
    with pytest.raises(
        ConfigError, match=r"arch 'swinunetr' needs every side divisible by 32.*\(8, 16, 16\)"
    ):
        tiny_config(tiny_synthetic, tmp_path, arch="swinunetr")
    assert tiny_config(tiny_synthetic, tmp_path, arch="dynunet").arch == "dynunet"


@pytest.mark.parametrize("arch", ["segresnet", "dynunet", "swinunetr"])
def test_cost_of_monai_networks_is_counted_on_the_meta_device(arch):
    model = build_model(arch, 2, SMALL, window_shape=WINDOW, dropout=DEFAULTS["dropout"], norm=DEFAULTS["norm"])
    flops = forward_flops(model, (1, 2, *WINDOW))
    assert flops > 2 * count_parameters(model)  # every weight is used at least once per voxel or token
    assert next(model.parameters()).device.type == "cpu"  # the model itself stays where it was
    # the step holds at least the input and the logits, in float32, for each of the 4 samples
    assert training_memory_bytes(SMALL, WINDOW, 4, arch, "batch") > 4 * 3 * math.prod(WINDOW) * 4


def test_memory_estimates_are_comparable_across_archs():
    """The U-Net's formula and the others' dry-run counts agree within a factor of 2 for similar networks."""
    unet = training_memory_bytes((32, 64, 128, 256), (32, 192, 192), 4, "unet3d", "batch")
    dyn = training_memory_bytes((32, 64, 128, 256), (32, 192, 192), 4, "dynunet", "batch")
    assert 0.5 < dyn / unet < 2.0


def test_a_segresnet_run_trains_and_predicts(tiny_synthetic, tmp_path):
    from hie_core.training.experiment import run_experiment
    from hie_core.training.fit import load_best_model

    result = run_experiment(tiny_config(tiny_synthetic, tmp_path / "segresnet", arch="segresnet", epochs=1))
    assert result.config["config"]["arch"] == "segresnet" and len(result.history) == 1
    assert result.metrics["dice"].between(0, 1).all() and sorted(result.metrics["split"].unique()) == [
        "test",
        "val",
    ]
    assert sorted(p.name for p in (result.run_dir / "predictions" / "test").iterdir())
    model, meta = load_best_model(result.run_dir / "model_best.pt")
    assert meta["arch"] == "segresnet" and type(model).__name__ == "SegResNet" and not model.training


def test_methods_table_costs_every_arch_on_the_studys_window_and_marks_its_own():
    from hie_core.report.pages.methods_page import architectures_table

    config = {**DEFAULTS, "widths": list(SMALL), "norm": "instance", "arch": "dynunet", "target_shape": None,
              "target_spacing_mm": [4.0, 2.0, 2.0], "patch_shape": [16, 48, 48]}  # fmt: skip
    table = architectures_table(config).set_index("arch")
    assert list(table.index) == list(ARCHS) and table["this study"].tolist() == ["", "", "yes", ""]
    cost = table["forward GFLOP / 16×48×48 window"]
    unet = build_model("unet3d", 2, SMALL, norm="instance", dropout=DEFAULTS["dropout"])
    assert table.loc["unet3d", "parameters"] == count_parameters(unet)
    assert cost["unet3d"] == pytest.approx(forward_flops(unet, (1, 2, 16, 48, 48)) / 1e9)
    assert cost[["segresnet", "dynunet"]].gt(0).all() and math.isnan(cost["swinunetr"])
    assert table.loc["swinunetr", "fits the window"] == "no: sides must be multiples of 32"
    assert table.loc["dynunet", "size"] == "filters 4-8-16-32; strides 2×2×2 2×2×2 1×2×2"
    marked = architectures_table(config, study_archs=["unet3d", "segresnet"])["this study"]
    assert marked.tolist() == ["yes", "yes", "", ""]
