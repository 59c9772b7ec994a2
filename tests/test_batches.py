"""Epoch plans, patches and the two batch sources (DataLoader per sample, device batched)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from hie_core.augment import AugmentConfig, BatchAugmenter
from hie_core.training.batches import DeviceBatches, LoaderBatches, TrainItem, pad_to, plan_epoch

SHAPE = (8, 20, 16)


def _items(n: int = 5, seed: int = 0, lesion: bool = True) -> list[TrainItem]:
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        image = rng.normal(size=(2, *SHAPE)).astype(np.float32)
        label = np.zeros((1, *SHAPE), dtype=np.uint8)
        if lesion and i != 1:  # item 1 has no lesion
            d, h, w = rng.integers(0, 6), rng.integers(0, 16), rng.integers(0, 12)
            label[0, d : d + 2, h : h + 3, w : w + 3] = 1
        items.append(TrainItem(f"case{i}", image, label, (2.0 + 0.2 * i, 0.9, 1.1)))
    return items


def test_one_pass_without_steps_per_epoch():
    plan = plan_epoch(_items(), batch_size=2, seed=0, epoch=1)
    assert [len(b) for b in plan] == [2, 2, 1]
    assert sorted(s.index for b in plan for s in b) == [0, 1, 2, 3, 4]
    assert all(s.start == (0, 0, 0) for b in plan for s in b)


def test_plans_depend_only_on_seed_and_epoch():
    items = _items()
    a = plan_epoch(
        items, 2, seed=3, epoch=4, patch_shape=(8, 8, 8), foreground_fraction=0.5, steps_per_epoch=6
    )
    b = plan_epoch(
        items, 2, seed=3, epoch=4, patch_shape=(8, 8, 8), foreground_fraction=0.5, steps_per_epoch=6
    )
    c = plan_epoch(
        items, 2, seed=3, epoch=5, patch_shape=(8, 8, 8), foreground_fraction=0.5, steps_per_epoch=6
    )
    assert a == b and a != c
    assert len({s.seed for batch in a for s in batch}) == 12  # one augmentation seed per slot


def test_steps_per_epoch_draws_cases_evenly_and_patches_stay_inside():
    items = _items()
    plan = plan_epoch(items, 3, seed=0, epoch=1, patch_shape=(8, 8, 8), steps_per_epoch=7)
    assert [len(b) for b in plan] == [3] * 7
    counts = Counter(s.index for b in plan for s in b)
    assert max(counts.values()) - min(counts.values()) <= 1 and len(counts) == 5
    for sample in (s for b in plan for s in b):
        assert all(0 <= st <= full - p for st, full, p in zip(sample.start, SHAPE, (8, 8, 8), strict=True))


def test_foreground_patches_hold_a_lesion_voxel():
    items = _items()
    patch = (4, 6, 6)
    plan = plan_epoch(
        items, 4, seed=1, epoch=2, patch_shape=patch, foreground_fraction=1.0, steps_per_epoch=10
    )
    for sample in (s for b in plan for s in b):
        label = items[sample.index].label[0]
        d, h, w = sample.start
        crop = label[d : d + patch[0], h : h + patch[1], w : w + patch[2]]
        assert crop.any() or not label.any()  # a case without lesion gets a random patch


def test_random_patches_cover_the_volume():
    plan = plan_epoch(_items(1), 1, seed=0, epoch=1, patch_shape=(4, 4, 4), foreground_fraction=0.0,
                      steps_per_epoch=400)  # fmt: skip
    starts = np.array([s.start for b in plan for s in b])
    assert starts.min(axis=0).tolist() == [0, 0, 0]
    assert starts.max(axis=0).tolist() == [4, 16, 12]  # every start allowed is reached


def test_pad_to_pads_with_channel_minimum_and_empty_label():
    item = _items(1)[0]
    padded = pad_to(item, (10, 20, 24))
    assert padded.image.shape == (2, 10, 20, 24) and padded.label.shape == (1, 10, 20, 24)
    np.testing.assert_array_equal(padded.image[:, :8, :, :16], item.image)
    for c in range(2):
        assert np.all(padded.image[c, 8:] == item.image[c].min())
    assert not padded.label[:, 8:].any() and padded.label.sum() == item.label.sum()
    assert pad_to(item, (4, 4, 4)) is item and pad_to(item, None) is item


@pytest.mark.parametrize("patch", [None, (4, 8, 8)])
def test_both_sources_give_the_same_batches_without_augmentation(patch):
    items = _items()
    plan = plan_epoch(items, 2, seed=0, epoch=1, patch_shape=patch, foreground_fraction=0.5,
                      steps_per_epoch=None if patch is None else 4)  # fmt: skip
    loader = list(LoaderBatches(items, patch, None, "cpu")(plan, 7))
    device = list(DeviceBatches(items, patch, None, "cpu")(plan, 7))
    assert len(loader) == len(device) == len(plan)
    for (xa, ya), (xb, yb) in zip(loader, device, strict=True):
        assert xa.dtype == xb.dtype == ya.dtype == yb.dtype == torch.float32
        torch.testing.assert_close(xa, xb, rtol=0, atol=0)
        torch.testing.assert_close(ya, yb, rtol=0, atol=0)
    first = plan[0][0]
    expected = items[first.index].image if patch is None else items[first.index].image[:, :4, :8, :8]
    if patch is None or first.start == (0, 0, 0):
        np.testing.assert_array_equal(device[0][0][0].numpy(), expected)


def test_device_batches_augment_reproducibly_and_keep_labels_binary():
    items = _items()
    plan = plan_epoch(items, 3, seed=0, epoch=1, patch_shape=(8, 16, 16), foreground_fraction=1.0,
                      steps_per_epoch=2)  # fmt: skip
    source = DeviceBatches(items, (8, 16, 16), BatchAugmenter(AugmentConfig(p=1.0)), "cpu")
    a, b = list(source(plan, 11)), list(source(plan, 11))
    plain = list(DeviceBatches(items, (8, 16, 16), None, "cpu")(plan, 11))
    for (xa, ya), (xb, yb), (xp, _) in zip(a, b, plain, strict=True):
        torch.testing.assert_close(xa, xb, rtol=0, atol=0)
        torch.testing.assert_close(ya, yb, rtol=0, atol=0)
        assert not torch.equal(xa, xp) and set(ya.unique().tolist()) <= {0.0, 1.0}
    assert source.nbytes == sum(i.image.nbytes + i.label.nbytes for i in items)


def test_mirroring_is_drawn_in_the_plan_and_both_sources_flip_the_same_samples():
    items = _items()
    kwargs = dict(patch_shape=(4, 8, 8), foreground_fraction=0.5, steps_per_epoch=8)
    plain = plan_epoch(items, 2, seed=0, epoch=1, **kwargs)
    mirrored = plan_epoch(items, 2, seed=0, epoch=1, mirror_axes=(1, 2), **kwargs)
    assert all(s.flip == () for b in plain for s in b)  # no axis: nothing drawn, the seed's plans
    flips = Counter(s.flip for b in mirrored for s in b)
    assert set(flips) <= {(), (1,), (2,), (1, 2)} and len(flips) >= 3
    assert mirrored == plan_epoch(items, 2, seed=0, epoch=1, mirror_axes=(1, 2), **kwargs)
    loader = list(LoaderBatches(items, (4, 8, 8), None, "cpu")(mirrored, 7))
    device = list(DeviceBatches(items, (4, 8, 8), None, "cpu")(mirrored, 7))
    for (xa, ya), (xb, yb) in zip(loader, device, strict=True):
        torch.testing.assert_close(xa, xb, rtol=0, atol=0)
        torch.testing.assert_close(ya, yb, rtol=0, atol=0)
    sample = next(s for b in mirrored for s in b if s.flip == (1, 2))
    batch, slot = next((i, b.index(sample)) for i, b in enumerate(mirrored) if sample in b)
    d, h, w = sample.start
    crop = items[sample.index].image[:, d : d + 4, h : h + 8, w : w + 8]
    np.testing.assert_array_equal(device[batch][0][slot].numpy(), crop[:, :, ::-1, ::-1])
