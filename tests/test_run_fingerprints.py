"""Fingerprints that cover what they claim: a user loss's helper modules, a run's predicted masks."""

from __future__ import annotations

import json
import sys
import uuid

import pytest

from hie_core.fingerprint import edited_results, results_checksums, user_modules
from hie_core.losses import custom_loss_digest
from hie_core.training.config import make_config, run_fingerprint
from hie_core.training.experiment import run_experiment

from .conftest import tiny_config

LOSS = """
import torch
from torch import nn

from {pkg}.helpers import SMOOTH
from . import weights


class SmoothDice(nn.Module):
    def forward(self, logits, target, target_dt=None):
        p = torch.sigmoid(logits.float())
        return 1 - (2 * (p * target).sum() + SMOOTH) / (p.sum() + target.sum() + SMOOTH) * weights.SCALE
"""


@pytest.fixture
def user_package(tmp_path, monkeypatch):
    """A user's package outside hie_core: ``<pkg>.loss`` imports ``<pkg>.helpers`` and ``<pkg>.weights``."""
    pkg = f"userlosses_{uuid.uuid4().hex[:8]}"
    folder = tmp_path / pkg
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    (folder / "helpers.py").write_text("SMOOTH = 1.0\n")
    (folder / "weights.py").write_text("import json\nSCALE = 1.0\n")
    (folder / "loss.py").write_text(LOSS.format(pkg=pkg))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield pkg, folder
    for name in [m for m in sys.modules if m.startswith(pkg)]:
        del sys.modules[name]


def test_a_user_loss_fingerprint_covers_the_helper_modules_it_imports(user_package):
    """The issue's probe: SMOOTH 1 -> 1000 in a helper module reused the old run."""
    pkg, folder = user_package
    name = f"{pkg}.loss:SmoothDice"
    config = make_config(preset="quick", device="cpu", loss=name)
    found = user_modules(sys.modules[f"{pkg}.loss"])
    assert set(found) == {
        f"{pkg}.loss",
        f"{pkg}.helpers",
        f"{pkg}.weights",
        pkg,
    }  # not torch, json or hie_core
    before, digest = run_fingerprint(config), custom_loss_digest(name)
    (folder / "helpers.py").write_text("SMOOTH = 1000.0\n")
    assert custom_loss_digest(name) != digest and run_fingerprint(config)["config"] != before["config"]
    digest = custom_loss_digest(name)
    (folder / "weights.py").write_text("import json\nSCALE = 2.0\n")  # a relative import counts too
    assert custom_loss_digest(name) != digest


def _fake_run(run_dir):
    (run_dir / "predictions" / "test").mkdir(parents=True)
    for name in ("config.json", "history.csv", "metrics.csv"):
        (run_dir / name).write_text(f"{name}\n")
    (run_dir / "predictions" / "test" / "A_lesion.mha").write_bytes(b"mask A")
    return {"checksums": results_checksums(run_dir)}


def test_predictions_are_in_the_checksums_and_a_changed_added_or_removed_mask_is_named(tmp_path):
    summary = _fake_run(tmp_path)
    assert "predictions/test/A_lesion.mha" in summary["checksums"] and edited_results(tmp_path, summary) == []
    (tmp_path / "predictions" / "test" / "A_lesion.mha").write_bytes(b"another mask")
    assert edited_results(tmp_path, summary) == ["predictions/test/A_lesion.mha"]
    (tmp_path / "predictions" / "test" / "B_lesion.mha").write_bytes(b"mask B")  # e.g. hie-predict into it
    assert edited_results(tmp_path, summary) == [
        "predictions/test/A_lesion.mha",
        "predictions/test/B_lesion.mha",
    ]
    (tmp_path / "predictions" / "test" / "A_lesion.mha").unlink()
    assert edited_results(tmp_path, summary) == [
        "predictions/test/A_lesion.mha",
        "predictions/test/B_lesion.mha",
    ]
    old = {"checksums": {k: v for k, v in summary["checksums"].items() if not k.startswith("predictions/")}}
    assert edited_results(tmp_path, old) == []  # a run from before predictions were recorded: not checked


def test_a_finished_run_with_a_changed_prediction_is_named_and_trained_again(
    tiny_synthetic, tmp_path, capsys
):
    out = tmp_path / "run"
    config = tiny_config(tiny_synthetic, out, epochs=1, patience=1)
    run_experiment(config)
    summary = json.loads((out / "summary.json").read_text())
    masks = sorted(k for k in summary["checksums"] if k.startswith("predictions/"))
    assert masks and all((out / k).is_file() for k in masks)
    (out / masks[0]).write_bytes((out / masks[1]).read_bytes())  # another case's mask in its place
    capsys.readouterr()
    run_experiment(config)
    assert (
        f"{masks[0]} changed since this run wrote it (edited or damaged) - training it again"
        in capsys.readouterr().out
    )
    assert edited_results(out, json.loads((out / "summary.json").read_text())) == []
