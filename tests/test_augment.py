"""Tests for hie_core.augment: TorchIO reference, batched twins checked against TorchIO's own transforms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from hie_core.augment import (
    TRANSFORM_NAMES,
    AugmentConfig,
    BatchAugmenter,
    IdentityAugmenter,
    TorchioAugmenter,
    derive_seed,
    make_augmenter,
)
from hie_core.augment.batched import (
    bspline_weights,
    elastic_displacement_mm,
    elastic_warp,
    gamma_transform,
    gaussian_blur,
    simulate_anisotropy,
)

tio = pytest.importorskip("torchio")

# Tiny volumes fold under the seed's 7.5 mm displacement; TorchIO warns about it.
pytestmark = pytest.mark.filterwarnings("ignore:The maximum displacement is larger:RuntimeWarning")

SHAPE = (8, 24, 24)
SPACING_MM = (3.0, 0.9, 0.8)


def _sample(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A smooth 2-channel z-scored-like image (with negatives) and a binary blob label."""
    z, y, x = torch.meshgrid(*(torch.linspace(-1, 1, n) for n in SHAPE), indexing="ij")
    rng = torch.Generator().manual_seed(seed)
    adc = torch.sin(3 * x + 1) * torch.cos(2 * y) + z**2 + 0.1 * torch.randn(SHAPE, generator=rng)
    zadc = 2.0 * torch.tanh(x + y - z)
    label = ((x - 0.2) ** 2 + y**2 + (z / 2) ** 2 < 0.3).float()[None]
    return torch.stack([adc, zadc]).float(), label


def _only(name: str | None, **kwargs: object) -> AugmentConfig:
    """Config with every transform off except ``name`` (forced on)."""
    probs = {f"p_{n}": float(n == name) for n in TRANSFORM_NAMES}
    return AugmentConfig(**{**probs, **kwargs})


def _run_batched(config: AugmentConfig, image: torch.Tensor, label: torch.Tensor, seed: int):
    generator = torch.Generator().manual_seed(seed)
    spacing = torch.tensor([SPACING_MM])
    out_image, out_label = BatchAugmenter(config)(image[None], label[None], spacing, generator)
    return out_image[0], out_label[0]


def _run_torchio(config: AugmentConfig, image: torch.Tensor, label: torch.Tensor, seed: int):
    return TorchioAugmenter(config)(image, label, SPACING_MM, seed=seed)


RUNNERS = {"torchio": _run_torchio, "batched": _run_batched}


def _tio_image(image: torch.Tensor) -> tio.Subject:
    affine = np.diag(list(SPACING_MM[::-1]) + [1.0])
    return tio.Subject(image=tio.ScalarImage(tensor=image.permute(0, 3, 2, 1).contiguous(), affine=affine))


def _tio_to_ours(control_points: np.ndarray) -> torch.Tensor:
    """TorchIO control points (x, y, z grid, (x, y, z) mm in LPS) -> ours (1, 3, kD, kH, kW) in (D, H, W)."""
    c = torch.as_tensor(control_points, dtype=torch.float64).flip(0).flip(1)  # RAS arrays, LPS grid
    return torch.stack([c[..., 2], -c[..., 1], -c[..., 0]]).permute(0, 3, 2, 1)[None]


# --- configuration -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "bad"),
    [
        ({"backend": "cuda"}, "cuda"),
        ({"p": 1.5}, "1.5"),
        ({"p_blur": -0.1}, "-0.1"),
        ({"noise_std": -0.01}, "-0.01"),
        ({"anisotropy_downsampling": (0.5, 2.0)}, "0.5"),
        ({"blur_std_mm": (0.5, 0.1)}, "0.5"),
        ({"log_gamma": (0.1,)}, "0.1"),
        ({"elastic_control_points": 3}, "3"),
        ({"elastic_max_displacement_mm": -1.0}, "-1.0"),
        ({"elastic_locked_borders": 3}, "3"),
    ],
)
def test_config_rejects_bad_values(kwargs: dict, bad: str) -> None:
    with pytest.raises(ValueError, match=bad):
        AugmentConfig(**kwargs)


def test_config_probability_overrides_and_factory() -> None:
    config = AugmentConfig(p=0.3, p_elastic=0.9)
    assert config.probability("noise") == 0.3 and config.probability("elastic") == 0.9
    with pytest.raises(ValueError, match="swap"):
        config.probability("swap")
    assert isinstance(make_augmenter(AugmentConfig(backend="torchio")), TorchioAugmenter)
    assert isinstance(make_augmenter(AugmentConfig(backend="batched")), BatchAugmenter)
    assert isinstance(make_augmenter(AugmentConfig(backend="none")), IdentityAugmenter)
    assert [make_augmenter(AugmentConfig(backend=b)).per_batch for b in ("torchio", "batched", "none")] == [
        False,
        True,
        False,
    ]
    assert len({derive_seed(0, e, i) for e in range(3) for i in range(50)}) == 150


# --- identities, invariants ----------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["torchio", "batched"])
def test_probability_zero_is_bit_identical(backend: str) -> None:
    image, label = _sample()
    out_image, out_label = RUNNERS[backend](AugmentConfig(p=0.0), image, label, seed=3)
    assert torch.equal(out_image, image) and torch.equal(out_label, label)


@pytest.mark.parametrize("backend", ["torchio", "batched"])
def test_all_on_keeps_shape_dtype_and_binary_labels(backend: str) -> None:
    image, label = _sample()
    for seed in range(3):
        out_image, out_label = RUNNERS[backend](AugmentConfig(p=1.0), image, label, seed=seed)
        assert out_image.shape == image.shape and out_image.dtype == torch.float32
        assert out_label.shape == label.shape and out_label.dtype == label.dtype
        assert set(out_label.unique().tolist()) <= {0.0, 1.0}
        assert torch.isfinite(out_image).all() and not torch.equal(out_image, image)
        assert out_label.sum() > 0


@pytest.mark.parametrize("backend", ["torchio", "batched"])
@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("noise", {"noise_std": 0.0}),
        ("gamma", {"log_gamma": (0.0, 0.0)}),
        ("blur", {"blur_std_mm": (0.0, 0.0)}),
    ],
)
def test_zero_strength_transforms_are_identity(backend: str, name: str, kwargs: dict) -> None:
    image, label = _sample()
    out_image, out_label = RUNNERS[backend](_only(name, **kwargs), image, label, seed=1)
    torch.testing.assert_close(out_image, image, rtol=0, atol=1e-6)
    assert torch.equal(out_label, label)


@pytest.mark.parametrize("backend", ["torchio", "batched"])
def test_same_seed_reproduces_and_other_seed_differs(backend: str) -> None:
    image, label = _sample()
    config = AugmentConfig(p=1.0)
    first, second, other = (RUNNERS[backend](config, image, label, seed=s)[0] for s in (7, 7, 8))
    assert torch.equal(first, second) and not torch.allclose(first, other)


def test_gpu_batch_shape_device_and_per_sample_masks() -> None:
    image, label = _sample()
    images, labels = image.expand(6, -1, -1, -1, -1).clone(), label.expand(6, -1, -1, -1, -1).clone()
    spacing = torch.tensor([SPACING_MM] * 6)
    out, out_label = BatchAugmenter(AugmentConfig(p=0.5))(
        images, labels, spacing, torch.Generator().manual_seed(0)
    )
    assert out.shape == images.shape and out.device == images.device and out_label.dtype == labels.dtype
    changed = [not torch.equal(out[b], images[b]) for b in range(6)]
    assert len({tuple(out[b].flatten()[:50].tolist()) for b in range(6)}) == 6  # independent draws
    assert any(changed)


class _OneDeviceOnly(TorchDispatchMode):
    """Raise on any op that mixes tensors of two devices (a host tensor fed to a device op).

    On CUDA such an op copies the host tensor to the device inside the step (a synchronising
    copy); on the ``meta`` device it would go unnoticed, since 0-d CPU tensors are accepted
    as scalars. Explicit transfers (``.to``) are allowed: they are the caller's choice.
    """

    allowed = {torch.ops.aten._to_copy.default, torch.ops.aten.copy_.default}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        devices = {
            t.device.type
            for t in torch.utils._pytree.tree_leaves((args, kwargs))
            if isinstance(t, torch.Tensor)
        }
        if len(devices) > 1 and func not in self.allowed:
            raise AssertionError(f"{func} mixes tensors on {sorted(devices)}")
        return func(*args, **kwargs)


def test_batch_augmenter_creates_no_host_tensor_and_reads_nothing_back() -> None:
    """The CPU twin of tests/test_cuda.py's sync-free check: on ``meta`` tensors, any host tensor
    mixed into a device op raises, and so does any ``.item()`` / ``float(tensor)`` of the batch."""
    image, label = _sample()
    images = image.expand(3, -1, -1, -1, -1).to("meta")
    labels = label.expand(3, -1, -1, -1, -1).to("meta")
    spacing = torch.tensor([SPACING_MM] * 3)  # on the host, as the DataLoader yields it
    with _OneDeviceOnly():
        out, out_label = BatchAugmenter(AugmentConfig(p=1.0))(
            images, labels, spacing, torch.Generator().manual_seed(0)
        )
    assert out.device.type == "meta" and out.shape == images.shape and out_label.shape == labels.shape
    with pytest.raises(AssertionError, match="mixes tensors"), _OneDeviceOnly():
        torch.where(images > 0, images, torch.zeros((), dtype=images.dtype))  # the bug it guards


# --- the batched twins equal TorchIO's deterministic transforms -----------------------------------


def test_blur_matches_torchio_blur() -> None:
    image, _ = _sample()
    std_xyz = (0.45, 0.3, 2.1)  # mm, TorchIO's (x, y, z) = our (W, H, D)
    expected = tio.Blur(std=std_xyz)(_tio_image(image))["image"].data.permute(0, 3, 2, 1)
    sigma_vox = torch.tensor([std_xyz[::-1]]) / torch.tensor([SPACING_MM])
    radius = int(4 * sigma_vox.max() + 0.5)
    torch.testing.assert_close(
        gaussian_blur(image[None], sigma_vox, radius + 2)[0], expected, atol=2e-6, rtol=0
    )


def test_gamma_matches_torchio_gamma_on_negative_values() -> None:
    image, _ = _sample()
    assert image.min() < 0
    expected = tio.Gamma(gamma=(0.92, 1.08))(_tio_image(image))["image"].data.permute(0, 3, 2, 1)
    torch.testing.assert_close(gamma_transform(image[None], torch.tensor([[0.92, 1.08]]))[0], expected)


@pytest.mark.parametrize(("tio_axis", "factor"), [(0, 1.625), (1, 1.8125), (2, 1.625), (2, 1.9375)])
def test_anisotropy_matches_torchio(tio_axis: int, factor: float) -> None:
    image, label = _sample()
    subject = _tio_image(image)
    subject.add_image(
        tio.LabelMap(tensor=label.permute(0, 3, 2, 1).contiguous(), affine=subject.image.affine), "label"
    )
    out = tio.RandomAnisotropy(axes=(tio_axis,), downsampling=(factor, factor))(subject)
    expected = out["image"].data.permute(0, 3, 2, 1)
    ours = simulate_anisotropy(image[None], torch.tensor([2 - tio_axis]), torch.tensor([factor]))[0]
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)
    assert torch.equal(out["label"].data.permute(0, 3, 2, 1), label)  # TorchIO leaves labels alone


def test_elastic_matches_torchio_elastic_deformation() -> None:
    image, label = _sample()
    generator = torch.Generator().manual_seed(0)
    control_points = ((torch.rand(7, 7, 7, 3, generator=generator) * 2 - 1) * 4.0).numpy()
    subject = _tio_image(image)
    subject.add_image(
        tio.LabelMap(tensor=label.permute(0, 3, 2, 1).contiguous(), affine=subject.image.affine), "label"
    )
    out = tio.ElasticDeformation(control_points=control_points, max_displacement=(7.5,) * 3)(subject)
    field = elastic_displacement_mm(_tio_to_ours(control_points), SHAPE).float()
    spacing = torch.tensor([SPACING_MM])
    ours = elastic_warp(image[None], field, spacing, "bilinear")[0]
    ours_label = elastic_warp(label[None], field, spacing, "nearest")[0]
    torch.testing.assert_close(ours, out["image"].data.permute(0, 3, 2, 1), atol=1e-5, rtol=0)
    assert (ours == image.amin(dim=(1, 2, 3), keepdim=True)).any()  # some points fell outside: fill value
    mismatch = (ours_label != out["label"].data.permute(0, 3, 2, 1)).float().mean()
    assert mismatch < 1e-3


# --- elastic bounds and locking --------------------------------------------------------------------


def test_gpu_elastic_displacement_bounded_and_locked_like_torchio() -> None:
    config = AugmentConfig()
    coeffs = BatchAugmenter(config).sample_elastic_coefficients_mm(
        16, torch.Generator().manual_seed(0), "cpu"
    )
    field = elastic_displacement_mm(coeffs.double(), SHAPE)
    bound = config.elastic_max_displacement_mm
    assert coeffs.abs().max() <= bound and field.abs().max() <= bound + 1e-9
    assert field.abs().max() > 0.3 * bound
    # Locked control points: the same zero pattern as TorchIO's own sampler.
    tio_points = tio.RandomElasticDeformation.get_params((7, 7, 7), (bound,) * 3, 2)
    assert np.abs(tio_points).max() <= bound
    tio_zero = _tio_to_ours(tio_points)[0, 0] == 0
    assert torch.equal((coeffs[:, 0] == 0).all(dim=0), tio_zero)
    assert tio_zero[:, :2].all() and tio_zero[:, :, -2:].all() and not tio_zero[0].all()  # D is never locked
    # The border voxel still moves: only free control points reach it, so |d| <= bound * their weight.
    weights_w = bspline_weights(SHAPE[2], 7)[0]
    border_bound = bound * float(weights_w[2:5].sum())
    assert 0 < field[:, 2, :, :, 0].abs().max() <= border_bound + 1e-9 and border_bound < 0.25 * bound


def test_torchio_sampled_control_points_bounded() -> None:
    image, label = _sample()
    augmenter = TorchioAugmenter(_only("elastic"))
    subject = augmenter.to_subject(image, label, SPACING_MM)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        out = augmenter.compose(subject)
    (elastic,) = [t for t in out.get_applied_transforms() if isinstance(t, tio.ElasticDeformation)]
    points = np.asarray(elastic.control_points)
    assert np.abs(points).max() <= 7.5 and np.abs(points).max() > 5.0
    assert (points[:2] == 0).all() and (points[:, -2:] == 0).all()


def test_bspline_weights_partition_of_unity() -> None:
    weights = bspline_weights(37, 7)
    assert (weights >= 0).all()
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(37, dtype=torch.float64))


# --- the two back ends agree statistically -------------------------------------------------------


@pytest.mark.parametrize("name", TRANSFORM_NAMES)
def test_backends_change_images_by_similar_amounts(name: str) -> None:
    image, label = _sample()
    config, draws = _only(name), 32
    torchio_change = np.mean(
        [(_run_torchio(config, image, label, seed=s)[0] - image).abs().mean().item() for s in range(draws)]
    )
    batch = image.expand(draws, -1, -1, -1, -1)
    out, _ = BatchAugmenter(config)(
        batch,
        label.expand(draws, -1, -1, -1, -1),
        torch.tensor([SPACING_MM] * draws),
        torch.Generator().manual_seed(0),
    )
    gpu_change = (out - batch).abs().mean().item()
    assert gpu_change > 0 and torchio_change > 0
    assert 0.6 < gpu_change / torchio_change < 1.6, (gpu_change, torchio_change)
