"""``hie-predict``: lesion masks for new scans, on each scan's native grid.

Three ways to give the input::

    hie-predict --checkpoint model_best.pt --adc A.mha --zadc Z.mha --output mask.mha
    hie-predict --checkpoint model_best.pt --data-dir BONBID2023_Test --output-dir preds/
    hie-predict --checkpoint model_best.pt --container [--input /input --output /output]

The last one is the BONBID-HIE challenge container layout: it reads
``/input/images/skull-stripped-adc-brain-mri/*.mha`` and ``/input/images/z-score-adc/*.mha``
(paired by sorted order when there is one of each, else by the case id in the names) and
writes ``/output/images/hie-lesion-segmentation/<adc file name>``. Every mask keeps its
input's size, spacing, origin and direction.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np

from hie_core.data import DatasetError, discover_cases
from hie_core.io import ImageReadError, read_image, write_image

__all__ = ["predict_pair", "container_pairs", "main"]

CONTAINER_ADC = Path("images/skull-stripped-adc-brain-mri")
CONTAINER_ZADC = Path("images/z-score-adc")
CONTAINER_OUT = Path("images/hie-lesion-segmentation")


class PredictError(RuntimeError):
    """Inputs that cannot be predicted; the message names the file."""


def predict_pair(
    model, meta: dict, adc_path: Path, zadc_path: Path, device: str = "cpu"
) -> tuple[np.ndarray, object]:
    """Predict one ADC/ZADC pair -> (binary mask (D, H, W) uint8, native geometry)."""
    from hie_core.preprocess import preprocess_arrays, probabilities_to_native_mask
    from hie_core.training.evaluate import predict_probabilities

    adc, geometry = read_image(adc_path, dtype=np.float32)
    zadc, zgeometry = read_image(zadc_path, dtype=np.float32)
    diffs = geometry.grid_differences(zgeometry)
    if diffs:
        raise PredictError(f"{zadc_path}: not on the grid of {adc_path} ({'; '.join(diffs)})")
    for array, path in ((adc, adc_path), (zadc, zadc_path)):
        if not np.isfinite(array).all():
            raise PredictError(f"{path}: contains non-finite voxels (NaN or inf)")
    pre = preprocess_arrays(adc, zadc, geometry, target_shape=tuple(meta["target_shape"]))
    prob = predict_probabilities(model, pre.image, device, amp=device.startswith("cuda"))
    mask = probabilities_to_native_mask(prob, pre.geometry, pre.native_geometry)
    return mask.astype(np.uint8), geometry


def _case_key(name: str) -> str:
    match = re.search(r"([A-Za-z]+_\d+-VISIT_\d+)", name)
    return match.group(1) if match else name


def container_pairs(input_dir: Path) -> list[tuple[Path, Path]]:
    """Pair ADC and ZADC files of the challenge container layout."""
    adc_dir, zadc_dir = input_dir / CONTAINER_ADC, input_dir / CONTAINER_ZADC
    for folder in (adc_dir, zadc_dir):
        if not folder.is_dir():
            raise PredictError(f"{folder}: input folder not found (challenge container layout expected)")
    adcs = sorted(p for p in adc_dir.glob("*.mha") if not p.name.startswith("."))
    zadcs = sorted(p for p in zadc_dir.glob("*.mha") if not p.name.startswith("."))
    if not adcs:
        raise PredictError(f"{adc_dir}: no .mha files")
    if len(adcs) == 1 and len(zadcs) == 1:
        return [(adcs[0], zadcs[0])]
    by_key = {_case_key(p.name): p for p in zadcs}
    pairs, missing = [], []
    for adc in adcs:
        zadc = by_key.get(_case_key(adc.name))
        (pairs.append((adc, zadc)) if zadc else missing.append(adc))
    if missing:
        raise PredictError(f"{zadc_dir}: no ZADC map for " + ", ".join(str(p) for p in missing))
    return pairs


def _jobs(args) -> list[tuple[Path, Path, Path]]:
    if args.adc or args.zadc:
        if not (args.adc and args.zadc and args.output):
            raise PredictError("--adc, --zadc and --output go together")
        return [(Path(args.adc), Path(args.zadc), Path(args.output))]
    if args.data_dir:
        if not args.output_dir:
            raise PredictError("--data-dir needs --output-dir")
        cases = discover_cases(args.data_dir)
        out = Path(args.output_dir)
        return [(c.adc, c.zadc, out / (c.split or "") / f"{c.case_id}_lesion.mha") for c in cases]
    if args.container:
        out = Path(args.output) / CONTAINER_OUT
        return [(a, z, out / a.name) for a, z in container_pairs(Path(args.input))]
    raise PredictError("give --adc/--zadc/--output, --data-dir/--output-dir, or --container")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hie-predict", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="model_best.pt of a training run")
    p.add_argument("--adc", help="ADC map (.mha/.nii.gz)")
    p.add_argument("--zadc", help="ZADC map on the same grid")
    p.add_argument("--output", help="output mask file (single pair) or container output root")
    p.add_argument("--data-dir", help="a BONBID-HIE folder (release root or split)")
    p.add_argument("--output-dir", help="where to write <id>_lesion.mha for --data-dir")
    p.add_argument("--container", action="store_true", help="challenge container layout")
    p.add_argument("--input", default="/input", help="container input root (default /input)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.container and args.output is None:
        args.output = "/output"
    from hie_core.training.config import resolve_device
    from hie_core.training.fit import load_best_model

    try:
        device = resolve_device(args.device)
        jobs = _jobs(args)
        if not Path(args.checkpoint).is_file():
            raise PredictError(f"{args.checkpoint}: checkpoint not found")
        model, meta = load_best_model(args.checkpoint, device)
        for adc, zadc, out in jobs:
            mask, geometry = predict_pair(model, meta, adc, zadc, device)
            write_image(mask, geometry, out)
            print(f"{out}: {int(mask.sum())} lesion voxels ({mask.sum() * geometry.voxel_volume_ml:.2f} ml)")
    except (PredictError, ImageReadError, DatasetError, ValueError) as exc:
        print(f"hie-predict: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
