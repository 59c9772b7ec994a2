"""The mechanism figure's numbers against the losses' closed-form gradients (tiny volumes, seconds)."""

from __future__ import annotations

import numpy as np
import pytest

from hie_core.losses import LOSS_SETTINGS, hausdorff_distance_field
from hie_core.report.pages import mechanism

TVERSKY_ALPHA_FP = LOSS_SETTINGS["tversky_alpha"].default
TVERSKY_BETA_FN = LOSS_SETTINGS["tversky_beta"].default

SHAPE = (10, 20, 34)


@pytest.fixture(scope="module")
def scene():
    return mechanism.lesion_scene(SHAPE, small_radius=1.5, large_radius=3.5, shrink=0.5)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z.astype(np.float64)))


def test_scene_geometry(scene):
    assert scene.small.sum() > 0 and scene.large.sum() > 5 * scene.small.sum()
    assert not (scene.small & scene.large).any() and ((scene.small | scene.large) == scene.target).all()
    # the prediction's 0.5 surface lies inside the reference: every predicted voxel is a lesion voxel
    assert scene.target[scene.logits > 0].all() and (scene.logits[scene.target] < 0).any()
    with pytest.raises(ValueError, match="shrink"):
        mechanism.lesion_scene(SHAPE, small_radius=1.0, large_radius=3.0, shrink=1.0)


def test_dice_gradient_closed_form(scene):
    """At p everywhere: dL/dp = 2 TP / S^2 on background and -2 (S - TP) / S^2 on the lesion
    (S = sum p + sum g), times p (1 - p) for the logit."""
    empty = mechanism.near_empty(scene, 0.2)
    g = mechanism.loss_gradients(empty, ["dice"])["dice"]
    p, t = 0.2, scene.target
    tp, s = p * t.sum(), p * t.size + t.sum()
    assert np.allclose(g[~t], 2 * tp / s**2 * p * (1 - p), rtol=1e-4)
    assert np.allclose(g[t], -2 * (s - tp) / s**2 * p * (1 - p), rtol=1e-4)


def test_tversky_weighs_a_missed_voxel_by_beta(scene):
    """dL/dp on a lesion voxel over that on a background voxel is (D - TP (1 - beta)) / (alpha TP)."""
    empty = mechanism.near_empty(scene, 0.25)
    g = mechanism.loss_gradients(empty, ["tversky"])["tversky"]
    p, t = 0.25, scene.target
    tp, fp, fn = p * t.sum(), p * (~t).sum(), (1 - p) * t.sum()
    d = tp + TVERSKY_ALPHA_FP * fp + TVERSKY_BETA_FN * fn
    expected = (d - tp * (1 - TVERSKY_BETA_FN)) / (TVERSKY_ALPHA_FP * tp)
    assert g[t].max() < 0 < g[~t].min()
    assert -g[t][0] / g[~t][0] == pytest.approx(expected, rel=1e-4)


def test_hausdorff_gradient_at_an_empty_prediction(scene):
    """No predicted boundary, so d_P = 0 and dL/dz = 2 (p - g) p (1 - p) d_G^2 / N: the lesion's
    interior pulls up, every background voxel pushes down by its squared distance to the lesion."""
    import torch

    empty = mechanism.near_empty(scene, 0.1)
    g = mechanism.loss_gradients(empty, ["hdt"])["hdt"]
    p = _sigmoid(empty.logits)
    d_g = hausdorff_distance_field(torch.from_numpy(scene.target)[None, None])[0, 0].double().numpy()
    expected = 2 * (p - scene.target) * p * (1 - p) * d_g**2 / scene.target.size
    assert np.allclose(g, expected, rtol=1e-4, atol=1e-12)


def test_gradient_table_shares(scene):
    names = ["dice", "hdt"]
    table = mechanism.gradient_table(scene, mechanism.loss_gradients(scene, names),
                                     mechanism.loss_gradients(mechanism.near_empty(scene), names))  # fmt: skip
    assert list(table["loss"]) == ["Dice", "HausdorffDT"]
    missed = scene.target & (scene.logits < 0)
    assert table["missed_share"].iloc[0] == pytest.approx((missed & scene.nearest_small).sum() / missed.sum())
    for col in ("small_share", "raise_share_empty"):
        assert table[col].between(0, 1).all()
    # at a near-empty prediction the Hausdorff loss mostly pushes background down, Dice mostly pulls lesions up
    assert table.set_index("loss").loc["HausdorffDT", "raise_share_empty"] < 0.5
    assert table.set_index("loss").loc["Dice", "raise_share_empty"] > 0.5


def test_figure_panels(scene):
    names = ["dice", "tversky", "hdt"]
    grads = mechanism.loss_gradients(scene, names)
    table = mechanism.gradient_table(
        scene, grads, mechanism.loss_gradients(mechanism.near_empty(scene), names)
    )
    fig = mechanism.mechanism_figure(table, scene, grads)
    assert len(fig.axes) == len(names) + 2
    assert fig._repr_png_()[:4] == b"\x89PNG"
