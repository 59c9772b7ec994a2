"""The data a run read, as one digest: the contents of every file of every case of its dataset.

A run folder records :class:`DataFingerprint` (``config.json`` key ``"data_fingerprint"``):
the SHA-256 of each ADC, ZADC and label file of the dataset it loaded, keyed by the file's
path relative to the data folder, and one digest of them all. When a reference label is
corrected, the digest changes and the run is trained again instead of being reused
(:func:`hie_core.training.experiment.run_experiment`).

Hashing reads every byte once: the hashes are cached by (path, size, mtime_ns) in one small
JSON file under the hie_core cache folder (:func:`hash_cache_path`), never next to the data,
so an unchanged dataset costs one ``stat`` per file.

Two more fingerprints keep a run honest about what produced it and what it left:

- :func:`user_code_digest`: the source of a researcher's own loss module *and of every module it
  imports, directly or not, that is the user's code* (not the standard library, not an installed
  package, not ``hie_core``, whose own fingerprint covers it), so a changed constant in a helper
  module retrains the run;
- :func:`results_checksums`: the SHA-256 of a run's result files and of every mask under its
  ``predictions/``, recorded in ``summary.json``; :func:`edited_results` names a changed, missing
  or added file (``predictions/test/<id>_lesion.mha`` as ``metrics.csv``).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import os
import site
import sys
import sysconfig
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from hie_core.data import Case
from hie_core.io import atomic_write_text
from hie_core.preprocess import default_cache_dir, file_sha256

__all__ = ["DataFingerprint", "FileHashCache", "PREDICTIONS", "RESULT_FILES", "data_fingerprint", "edited_results",
           "hash_cache_path", "describe_change", "results_checksums", "user_code_digest", "user_modules"]  # fmt: skip

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
#: The folder of a run's predicted masks (``predictions/<split>/<id>_lesion.mha``); each mask's
#: SHA-256 is recorded too, keyed by its path relative to the run folder.
PREDICTIONS = "predictions"


def _prediction_files(run_dir: Path) -> list[str]:
    folder = run_dir / PREDICTIONS
    if not folder.is_dir():
        return []
    return sorted(p.relative_to(run_dir).as_posix() for p in folder.rglob("*") if p.is_file())


def results_checksums(run_dir: str | os.PathLike) -> dict[str, str]:
    """SHA-256 of each of :data:`RESULT_FILES` and of every file under ``predictions/`` in ``run_dir``."""
    run_dir = Path(run_dir)
    return {name: file_sha256(run_dir / name) for name in (*RESULT_FILES, *_prediction_files(run_dir))}


def edited_results(run_dir: str | os.PathLike, summary: Mapping) -> list[str]:
    """The result files of a finished run that changed since it recorded their checksums.

    A file edited by hand, truncated or replaced is listed (a missing one too), and so is a file
    added under ``predictions/`` when the run recorded its predictions (e.g. ``hie-predict``
    writing into it); a run from before checksums were recorded lists nothing (it cannot be
    checked), and one from before predictions were recorded has only its other files checked.
    """
    recorded = summary.get("checksums") if isinstance(summary, Mapping) else None
    if not isinstance(recorded, Mapping):
        return []
    run_dir = Path(run_dir)
    changed = [name for name, digest in recorded.items()
               if not (run_dir / name).is_file() or file_sha256(run_dir / name) != digest]  # fmt: skip
    if any(str(name).startswith(PREDICTIONS + "/") for name in recorded):
        changed += [name for name in _prediction_files(run_dir) if name not in recorded]
    return changed


def _installed_roots() -> list[Path]:
    """Folders of the standard library and of installed packages (their modules are not the user's)."""
    paths = sysconfig.get_paths()
    roots = [paths.get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")]
    roots += list(getattr(site, "getsitepackages", list)()) + [getattr(site, "getusersitepackages", str)()]
    return [Path(r).resolve() for r in roots if r]


def _is_user_file(path: Path, roots: list[Path]) -> bool:
    package = Path(__file__).resolve().parent  # hie_core: in its own code fingerprint
    resolved = path.resolve()
    return not any(resolved.is_relative_to(root) for root in [*roots, package])


def _imported_names(module: ModuleType, source: str) -> list[str]:
    """Absolute names of the modules ``source`` imports (``a.b`` also gives ``a``; ``from a import b`` gives ``a.b``)."""
    names: list[str] = []
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return names
    package = module.__package__ or ""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            try:
                base = importlib.util.resolve_name("." * node.level + (node.module or ""), package) \
                    if node.level else (node.module or "")  # fmt: skip
            except (ImportError, ValueError):
                continue
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names if alias.name != "*"]
        else:
            continue
        for target in targets:
            parts = target.split(".")
            names += [".".join(parts[: i + 1]) for i in range(len(parts)) if parts[0]]
    return names


def _module_file(name: str) -> Path | None:
    module = sys.modules.get(name)
    origin = getattr(module, "__file__", None) if module is not None else None
    if origin is None and module is None:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError, AttributeError):
            return None
        origin = spec.origin if spec is not None and spec.has_location else None
    return Path(origin) if origin else None


def user_modules(module: ModuleType) -> dict[str, Path]:
    """``module`` and every module it imports, transitively, that is the user's code (see the module docstring).

    Returns:
        module name -> source file, for the modules outside the standard library, the installed
        packages and ``hie_core`` (``module`` itself always, whatever its place).
    """
    roots = _installed_roots()
    found: dict[str, Path] = {}
    first = getattr(module, "__file__", None)
    pending = [(module.__name__, Path(first))] if first else []
    while pending:
        name, path = pending.pop()
        if name in found:
            continue
        found[name] = path
        try:
            source = path.read_text(errors="replace") if path.suffix == ".py" else ""
        except OSError:
            continue
        here = sys.modules.get(name) or module
        for imported in _imported_names(here, source):
            file = _module_file(imported)
            if imported not in found and file is not None and file.is_file() and _is_user_file(file, roots):
                pending.append((imported, file))
    return found


def user_code_digest(module: ModuleType) -> str:
    """SHA-256 (16 hex digits) of :func:`user_modules` of ``module``: each module's name and bytes.

    Keyed by module name, not path, so a moved checkout keeps its digest.
    """
    digest = hashlib.sha256()
    for name, path in sorted(user_modules(module).items()):
        try:
            data = path.read_bytes()
        except OSError:
            data = b""
        digest.update(name.encode() + b"\0" + data + b"\0")
    return digest.hexdigest()[:16]
