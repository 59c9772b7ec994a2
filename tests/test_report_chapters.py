"""Tests of the Data and Methods chapters (report.data_page, methods_page, diagrams, deviations) and report.sources."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from hie_core.augment import AugmentConfig
from hie_core.config import DEFAULTS, preset_values
from hie_core.data import load_dataset
from hie_core.io import ImageGeometry
from hie_core.model import UNet3D, count_parameters, forward_flops
from hie_core.preprocess import Grid, preprocess_arrays
from hie_core.report.analysis.runs import StudyFolderError, load_case
from hie_core.report.pages import data_page, diagrams, methods_page, sources
from hie_core.report.viewers.display import BookFigure
from hie_core.training.config import PRESETS, TrainConfig, make_config
from tests.conftest import TINY_GEOMETRY, write_tiny_case

# tiny label: 2 x 3 x 3 voxels; brain: ADC > 0 everywhere but rows 0-1 -> 6 x 10 x 10 voxels
TINY_LESION, TINY_BRAIN = 18, 600


def test_dataset_summary_counts_and_strata(tiny_release: Path) -> None:
    _, report = load_dataset(tiny_release)
    summary = data_page.dataset_summary(report).set_index("split")
    assert list(summary.index) == ["train", "val", "test", "all"]
    assert summary["cases"].tolist() == [3, 1, 2, 6]
    assert summary["empty labels"].tolist() == [1, 0, 0, 1]
    strata = summary[["burden <1%", "burden 1-5%", "burden >5%"]]
    assert (strata.sum(axis=1) == summary["cases"]).all()
    assert strata.loc["train"].tolist() == [1, 2, 0]  # empty label -> <1%; 18/600 = 3% -> 1-5%
    assert summary.loc["all", "in-plane sizes"] == "12x10"
    assert summary.loc["all", "slices (min-median-max)"] == "6-6-6"
    assert summary.loc["all", "in-plane spacing (mm)"] == "1.20"
    assert summary.loc["all", "slice spacing (mm)"] == "3.00"
    lesion_ml = TINY_LESION * TINY_GEOMETRY.voxel_volume_ml
    assert summary.loc["val", "lesion volume, mL (median [range])"] == f"{lesion_ml:.1f} [{lesion_ml:.1f}]"


def test_case_table_adds_numeric_geometry_and_stratum(tiny_release: Path) -> None:
    _, report = load_dataset(tiny_release)
    table = data_page.case_table(report)
    assert len(table) == 6
    assert table["size_d"].tolist() == [6] * 6 and table["spacing_w_mm"].tolist() == pytest.approx([1.1] * 6)
    assert table["burden_percent"].iloc[0] == pytest.approx(100 * TINY_LESION / TINY_BRAIN)
    assert table["stratum"].tolist().count("1-5%") == 5


def test_burden_figure_one_trace_per_split_and_empty_count(tiny_release: Path) -> None:
    _, report = load_dataset(tiny_release)
    fig = data_page.burden_figure(data_page.case_table(report), "SOURCE-X")
    assert [t.name for t in fig.data] == ["train", "val", "test"]
    assert len(fig.data[0].x) == 2  # the empty training label is not on the log axis
    assert "1 empty" in fig.layout.title.text and "SOURCE-X" in fig.layout.title.text
    assert fig.layout.xaxis.type == "log"


def test_sample_case_is_lower_median_nonzero_training_burden(tmp_path: Path) -> None:
    root = tmp_path / "release"
    for i, n_voxels in enumerate([4, 0, 1, 3, 2]):
        label = np.zeros(TINY_GEOMETRY.shape, np.uint8)
        label[3, 5, 2 : 2 + n_voxels] = 1
        write_tiny_case(root / "BONBID2023_Train", f"MGHNICU_{i:03d}-VISIT_01", seed=i, label=label)
    big = np.ones(TINY_GEOMETRY.shape, np.uint8)
    write_tiny_case(root / "BONBID2023_Test", "MGHNICU_900-VISIT_01", label=big)
    _, report = load_dataset(root)
    # non-zero training burdens 1, 2, 3, 4 voxels: the lower median is the 2-voxel case
    assert data_page.sample_case(report).case_id == "MGHNICU_004-VISIT_01"


def _alt_problems(fig: BookFigure) -> list[str]:
    """The alt-text problems the book's copy check finds in a figure as the book renders it."""
    from hie_core.report.book.copy_check import figure_problems

    return [f for f in figure_problems(f"<article>{fig._repr_html_()}</article>") if "alt text" in f]


def test_sample_case_figures(tiny_release: Path) -> None:
    cases, report = load_dataset(tiny_release)
    arrays = load_case(cases[0])
    assert arrays["label"].dtype == bool and arrays["label"].sum() == TINY_LESION
    viewer = data_page.sample_case_viewer(arrays, "SOURCE-X")
    assert "SOURCE-X" in viewer.layout.title.text
    assert [b.label for b in viewer.layout.updatemenus[0].buttons] == ["ADC", "ZADC", "label"]
    assert len(viewer.frames) == TINY_GEOMETRY.shape[0]
    still = data_page.sample_case_still(arrays, "SOURCE-X")
    assert isinstance(still, BookFigure) and len(still.axes) == 4
    assert still._repr_png_().startswith(b"\x89PNG")
    assert "slice 2" in still._suptitle.get_text()  # lesion slices 2-3: the first busiest
    lesion = int(arrays["label"][2].sum())  # the crop keeps the whole lesion
    depth = 2.5 * TINY_GEOMETRY.spacing_mm[0]
    assert f"{cases[0].case_id} (SOURCE-X) at axial slice 2 (depth {depth:.1f} mm)" in still.alt
    assert f"({lesion} voxels on this slice)" in still.alt
    assert _alt_problems(still) == []


def _write_run(study: Path, data_dir: Path, target_shape: list[int]) -> None:
    run = study / "dice" / "seed0"
    run.mkdir(parents=True)
    info = {
        "synthetic": False,
        "data_dir_resolved": str(data_dir),
        "config": {"target_shape": target_shape, "preset": "quick"},
    }
    (run / "config.json").write_text(json.dumps(info))
    (run / "summary.json").write_text("{}")
    (run / "metrics.csv").write_text("case_id,split,burden_percent,stratum,dice,masd_mm,nsd,n_pred,n_ref\n")


def test_data_source_follows_the_manifest_however_the_folder_is_named(
    tiny_release: Path, tmp_path: Path
) -> None:
    source = sources.data_source(data_dir=str(tiny_release))
    assert source.folder == tiny_release.resolve() and not source.synthetic
    assert str(tiny_release.resolve()) in source.label
    _write_run(tmp_path / "study", tiny_release, [16, 64, 64])
    assert sources.data_source(study_dir=str(tmp_path / "study"), data_dir="ignored").folder == tiny_release
    (tiny_release / "SYNTHETIC.json").write_text("{}")  # the generator's manifest: synthetic, however passed
    assert sources.data_source(data_dir=str(tiny_release)).synthetic
    assert sources.data_source(study_dir=str(tmp_path / "study")).label == sources.SYNTHETIC_LABEL
    config = methods_page.study_config(str(tmp_path / "study"))
    assert methods_page.study_grids(config) == {
        "seed protocol": Grid(shape=(32, 192, 192)),
        "this study": Grid(shape=(16, 64, 64)),
    }
    assert list(methods_page.study_grids({"target_shape": [32, 192, 192]})) == ["seed protocol"]
    spacing = methods_page.study_grids({"target_shape": None, "target_spacing_mm": [4.0, 2.0, 2.0]})
    assert spacing["this study"] == Grid(spacing_mm=(4.0, 2.0, 2.0))
    with pytest.raises(StudyFolderError, match="no such study"):
        sources.data_source(study_dir=str(tmp_path / "nothing"))


def test_preprocessing_text_names_this_studys_grid() -> None:
    small = methods_page.preprocessing_text({**DEFAULTS, "target_shape": [16, 64, 64], "preset": "small"})
    assert (
        "**16 × 64 × 64 voxels**" in small
        and "seed study resampled every scan to 32 × 192 × 192 voxels" in small
    )
    seed = methods_page.preprocessing_text({**DEFAULTS, "target_shape": [32, 192, 192], "preset": "seed"})
    assert "**32 × 192 × 192 voxels**" in seed and "seed study" not in seed and "patches" not in seed
    assert "Each map is then z-scored" in seed and "normative atlas" not in seed
    quick = methods_page.preprocessing_text({**DEFAULTS, "target_shape": None, "target_spacing_mm": [4.0, 2.0, 2.0],
                                             "patch_shape": [16, 48, 48], "foreground_fraction": 0.67, "preset": "quick",
                                             "zadc_norm": "atlas"})  # fmt: skip
    assert (
        "**4 × 2 × 2 mm voxels**" in quick and "patches of 16 × 48 × 48 voxels, 67% of them centred" in quick
    )
    assert "ZADC is kept as it is, a z-score against the normative atlas" in quick
    assert methods_page.network_input({"patch_shape": [16, 48, 48], "target_shape": None}) == (16, 48, 48)


def test_mirroring_text_follows_the_configuration() -> None:
    quick = methods_page.mirroring_text({"preset": "quick", "mirror_axes": [2]})
    assert "*quick* preset adds nnU-Net's mirroring: random left-right (W) flips" in quick
    assert "averaged with that of the mirrored volume" in quick
    two = methods_page.mirroring_text({"preset": "x", "mirror_axes": [1, 2]})
    assert "front-back (H) and left-right (W)" in two and "4 mirror images" in two
    assert "no other transform" in methods_page.mirroring_text({"preset": "seed", "mirror_axes": []})


def test_selection_text_says_what_picks_the_epoch_and_what_picked_the_preset() -> None:
    quick = make_config(preset="quick", device="cpu").to_dict()
    text = methods_page.selection_text(quick)
    assert "early stopping cannot end a run before its last epoch" in text  # patience 15 >= 15 epochs
    assert "No reported validation or test case picks that epoch" in text
    assert "ever picks a model" not in text
    assert (
        "synthetic test split that the book reports" in text
        and "may still flatter the preset slightly" in text
    )
    assert "development set" in text and "; On" not in text
    native = methods_page.selection_text(make_config(preset="native", device="cpu").to_dict())
    assert "a run stops after 10 epochs without a better selection Dice" in native
    assert "taken over from the quick preset" in native
    seed = methods_page.selection_text(make_config(preset="seed", device="cpu").to_dict())
    assert "seed study's own protocol" in seed and "flatters" not in seed
    assert "not these data" in methods_page.selection_text(quick, synthetic=False)


def test_notebook_sentences_about_model_selection_are_computed() -> None:
    source = (Path(__file__).resolve().parents[1] / "notebooks" / "methods.ipynb").read_text()
    assert "ever picks a model" not in source and "methods_page.selection_text(config" in source
    spacing = {**DEFAULTS, "target_shape": None, "target_spacing_mm": [4.0, 2.0, 2.0], "preset": "quick"}
    assert "an approximate bound for networks trained on this grid" in methods_page.preprocessing_text(
        spacing
    )


def test_preprocessing_table_keeps_extent() -> None:
    native = ImageGeometry((41, 256, 256), (2.5, 0.7, 0.7))
    table = methods_page.preprocessing_table(
        native, {"seed": (32, 192, 192), "quick": Grid(shape=(16, 64, 64))}
    )
    assert table["shape (D × H × W)"].tolist() == ["41 × 256 × 256", "32 × 192 × 192", "16 × 64 × 64"]
    assert table["extent mm (D × H × W)"].nunique() == 1
    assert (
        table["spacing mm (D × H × W)"].iloc[1]
        == f"{2.5 * 41 / 32:.3f} × {0.7 * 256 / 192:.3f} × {0.7 * 256 / 192:.3f}"
    )


def test_augmentation_table_reads_the_config() -> None:
    config = AugmentConfig(noise_std=0.05, p_blur=0.2, elastic_max_displacement_mm=3.0)
    table = methods_page.augmentation_table(config).set_index("transform")
    assert list(table.index) == ["noise", "anisotropy", "blur", "gamma", "elastic"]
    assert table.loc["blur", "probability"] == 0.2 and table.loc["noise", "probability"] == 0.5
    assert table.loc["noise", "parameters"] == "<code>noise_std</code> 0.05"
    assert "<code>elastic_max_displacement_mm</code> 3" in table.loc["elastic", "parameters"]
    assert table.loc["gamma", "parameters"] == "<code>log_gamma</code> -0.1 to 0.1"  # a range, not a tuple


@pytest.fixture(scope="module")
def tiny_pre():
    rng = np.random.default_rng(0)
    geometry = ImageGeometry((8, 24, 24), (3.0, 1.0, 1.0))
    adc = rng.uniform(800, 2000, geometry.shape).astype(np.float32)
    zadc = rng.normal(0, 2, geometry.shape).astype(np.float32)
    label = np.zeros(geometry.shape, np.uint8)
    label[3:5, 8:14, 8:14] = 1
    return preprocess_arrays(adc, zadc, geometry, label, (8, 24, 24), "volume")


@pytest.mark.filterwarnings("ignore:The maximum displacement is larger")
def test_augmentation_examples_change_the_image(tiny_pre) -> None:
    examples = methods_page.augmentation_examples(tiny_pre, AugmentConfig(), seed=3)
    assert list(examples) == ["noise", "anisotropy", "blur", "gamma", "elastic"]
    for name, image in examples.items():
        assert image.shape == tiny_pre.image.shape and image.dtype == np.float32
        assert not np.allclose(image, tiny_pre.image, atol=1e-4), name
    # each transform alone: noise of sd <= 0.01 moves no voxel by more than a few sd
    assert np.abs(examples["noise"] - tiny_pre.image).max() < 0.08
    again = methods_page.augmentation_examples(tiny_pre, AugmentConfig(), seed=3)
    assert all(np.array_equal(again[k], examples[k]) for k in examples)


def test_augmentation_examples_identity_parameters(tiny_pre) -> None:
    identity = AugmentConfig(
        noise_std=0.0, blur_std_mm=(0.0, 0.0), log_gamma=(0.0, 0.0), elastic_max_displacement_mm=0.0
    )
    examples = methods_page.augmentation_examples(tiny_pre, identity, seed=3)
    for name in ("noise", "blur", "gamma", "elastic"):
        np.testing.assert_allclose(examples[name], tiny_pre.image, atol=1e-5, err_msg=name)


def test_unet_table_summary_and_diagram_follow_the_model() -> None:
    kwargs, shape = {"widths": (4, 8, 16, 32), "dropout": (0.0, 0.1, 0.2, 0.3), "norm": "batch"}, (8, 16, 16)
    table = methods_page.unet_table(kwargs, shape)
    model = UNet3D(**kwargs)
    assert table["parameters"].sum() == count_parameters(model)
    assert table["block"].tolist()[:4] == ["encoder 1", "encoder 2", "encoder 3", "bottleneck"]
    assert table["feature map (D × H × W)"].tolist()[:4] == ["8×16×16", "4×8×8", "2×4×4", "1×2×2"]
    assert table["out ch"].tolist() == [4, 8, 16, 32, 16, 8, 4, 1]
    summary = methods_page.unet_summary(kwargs, shape).iloc[0]
    assert summary["parameters"] == count_parameters(model)
    assert summary["forward GFLOP / volume"] == pytest.approx(forward_flops(model, (1, 2, *shape)) / 1e9)
    fig = diagrams.unet_diagram(kwargs, shape)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert any("bottleneck\n16 -> 32 ch\n1×2×2" in t for t in texts)
    assert fig.alt.startswith("Diagram of the 3D U-Net: the input of 2 channels (ADC, ZADC) at 8×16×16 voxels")
    assert "bottleneck (16 to 32 channels, 1×2×2)" in fig.alt and "1 logit map of 8×16×16 voxels" in fig.alt
    assert _alt_problems(fig) == []


def test_seed_unet_size() -> None:
    seed = preset_values("seed")
    summary = methods_page.unet_summary(methods_page.unet_kwargs(seed), seed["target_shape"]).iloc[0]
    assert summary["input (C × D × H × W)"] == "2×32×192×192"
    assert (
        500 < summary["forward GFLOP / volume"] < 512
    )  # the seed's U-Net on one 2 x 32 x 192 x 192 volume: about 506 GFLOP


def test_pipeline_figure_reads_the_constants_and_the_study() -> None:
    fig = diagrams.pipeline_figure()
    texts = " ".join(t.get_text() for t in fig.axes[0].texts)
    assert "32×192×192" in texts and "5 transforms" in texts and "6 compared" in texts
    assert len(fig.axes[0].patches) == 8
    assert fig.alt.startswith("Flow chart of the pipeline in 8 steps") and "3. preprocessing resample to 32×192×192" in fig.alt
    assert _alt_problems(fig) == []
    quick = " ".join(
        t.get_text()
        for t in diagrams.pipeline_figure({"target_shape": [16, 64, 64], "widths": [8, 16, 32, 64]})
        .axes[0]
        .texts
    )
    assert "16×64×64" in quick and "8-16-32-64" in quick and "192" not in quick
    spaced = diagrams.pipeline_figure({"target_spacing_mm": [4.0, 2.0, 2.0], "widths": [8, 16, 32, 64]})
    assert "4×2×2 mm" in " ".join(t.get_text() for t in spaced.axes[0].texts)


def test_metric_rules_table_official_semantics() -> None:
    table = methods_page.metric_rules_table().set_index("case")
    assert table.loc["identical", ["dice", "masd_mm", "nsd"]].tolist() == [1.0, 0.0, 1.0]
    assert table.loc["both empty", ["dice", "masd_mm", "nsd"]].tolist() == [1.0, 0.0, 1.0]
    for name in ("prediction empty", "reference empty"):
        assert table.loc[name, "dice"] == 0.0 and table.loc[name, "nsd"] == 0.0
        assert math.isnan(table.loc[name, "masd_mm"])
    assert table.loc["shifted 1 voxel in W", "nsd"] == 1.0  # 1 mm <= 2 mm tolerance
    assert table.loc["shifted 3 voxels in W", "nsd"] < 1.0
    assert table.loc["shifted 3 voxels in W", "dice"] == pytest.approx(0.5)  # 3 of 6 columns overlap


def test_protocol_table_comes_from_presets() -> None:
    table = methods_page.protocol_table()
    assert table["parameter"].str.fullmatch(r"<code>\w+</code>").all()  # names a reader passes with -p
    table = table.set_index(table["parameter"].str.replace(r"</?code>", "", regex=True))
    for preset in PRESETS:
        config = make_config(preset=preset, device="cpu")
        for field in table.index:
            expected = methods_page.setting_text(field, getattr(config, field))
            assert table.loc[field, preset] == expected, (preset, field)
    assert (
        table.loc["target_shape", "seed"] == "32 × 192 × 192"
        and table.loc["patch_shape", "seed"] == "whole volume"
    )
    assert (
        table.loc["mirror_axes", "seed"] == "none" and table.loc["mirror_axes", "quick"] == "W (left-right)"
    )
    assert table.loc["widths", "quick"] == "8, 16, 32, 64"
    assert (
        not table.drop(columns="parameter", errors="ignore")
        .map(lambda v: v == "None" or (v.startswith("(") and v.endswith(")") and "set by" not in v))
        .any()
        .any()
    )
    for field in table.index:
        source = "preset" if any(field in v for v in PRESETS.values()) else "TrainConfig default"
        assert table.loc[field, "from"] == source
    assert table.loc["epochs", "seed"] == "100" and table.loc["lr", "seed"] == str(TrainConfig().lr)
    assert {"patch_shape", "target_spacing_mm", "augment"} <= set(table.index)


def test_banner_is_a_warning_for_synthetic_data(monkeypatch: pytest.MonkeyPatch) -> None:
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, raw=False: shown.append(obj))
    sources.banner(sources.DataSource(Path("/syn"), True), details="Preset <quick>.", missing=["hdt/seed1"])
    sources.banner(sources.DataSource(Path("/data"), False))
    assert "admonition warning" in shown[0]["text/html"] and "synthetic" in shown[0]["text/markdown"]
    assert "Preset &lt;quick&gt;." in shown[0]["text/html"] and "hdt/seed1" in shown[0]["text/html"]
    assert "/data" in shown[1]["text/html"] and "warning" not in shown[1]["text/html"]


@pytest.mark.parametrize(("norm", "shown"), [("batch", "BatchNorm"), ("instance", "InstanceNorm")])
def test_unet_diagram_names_the_norm_the_runs_used(norm: str, shown: str) -> None:
    from hie_core.report.pages import diagrams

    fig = diagrams.unet_diagram({"widths": (8, 16, 32, 64), "dropout": (0.0,) * 4, "norm": norm}, (16, 48, 48))
    texts = " ".join(t.get_text() for t in fig.axes[0].texts)
    assert f"conv -> {shown} -> LeakyReLU" in texts and ("InstanceNorm" in texts) == (norm == "instance")


def test_the_default_study_folder_follows_hie_runs_dir(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HIE_RUNS_DIR", str(tmp_path / "elsewhere"))
    assert sources.study_dir_for("", "quick") == tmp_path / "elsewhere" / "quick"
    assert sources.study_dir_for(str(tmp_path / "mine"), "quick") == tmp_path / "mine"
    monkeypatch.delenv("HIE_RUNS_DIR")
    assert sources.study_dir_for("", "quick").parts[-2:] == ("runs", "quick")
