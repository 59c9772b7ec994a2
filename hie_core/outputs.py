"""No command writes onto what it reads: output paths checked against the inputs, after resolving them.

Every command resolves each path it is given once (:func:`resolve_path`: ``~``, a relative path,
``..``, symbolic links and a trailing slash), and then checks every path it is about to write
(:func:`check_outputs`) against what it reads, before anything is written:

- an output equal to, or inside, a folder the command reads (the data folder, the folder of
  predicted masks, a run folder) is refused: that folder is only ever read; so is an output
  inside any run folder (a run's files are its results, under its checksums);
- an output equal to a file the command reads is refused;
- an existing file is replaced only when it is a previous output of the same command. A command
  recognises its own files so: an image (``hie-predict``'s masks) names its writer in its header
  (:data:`hie_core.io.WRITER_KEY`, read by :func:`hie_core.io.read_writer`); a table
  (``hie-score --out``) has a record beside it, ``<file>.hie-score.json``
  (:func:`write_record`), holding the command, what it read and the SHA-256 of the table, and a table
  edited since is not replaced either.

Every refusal is one :class:`OutputPathError` (exit status 2, one line per problem, nothing written).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from hie_core.errors import ProblemsError

__all__ = ["OutputPathError", "Read", "check_outputs", "output_problems", "record_path", "resolve_option",
           "resolve_path", "run_folder_of", "written_by", "write_record"]  # fmt: skip

#: Files whose presence makes a folder a run folder (``config.json`` and one of the others).
_RUN_FILES = ("summary.json", "metrics.csv", "model_best.pt", "checkpoint_last.pt", "history.csv")


class OutputPathError(ProblemsError):
    """An output would land on, or inside, what the command reads, or on a file it did not write."""


@dataclass(frozen=True)
class Read:
    """A file or folder a command reads, and its role in words (``"data folder"``, ``"run folder"`` ...)."""

    path: Path
    role: str


def resolve_path(path: str | os.PathLike) -> Path:
    """``path`` made absolute (against the working folder), ``~`` expanded, ``..`` and links resolved.

    A path that does not exist yet is resolved as far as it exists (so an output path can be
    compared with the inputs before it is created); a trailing slash makes no difference.
    """
    given = Path(path).expanduser()
    return (
        given if given.is_absolute() else Path.cwd() / given
    ).resolve()  # links first, then "..": as the OS does


def resolve_option(value: str | os.PathLike | None) -> str:
    """A folder option as a resolved absolute path (:func:`resolve_path`); empty (a default) stays ``""``."""
    return str(resolve_path(value)) if value not in (None, "") and str(value).strip() else ""


def run_folder_of(path: str | os.PathLike, levels: int = 3) -> Path | None:
    """The run folder holding ``path`` (itself or one of its ``levels`` parents), or None.

    A run folder holds ``config.json`` and a result or weight file of a run (``summary.json``,
    ``metrics.csv``, ``model_best.pt`` ...): e.g. ``<run>`` for ``<run>/predictions/test``.
    """
    here = resolve_path(path)
    for folder in [here, *here.parents][: levels + 1]:
        if (folder / "config.json").is_file() and any((folder / f).exists() for f in _RUN_FILES):
            return folder
    return None


def record_path(path: str | os.PathLike, command: str) -> Path:
    """Where :func:`write_record` keeps the record of a table ``path``: ``<path>.<command>.json``."""
    path = Path(path)
    return path.with_name(f"{path.name}.{command}.json")


def write_record(path: str | os.PathLike, command: str, facts: Mapping) -> Path:
    """Record that ``command`` wrote the file ``path`` (its SHA-256 and ``facts``), atomically, beside it."""
    from hie_core.io import atomic_write_text
    from hie_core.preprocess import file_sha256

    record = {"command": command, "file": Path(path).name, "sha256": file_sha256(path), **facts}
    return atomic_write_text(record_path(path, command), json.dumps(record, indent=2, default=str) + "\n")


def written_by(path: str | os.PathLike, command: str) -> bool:
    """Whether the existing file ``path`` is an unchanged output of ``command`` (header or record, see above)."""
    from hie_core.io import read_writer

    path = Path(path)
    if path.name.lower().endswith((".mha", ".nrrd", ".nii", ".nii.gz")):
        return read_writer(path) == command
    try:
        record = json.loads(record_path(path, command).read_text())
    except (OSError, ValueError):
        return False
    from hie_core.preprocess import file_sha256

    return (
        isinstance(record, dict)
        and record.get("command") == command
        and record.get("sha256") == file_sha256(path)
    )


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def output_problems(command: str, outputs: Iterable[str | os.PathLike], reads: Iterable[Read],
                    own: Callable[[Path], bool] | None = None) -> list[str]:  # fmt: skip
    """The problems :func:`check_outputs` raises, one line each (an output's first problem only).

    Args:
        command: the command's name, as in its messages (``"hie-score"``).
        outputs: the paths the command would write, files or folders (resolved here).
        reads: what it reads; a folder protects everything under it, a file itself. Any run folder
            (:func:`run_folder_of`) is protected too: its files are a run's results.
        own: for an existing output file, whether the command may replace it (its own previous
            output); default :func:`written_by` with ``command``. An existing folder is not judged.
    """
    own = own or (lambda p: written_by(p, command))
    protected = [(resolve_path(r.path), r) for r in reads]
    problems = []
    for given in outputs:
        out = resolve_path(given)
        hit = next(((p, f"the {r.role} {p}, which {command} only reads") for p, r in protected if _inside(out, p)),
                   None)  # fmt: skip
        run = run_folder_of(out.parent) if hit is None else None
        if run is not None:  # not read by this command, but a run's files are its results (checksummed)
            hit = (run, f"the run folder {run}, whose files are that run's results")
        if hit is not None:
            where = "is" if out == hit[0] else "is inside"
            problems.append(f"{given}: {where} {hit[1]}; choose an output outside it")
        elif out.is_file() and not own(out):
            problems.append(f"{given}: exists and was not written by {command} (or was changed since); "
                            "choose a new file name, or delete it first if it is yours to replace")  # fmt: skip
    return problems


def check_outputs(command: str, outputs: Iterable[str | os.PathLike], reads: Iterable[Read],
                  own: Callable[[Path], bool] | None = None) -> None:  # fmt: skip
    """Refuse outputs that would land on or inside what ``command`` reads, or on a file it did not write.

    Raises:
        OutputPathError: one line per problem (see :func:`output_problems`), nothing written.
    """
    problems = output_problems(command, outputs, reads, own)
    if len(problems) == 1:
        raise OutputPathError(f"{problems[0]} (nothing was written)")
    if problems:
        raise OutputPathError(f"{len(problems)} outputs refused, nothing was written", problems)
