"""The device-resident pipeline: batches, the fast step against fit()'s eager step, the benchmark smoke run."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from hie_core.augment import AugmentConfig, BatchAugmenter
from hie_core.losses import get_loss
from hie_core.model import UNet3D
from hie_core.training.config import TrainConfig
from hie_core.training.fit import TrainingSet, TrainItem, _train_epoch, epoch_seed
from hie_core.training.step import DeviceDataset, FastOptions, make_train_step, train_epoch_fast

ROOT = Path(__file__).resolve().parents[1]
SHAPE = (8, 16, 16)
WIDTHS = (2, 4, 4, 8)


def _items(n: int = 5, seed: int = 0) -> list[TrainItem]:
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        image = rng.normal(size=(2, *SHAPE)).astype(np.float32)
        label = np.zeros((1, *SHAPE), dtype=np.float32)
        d, h, w = rng.integers(1, 5), rng.integers(2, 10), rng.integers(2, 10)
        label[0, d : d + 3, h : h + 5, w : w + 4] = 1.0
        spacing = (2.0 + 0.2 * i, 0.9, 1.1)
        items.append(TrainItem(f"case{i}", image, label, spacing))
    return items


def _model(seed: int = 0) -> UNet3D:
    torch.manual_seed(seed)
    return UNet3D(widths=WIDTHS, prior_probability=0.3)


def _optimizer(model: torch.nn.Module) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-3)


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module, atol: float = 0.0) -> None:
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(x, y, rtol=0 if atol == 0 else 1e-4, atol=atol, msg=name)


def test_device_dataset_batches_equal_stacked_items():
    items = _items()
    data = DeviceDataset(items, "cpu")
    assert data.images.shape == (5, 2, *SHAPE) and data.labels.dtype == torch.uint8
    assert data.nbytes == 5 * 2 * np.prod(SHAPE) * 4 + 5 * np.prod(SHAPE)
    order = [3, 0, 4, 1, 2]
    batches = list(data.batches(order, 2))
    assert [b[0].shape[0] for b in batches] == [2, 2, 1]
    image = torch.cat([b[0] for b in batches])
    label = torch.cat([b[1] for b in batches])
    spacing = torch.cat([b[2] for b in batches])
    torch.testing.assert_close(
        image, torch.from_numpy(np.stack([items[i].image for i in order])), rtol=0, atol=0
    )
    torch.testing.assert_close(
        label, torch.from_numpy(np.stack([items[i].label for i in order])), rtol=0, atol=0
    )
    torch.testing.assert_close(spacing, torch.tensor([items[i].spacing_mm for i in order]), rtol=0, atol=0)
    assert image.dtype == label.dtype == torch.float32 and spacing.device.type == "cpu"


def test_device_dataset_bf16_storage_and_validation():
    items = _items(2)
    data = DeviceDataset(items, "cpu", image_dtype=torch.bfloat16)
    image = next(data.batches([0, 1], 2))[0]
    assert data.images.dtype == torch.bfloat16 and image.dtype == torch.float32
    expected = torch.from_numpy(np.stack([i.image for i in items])).bfloat16().float()
    torch.testing.assert_close(image, expected, rtol=0, atol=0)
    with pytest.raises(ValueError, match="outside"):
        next(data.batches([0, 2], 1))
    with pytest.raises(ValueError, match="batch_size"):
        next(data.batches([0], 0))
    with pytest.raises(ValueError, match="empty"):
        DeviceDataset([], "cpu")


@pytest.mark.parametrize("loss_name", ["dice", "tversky_hdt"])
@pytest.mark.parametrize("augment", ["none", "gpu"])
def test_fast_epoch_equals_fit_epoch_in_fp32(loss_name, augment):
    """Two epochs of the fast path give fit()'s eager weights and losses bit for bit."""
    items = _items()
    config = TrainConfig(
        loss=loss_name, batch_size=2, augment=augment, target_shape=(8, 16, 16), widths=WIDTHS
    )
    augmenter = BatchAugmenter(AugmentConfig(p=0.7)) if augment == "gpu" else None
    eager, fast = _model(), _model()
    eager_opt, fast_opt = _optimizer(eager), _optimizer(fast)
    loss_fn = get_loss(loss_name)
    step = make_train_step(
        fast, loss_fn, fast_opt, l1=config.l1, grad_clip=config.grad_clip, amp=False, channels_last=False,
        compile=False,
    )  # fmt: skip
    data = DeviceDataset(items, "cpu")
    dataset = TrainingSet(items, None, config.seed)
    for epoch in (1, 2):
        order = np.random.default_rng(epoch).permutation(len(items)).tolist()
        loader = torch.utils.data.DataLoader(dataset, batch_size=2, sampler=order)
        torch.manual_seed(epoch_seed(0, epoch, 2))
        want = _train_epoch(eager, loader, eager_opt, loss_fn, config, augmenter, epoch)
        torch.manual_seed(epoch_seed(0, epoch, 2))
        torch.empty((), dtype=torch.int64).random_()  # the draw a DataLoader iterator makes for its base seed
        generator = torch.Generator().manual_seed(epoch_seed(config.seed, epoch, 1))
        got = train_epoch_fast(step, data, augmenter, order, 2, generator)
        assert got == want
    _assert_same_weights(eager, fast)


def test_step_returns_device_tensor_and_changes_weights():
    model = _model()
    before = copy.deepcopy(model.state_dict())
    step = make_train_step(
        model, get_loss("dice"), _optimizer(model), l1=1e-4, grad_clip=1.0, amp=False, channels_last=False,
        compile=False,
    )  # fmt: skip
    data = DeviceDataset(_items(2), "cpu")
    image, label, _ = next(data.batches([0, 1], 2))
    loss = step(image, label)
    assert isinstance(loss, torch.Tensor) and loss.ndim == 0 and not loss.requires_grad
    assert 0.0 < float(loss) < 1.0
    changed = [
        k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.equal(v, before[k])
    ]
    assert "head.weight" in changed and "encoders.0.0.weight" in changed


@pytest.mark.parametrize("options", [FastOptions(amp=True), FastOptions(channels_last=True)])
def test_amp_and_channels_last_within_tolerance(options):
    """bf16 autocast (on CPU here) and channels_last_3d stay close to the fp32 eager step.

    SGD, not AdamW: Adam normalises each update to about ``lr`` whatever the gradient's size,
    so tiny gradient differences could flip whole updates; with SGD a weight differs by
    ``lr`` times its gradient's difference.
    """
    items = _items(4)
    data = DeviceDataset(items, "cpu")
    losses = {}
    models = {}
    for name, opts in (("ref", FastOptions()), ("test", options)):
        model = _model()
        step = make_train_step(
            model, get_loss("tversky"), torch.optim.SGD(model.parameters(), lr=0.1), l1=1e-4, grad_clip=1.0,
            amp=opts.amp,
            channels_last=opts.channels_last, compile=False,
        )  # fmt: skip
        torch.manual_seed(5)
        losses[name] = [float(step(x, y)) for x, y, _ in data.batches([0, 1, 2, 3], 2)]
        models[name] = model
    tol = 1e-2 if options.amp else 1e-5
    assert losses["test"] == pytest.approx(losses["ref"], abs=tol)
    assert losses["test"] != losses["ref"] or not options.amp  # bf16 did change the arithmetic
    _assert_same_weights(models["ref"], models["test"], atol=tol / 10)
    if options.channels_last:
        assert models["test"].encoders[0][0].weight.is_contiguous(memory_format=torch.channels_last_3d)


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="GPU only: inductor takes over a minute on a 2-core CPU"
)
def test_compiled_step_matches_eager_on_cuda():
    """torch.compile (mode default) + channels_last + bf16 stays within bf16 tolerance of eager bf16."""
    items = _items(4)
    data = DeviceDataset(items, "cuda")
    losses = {}
    for compile_ in (False, True):
        torch.manual_seed(0)
        model = UNet3D(widths=WIDTHS, dropout=(0.0, 0.0, 0.0, 0.0), prior_probability=0.3).cuda()
        step = make_train_step(
            model, get_loss("tversky_hdt"), torch.optim.SGD(model.parameters(), lr=0.1), l1=1e-4,
            grad_clip=1.0, amp=True, channels_last=True, compile=compile_,
        )  # fmt: skip
        losses[compile_] = [float(step(x, y)) for x, y, _ in data.batches([0, 1, 2, 3], 2)]
    assert losses[True] == pytest.approx(losses[False], abs=1e-2)


def test_make_train_step_validates_arguments():
    model = _model()
    kwargs = dict(grad_clip=1.0, amp=False, channels_last=False, compile=False)
    with pytest.raises(ValueError, match="l1"):
        make_train_step(model, get_loss("dice"), _optimizer(model), l1=-1.0, **kwargs)
    with pytest.raises(ValueError, match="compile mode"):
        make_train_step(model, get_loss("dice"), _optimizer(model), l1=0.0, **{**kwargs, "compile": "fast"})
    with pytest.raises(ValueError, match="generator"):
        step = make_train_step(model, get_loss("dice"), _optimizer(model), l1=0.0, **kwargs)
        train_epoch_fast(step, DeviceDataset(_items(1), "cpu"), BatchAugmenter(AugmentConfig()), [0], 1, None)


def test_benchmark_small_mode_writes_both_pipelines(tmp_path):
    out = tmp_path / "small.json"
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_pipeline.py"), "--small", "--json", str(out)],
        capture_output=True, text=True, timeout=180, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert time.perf_counter() - start < 120
    report = json.loads(out.read_text())
    assert report["device"]["name"] and report["versions"]["torch"] == torch.__version__
    rows = report["rows"]
    assert {r["pipeline"] for r in rows} == {"baseline", "ours"}
    assert {(r["pipeline"], r["loss"]) for r in rows} >= {("baseline", "dice"), ("ours", "tversky_hdt")}
    for row in rows:
        assert row["vol_per_s"] > 0 and row["ms_per_step"] > 0
        if row["loss"] == "dice":
            assert row["ratio_to_dice"] == 1.0
    for pipeline in ("baseline", "ours"):
        summary = report["summary"][pipeline]
        assert summary["augment_vol_per_s"] > 0 and summary["inference_ms_per_volume"] > 0
        assert summary["metric_ms_per_case"] > 0 and summary["study_hours"] > 0
    assert "ours" in proc.stdout and "baseline" in proc.stdout
