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

Nothing is written until everything has been checked: the model file, every input image
(readable, 3D, ADC and ZADC on one grid, finite voxels, each map's values in its range, so
that swapped ``--adc`` and ``--zadc`` are refused: :mod:`hie_core.ranges`) and every output
(its folder can be created and written; no output on an input, inside the data folder, the
container's input folder or the model's run folder, or on an existing file that ``hie-predict``
did not write: :mod:`hie_core.outputs`; every path is resolved first, links and ``..``
included). A mask records ``hie-predict`` as its writer in its header, so that predicting
again into the same folder replaces the earlier masks and nothing else. All problems found are
reported together in one ``hie-predict: error: ...`` message, each naming its file, with exit
status 2 and no traceback. While it predicts, a progress line gives masks done/total, the time
elapsed and an estimate of the time left (:class:`hie_core.progress.Progress`).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hie_core.data import MODALITY_FOLDERS, Case, DatasetError, load_dataset, validate_cases
from hie_core.errors import ProblemsError, UserError, exit_on_user_error
from hie_core.io import read_image, write_image
from hie_core.outputs import Read, output_problems, resolve_path, run_folder_of, written_by
from hie_core.progress import Progress, say
from hie_core.ranges import range_problem

__all__ = ["PredictError", "Job", "predict_pair", "container_pairs", "plan", "main"]

CONTAINER_ADC = Path("images/skull-stripped-adc-brain-mri")
CONTAINER_ZADC = Path("images/z-score-adc")
CONTAINER_OUT = Path("images/hie-lesion-segmentation")
_MASK_SUFFIXES = (".mha", ".nrrd", ".nii", ".nii.gz")


class PredictError(ProblemsError):
    """Inputs or outputs that cannot be used; ``str(err)`` lists every problem with its file."""


@dataclass(frozen=True)
class Job:
    """One mask to predict: the two input maps and where the mask goes."""

    adc: Path
    zadc: Path
    output: Path


def predict_pair(
    model, meta: dict, adc_path: Path, zadc_path: Path, device: str = "cpu"
) -> tuple[np.ndarray, object]:
    """Predict one ADC/ZADC pair -> (binary mask (D, H, W) uint8, native geometry)."""
    from hie_core.preprocess import Grid, preprocess_arrays
    from hie_core.training.evaluate import predict_native

    adc, geometry = read_image(adc_path, dtype=np.float32)
    zadc, zgeometry = read_image(zadc_path, dtype=np.float32)
    diffs = geometry.grid_differences(zgeometry)
    if diffs:
        raise PredictError(f"{zadc_path}: not on the grid of {adc_path} ({'; '.join(diffs)})")
    for array, path, kind in ((adc, adc_path, "ADC"), (zadc, zadc_path, "ZADC")):
        if not np.isfinite(array).all():
            raise PredictError(f"{path}: contains non-finite voxels (NaN or inf)")
        problem = range_problem(kind, array, path)
        if problem:
            raise PredictError(problem)
    grid = Grid(
        shape=None if meta["target_spacing_mm"] else tuple(meta["target_shape"]),
        spacing_mm=meta["target_spacing_mm"],
    )
    pre = preprocess_arrays(adc, zadc, geometry, label=None, target_shape=grid, zadc_norm=meta["zadc_norm"])
    mask = predict_native(model, pre, device, device.startswith("cuda"), meta)  # meta: the run's configuration
    return mask.astype(np.uint8), geometry


def _case_key(name: str) -> str:
    match = re.search(r"([A-Za-z]+_\d+-VISIT_\d+)", name)
    return match.group(1) if match else name


def _container_files(folder: Path, problems: list[str]) -> list[Path]:
    if not folder.is_dir():
        problems.append(f"{folder}: input folder not found (challenge container layout expected)")
        return []
    files = sorted(p for p in folder.glob("*.mha") if not p.name.startswith("."))
    if not files:
        problems.append(f"{folder}: no .mha files")
    return files


def _container_pairs(input_dir: Path, problems: list[str]) -> list[tuple[Path, Path]]:
    """The pairs that can be made; missing folders and unpaired files go to ``problems``."""
    adc_dir, zadc_dir = input_dir / CONTAINER_ADC, input_dir / CONTAINER_ZADC
    adcs, zadcs = _container_files(adc_dir, problems), _container_files(zadc_dir, problems)
    if len(adcs) == 1 and len(zadcs) == 1:
        return [(adcs[0], zadcs[0])]
    by_key = {_case_key(p.name): p for p in zadcs}
    pairs = []
    for adc in adcs:
        zadc = by_key.pop(_case_key(adc.name), None)
        if zadc is not None:
            pairs.append((adc, zadc))
        elif zadcs:
            problems.append(f"{adc}: no ZADC map with case id {_case_key(adc.name)} in {zadc_dir}")
    for zadc in by_key.values() if adcs else ():
        problems.append(f"{zadc}: no ADC map with case id {_case_key(zadc.name)} in {adc_dir}")
    return pairs


def container_pairs(input_dir: Path) -> list[tuple[Path, Path]]:
    """Pair ADC and ZADC files of the challenge container layout (file names only).

    Raises:
        PredictError: listing every missing folder and unpaired file.
    """
    problems: list[str] = []
    pairs = _container_pairs(Path(input_dir), problems)
    if problems:
        raise PredictError(f"{input_dir}: {len(problems)} problem(s) in the container input", problems)
    return pairs


def _problems_of(exc: UserError) -> list[str]:
    return list(getattr(exc, "problems", None) or [str(exc)])


def _single_jobs(args, problems: list[str]) -> list[Job]:
    if not (args.adc and args.zadc and args.output):
        raise PredictError("--adc, --zadc and --output go together")
    out = Path(args.output)
    if not out.name.lower().endswith(_MASK_SUFFIXES):
        problems.append(f"{out}: the --output mask file must end in one of {', '.join(_MASK_SUFFIXES)}")
    return [Job(resolve_path(args.adc), resolve_path(args.zadc), out)]


def _jobs(args, problems: list[str]) -> tuple[list[Job], bool]:
    """The masks to make, and whether their inputs were already read and checked."""
    modes = [bool(args.adc or args.zadc), bool(args.data_dir), bool(args.container)]
    if sum(modes) != 1:
        raise PredictError(
            "give exactly one of --adc/--zadc/--output, --data-dir/--output-dir, or --container"
        )
    if modes[0]:
        return _single_jobs(args, problems), False
    if args.data_dir:
        if not args.output_dir:
            raise PredictError("--data-dir needs --output-dir")
        out = Path(args.output_dir)
        try:
            cases, _ = load_dataset(resolve_path(args.data_dir), require_labels=False, labels=False)
        except DatasetError as exc:
            problems.extend(_problems_of(exc))
            return [], True
        return [Job(c.adc, c.zadc, out / (c.split or "") / f"{c.case_id}_lesion.mha") for c in cases], True
    out = Path(args.output) / CONTAINER_OUT
    return [Job(a, z, out / a.name) for a, z in _container_pairs(resolve_path(args.input), problems)], False


def _check_inputs(jobs: Sequence[Job], problems: list[str]) -> None:
    """Read every pair: readable 3D images, ZADC on the ADC grid, finite voxels."""
    if not jobs:
        return
    cases = [Case(j.adc.name, None, j.adc, j.zadc) for j in jobs]
    try:
        validate_cases(cases)
    except DatasetError as exc:
        problems.extend(_problems_of(exc))


def _cannot_write(folder: Path) -> str | None:
    """Why no file can be created in ``folder`` (or in the nearest existing folder above it)."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    try:  # the only reliable test (permissions, ACLs, read-only file systems); leaves nothing
        fd, name = tempfile.mkstemp(prefix=".hie-predict-probe-", dir=existing)
    except OSError as exc:
        return f"cannot create files in {existing} ({exc.strerror or exc})"
    os.close(fd)
    os.unlink(name)
    return None


_READ_AS = {"1ADC_ss": "ADC maps", "2Z_ADC": "ZADC maps", "3LABEL": "reference labels"}


def _inside_data_folders(jobs: Sequence[Job], problems: list[str], inputs: set[Path]) -> set[Path]:
    """Outputs under a BONBID-HIE modality folder (``1ADC_ss``, ``2Z_ADC``, ``3LABEL``): refused, one line a folder.

    A mask written there would be read back as an input map or, in ``3LABEL``, as the reference
    label, so that an evaluation would score the model against its own output.
    """
    refused: dict[Path, list[Path]] = {}
    for job in (j for j in jobs if j.output.resolve() not in inputs):  # overwriting an input: said below
        folder = next((p for p in job.output.resolve().parents if p.name in MODALITY_FOLDERS), None)
        if folder is not None:
            refused.setdefault(folder, []).append(job.output)
    for folder, outputs in sorted(refused.items()):
        problems.append(f"{folder}: a BONBID-HIE data folder of {_READ_AS[folder.name]}; {len(outputs)} mask(s) "
                        f"written there would be read back as {_READ_AS[folder.name]}; choose an output folder "
                        "outside the data folder")  # fmt: skip
    return {o for outputs in refused.values() for o in outputs}


def _reads(args: argparse.Namespace) -> list[Read]:
    """The folders and files ``hie-predict`` reads besides the input maps: no output may land in or on them."""
    model = resolve_path(args.checkpoint)
    reads = [Read(model, "model file")]
    run = run_folder_of(model.parent, levels=0)
    if run is not None:
        reads.append(Read(run, "run folder"))
    if args.data_dir:
        reads.append(Read(resolve_path(args.data_dir), "data folder"))
    if args.container:
        reads.append(Read(resolve_path(args.input), "container input folder"))
    return reads


def _not_ours(jobs: Sequence[Job], problems: list[str]) -> None:
    """Existing files an output would replace that ``hie-predict`` did not write: one line per folder."""
    found: dict[Path, list[Path]] = {}
    for job in jobs:
        if job.output.is_file() and not written_by(job.output, "hie-predict"):
            found.setdefault(job.output.parent, []).append(job.output)
    for folder, files in sorted(found.items()):
        shown = ", ".join(f.name for f in files[:3]) + (" ..." if len(files) > 3 else "")
        problems.append(f"{folder}: {len(files)} existing file(s) that hie-predict did not write would be replaced "
                        f"({shown}); choose an empty output folder, or delete them first if they are yours to "
                        "replace")  # fmt: skip


def _check_outputs(jobs: Sequence[Job], problems: list[str], reads: Sequence[Read] = ()) -> None:
    """Every output folder writable and outside what is read, no output a folder, an input or another's file."""
    inputs = {p.resolve() for j in jobs for p in (j.adc, j.zadc)}
    refused = _inside_data_folders(jobs, problems, inputs)
    for job in jobs:
        if job.output in refused:
            continue
        if job.output.resolve() in inputs:
            problems.append(f"{job.output}: output would overwrite an input image; choose another output")
            refused.add(job.output)
        elif job.output.is_dir():
            problems.append(f"{job.output}: is a folder; give a mask file name such as mask.mha")
            refused.add(job.output)
    for folder in sorted({j.output.parent for j in jobs if j.output not in refused}):
        inside = output_problems("hie-predict", [folder], reads, own=lambda path: True)  # where, not what
        if inside:
            problems.extend(inside)
            refused.update(j.output for j in jobs if j.output.parent == folder)
    _not_ours([j for j in jobs if j.output not in refused], problems)
    for folder in sorted({j.output.parent for j in jobs if j.output not in refused}):
        reason = _cannot_write(folder)
        if reason:
            problems.append(f"{folder}: cannot write masks here: {reason}; choose another output folder")


def plan(args: argparse.Namespace) -> tuple[object, dict, list[Job], str]:
    """Check everything before anything is written -> (model, meta, jobs, device).

    Raises:
        PredictError: every problem found with the device, the model file, the inputs
            and the outputs, each naming its file or option.
    """
    from hie_core.training.checkpoints import CheckpointError, load_model_file
    from hie_core.training.config import resolve_device

    problems: list[str] = []
    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        raise PredictError(f"--device: {exc}") from None
    jobs, inputs_checked = _jobs(args, problems)
    model, meta = None, {}
    try:
        model, meta = load_model_file(args.checkpoint, device)
        if meta["in_channels"] != 2:
            problems.append(
                f"{args.checkpoint}: the model takes {meta['in_channels']} maps, not 2 (ADC, ZADC)"
            )
    except CheckpointError as exc:
        problems.append(str(exc))
    if not inputs_checked:
        _check_inputs(jobs, problems)
    _check_outputs(jobs, problems, _reads(args))
    if len(problems) == 1:
        raise PredictError(f"{problems[0]} (nothing was written)")
    if problems:
        raise PredictError(f"{len(problems)} problems, nothing was written", problems)
    return model, meta, jobs, device


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


@exit_on_user_error("hie-predict")
def main(argv: list[str] | None = None) -> int:
    """Run ``hie-predict``; 0 on success, 2 (one message, nothing written) on a user error."""
    args = _parser().parse_args(argv)
    if args.container and args.output is None:
        args.output = "/output"
    model, meta, jobs, device = plan(args)
    say(f"hie-predict: {len(jobs)} mask(s) to predict on {device}; each is written as soon as it is done")
    progress = Progress(len(jobs), "hie-predict")
    for done, job in enumerate(jobs):
        mask, geometry = predict_pair(model, meta, job.adc, job.zadc, device)
        try:
            write_image(mask, geometry, job.output, writer="hie-predict")
        except OSError as exc:
            progress.close()
            raise PredictError(
                f"{job.output}: cannot write the mask ({exc.strerror or exc}); "
                f"{done} of {len(jobs)} mask(s) were written before it"
            ) from None
        volume_ml = mask.sum() * geometry.voxel_volume_ml
        progress.step(f"{job.output}: {int(mask.sum())} lesion voxels ({volume_ml:.2f} ml)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
