"""UNet3D: shapes, gradients, closed-form parameter and FLOP counts, input checks."""

from __future__ import annotations

import pytest
import torch

from hie_core.config import DEFAULTS
from hie_core.model import UNet3D, count_parameters, forward_flops

SMALL = (4, 8, 16, 32)


def _double_conv_params(c_in: int, c_out: int) -> int:
    # two bias-free 3x3x3 convs + two BatchNorms (weight and bias each)
    return 27 * c_in * c_out + 27 * c_out * c_out + 4 * c_out


def _closed_form_params(in_ch: int, out_ch: int, w: tuple[int, int, int, int]) -> int:
    enc = _double_conv_params(in_ch, w[0]) + _double_conv_params(w[0], w[1]) + _double_conv_params(w[1], w[2])
    bottleneck = _double_conv_params(w[2], w[3])
    dec = sum(8 * w[i + 1] * w[i] + w[i] + _double_conv_params(2 * w[i], w[i]) for i in range(3))
    head = w[0] * out_ch + out_ch
    return enc + bottleneck + dec + head


def _closed_form_flops(in_ch: int, out_ch: int, w: tuple[int, int, int, int], d: int, h: int, v: int) -> int:
    """2 * multiply-adds of every conv / transposed conv, voxels n at level 0."""
    n = d * h * v

    def conv3(c_in: int, c_out: int, voxels: int) -> int:
        return 2 * 27 * c_in * c_out * voxels

    total = 0
    chans = (in_ch, w[0], w[1], w[2])
    for level in range(4):  # encoders 0-2 and the bottleneck (level 3)
        voxels = n // 8**level
        total += conv3(chans[level], w[level], voxels) + conv3(w[level], w[level], voxels)
    for level in range(3):  # decoders: transposed conv outputs at level, then double conv
        voxels = n // 8**level
        total += 2 * 8 * w[level + 1] * w[level] * (voxels // 8)
        total += conv3(2 * w[level], w[level], voxels) + conv3(w[level], w[level], voxels)
    return total + 2 * w[0] * out_ch * n


def test_default_parameter_count_closed_form() -> None:
    model = UNet3D(widths=DEFAULTS["widths"], dropout=DEFAULTS["dropout"], norm=DEFAULTS["norm"])
    assert model.widths == (32, 64, 128, 256)
    assert count_parameters(model) == _closed_form_params(2, 1, (32, 64, 128, 256)) == 5_601_985


def test_forward_flops_closed_form() -> None:
    model = UNet3D(widths=DEFAULTS["widths"], dropout=DEFAULTS["dropout"], norm=DEFAULTS["norm"])
    flops = forward_flops(model, (1, 2, 32, 192, 192))
    assert flops == _closed_form_flops(2, 1, (32, 64, 128, 256), 32, 192, 192)
    assert 500e9 < flops < 510e9  # about 506 GFLOP per volume, as measured on the H100
    assert forward_flops(UNet3D(widths=SMALL, dropout=DEFAULTS["dropout"], norm=DEFAULTS["norm"]), (2, 2, 8, 16, 24)) == 2 * _closed_form_flops(
        2, 1, SMALL, 8, 16, 24
    )


@pytest.mark.parametrize("shape", [(1, 2, 32, 64, 64), (2, 2, 8, 16, 24), (1, 2, 16, 8, 40)])
def test_output_shape(shape: tuple[int, ...]) -> None:
    model = UNet3D(widths=SMALL, dropout=DEFAULTS["dropout"], norm=DEFAULTS["norm"])
    out = model(torch.randn(shape))
    assert out.shape == (shape[0], 1, *shape[2:])


def test_custom_channels_and_widths() -> None:
    model = UNet3D(in_channels=3, out_channels=2, widths=(2, 4, 6, 8), dropout=(0, 0, 0, 0), norm=DEFAULTS["norm"])
    assert count_parameters(model) == _closed_form_params(3, 2, (2, 4, 6, 8))
    assert model(torch.randn(1, 3, 16, 16, 16)).shape == (1, 2, 16, 16, 16)


def test_gradient_reaches_every_parameter() -> None:
    torch.manual_seed(0)
    model = UNet3D(widths=SMALL, dropout=DEFAULTS["dropout"], norm=DEFAULTS["norm"]).train()
    model(torch.randn(2, 2, 8, 16, 16)).square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("shape", [(1, 2, 12, 16, 16), (1, 2, 8, 20, 16), (1, 2, 8, 16, 30)])
def test_non_divisible_size_raises(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="divisible by 8"):
        UNet3D(widths=SMALL, dropout=DEFAULTS["dropout"], norm=DEFAULTS["norm"])(torch.randn(shape))


def test_bad_input_and_config_raise() -> None:
    with pytest.raises(ValueError, match="B, 2, D, H, W"):
        UNet3D(widths=SMALL, dropout=DEFAULTS["dropout"], norm=DEFAULTS["norm"])(torch.randn(1, 3, 8, 8, 8))
    with pytest.raises(ValueError, match="widths"):
        UNet3D(widths=(8, 16, 32), dropout=DEFAULTS["dropout"], norm=DEFAULTS["norm"])
    with pytest.raises(ValueError, match="dropout"):
        UNet3D(dropout=(0.0, 0.1, 0.2, 1.0), widths=DEFAULTS["widths"], norm=DEFAULTS["norm"])


def test_pad_to_multiple_crops_back_and_matches_padded_input() -> None:
    torch.manual_seed(0)
    model = UNet3D(widths=SMALL, pad_to_multiple=True, dropout=DEFAULTS["dropout"], norm=DEFAULTS["norm"]).eval()
    x = torch.randn(1, 2, 10, 20, 30)
    out = model(x)
    assert out.shape == (1, 1, 10, 20, 30)
    padded = torch.nn.functional.pad(x, (0, 2, 0, 4, 0, 6))
    torch.testing.assert_close(out, model(padded)[:, :, :10, :20, :30])


def test_eval_mode_is_deterministic_and_train_mode_uses_dropout() -> None:
    torch.manual_seed(0)
    model = UNet3D(widths=SMALL, dropout=(0.5, 0.5, 0.5, 0.5), norm=DEFAULTS["norm"])
    x = torch.randn(2, 2, 8, 16, 16)
    model.eval()
    torch.testing.assert_close(model(x), model(x), rtol=0, atol=0)
    model.train()
    assert not torch.equal(model(x), model(x))


def test_channels_last_3d_gives_same_logits() -> None:
    torch.manual_seed(0)
    model = UNet3D(widths=SMALL, dropout=DEFAULTS["dropout"], norm=DEFAULTS["norm"]).eval()
    x = torch.randn(2, 2, 8, 16, 16)
    ref = model(x)
    model_cl = model.to(memory_format=torch.channels_last_3d)
    out = model_cl(x.to(memory_format=torch.channels_last_3d))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
