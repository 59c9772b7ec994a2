"""The training step and epoch: L1 gradient, one loop for any batches, bf16/channels_last/compile, the benchmark smoke run."""

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

from hie_core.config import DEFAULTS
from hie_core.losses import get_loss
from hie_core.model import UNet3D
from hie_core.training.step import FastOptions, l1_weights, make_train_step, train_epoch

ROOT = Path(__file__).resolve().parents[1]
SHAPE = (8, 16, 16)
WIDTHS = (2, 4, 4, 8)


def _batch(n: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random 2-channel volumes with a box lesion each: (image, label) float tensors."""
    rng = np.random.default_rng(seed)
    image = rng.normal(size=(n, 2, *SHAPE)).astype(np.float32)
    label = np.zeros((n, 1, *SHAPE), dtype=np.float32)
    for i in range(n):
        d, h, w = rng.integers(1, 5), rng.integers(2, 10), rng.integers(2, 10)
        label[i, 0, d : d + 3, h : h + 5, w : w + 4] = 1.0
    return torch.from_numpy(image), torch.from_numpy(label)


def _model(seed: int = 0) -> UNet3D:
    torch.manual_seed(seed)
    return UNet3D(widths=WIDTHS, prior_probability=0.3, dropout=DEFAULTS["dropout"], norm=DEFAULTS["norm"])


def _optimizer(model: torch.nn.Module) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-3)


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module, atol: float = 0.0) -> None:
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(x, y, rtol=0 if atol == 0 else 1e-4, atol=atol, msg=name)


@pytest.mark.parametrize("loss_name", ["dice", "tversky_hdt"])
def test_l1_gradient_equals_autograd_of_the_penalised_objective(loss_name):
    """The step adds l1 * sign(w) after backward: the same gradients as autograd of loss + l1 * sum|w|."""
    x, y = _batch()
    ref, fast = _model(), _model()
    loss_fn = get_loss(loss_name)
    torch.manual_seed(1)  # the same dropout draws in both forward passes
    objective = loss_fn(ref(x), y) + 1e-3 * torch.stack([p.abs().sum() for p in l1_weights(ref)]).sum()
    objective.backward()
    captured = {}
    optimizer = torch.optim.SGD(fast.parameters(), lr=0.0)
    optimizer.step = lambda: captured.update({n: p.grad.clone() for n, p in fast.named_parameters()})
    step = make_train_step(fast, loss_fn, optimizer, l1=1e-3, grad_clip=None, amp=False, channels_last=False,
                           compile=False)  # fmt: skip
    torch.manual_seed(1)
    step(x, y)
    for name, param in ref.named_parameters():
        torch.testing.assert_close(captured[name], param.grad, rtol=0, atol=0, msg=name)


def test_train_epoch_is_one_loop_over_any_batches():
    """train_epoch gives the sample-weighted mean of the step losses, for a list as for a generator."""
    batches = [_batch(2, seed=1), _batch(1, seed=2)]
    losses = {}
    for kind in ("list", "generator"):
        model = _model()
        step = make_train_step(model, get_loss("dice"), _optimizer(model), l1=1e-4, grad_clip=1.0, amp=False,
                               channels_last=False, compile=False)  # fmt: skip
        torch.manual_seed(0)
        losses[kind] = train_epoch(step, batches if kind == "list" else (b for b in batches))
    model = _model()
    step = make_train_step(model, get_loss("dice"), _optimizer(model), l1=1e-4, grad_clip=1.0, amp=False,
                           channels_last=False, compile=False)  # fmt: skip
    torch.manual_seed(0)
    by_hand = [float(step(x, y)) * x.shape[0] for x, y in batches]
    assert losses["list"] == losses["generator"] == pytest.approx(sum(by_hand) / 3, rel=1e-12)
    assert np.isnan(train_epoch(step, []))


def test_step_returns_device_tensor_and_changes_weights():
    model = _model()
    before = copy.deepcopy(model.state_dict())
    step = make_train_step(
        model, get_loss("dice"), _optimizer(model), l1=1e-4, grad_clip=1.0, amp=False, channels_last=False,
        compile=False,
    )  # fmt: skip
    image, label = _batch()
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
    batches = [_batch(2, seed=0), _batch(2, seed=1)]
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
        losses[name] = [float(step(x, y)) for x, y in batches]
        models[name] = model
    tol = 1e-2 if options.amp else 1e-5
    assert losses["test"] == pytest.approx(losses["ref"], abs=tol)
    assert losses["test"] != losses["ref"] or not options.amp  # bf16 did change the arithmetic
    _assert_same_weights(models["ref"], models["test"], atol=tol / 10)
    if options.channels_last:
        assert models["test"].encoders[0][0].weight.is_contiguous(memory_format=torch.channels_last_3d)


@pytest.mark.cuda
@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="GPU only: inductor takes over a minute on a 2-core CPU"
)
def test_compiled_step_matches_eager_on_cuda():
    """torch.compile (mode default) + channels_last + bf16 stays within bf16 tolerance of eager bf16."""
    batches = [tuple(t.cuda() for t in _batch(2, seed=s)) for s in (0, 1)]
    losses = {}
    for compile_ in (False, True):
        torch.manual_seed(0)
        model = UNet3D(widths=WIDTHS, dropout=(0.0, 0.0, 0.0, 0.0), prior_probability=0.3, norm=DEFAULTS["norm"]).cuda()
        step = make_train_step(
            model, get_loss("tversky_hdt"), torch.optim.SGD(model.parameters(), lr=0.1), l1=1e-4,
            grad_clip=1.0, amp=True, channels_last=True, compile=compile_,
        )  # fmt: skip
        losses[compile_] = [float(step(x, y)) for x, y in batches]
    assert losses[True] == pytest.approx(losses[False], abs=1e-2)


def test_make_train_step_validates_arguments():
    model = _model()
    kwargs = dict(grad_clip=1.0, amp=False, channels_last=False, compile=False)
    with pytest.raises(ValueError, match="l1"):
        make_train_step(model, get_loss("dice"), _optimizer(model), l1=-1.0, **kwargs)
    with pytest.raises(ValueError, match="compile mode"):
        make_train_step(model, get_loss("dice"), _optimizer(model), l1=0.0, **{**kwargs, "compile": "fast"})
    with pytest.raises(ValueError, match="grad_clip"):
        make_train_step(model, get_loss("dice"), _optimizer(model), l1=0.0, **{**kwargs, "grad_clip": 0.0})


@pytest.mark.slow
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
