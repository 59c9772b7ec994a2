"""Shared fixtures: tiny BONBID-HIE style folders written with the real MHA writer."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from hie_core.io import ImageGeometry, write_image

os.environ.setdefault("HIE_CACHE_DIR", str(Path(__file__).resolve().parent.parent / ".cache"))
# Every study and run that a test starts without naming a folder goes under $HIE_RUNS_DIR: the
# main study (``main_study``), nbval's notebooks/train.ipynb (empty output_dir) and the study pages
# that nbval runs (intro, results, performance: empty study_dir reads <runs>/quick). A temporary
# folder, never the repository's runs/ nor a user's own $HIE_RUNS_DIR; HIE_TEST_RUNS_DIR keeps them.
if os.environ.get("HIE_TEST_RUNS_DIR"):
    os.environ["HIE_RUNS_DIR"] = str(Path(os.environ["HIE_TEST_RUNS_DIR"]).expanduser().resolve())
else:
    os.environ["HIE_RUNS_DIR"] = tempfile.mkdtemp(prefix="hie-test-runs-")
    atexit.register(shutil.rmtree, os.environ["HIE_RUNS_DIR"], ignore_errors=True)


def pytest_collection_modifyitems(config, items) -> None:
    """The test tiers: ``slow`` marks what needs seconds of training, a notebook or a study.

    ``pytest -m "not slow"`` is the unit tier (under 3 minutes on 2 cores; every module keeps
    fast tests there); CI runs everything. Slow are: every test that uses the :func:`main_study`
    fixture (it trains the README's 12-run study), every notebook nbval executes, and the tests
    marked ``@pytest.mark.slow`` where they are defined: those that train runs through papermill
    or submitit (``test_study_runner``), rehearse or benchmark training in a subprocess
    (``test_device_check``, ``test_step``), train several runs to compare them (``test_train``),
    or build a book with Sphinx (``test_book_build``). A test is marked slow only when it cannot be made fast without checking
    less: first smaller data, fewer resamples (``HIE_BOOTSTRAP_RESAMPLES``), fewer epochs, or a
    fixture shared by a module.
    """
    slow = pytest.mark.slow
    for item in items:
        if "main_study" in getattr(item, "fixturenames", ()) or item.nodeid.split("::")[0].endswith(".ipynb"):
            item.add_marker(slow)


TINY_GEOMETRY = ImageGeometry(shape=(6, 12, 10), spacing_mm=(3.0, 1.2, 1.1), origin_mm=(-5.0, 3.0, 1.0))


def write_tiny_case(
    split_dir: Path,
    case_id: str,
    seed: int = 0,
    geometry: ImageGeometry = TINY_GEOMETRY,
    label: np.ndarray | None | bool = True,
) -> dict[str, Path]:
    """Write one tiny case in the BONBID-HIE layout; return its three paths."""
    rng = np.random.default_rng(seed)
    adc = rng.uniform(800, 2000, geometry.shape).astype(np.float32)
    adc[:, :2] = 0  # background outside the "brain"
    zadc = np.clip(rng.normal(0, 2, geometry.shape), -10, 10).astype(np.float32)
    paths = {
        "adc": split_dir / "1ADC_ss" / f"{case_id}-ADC_ss.mha",
        "zadc": split_dir / "2Z_ADC" / f"Zmap_{case_id}-ADC_smooth2mm_clipped10.mha",
        "label": split_dir / "3LABEL" / f"{case_id}_lesion.mha",
    }
    write_image(adc, geometry, paths["adc"])
    write_image(zadc, geometry, paths["zadc"])
    if label is True:
        label = np.zeros(geometry.shape, np.uint8)
        label[2:4, 5:8, 4:7] = 1
    if label is None or label is False:
        del paths["label"]
    else:
        write_image(np.asarray(label, np.uint8), geometry, paths["label"])
    return paths


#: The results step's bootstrap resamples in the report tests (9,999 by default).
FEW_RESAMPLES = "499"


@pytest.fixture(scope="module")
def few_resamples():
    """The results step's bootstrap at :data:`FEW_RESAMPLES` for a whole test module (its shared
    fixtures are written under it too): the intervals' resample count is not what those tests check.
    A module asks for it with ``pytestmark = pytest.mark.usefixtures("few_resamples")``."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HIE_BOOTSTRAP_RESAMPLES", FEW_RESAMPLES)
        yield


@pytest.fixture
def tiny_release(tmp_path: Path) -> Path:
    """A release root with Train (3 cases, one empty label), Val (1) and Test (2)."""
    root = tmp_path / "release"
    for i in range(3):
        label = np.zeros(TINY_GEOMETRY.shape, np.uint8) if i == 2 else True
        write_tiny_case(root / "BONBID2023_Train", f"MGHNICU_{i:03d}-VISIT_01", seed=i, label=label)
    write_tiny_case(root / "BONBID2023_Val", "MGHNICU_100-VISIT_01", seed=100)
    for i in range(2):
        write_tiny_case(root / "BONBID2023_Test", f"MGHNICU_2{i:02d}-VISIT_01", seed=200 + i)
    (root / "LICENSE.txt").write_text("CC BY-NC-SA 4.0")
    (root / ".DS_Store").write_bytes(b"\0")
    return root


@pytest.fixture(scope="session")
def tiny_synthetic(tmp_path_factory) -> Path:
    """A tiny synthetic release (train 6 / val 1 / test 2, volumes at most 32 voxels a side)."""
    from hie_core.synthetic import make_synthetic_dataset

    root = tmp_path_factory.mktemp("synthetic") / "release"
    return make_synthetic_dataset(
        root, counts={"train": 6, "val": 1, "test": 2}, seed=3, workers=1, max_size=32
    )


def tiny_config(data_dir: Path, output_dir: Path, **overrides):
    """A training configuration small enough for a unit test (seconds on CPU)."""
    from hie_core.training.config import make_config

    values = dict(
        loss="dice",
        data_dir=str(data_dir),
        output_dir=str(output_dir),
        epochs=3,
        patience=3,
        batch_size=2,
        target_shape=(8, 16, 16),
        patch_shape="none",
        steps_per_epoch="none",
        widths=(4, 8, 16, 32),
        augment="torchio",
        seed=1,
    )
    values.update(overrides)
    return make_config(preset="quick", device="cpu", **values)


ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class MainStudy:
    """The quick study the README's main job runs, and the book it built."""

    study_dir: Path
    html_dir: Path
    stdout: str


@pytest.fixture(scope="session")
def main_study(tmp_path_factory) -> MainStudy:
    """Run ``python -m hie_core.study`` once per session (quick preset, CPU) into a temporary folder.

    As the README's main job: every loss with the default CPU seeds
    (``hie_core.study.DEFAULT_SEEDS``) into ``<runs>/quick/<loss>/seed<k>/``, then the
    baseline, the ceiling, ``results/`` and the book, which is built outside the project
    (``HIE_BOOK_DIR``, see :func:`hie_core.report.book.build.book_dir`) into ``<book>/html``. Nothing
    is written into the repository. ``HIE_TEST_RUNS_DIR`` names a folder to keep the runs in
    instead (finished runs there are reused, so a second session costs only the results and
    the book).
    """
    runs_dir = Path(os.environ["HIE_RUNS_DIR"])  # where the notebooks nbval runs look for it
    book_dir = tmp_path_factory.mktemp("book")
    env = {**os.environ, "HIE_BOOK_DIR": str(book_dir)}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "hie_core.study", "--preset", "quick", "--device", "cpu",
                           "--runs-dir", str(runs_dir)],
                          cwd=ROOT, capture_output=True, text=True, timeout=45 * 60, env=env)  # fmt: skip
    print(proc.stdout[-4000:])
    print(f"quick study + book: {time.perf_counter() - start:.0f} s")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return MainStudy(runs_dir / "quick", book_dir / "html", proc.stdout)
