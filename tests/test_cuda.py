"""The CUDA path against its CPU references: `pytest -m cuda` on a machine with an NVIDIA GPU.

Every test here is marked ``cuda`` and skipped without CUDA. They compare what runs on the
GPU with a trusted CPU result: CuPy's distance transforms with SciPy, the Hausdorff losses
with MONAI (values and gradients), ``case_metrics`` on CUDA tensors with NumPy, the batched
augmentation on CUDA with its CPU twin (the deterministic functions with explicit
parameters: the random streams of the two devices differ), then one compiled bf16 training
epoch and a resume, through the public ``make_config`` / ``run_experiment``.

bf16, ``torch.compile`` and cuDNN are not bit-deterministic: the training tests compare
within tolerances, and check exactly only what a resume must restore exactly (epochs,
learning rates). ``benchmarks/device_check.sh`` runs this file on the device machine.
"""

from __future__ import annotations

import math
import sys
import warnings

import numpy as np
import pytest
import torch
from scipy import ndimage

from hie_core import distance
from hie_core.augment import AugmentConfig
from hie_core.augment.batched import (
    BatchAugmenter,
    add_noise,
    elastic_displacement_mm,
    elastic_warp,
    gamma_transform,
    gaussian_blur,
    simulate_anisotropy,
)
from hie_core.distance import HostCopyWarning, backend_name, distance_transform_edt
from hie_core.losses import get_loss
from hie_core.metrics import case_metrics

CUDA = torch.cuda.is_available()
pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not CUDA, reason="needs an NVIDIA GPU with CUDA"),
    pytest.mark.filterwarnings("ignore:single channel prediction"),
]
SPACING = (2.6, 0.9, 1.1)  # (D, H, W) mm, anisotropic as BONBID-HIE after resampling


def _smooth_mask(shape: tuple[int, ...], seed: int, level: float = 0.1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.normal(size=shape), (0.8, 2.0, 2.0)) > level


# -- distance transforms --------------------------------------------------------------------


def test_cupy_is_the_cuda_backend():
    try:
        import cupy  # noqa: F401
    except ImportError as exc:
        pytest.fail(f"CuPy is not importable ({exc}): install the cupy-cudaNNx wheel of torch.version.cuda")
    assert backend_name("cuda").startswith("cupy ")


@pytest.mark.parametrize("shape", [(9, 14, 12), (32, 192, 192)])
def test_cupy_distance_transform_matches_scipy(shape):
    mask = _smooth_mask(shape, seed=len(shape) + shape[0])
    want = ndimage.distance_transform_edt(mask, sampling=SPACING)
    got = distance_transform_edt(torch.from_numpy(mask).cuda(), SPACING)
    assert got.is_cuda and got.dtype == torch.float32 and got.shape == shape
    np.testing.assert_allclose(got.cpu().numpy(), want, rtol=1e-6, atol=1e-5)
    full = distance_transform_edt(torch.ones(shape, dtype=torch.bool, device="cuda"), SPACING)
    assert torch.isinf(full).all()  # no False voxel: no distance (see hie_core.distance)


def test_host_copy_without_cupy_warns_once_and_agrees(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy -> ImportError
    monkeypatch.setattr(distance, "_host_copy_warned", False)
    mask = _smooth_mask((8, 20, 20), seed=5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = distance_transform_edt(torch.from_numpy(mask).cuda(), SPACING)
        distance_transform_edt(torch.from_numpy(~mask).cuda(), SPACING)
    assert [w.category for w in caught] == [HostCopyWarning]
    assert first.is_cuda and "host copy" in backend_name("cuda")
    np.testing.assert_allclose(first.cpu().numpy(), ndimage.distance_transform_edt(mask, sampling=SPACING),
                               rtol=1e-6, atol=1e-5)  # fmt: skip


# -- losses ---------------------------------------------------------------------------------


def _monai_reference(name: str):
    from monai.losses import DiceFocalLoss, HausdorffDTLoss, TverskyLoss

    hdt = HausdorffDTLoss(sigmoid=True, alpha=2.0)  # SciPy on the host (no cuCIM here)
    if name == "hdt":
        return hdt
    base = (DiceFocalLoss(sigmoid=True, gamma=2.0, lambda_dice=1.0, lambda_focal=1.0) if name == "dice_focal_hdt"
            else TverskyLoss(sigmoid=True, alpha=0.3, beta=0.7))  # fmt: skip
    return lambda x, y: 0.9 * base(x, y) + 0.1 * torch.log(1 + hdt(x, y))


def _loss_batch(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """CUDA logits and target (B=4): item 1 predicts nothing, target 2 is empty, target 3 full."""
    gen = torch.Generator().manual_seed(seed)
    shape = (4, 1, 12, 32, 32)
    logits = 2.0 * torch.randn(shape, generator=gen)
    logits[1] = -logits[1].abs() - 0.1
    target = (torch.nn.functional.avg_pool3d(torch.randn(shape, generator=gen), 3, 1, 1) > 0.2).float()
    target[2], target[3] = 0.0, 1.0
    return logits.cuda(), target.cuda()


def _value_and_grad(fn, logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = logits.clone().requires_grad_(True)
    value = fn(x, target)
    value.backward()
    return value.detach(), x.grad


@pytest.mark.parametrize("name", ["hdt", "dice_focal_hdt", "tversky_hdt"])
@pytest.mark.parametrize("seed", [0, 1])
def test_hausdorff_losses_match_monai_on_cuda(name, seed):
    logits, target = _loss_batch(seed)
    ours, ours_grad = _value_and_grad(get_loss(name), logits, target)
    ref, ref_grad = _value_and_grad(_monai_reference(name), logits, target)
    assert ours.is_cuda and ours_grad.is_cuda and float(ours) > 0
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(ours_grad, ref_grad, rtol=1e-5, atol=1e-9)


# -- metrics --------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_case_metrics_on_cuda_tensors_match_numpy(seed):
    shape = (20, 96, 80)
    ref = _smooth_mask(shape, seed)
    pred = _smooth_mask(shape, seed + 100, level=0.15) | (ref & _smooth_mask(shape, seed + 200, level=-0.2))
    cases = [(pred, ref), (np.zeros(shape, bool), ref), (np.zeros(shape, bool), np.zeros(shape, bool))]
    for p, r in cases:
        want = case_metrics(p, r, SPACING)
        got = case_metrics(torch.from_numpy(p).cuda(), torch.from_numpy(r).cuda(), SPACING)
        assert set(got) == set(want)
        for key, value in want.items():
            if isinstance(value, float) and math.isnan(value):
                assert math.isnan(got[key]), key
            else:
                assert got[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
    assert 0.0 < case_metrics(pred, ref, SPACING)["dice"] < 1.0  # a non-trivial case was compared


# -- batched augmentation: CUDA against the CPU twin ----------------------------------------


def _aug_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(7)
    image = torch.randn((2, 2, 12, 24, 20), generator=gen)
    label = torch.nn.functional.avg_pool3d(torch.randn((2, 1, 12, 24, 20), generator=gen), 5, 1, 2) > 0.15
    spacing = torch.tensor([[2.6, 0.9, 1.1], [3.0, 0.7, 0.7]])
    return image, label.float(), spacing


def _both(fn, *args):
    """``fn`` on CPU tensors and on their CUDA copies; returns (cpu, cuda-result-on-cpu)."""
    on_cuda = [a.cuda() if isinstance(a, torch.Tensor) else a for a in args]
    return fn(*args), fn(*on_cuda).cpu()


def test_batched_intensity_transforms_cuda_equal_cpu():
    image, _, spacing = _aug_batch()
    noise = torch.randn(image.shape, generator=torch.Generator().manual_seed(1))
    checks = {
        "noise": _both(add_noise, image, torch.tensor([0.01, 0.004]), noise),
        "anisotropy": _both(simulate_anisotropy, image, torch.tensor([0, 2]), torch.tensor([1.5, 1.93])),
        "blur": _both(gaussian_blur, image, torch.tensor([[0.1, 0.4, 0.3], [0.0, 0.6, 0.5]]), 3),
        "gamma": _both(gamma_transform, image, torch.tensor([[0.95, 1.08], [1.1, 0.9]])),
    }
    for name, (cpu, cuda) in checks.items():
        assert not torch.equal(cpu, image), name  # the transform did something
        torch.testing.assert_close(cuda, cpu, rtol=1e-5, atol=1e-5, msg=name)


def test_batched_elastic_warp_cuda_equals_cpu(monkeypatch):
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)  # the einsum in float32, as on CPU
    image, label, spacing = _aug_batch()
    coeffs = BatchAugmenter(AugmentConfig()).sample_elastic_coefficients_mm(2, torch.Generator().manual_seed(3),
                                                                            torch.device("cpu"))  # fmt: skip
    field_cpu, field_cuda = _both(elastic_displacement_mm, coeffs, tuple(image.shape[2:]))
    torch.testing.assert_close(field_cuda, field_cpu, rtol=1e-5, atol=1e-5)
    warped_cpu, warped_cuda = _both(elastic_warp, image, field_cpu, spacing, "bilinear")
    torch.testing.assert_close(warped_cuda, warped_cpu, rtol=1e-4, atol=1e-4)
    label_cpu, label_cuda = _both(elastic_warp, label, field_cpu, spacing, "nearest")
    assert not torch.equal(label_cpu, label)
    # nearest neighbour may round a coordinate on an exact tie differently: allow a few voxels
    assert (label_cpu != label_cuda).float().mean() < 1e-3


def test_batch_augmenter_on_cuda_is_reproducible_binary_and_sync_free():
    image, label, spacing = _aug_batch()
    augmenter = BatchAugmenter(AugmentConfig(p=1.0))
    image, label = image.cuda(), label.cuda()
    out = []
    for _ in range(2):
        generator = torch.Generator(device="cuda").manual_seed(11)
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")  # any device-to-host read inside raises
        try:
            out.append(augmenter(image, label, spacing, generator))
        finally:
            torch.cuda.set_sync_debug_mode("default")
    (img_a, lab_a), (img_b, lab_b) = out
    assert img_a.is_cuda and img_a.shape == image.shape and lab_a.dtype == label.dtype
    assert torch.equal(img_a, img_b) and torch.equal(lab_a, lab_b)
    assert not torch.equal(img_a, image)
    assert set(torch.unique(lab_a).tolist()) <= {0.0, 1.0}


# -- training on CUDA through the public API ------------------------------------------------


def _cuda_config(data_dir, output_dir, **overrides):
    """The seed protocol (whole volumes, the CUDA defaults) shrunk to a tiny grid and network."""
    from hie_core.training.config import make_config

    values = dict(loss="tversky_hdt", data_dir=str(data_dir), output_dir=str(output_dir), epochs=2, patience=2,
                  batch_size=2, target_shape=(8, 16, 16), widths=(4, 8, 16, 32), seed=1)  # fmt: skip
    values.update(overrides)
    return make_config(preset="seed", device="cuda", **values)


def test_one_compiled_bf16_epoch_on_cuda(tiny_synthetic, tmp_path):
    """The CUDA defaults (bf16 autocast, torch.compile, on-device augmentation, CuPy) train one epoch."""
    from torch._dynamo.utils import counters

    from hie_core.training.experiment import run_experiment

    config = _cuda_config(tiny_synthetic, tmp_path / "run", epochs=1, patience=1)
    assert config.device.startswith("cuda") and config.amp and config.compile and config.augment != "torchio"
    torch._dynamo.reset()
    counters.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error", HostCopyWarning)  # distance transforms stay on the GPU
        result = run_experiment(config)
    assert counters["stats"]["unique_graphs"] >= 1  # the model was compiled
    history = result.history
    assert list(history["epoch"]) == [1] and np.isfinite(history["train_loss"]).all()
    assert 0.0 < float(history["train_loss"].iloc[0]) < 10.0
    assert {"test", "val"} <= set(result.metrics["split"]) and result.metrics["dice"].between(0, 1).all()


def test_resume_on_cuda_agrees_within_tolerance(tiny_synthetic, tmp_path):
    """Two epochs at once, and one + one after a stop: the resumed run keeps its first epoch as
    recorded and restores the schedule exactly; losses and weights agree within tolerance."""
    import pandas as pd

    from hie_core.training.experiment import run_experiment

    whole = run_experiment(_cuda_config(tiny_synthetic, tmp_path / "whole"))
    parts = _cuda_config(tiny_synthetic, tmp_path / "parts")
    assert run_experiment(parts, stop_after_epochs=1) is None  # stopped as if killed
    first = pd.read_csv(tmp_path / "parts" / "history.csv")
    resumed = run_experiment(parts)
    a, b = whole.history, resumed.history
    assert list(a["epoch"]) == list(b["epoch"]) == [1, 2]
    assert b.iloc[0].to_dict() == first.iloc[0].to_dict()  # epoch 1 carried over, not retrained
    assert list(a["lr"]) == list(b["lr"])  # scheduler state restored exactly
    assert np.isfinite(a["train_loss"]).all() and np.isfinite(b["train_loss"]).all()
    np.testing.assert_allclose(b["train_loss"], a["train_loss"], rtol=0.05, atol=0.02)
    weights = [torch.load(r.run_dir / "checkpoint_last.pt", map_location="cpu", weights_only=True)["model"]
               for r in (whole, resumed)]  # fmt: skip
    for key, value in weights[0].items():
        if value.is_floating_point():
            torch.testing.assert_close(weights[1][key], value, rtol=0.05, atol=0.02, msg=key)
