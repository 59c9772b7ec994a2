"""The six losses against MONAI's own classes (values and gradients)."""

from __future__ import annotations

import pytest
import torch
from monai.losses import DiceFocalLoss, DiceLoss, HausdorffDTLoss, TverskyLoss
from scipy import ndimage

from hie_core.losses import LOSS_NAMES, get_loss, hausdorff_distance_field
from hie_core.losses import HausdorffDTLoss as OurHDT

SHAPE = (4, 1, 8, 16, 16)
pytestmark = pytest.mark.filterwarnings("ignore:single channel prediction")


def _monai_reference(name: str):
    dice = DiceLoss(sigmoid=True)
    dice_focal = DiceFocalLoss(sigmoid=True, gamma=2.0, lambda_dice=1.0, lambda_focal=1.0)
    tversky = TverskyLoss(sigmoid=True, alpha=0.3, beta=0.7)
    hdt = HausdorffDTLoss(sigmoid=True, alpha=2.0)
    table = {
        "dice": dice,
        "dice_focal": dice_focal,
        "tversky": tversky,
        "hdt": hdt,
        "dice_focal_hdt": lambda x, y: 0.9 * dice_focal(x, y) + 0.1 * torch.log(1 + hdt(x, y)),
        "tversky_hdt": lambda x, y: 0.9 * tversky(x, y) + 0.1 * torch.log(1 + hdt(x, y)),
    }
    return table[name]


def _batch(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random logits and target; item 1 predicts nothing, target item 2 is empty, item 3 full."""
    gen = torch.Generator().manual_seed(seed)
    logits = 2.0 * torch.randn(SHAPE, generator=gen)
    logits[1] = -logits[1].abs() - 0.1
    smooth = torch.nn.functional.avg_pool3d(torch.randn(SHAPE, generator=gen), 3, 1, 1)
    target = (smooth > 0.2).float()
    target[2] = 0.0
    target[3] = 1.0
    return logits, target


def _value_and_grad(fn, logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = logits.clone().requires_grad_(True)
    value = fn(x, target)
    value.backward()
    return value.detach(), x.grad


@pytest.mark.parametrize("name", LOSS_NAMES)
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_monai(name: str, seed: int) -> None:
    logits, target = _batch(seed)
    ours, ours_grad = _value_and_grad(get_loss(name), logits, target)
    ref, ref_grad = _value_and_grad(_monai_reference(name), logits, target)
    assert ours.ndim == 0
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(ours_grad, ref_grad, rtol=1e-5, atol=1e-9)


def test_hdt_is_nonzero_and_prediction_field_matters() -> None:
    """The check above is not vacuous: HDT is large here and both fields contribute."""
    logits, target = _batch(0)
    value = get_loss("hdt")(logits, target)
    assert value > 0.1
    # Zero prediction field: MONAI's value must differ when only the target field is used.
    dt = hausdorff_distance_field(target)
    only_target = ((torch.sigmoid(logits) - target) ** 2 * dt**2).mean()
    assert abs(float(only_target) - float(value)) > 1e-3


def test_distance_field_closed_form_and_scipy() -> None:
    mask = torch.zeros(3, 1, 4, 6, 7, dtype=torch.bool)
    mask[0, 0, 1:3, 2:4, 2:5] = True
    mask[2] = True  # full item -> zeros, item 1 empty -> zeros
    field = hausdorff_distance_field(mask)
    m = mask[0, 0].numpy()
    expected = ndimage.distance_transform_edt(m) + ndimage.distance_transform_edt(~m)
    torch.testing.assert_close(field[0, 0], torch.from_numpy(expected).float())
    assert field[1].abs().sum() == 0 and field[2].abs().sum() == 0
    # Boundary voxels on both sides are 1 voxel from the other class.
    assert field[0, 0, 1, 2, 2] == 1.0 and field[0, 0, 0, 2, 2] == 1.0
    # Spacing: the voxel just past the block along D is one D-step (3 mm) from it.
    field_mm = hausdorff_distance_field(mask, spacing_mm=(3.0, 1.0, 1.0))
    assert field[0, 0, 3, 2, 2] == 1.0 and field_mm[0, 0, 3, 2, 2] == 3.0


@pytest.mark.parametrize("name", ["hdt", "tversky_hdt", "dice_focal_hdt"])
def test_precomputed_target_dt_is_equal(name: str) -> None:
    logits, target = _batch(3)
    loss = get_loss(name)
    assert loss.needs_distance
    dt = hausdorff_distance_field(target)
    torch.testing.assert_close(loss(logits, target, target_dt=dt), loss(logits, target), rtol=0, atol=0)
    # A different field changes the value, so the argument is really used.
    assert loss(logits, target, target_dt=dt + 1.0) > loss(logits, target)


def test_needs_distance_flag_and_ignored_dt() -> None:
    logits, target = _batch(4)
    for name in ("dice", "dice_focal", "tversky"):
        loss = get_loss(name)
        assert not loss.needs_distance
        assert isinstance(loss, torch.nn.Module)
        torch.testing.assert_close(loss(logits, target, torch.ones_like(target)), loss(logits, target))


def test_bool_target_and_bf16_logits() -> None:
    logits, target = _batch(5)
    loss = get_loss("tversky_hdt")
    torch.testing.assert_close(loss(logits, target.bool()), loss(logits, target))
    value = loss(logits.bfloat16(), target)
    assert value.dtype == torch.float32


def test_unknown_name_and_bad_shapes() -> None:
    with pytest.raises(ValueError, match="dice_focal_hdt"):
        get_loss("hausdorff")
    loss = get_loss("dice")
    with pytest.raises(ValueError, match="differs"):
        loss(torch.zeros(1, 1, 8, 8, 8), torch.zeros(1, 1, 8, 8, 4))
    with pytest.raises(ValueError, match="B, C, D, H, W"):
        loss(torch.zeros(1, 8, 8, 8), torch.zeros(1, 8, 8, 8))
    with pytest.raises(ValueError, match="alpha"):
        OurHDT(alpha=0.0)


SEED_SETTINGS = {
    "tversky_alpha": 0.3,
    "tversky_beta": 0.7,
    "focal_gamma": 2.0,
    "hdt_alpha": 2.0,
    "hybrid_weight": 0.1,
}


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_the_seed_settings_are_the_defaults_bit_for_bit(name: str) -> None:
    logits, target = _batch(6)
    assert get_loss(name, settings=SEED_SETTINGS)(logits, target) == get_loss(name)(logits, target)
    assert get_loss(name, settings={})(logits, target) == get_loss(name)(logits, target)


def test_tversky_with_equal_weights_one_half_is_dice() -> None:
    # alpha = beta = 1/2: TP / (TP + (FP + FN) / 2) = 2 TP / (2 TP + FP + FN), Dice (up to MONAI's 1e-5 smoothing)
    logits, target = _batch(7)
    half = get_loss("tversky", settings={"tversky_alpha": 0.5, "tversky_beta": 0.5})(logits, target)
    torch.testing.assert_close(half, get_loss("dice")(logits, target), rtol=1e-4, atol=1e-5)
    assert abs(float(get_loss("tversky")(logits, target)) - float(half)) > 1e-3  # the seed's 0.3 / 0.7 is not


def test_tversky_weights_follow_the_closed_form() -> None:
    logits, target = _batch(8)
    prob = torch.sigmoid(logits)
    tp, fp, fn = ((prob * target), (prob * (1 - target)), ((1 - prob) * target))
    dims = (2, 3, 4)
    tp, fp, fn = tp.sum(dims), fp.sum(dims), fn.sum(dims)
    expected = (1 - (tp + 1e-5) / (tp + 0.8 * fp + 0.2 * fn + 1e-5)).mean()
    value = get_loss("tversky", settings={"tversky_alpha": 0.8, "tversky_beta": 0.2})(logits, target)
    torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-6)


def test_focal_gamma_zero_is_dice_plus_cross_entropy() -> None:
    logits, target = _batch(9)
    value = get_loss("dice_focal", settings={"focal_gamma": 0.0})(logits, target)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
    torch.testing.assert_close(value, get_loss("dice")(logits, target) + bce, rtol=1e-5, atol=1e-6)


def test_hdt_alpha_is_the_distance_exponent() -> None:
    logits, target = _batch(10)
    prob = torch.sigmoid(logits)
    fields = hausdorff_distance_field(prob > 0.5) + hausdorff_distance_field(target)  # alpha 1: the sum
    expected = ((prob - target) ** 2 * fields).mean()
    torch.testing.assert_close(get_loss("hdt", settings={"hdt_alpha": 1.0})(logits, target), expected)
    torch.testing.assert_close(
        get_loss("hdt", settings={"hdt_alpha": 1.0})(logits, target),
        HausdorffDTLoss(sigmoid=True, alpha=1.0)(logits, target),  # MONAI's
        rtol=1e-5,
        atol=1e-7,
    )


@pytest.mark.parametrize("weight", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("base", ["tversky", "dice_focal"])
def test_hybrid_weight_is_the_weight_of_log_one_plus_hdt(base: str, weight: float) -> None:
    logits, target = _batch(11)
    settings = {"hybrid_weight": weight, "tversky_alpha": 0.4, "focal_gamma": 1.0}
    region = get_loss(base, settings=settings)(logits, target)
    hdt = get_loss("hdt", settings=settings)(logits, target)
    value = get_loss(f"{base}_hdt", settings=settings)(logits, target)
    torch.testing.assert_close(value, (1 - weight) * region + weight * torch.log1p(hdt))


def test_loss_from_config_and_unknown_settings() -> None:
    from hie_core.losses import loss_from_config, loss_label

    logits, target = _batch(12)
    config = {"loss": "tversky_hdt", "hybrid_weight": 0.5, "tversky_alpha": 0.5, "tversky_beta": 0.5}
    expected = get_loss("tversky_hdt", settings={k: v for k, v in config.items() if k != "loss"})
    torch.testing.assert_close(loss_from_config(config)(logits, target), expected(logits, target))
    assert loss_label(config) == "Tversky+HDT (alpha 0.5, beta 0.5, w 0.5)"
    assert (
        loss_label({**config, "loss": "dice_focal"}) == "DiceFocal"
    )  # settings it does not use are not named
    with pytest.raises(ValueError, match="unknown loss setting.*tversky_gamma"):
        get_loss("tversky", settings={"tversky_gamma": 1.0})


def test_the_small_lesion_example_is_its_formula() -> None:
    from monai.losses import FocalLoss, TverskyLoss

    from hie_core.contrib.small_lesion import TverskyHDTFocal

    logits, target = _batch(13)
    settings = {
        "hybrid_weight": 0.25,
        "tversky_alpha": 0.4,
        "tversky_beta": 0.6,
        "focal_gamma": 1.5,
        "hdt_alpha": 1.0,
    }
    loss = get_loss("hie_core.contrib.small_lesion:TverskyHDTFocal", settings=settings)
    assert isinstance(loss, TverskyHDTFocal) and loss.needs_distance and "exploratory" in loss.label
    region = TverskyLoss(sigmoid=True, alpha=0.4, beta=0.6)(logits, target) + FocalLoss(gamma=1.5)(
        logits, target
    )
    hdt = HausdorffDTLoss(sigmoid=True, alpha=1.0)(logits, target)
    torch.testing.assert_close(
        loss(logits, target), 0.75 * region + 0.25 * torch.log1p(hdt), rtol=1e-5, atol=1e-6
    )
    torch.testing.assert_close(loss(logits, target, hausdorff_distance_field(target)), loss(logits, target))
