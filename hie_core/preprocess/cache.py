"""The cache of preprocessed cases on disk (:class:`~hie_core.preprocess.PreprocessCache`),
keyed by the inputs' contents and the parameters, so that an epoch never re-reads or
re-resamples the raw files.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hie_core.io import ImageGeometry, atomic_write_bytes
from hie_core.preprocess.case import (
    PREPROCESS_VERSION,
    PreprocessedCase,
    _check_zadc_norm,
    preprocess_case,
)
from hie_core.preprocess.grid import Grid, Interpolation, _check_interpolation, as_grid

if TYPE_CHECKING:
    from hie_core.data import Case

__all__ = ["PreprocessCache", "default_cache_dir", "file_sha256"]


def default_cache_dir() -> Path:
    """``$HIE_CACHE_DIR/preprocessed``, or ``~/.cache/hie_core/preprocessed``."""
    root = os.environ.get("HIE_CACHE_DIR") or Path.home() / ".cache" / "hie_core"
    return Path(root).expanduser() / "preprocessed"


def file_sha256(path: str | os.PathLike, chunk_bytes: int = 1 << 20) -> str:
    """SHA-256 of a file's contents, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


class PreprocessCache:
    """Preprocessed cases on disk, keyed by the inputs' contents and the parameters.

    An entry is a compressed ``.npz`` named ``<case_id>-<key>.npz`` in ``cache_dir``,
    written atomically. The key is a SHA-256 of the three input files' SHA-256s, the target
    shape, the interpolation modes, the ZADC scaling and :data:`PREPROCESS_VERSION`, so it changes when an
    input or a parameter does. File hashes are remembered per (path, size, mtime_ns), in
    memory and under ``cache_dir/file_hashes``, so unchanged files are not re-hashed. An
    unreadable entry is recomputed, and an unwritable cache skipped, with a warning.
    Nothing is written next to the data. Stale entries are not deleted (remove the folder).

    Args:
        cache_dir: folder for the entries (default :func:`default_cache_dir`).
    """

    def __init__(self, cache_dir: str | os.PathLike | None = None) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._hashes: dict[tuple[str, int, int], str] = {}

    def file_hash(self, path: str | os.PathLike) -> str:
        """SHA-256 of a file, re-hashed only when its path, size or mtime changes."""
        resolved = Path(path).resolve()
        stat = resolved.stat()
        stamp = (str(resolved), stat.st_size, stat.st_mtime_ns)
        if stamp in self._hashes:
            return self._hashes[stamp]
        record = self.cache_dir / "file_hashes" / hashlib.sha256(repr(stamp).encode()).hexdigest()
        try:
            value = record.read_text().strip()
        except OSError:
            value = ""
        if not re.fullmatch(r"[0-9a-f]{64}", value):
            value = file_sha256(resolved)
            _try_write(record, value.encode())
        self._hashes[stamp] = value
        return value

    def key(
        self,
        case: Case,
        target_shape: Grid | tuple[int, int, int],
        zadc_norm: str,
        label_interpolation: Interpolation,
    ) -> str:
        """The entry key of ``case`` under these parameters (hex SHA-256)."""
        grid = as_grid(target_shape)
        params = {
            "version": PREPROCESS_VERSION,
            "target_shape": None if grid.shape is None else list(grid.shape),
            "target_spacing_mm": grid.spacing_mm and list(grid.spacing_mm),
            "map_interpolation": "linear",
            "label_interpolation": label_interpolation,
            "normalisation": "zscore-whole-volume" if zadc_norm == "volume" else "adc-zscore-zadc-atlas",
            "adc": self.file_hash(case.adc),
            "zadc": self.file_hash(case.zadc),
            "label": None if case.label is None else self.file_hash(case.label),
        }
        return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()

    def path(
        self,
        case: Case,
        target_shape: Grid | tuple[int, int, int],
        zadc_norm: str,
        label_interpolation: Interpolation,
    ) -> Path:
        """Where the entry of ``case`` under these parameters lives."""
        safe_id = re.sub(r"[^A-Za-z0-9_.-]", "_", case.case_id)
        return (
            self.cache_dir
            / f"{safe_id}-{self.key(case, target_shape, zadc_norm, label_interpolation)[:24]}.npz"
        )

    def get(
        self,
        case: Case,
        target_shape: Grid | tuple[int, int, int],
        zadc_norm: str,
        label_interpolation: Interpolation = "linear",
    ) -> PreprocessedCase:
        """The preprocessed case: from the cache, or computed, stored and returned."""
        _check_interpolation(label_interpolation)
        _check_zadc_norm(zadc_norm)
        entry = self.path(case, target_shape, zadc_norm, label_interpolation)
        if entry.is_file():
            try:
                return _load_entry(entry, case.case_id, as_grid(target_shape).shape)
            except Exception as exc:  # corrupt/truncated/foreign file: recompute
                warnings.warn(f"{entry}: unreadable cache entry, recomputing ({exc})", stacklevel=2)
        result = preprocess_case(case, target_shape, zadc_norm, label_interpolation)
        _try_write(entry, _dump_entry(result))
        return result


def _try_write(path: Path, data: bytes) -> None:
    """Write a cache file atomically; a read-only or full cache only costs a warning."""
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        warnings.warn(f"{path}: cannot write cache file ({exc}); continuing without it", stacklevel=3)


def _dump_entry(case: PreprocessedCase) -> bytes:
    meta = {
        "case_id": case.case_id,
        "native_geometry": case.native_geometry.to_dict(),
        "geometry": case.geometry.to_dict(),
        "intensity_mean": list(case.intensity_mean),
        "intensity_std": list(case.intensity_std),
    }
    arrays = {"image": case.image, "meta": np.array(json.dumps(meta))}
    if case.label is not None:
        arrays["label"] = case.label
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def _load_entry(path: Path, case_id: str, target_shape: tuple[int, ...] | None) -> PreprocessedCase:
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        image = data["image"]
        label = data["label"] if "label" in data.files else None
    geometry = ImageGeometry.from_dict(meta["geometry"])
    target_shape = geometry.shape if target_shape is None else tuple(target_shape)
    if meta["case_id"] != case_id or image.shape != (2, *target_shape) or geometry.shape != target_shape:
        raise ValueError(
            f"entry holds {meta['case_id']} {image.shape}, expected {case_id} (2, {target_shape})"
        )
    if image.dtype != np.float32 or (label is not None and label.shape != (1, *target_shape)):
        raise ValueError(f"entry has image dtype {image.dtype}, label shape {getattr(label, 'shape', None)}")
    return PreprocessedCase(
        case_id=case_id,
        image=image,
        label=label,
        native_geometry=ImageGeometry.from_dict(meta["native_geometry"]),
        geometry=geometry,
        intensity_mean=tuple(meta["intensity_mean"]),
        intensity_std=tuple(meta["intensity_std"]),
    )
