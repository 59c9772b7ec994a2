"""A researcher's own loss (``loss="package.module:Name"``): loading, errors, settings, training, results."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from hie_core.errors import ConfigError
from hie_core.losses import get_loss, hausdorff_distance_field, loss_from_config, loss_label
from hie_core.training.config import make_config
from hie_core.training.experiment import run_experiment
from hie_core.training.step import make_train_step

from . import custom_loss_example as example
from .conftest import tiny_config

BCE = "tests.custom_loss_example:BoundaryBCE"
PLAIN = "tests.custom_loss_example:PlainDice"
pytestmark = pytest.mark.filterwarnings("ignore:single channel prediction")


@pytest.fixture(autouse=True)
def _fresh_records():
    example.BoundaryBCE.built_with = []
    example.BoundaryBCE.calls_with_dt = example.BoundaryBCE.calls_without_dt = 0


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("boundary_bce", "loss must be one of dice, .* or package.module:ClassName .*got 'boundary_bce'"),
        (
            "tests.no_such_module_here:Loss",
            "loss 'tests.no_such_module_here:Loss': module .* does not import .*PYTHONPATH",
        ),
        ("tests.custom_loss_example:Missing", "has no 'Missing'; check the class name"),
        ("tests.custom_loss_example:", "not a loss name; give one of dice, .*package.module:ClassName"),
        (":BoundaryBCE", "not a loss name"),
        ("tests.custom_loss_example:NotAModule", "NotAModule is not a torch.nn.Module subclass"),
        ("tests.custom_loss_example:not_a_class", "not_a_class is not a torch.nn.Module subclass"),
        (
            "tests.custom_loss_example:TwoArguments",
            r"TwoArguments.forward must take \(logits, target, target_dt=None\)",
        ),
    ],
)
def test_a_bad_name_is_a_config_error_naming_it(name: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        make_config(preset="quick", device="cpu", loss=name)
    assert repr(name) in str(err.value) and "\n" not in str(err.value)


def test_the_run_settings_its_init_takes_reach_it_and_flags_default() -> None:
    config = make_config(preset="quick", device="cpu", loss=BCE, hybrid_weight=0.3, tversky_alpha=0.5)
    loss = loss_from_config(config)
    assert isinstance(loss, example.BoundaryBCE) and loss.needs_distance
    assert example.BoundaryBCE.built_with == [{"hybrid_weight": 0.3, "spacing_mm": None}]  # not tversky_alpha
    plain = get_loss(PLAIN, settings={"hybrid_weight": 0.3})
    assert isinstance(plain, example.PlainDice) and plain.needs_distance is False


def test_its_value_is_its_own_closed_form() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 1, 4, 8, 8, generator=gen)
    target = (torch.rand(2, 1, 4, 8, 8, generator=gen) > 0.7).float()
    dt = hausdorff_distance_field(target)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
    expected = ((1 + torch.exp(-dt)) * bce).mean()
    torch.testing.assert_close(get_loss(BCE)(logits, target), expected)
    torch.testing.assert_close(get_loss(BCE)(logits, target, dt), expected)
    assert example.BoundaryBCE.calls_with_dt == 1 and example.BoundaryBCE.calls_without_dt == 1


def test_its_display_name_is_its_label_or_class_name_with_the_settings_it_takes() -> None:
    assert loss_label({"loss": BCE}) == "Boundary BCE"
    assert loss_label({"loss": BCE, "hybrid_weight": 0.3, "tversky_alpha": 0.5}) == "Boundary BCE (w 0.3)"
    assert loss_label({"loss": PLAIN, "hybrid_weight": 0.3}) == "PlainDice"
    assert loss_label({"loss": "a_module_that_is_gone:Mine"}) == "Mine"  # a finished run whose code moved
    small = {"loss": "hie_core.contrib.small_lesion:TverskyHDTFocal", "focal_gamma": 1.0}
    assert loss_label(small) == "Tversky+Focal+HDT (exploratory) (gamma 1)"


@pytest.mark.parametrize(
    ("name", "with_dt"), [(BCE, True), (PLAIN, False), ("tversky_hdt", True), ("dice", False)]
)
def test_the_training_step_passes_target_dt_when_the_loss_needs_it(name: str, with_dt: bool) -> None:
    torch.manual_seed(0)
    model = torch.nn.Conv3d(1, 1, 3, padding=1)
    loss = get_loss(name)
    seen = []
    loss.register_forward_pre_hook(lambda module, args: seen.append(len(args)))
    step = make_train_step(model, loss, torch.optim.SGD(model.parameters(), lr=0.1), l1=0.0, grad_clip=None,
                           amp=False, channels_last=False, compile=False)  # fmt: skip
    image = torch.randn(2, 1, 4, 8, 8)
    label = (image > 0.5).float()
    value = step(image, label)
    assert seen == [3 if with_dt else 2] and value.ndim == 0 and torch.isfinite(value)
    if name == "tversky_hdt":  # the field given equals the one the loss would compute: same value
        logits = model(image).detach()
        torch.testing.assert_close(loss(logits, label, hausdorff_distance_field(label)), loss(logits, label))


@pytest.fixture(scope="module")
def custom_run(tiny_synthetic, tmp_path_factory):
    example.BoundaryBCE.built_with = []
    out = tmp_path_factory.mktemp("custom") / "run"
    result = run_experiment(
        tiny_config(tiny_synthetic, out, loss=BCE, hybrid_weight=0.3, epochs=2, patience=2)
    )
    return result, list(example.BoundaryBCE.built_with)


def test_a_custom_loss_trains_and_is_in_the_results_files(custom_run) -> None:
    result, _ = custom_run
    run_dir = result.run_dir
    info = json.loads((run_dir / "config.json").read_text())
    assert info["config"]["loss"] == BCE and info["config"]["hybrid_weight"] == 0.3
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["loss"] == BCE and set(summary["splits"]) == {"val", "test"}
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert sorted(metrics["split"].unique()) == ["test", "val"] and metrics["dice"].between(0, 1).all()
    history = pd.read_csv(run_dir / "history.csv")
    assert len(history) == 2 and history["train_loss"].gt(0).all() and history["selection_loss"].gt(0).all()
    assert (run_dir / "model_best.pt").is_file()


def test_the_run_settings_reach_the_custom_loss_it_trains_with(custom_run) -> None:
    # hie_core.training.fit builds the run's loss with hie_core.losses.loss_from_config(config)
    _, built_with = custom_run
    assert built_with and all(b["hybrid_weight"] == 0.3 for b in built_with), built_with


def test_an_edit_of_the_loss_module_changes_the_run_fingerprint(tmp_path, monkeypatch) -> None:
    from hie_core.training.config import run_fingerprint

    source = tmp_path / "my_hie_loss_module.py"
    source.write_text(
        "import torch\n\nclass Mine(torch.nn.Module):\n"
        "    def forward(self, logits, target, target_dt=None):\n        return logits.mean()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    config = make_config(preset="quick", device="cpu", loss="my_hie_loss_module:Mine")
    before = run_fingerprint(config)
    assert before == run_fingerprint(config)
    source.write_text(source.read_text().replace("logits.mean()", "logits.abs().mean()"))
    after = run_fingerprint(config)
    assert after["config"] != before["config"] and after["code"] == before["code"]
    from hie_core.losses import custom_loss_digest

    assert custom_loss_digest("dice") is None  # the six are in hie_core's own code fingerprint
