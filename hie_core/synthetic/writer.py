"""Writing synthetic releases: the MHA files in the BONBID-HIE layout, the ``SYNTHETIC.json``
manifest, file digests, the cache of generated releases and the command line
``python -m hie_core.synthetic``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np

from hie_core.data import SPLIT_FOLDERS
from hie_core.io import atomic_write_text, write_image
from hie_core.synthetic.params import (
    _ID_RANGE,
    ATLAS_SIGMA_MM,
    GENERATOR_VERSION,
    MANIFEST,
    PRESETS,
    SITE,
    ZADC_FWHM_MM,
    CaseParams,
    sample_case_params,
)
from hie_core.synthetic.render import render_case

__all__ = [
    "make_synthetic_dataset",
    "ensure_synthetic_dataset",
    "synthetic_cache_dir",
    "is_synthetic_dir",
    "file_digests",
    "dataset_digest",
    "main",
]


def _case_paths(root: Path, split: str, case_id: str) -> dict[str, Path]:
    split_dir = root / SPLIT_FOLDERS[split]
    return {
        "adc": split_dir / "1ADC_ss" / f"{case_id}-ADC_ss.mha",
        "zadc": split_dir / "2Z_ADC" / f"Zmap_{case_id}-ADC_smooth2mm_clipped10.mha",
        "label": split_dir / "3LABEL" / f"{case_id}_lesion.mha",
    }


def _write_case(params: CaseParams, root: Path) -> dict:
    """Render one case, write its three MHA files under ``root``; return its manifest record."""
    case = render_case(params)
    paths = _case_paths(root, params.split, params.case_id)
    for key in ("adc", "zadc", "label"):
        write_image(getattr(case, key), case.geometry, paths[key])
    voxel_ml = case.geometry.voxel_volume_ml
    return {
        **asdict(params),
        "brain_voxels": case.brain_voxels,
        "lesion_voxels": case.lesion_voxels,
        "lesion_burden": case.lesion_burden,
        "brain_volume_ml": case.brain_voxels * voxel_ml,
        "lesion_volume_ml": case.lesion_voxels * voxel_ml,
    }


def _manifest_text(header: dict, records: list[dict]) -> str:
    """JSON with one line per header key and per case (small and diff-friendly)."""
    lines = [f" {json.dumps(k)}: {json.dumps(v)}," for k, v in header.items()]
    cases = ",\n".join(f"  {json.dumps(r)}" for r in records)
    return "{\n" + "\n".join(lines) + '\n "cases": [\n' + cases + "\n ]\n}\n"


def _resolve_counts(preset: str, counts: dict[str, int] | None) -> dict[str, int]:
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {preset!r}")
    out = dict(PRESETS[preset])
    for split, n in (counts or {}).items():
        if split not in _ID_RANGE:
            raise ValueError(f"unknown split {split!r} in counts (expected {sorted(_ID_RANGE)})")
        if not 0 <= int(n) <= _ID_RANGE[split][1]:
            raise ValueError(f"count for {split!r} must be in 0..{_ID_RANGE[split][1]}, got {n}")
        out[split] = int(n)
    if sum(out.values()) == 0:
        raise ValueError(f"counts {out} hold no case")
    return out


def _default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _write_all(params: list[CaseParams], root: Path, workers: int) -> list[dict]:
    order = sorted(range(len(params)), key=lambda i: -int(np.prod(params[i].shape)))  # big first
    if workers <= 1 or len(params) == 1:
        records = {i: _write_case(params[i], root) for i in order}
    else:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")  # safe with threads (torch) in the parent
        with ProcessPoolExecutor(max_workers=min(workers, len(params)), mp_context=ctx) as pool:
            futures = {i: pool.submit(_write_case, params[i], root) for i in order}
            records = {i: f.result() for i, f in futures.items()}
    return [records[i] for i in range(len(params))]


def make_synthetic_dataset(
    out_dir: str | os.PathLike,
    preset: str = "small",
    counts: dict[str, int] | None = None,
    seed: int = 0,
    workers: int | None = None,
    max_size: int | None = None,
) -> Path:
    """Write a synthetic BONBID-HIE-like release to ``out_dir`` (atomically).

    The release is written into a temporary sibling folder and renamed into place, so
    ``out_dir`` appears complete or not at all.

    Args:
        out_dir: destination; must not exist or be an empty folder.
        preset: ``"small"`` (train 40 / val 4 / test 16, sized for a CPU study) or ``"full"`` (85 / 4 / 44, as the
            real release).
        counts: per-split counts replacing the preset's for the splits named, e.g.
            ``{"train": 2, "val": 0, "test": 1}``.
        seed: dataset seed; the same seed gives byte-identical arrays.
        workers: processes (default: the available cores).
        max_size: cap the in-plane size and slice count (tests only; see
            :func:`sample_case_params`).

    Returns:
        The release root ``out_dir``.

    Raises:
        FileExistsError: ``out_dir`` exists and is not an empty folder (nothing is changed).
    """
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} already exists and is not an empty folder; refusing to overwrite it")
    counts = _resolve_counts(preset, counts)
    workers = _default_workers() if workers is None else int(workers)
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    params = [sample_case_params(seed, s, i, max_size) for s in _ID_RANGE for i in range(counts[s])]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        records = _write_all(params, tmp, workers)
        manifest = {
            "generator": "hie_core.synthetic",
            "version": GENERATOR_VERSION,
            "note": "synthetic data generated by hie_core.synthetic; no patient data",
            "preset": preset, "seed": seed, "counts": counts, "max_size": max_size, "site": SITE,
            "adc_units": "1e-6 mm^2/s", "zadc_fwhm_mm": ZADC_FWHM_MM, "atlas_sigma_mm": ATLAS_SIGMA_MM,
        }  # fmt: skip
        atomic_write_text(tmp / MANIFEST, _manifest_text(manifest, records))
        tmp.chmod(0o755)
        try:
            os.rename(tmp, out)  # atomic; replaces only an empty folder
        except OSError as exc:
            raise FileExistsError(f"{out} appeared while the dataset was being written") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def file_digests(root: str | os.PathLike) -> dict[str, str]:
    """The sha256 (hex) of every file under ``root``, keyed by its relative POSIX path, sorted.

    A release's identity, file for file: the same seed and counts give the same dictionary on
    every machine (``tests/test_synthetic_digest.py`` regenerates cases and checks them against
    the committed digests of the default set).
    """
    root = Path(root)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def dataset_digest(digests: dict[str, str]) -> str:
    """One sha256 (hex) over every file's relative path and content: the lines ``<path> <sha256>``, sorted.

    Args:
        digests: :func:`file_digests` of a release.
    """
    text = "".join(f"{path} {digest}\n" for path, digest in sorted(digests.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def is_synthetic_dir(folder: str | os.PathLike) -> bool:
    """True when ``folder`` (a release root, or one of its split folders) was written by this
    generator: it, or its parent, holds the generator's manifest (``SYNTHETIC.json``).

    This is how every page and result file decides to label numbers as synthetic, however
    the folder was passed (empty ``data_dir``, or the generated folder's path).
    """
    folder = Path(folder).expanduser()
    return any((f / MANIFEST).is_file() for f in (folder, folder.parent))


def _complete(root: Path, preset: str, seed: int, counts: dict[str, int]) -> bool:
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    same = (manifest.get("version"), manifest.get("preset"), manifest.get("seed"), manifest.get("counts"))
    return same == (GENERATOR_VERSION, preset, seed, counts)


def synthetic_cache_dir(
    preset: str = "small", seed: int = 0, counts: dict[str, int] | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> Path:  # fmt: skip
    """Where :func:`ensure_synthetic_dataset` keeps a release (nothing is read or written).

    ``<cache_dir>/synthetic/<preset>-seed<seed>`` for the preset's counts; other counts add
    the splits that differ, e.g. ``small-seed0-test44``, so a custom release never replaces
    the preset's own. ``cache_dir`` defaults to ``$HIE_CACHE_DIR`` or ``~/.cache/hie_core``.

    Raises:
        ValueError: an unknown preset, split or count out of range.
    """
    resolved = _resolve_counts(preset, counts)
    base = Path(cache_dir or os.environ.get("HIE_CACHE_DIR") or Path.home() / ".cache" / "hie_core")
    custom = "".join(f"-{s}{resolved[s]}" for s in _ID_RANGE if resolved[s] != PRESETS[preset][s])
    return base / "synthetic" / f"{preset}-seed{seed}{custom}"


def ensure_synthetic_dataset(
    preset: str = "small", seed: int = 0, cache_dir: str | os.PathLike | None = None,
    counts: dict[str, int] | None = None,
) -> Path:  # fmt: skip
    """Return a cached synthetic release, generating it on first use.

    The cache folder is ``synthetic_cache_dir`` (``<preset>-seed<seed>``, plus the splits
    whose ``counts`` differ from the preset's). A copy from another generator version is
    replaced. When two processes race, the first rename wins and the other uses its copy.
    """
    counts = _resolve_counts(preset, counts)
    target = synthetic_cache_dir(preset, seed, counts, cache_dir)
    if _complete(target, preset, seed, counts):
        return target
    if target.exists():  # stale version or foreign content: move aside, then delete
        stale = target.with_name(f".{target.name}.stale-{os.getpid()}-{time.monotonic_ns()}")
        try:
            os.rename(target, stale)
            shutil.rmtree(stale, ignore_errors=True)
        except FileNotFoundError:
            pass  # another process moved it first
    # Generate in a fresh interpreter: its worker pool then never re-imports the caller's
    # __main__ (a plain script without a main guard, a notebook kernel), whatever it is.
    cmd = [sys.executable, "-m", "hie_core.synthetic", str(target), "--preset", preset, "--seed", str(seed),
           "--train", str(counts["train"]), "--val", str(counts["val"]), "--test", str(counts["test"])]  # fmt: skip
    shown = "" if counts == PRESETS[preset] else f", {counts['train']}/{counts['val']}/{counts['test']} cases"
    print(f"generating the synthetic '{preset}' dataset (seed {seed}{shown}) in {target} ...", flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if _complete(target, preset, seed, counts):  # ours, or a racing process's
        return target
    raise RuntimeError(f"could not generate the synthetic dataset in {target}: {proc.stderr.strip()[-2000:]}")


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m hie_core.synthetic OUT_DIR [--preset ...] [--train N ...]``."""
    from hie_core import synthetic

    description = synthetic.__doc__.splitlines()[0]
    parser = argparse.ArgumentParser(prog="python -m hie_core.synthetic", description=description)
    parser.add_argument("out_dir", type=Path, help="destination folder (must not exist or be empty)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="small", help="split counts preset")
    for split in _ID_RANGE:
        parser.add_argument(
            f"--{split}", type=int, default=None, metavar="N", help=f"number of {split} cases"
        )
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: available cores)")
    parser.add_argument("--max-size", type=int, default=None, help="cap in-plane size and slices (tests)")
    parser.add_argument("--digest", action="store_true",
                        help="print the sha256 digest of the existing release OUT_DIR (every file's path and "
                             "content) instead of writing one")  # fmt: skip
    args = parser.parse_args(argv)
    if args.digest:
        if not args.out_dir.is_dir():
            parser.exit(2, f"error: {args.out_dir}: no such folder\n")
        digests = file_digests(args.out_dir)
        print(f"{dataset_digest(digests)}  {args.out_dir} ({len(digests)} files)")
        return 0
    counts = {s: getattr(args, s) for s in _ID_RANGE if getattr(args, s) is not None}
    start = time.perf_counter()
    try:
        root = make_synthetic_dataset(
            args.out_dir, args.preset, counts, args.seed, args.workers, args.max_size
        )
    except (FileExistsError, ValueError) as exc:
        parser.exit(2, f"error: {exc}\n")
    cases = json.loads((root / MANIFEST).read_text())["cases"]
    per_split = ", ".join(f"{s} {sum(c['split'] == s for c in cases)}" for s in _ID_RANGE)
    print(
        f"wrote {len(cases)} synthetic cases ({per_split}; seed {args.seed}) to {root} in {time.perf_counter() - start:.1f} s"
    )
    return 0
