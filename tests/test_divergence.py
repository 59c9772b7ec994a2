"""A run that fails says so: non-finite steps, the loss contract, the failed status of a run folder."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from torch import nn

from hie_core.errors import ConfigError
from hie_core.losses import get_loss, loss_from_config
from hie_core.training.config import make_config
from hie_core.training.experiment import run_experiment
from hie_core.training.failure import (
    FAILED_FILE,
    TrainingDivergedError,
    check_loss_contract,
    read_failure,
    write_failure,
)
from hie_core.training.step import NonFiniteStep, make_train_step, train_epoch

from .conftest import tiny_config


class _Scaled(nn.Module):
    """A Dice loss times a factor the test sets: ``inf`` from a chosen call on."""

    def __init__(self, bad_from: int, value: float) -> None:
        super().__init__()
        self.dice, self.calls, self.bad_from, self.value = get_loss("dice"), 0, bad_from, value

    def forward(self, logits, target, target_dt=None):
        self.calls += 1
        loss = self.dice(logits, target)
        return loss * self.value if self.calls >= self.bad_from else loss


def _step(loss_fn, lr=0.1):
    torch.manual_seed(0)
    model = nn.Conv3d(1, 1, 3, padding=1)
    step = make_train_step(model, loss_fn, torch.optim.SGD(model.parameters(), lr=lr), l1=0.0, grad_clip=1.0,
                           amp=False, channels_last=False, compile=False)  # fmt: skip
    return model, step


def _batches(n=4):
    g = torch.Generator().manual_seed(1)
    return [(torch.randn((2, 1, 4, 8, 8), generator=g), (torch.rand((2, 1, 4, 8, 8), generator=g) > 0.7).float())
            for _ in range(n)]  # fmt: skip


def test_a_non_finite_loss_on_the_cpu_stops_before_the_optimiser_step_touches_the_weights():
    model, step = _step(_Scaled(bad_from=3, value=float("nan")))
    batches = _batches()
    step(*batches[0]), step(*batches[1])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(NonFiniteStep) as err:
        train_epoch(step, batches)  # the epoch restarts the count: its third step is bad
    assert (err.value.step, err.value.what) == (1, "training loss") and err.value.value != err.value.value
    # the bad step (the epoch's first, the loss's third call) never reached the weights
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_on_a_device_the_first_bad_step_is_recorded_and_read_once_at_the_epochs_end():
    model, step = _step(_Scaled(bad_from=3, value=float("inf")))
    step.check_every_step = False  # as on CUDA: recorded on the device, no read per step
    with pytest.raises(NonFiniteStep) as err:
        train_epoch(step, _batches(5))
    assert (err.value.step, err.value.what, err.value.value) == (3, "training loss", float("inf"))
    model, step = _step(get_loss("dice"))
    step.check_every_step = False
    assert 0 < train_epoch(step, _batches(3)) < 1  # finite: no error, the mean loss as before


def test_a_non_finite_gradient_with_a_finite_loss_is_caught():
    class InfGrad(nn.Module):
        def forward(self, logits, target, target_dt=None):
            return torch.sqrt(torch.sigmoid(logits).sum() * 0.0)  # d sqrt(x)/dx at 0 is inf

    _, step = _step(InfGrad())
    with pytest.raises(NonFiniteStep) as err:
        train_epoch(step, _batches(1))
    assert err.value.what == "gradient norm" and err.value.step == 1


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("tests.broken_losses:PerVoxel", r"returned a tensor of shape \(2, 1, 4, 8, 8\), not a scalar"),
        ("tests.broken_losses:Detached", "returned a value without a gradient"),
        ("tests.broken_losses:Constant", "does not depend on logits"),
        ("tests.broken_losses:AlwaysNaN", "returned nan on a small test batch"),
        ("tests.broken_losses:Raises", "raised RuntimeError"),
    ],
)
def test_a_loss_that_breaks_the_contract_is_refused_with_it(name, message):
    loss = loss_from_config(make_config(preset="quick", device="cpu", loss=name))
    with pytest.raises(ConfigError, match=message) as err:
        check_loss_contract(loss, name)
    text = str(err.value)
    assert repr(name) in text and "must return a finite scalar tensor" in text and "\n" not in text


def test_the_six_losses_keep_the_contract():
    from hie_core.losses import LOSS_NAMES

    for name in LOSS_NAMES:
        check_loss_contract(get_loss(name), name)


def test_a_broken_loss_fails_the_run_before_training_and_records_it(tiny_synthetic, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="not a scalar"):
        run_experiment(tiny_config(tiny_synthetic, out, loss="tests.broken_losses:PerVoxel"))
    failed = read_failure(out)
    assert failed["status"] == "failed" and "not a scalar" in failed["message"]
    assert not (out / "summary.json").exists() and not (out / "checkpoint_last.pt").exists()


def test_a_diverged_run_fails_with_epoch_step_and_value_and_is_retrained_when_started_again(tiny_synthetic,
                                                                                           tmp_path, capsys):  # fmt: skip
    """The issue's probe: lr=1e6 made a run 'ok' with NaN losses from epoch 2."""
    out = tmp_path / "run"
    with pytest.raises(TrainingDivergedError) as err:
        run_experiment(tiny_config(tiny_synthetic, out, lr=1e6))
    text = str(err.value)
    assert "training diverged at epoch 2, step" in text and "is nan" in text and "lower learning rate" in text
    record = json.loads((out / FAILED_FILE).read_text())
    assert record["epoch"] == 2 and record["value"] == "nan" and record["what"] == "training loss"
    history = pd.read_csv(out / "history.csv")
    assert history["epoch"].tolist() == [1] and history["train_loss"].notna().all()  # the epochs before it
    assert not (out / "summary.json").exists()
    # the same folder with a sane learning rate: the failed run is cleared and trained, not refused
    result = run_experiment(tiny_config(tiny_synthetic, out, epochs=1, patience=1))
    assert "this run failed before (training diverged at epoch 2" in capsys.readouterr().out
    assert result is not None and not (out / FAILED_FILE).exists() and (out / "summary.json").is_file()


def test_find_runs_lists_a_failed_run_and_never_scores_it(tmp_path):
    from hie_core.report.analysis.runs import _loss_runs

    folder = tmp_path / "s" / "dice" / "seed0"
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text("{}")  # even beside a results file, a failed run is not a result
    write_failure(folder, TrainingDivergedError(2, 5, "training loss", float("nan"), 1e6, "dice"))
    runs, unfinished = _loss_runs(tmp_path / "s", "dice", [folder])
    assert runs == [] and unfinished == ["dice/seed0 (failed)"]
