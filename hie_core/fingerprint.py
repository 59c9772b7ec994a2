"""The data a run read, as one digest: the contents of every file of every case of its dataset.

A run folder records :class:`DataFingerprint` (``config.json`` key ``"data_fingerprint"``):
the SHA-256 of each ADC, ZADC and label file of the dataset it loaded, keyed by the file's
path relative to the data folder, and one digest of them all. When a reference label is
corrected, the digest changes and the run is trained again instead of being reused
(:func:`hie_core.training.experiment.run_experiment`).

Hashing reads every byte once: the hashes are cached by (path, size, mtime_ns) in one small
JSON file under the hie_core cache folder (:func:`hash_cache_path`), never next to the data,
so an unchanged dataset costs one ``stat`` per file.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from hie_core.data import Case
from hie_core.io import atomic_write_text
from hie_core.preprocess import default_cache_dir, file_sha256

__all__ = ["DataFingerprint", "FileHashCache", "RESULT_FILES", "data_fingerprint", "edited_results", "hash_cache_path",
           "describe_change", "results_checksums"]  # fmt: skip

#: Layout version of the hash cache file; another version is ignored (rebuilt).
CACHE_VERSION = 1


def hash_cache_path() -> Path:
    """``$HIE_CACHE_DIR/file_hashes.json`` (default ``~/.cache/hie_core/file_hashes.json``)."""
    return default_cache_dir().parent / "file_hashes.json"


class FileHashCache:
    """SHA-256 of files, remembered by (resolved path, size, mtime_ns) in a JSON file.

    A file whose size or modification time changed is hashed again. An unreadable cache file
    is treated as empty; an unwritable one costs a warning. :meth:`save` merges with what
    other processes wrote meanwhile (the last writer wins on the same path; a lost entry only
    costs one more hash).

    Args:
        path: the cache file (default :func:`hash_cache_path`).
    """

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = Path(path) if path is not None else hash_cache_path()
        self._entries = self._read()
        self._new: dict[str, list] = {}

    def _read(self) -> dict[str, list]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
            return {}
        entries = data.get("entries")
        return entries if isinstance(entries, dict) else {}

    def hash(self, path: str | os.PathLike) -> str:
        """The file's SHA-256 (hex), read from the cache when its size and mtime are unchanged."""
        resolved = Path(path).resolve()
        stat = resolved.stat()
        key = str(resolved)
        entry = self._entries.get(key)
        if isinstance(entry, list) and len(entry) == 3 and entry[:2] == [stat.st_size, stat.st_mtime_ns]:
            return str(entry[2])
        value = file_sha256(resolved)
        self._entries[key] = self._new[key] = [stat.st_size, stat.st_mtime_ns, value]
        return value

    def save(self) -> None:
        """Write the new hashes (merged into the file's current contents) atomically."""
        if not self._new:
            return
        entries = {**self._read(), **self._new}
        try:
            atomic_write_text(self.path, json.dumps({"version": CACHE_VERSION, "entries": entries}) + "\n")
        except OSError as exc:
            warnings.warn(f"{self.path}: cannot write the file-hash cache ({exc}); continuing without it",
                          stacklevel=2)  # fmt: skip
        self._new = {}


@dataclass(frozen=True)
class DataFingerprint:
    """The contents of a dataset's files.

    Attributes:
        root: the data folder the keys of ``files`` are relative to.
        files: file path relative to ``root`` (POSIX form; absolute where outside it) -> SHA-256.
        digest: SHA-256 of ``files`` as sorted JSON: equal digests, equal data.
    """

    root: Path
    files: Mapping[str, str]
    digest: str

    def to_dict(self) -> dict:
        """What a run folder's ``config.json`` records (``"data_fingerprint"``)."""
        return {"digest": self.digest, "files": dict(sorted(self.files.items()))}

    def differing(self, recorded: Mapping[str, str]) -> list[str]:
        """Keys of files changed, added or removed since ``recorded`` (a :meth:`to_dict` ``"files"``)."""
        keys = set(recorded) | set(self.files)
        return sorted(k for k in keys if recorded.get(k) != self.files.get(k))


def _key(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return str(path.resolve())


def data_fingerprint(
    root: str | os.PathLike, cases: Iterable[Case], cache: FileHashCache | None = None
) -> DataFingerprint:
    """The fingerprint of every file (ADC, ZADC, label) of ``cases``, which live under ``root``.

    Args:
        root: the data folder (keys are relative to it, so a moved folder keeps its fingerprint).
        cases: e.g. from :func:`hie_core.data.discover_cases`.
        cache: the hash cache (default: a :class:`FileHashCache` on :func:`hash_cache_path`,
            saved before returning).
    """
    root = Path(root).resolve()
    own = cache is None
    cache = FileHashCache() if cache is None else cache
    files = {_key(Path(p), root): cache.hash(p) for case in cases for p in case.files}
    if own:
        cache.save()
    digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
    return DataFingerprint(root, files, digest)


def describe_change(recorded: object, current: DataFingerprint) -> str | None:
    """Why a run's recorded data differ from ``current`` (one phrase), or None when they are the same.

    Args:
        recorded: the run's ``config.json`` ``"data_fingerprint"`` (None: a run from before
            runs recorded their data).
    """
    if not isinstance(recorded, dict) or not isinstance(recorded.get("files"), dict):
        return "this run folder records no data fingerprint (written before runs were tied to their data)"
    if recorded.get("digest") == current.digest:
        return None
    changed = current.differing(recorded["files"])
    if not changed:  # same files, digest of another form: treat as changed, name nothing
        return "the data changed since this run"
    example = changed[0] if Path(changed[0]).is_absolute() else str(current.root / changed[0])
    return f"the data changed since this run: {len(changed)} file(s) differ, e.g. {example}"


#: The result files of a run whose SHA-256 its ``summary.json`` records (``"checksums"``).
RESULT_FILES = ("config.json", "history.csv", "metrics.csv")


def results_checksums(run_dir: str | os.PathLike) -> dict[str, str]:
    """SHA-256 of each of :data:`RESULT_FILES` in ``run_dir``, as the run wrote them."""
    return {name: file_sha256(Path(run_dir) / name) for name in RESULT_FILES}


def edited_results(run_dir: str | os.PathLike, summary: Mapping) -> list[str]:
    """The result files of a finished run that changed since it recorded their checksums.

    A file edited by hand, truncated or replaced is listed (a missing one too); a run from
    before checksums were recorded lists nothing (it cannot be checked).
    """
    recorded = summary.get("checksums") if isinstance(summary, Mapping) else None
    if not isinstance(recorded, Mapping):
        return []
    run_dir = Path(run_dir)
    return [name for name, digest in recorded.items()
            if not (run_dir / name).is_file() or file_sha256(run_dir / name) != digest]  # fmt: skip
