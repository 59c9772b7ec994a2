"""Whole-volume and sliding-window prediction, with and without test-time mirroring."""

from __future__ import annotations

import pytest
import torch

from hie_core.config import DEFAULTS
from hie_core.model import UNet3D
from hie_core.training.inference import predict_logits


def _model() -> UNet3D:
    torch.manual_seed(0)
    return UNet3D(in_channels=2, out_channels=1, widths=(4, 8, 8, 16), norm="instance", dropout=DEFAULTS["dropout"]).eval()


@pytest.mark.parametrize("patch", [None, (8, 16, 16)])
def test_mirroring_averages_the_flipped_predictions_flipped_back(patch):
    model = _model()
    image = torch.randn(1, 2, 16, 24, 32, generator=torch.Generator().manual_seed(1))
    plain = predict_logits(model, image, patch, overlap=0.25)
    one = predict_logits(model, image, patch, overlap=0.25, mirror_axes=(2,))
    flipped = predict_logits(model, image.flip(4), patch, overlap=0.25).flip(4)
    torch.testing.assert_close(one, (plain + flipped) / 2)
    assert not torch.allclose(one, plain)  # the network is not mirror-symmetric, so the average differs
    two = predict_logits(model, image, patch, overlap=0.25, mirror_axes=(1, 2))
    passes = [predict_logits(model, image.flip(d), patch, overlap=0.25).flip(d) for d in ([3], [4], [3, 4])]
    torch.testing.assert_close(two, (plain + sum(passes)) / 4)
    assert two.shape == plain.shape == (1, 1, 16, 24, 32)


def test_mirroring_a_symmetric_input_through_a_symmetric_network_changes_nothing():
    conv = torch.nn.Conv3d(2, 1, 3, padding=1)
    with torch.no_grad():
        conv.weight.copy_(conv.weight + conv.weight.flip(4))  # mirror-symmetric along W
    image = torch.randn(1, 2, 8, 8, 8)
    image = image + image.flip(4)
    torch.testing.assert_close(predict_logits(conv, image, mirror_axes=(2,)), predict_logits(conv, image))
