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
