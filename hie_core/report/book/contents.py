"""The book's pages: a study's executed notebooks gathered under ``book/generated/``.

:func:`collect_notebooks` copies the study pages of :data:`BOOK_NOTEBOOKS`
(``runs/<study>/book/<name>.ipynb``) with their code folded away (:func:`fold_code`), and one
page per loss the study has (:func:`experiment_notebooks`), titled "Experiment: <loss>";
:func:`write_toc` writes the study's table of contents from the committed ``_toc.yml``. Step 1
and 2 of :func:`hie_core.report.book.build.build_book`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import yaml

from hie_core.errors import UserError
from hie_core.io import atomic_write_text
from hie_core.losses import LOSS_NAMES
from hie_core.methods import label_of_id
from hie_core.run_folder import parse_run_folder_name, run_folders

__all__ = [
    "API_PAGES",
    "BOOK_NOTEBOOKS",
    "BookError",
    "collect_notebooks",
    "experiment_notebooks",
    "fold_code",
    "write_toc",
]

#: study-level notebooks executed by the study, in book order (each notebooks/<name>.ipynb)
BOOK_NOTEBOOKS = ("intro", "data", "methods", "results", "discussion", "performance")
#: the API reference's pages under book/, a few modules each, in book order (write_toc makes each
#: that exists a section of the committed _toc.yml's ``book/api`` entry)
API_PAGES = (
    "api-data",
    "api-synthetic",
    "api-preprocess",
    "api-augment",
    "api-model",
    "api-losses",
    "api-metrics",
    "api-lesions",
    "api-config",
    "api-errors",
    "api-training",
    "api-steps",
    "api-runs",
    "api-study",
    "api-grid",
    "api-watch",
    "api-results",
    "api-study-model",
    "api-external",
    "api-statistics",
    "api-power",
    "api-hypotheses",
    "api-lesion-tables",
    "api-tables",
    "api-display",
    "api-pages",
    "api-book",
    "api-build",
    "api-assets",
)
API_ENTRY = "book/api"
#: the committed _toc.yml's entry that stands for "every experiment page"
EXPERIMENTS_GLOB = "book/generated/experiments/*"
#: where build_book writes the study's table of contents (git-ignored, like the pages)
GENERATED_TOC = "book/generated/_toc.yml"
_PARAMETER_TAGS = {"parameters", "injected-parameters"}
_REMOVED = {"remove-cell", "remove_cell"}
_NO_INPUT = {"remove-input", "remove_input", "hide-input", "hide_input"}


class BookError(UserError, RuntimeError):
    """The book cannot be built: a notebook or a package is missing, or the build failed."""


def _papermill_failed(path: Path) -> bool:
    nb = nbformat.read(path, as_version=4)
    return bool(nb.metadata.get("papermill", {}).get("exception"))


def experiment_notebooks(study_dir: Path) -> dict[str, Path]:
    """The executed training notebook of each loss the study has, in Table 1 order.

    A loss's page is its lowest seed's (and lowest fold's) notebook (``<loss>/seed<k>/train.ipynb``
    or ``<loss>/seed<k>-fold<f>/train.ipynb``) among the runs whose notebook finished without an
    exception. The old layout, ``<loss>/train.ipynb``,
    is read only where a loss has no seed folder. Losses with no finished notebook are left out.

    Args:
        study_dir: a study folder, ``runs/<study>``.

    Returns:
        ``{method: path}``, a method (:mod:`hie_core.methods`) per folder of the study, in table
        order (:func:`hie_core.methods.sort_methods`).
    """
    from hie_core.methods import sort_methods

    study_dir = Path(study_dir)
    found: dict[str, Path] = {}
    folders = [p.name for p in study_dir.iterdir() if p.is_dir()] if study_dir.is_dir() else []
    for loss in sort_methods([*LOSS_NAMES, *folders]):
        candidates = []
        for run in run_folders(study_dir / loss):
            seed, fold = parse_run_folder_name(run.name)
            if (run / "train.ipynb").is_file():
                candidates.append((seed, fold or 0, run / "train.ipynb"))
        if (
            not candidates and loss in LOSS_NAMES and (study_dir / loss / "train.ipynb").is_file()
        ):  # old layout
            candidates.append((0, 0, study_dir / loss / "train.ipynb"))
        for *_, path in sorted(candidates):
            if not _papermill_failed(path):
                found[loss] = path
                break
    return found


def _is_hidden_glue(output: dict) -> bool:
    """True for a ``glue(..., display=False)`` output: myst-nb reads it but shows nothing."""
    scrapbook = output.get("metadata", {}).get("scrapbook")
    return bool(scrapbook) and bool(scrapbook.get("mime_prefix"))


def fold_code(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Tag a book page's code cells so that a reader sees results, not code (in place).

    The book is a paper: its pages show prose, figures and tables; the code is in the
    notebooks (``notebooks/``) and ``hie_core``, where a reader who wants it finds it.

    - parameters cells (``parameters``, ``injected-parameters``): ``remove-cell``;
    - cells with nothing to show (no output, or only ``glue(..., display=False)`` records,
      which myst-nb still reads): ``remove-cell``;
    - every other code cell: ``remove-input`` (its output only).

    Cells already tagged ``remove-cell``, ``remove-input`` or ``hide-input`` keep their tags.
    """
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tags = set(cell.metadata.get("tags", []))
        if tags & _PARAMETER_TAGS:
            tags.add("remove-cell")
        elif tags & (_REMOVED | _NO_INPUT):
            continue
        elif (
            not [o for o in cell.get("outputs", []) if not _is_hidden_glue(o)] and "remove-output" not in tags
        ):
            tags.add("remove-cell")
        else:
            tags.add("remove-input")
        cell.metadata["tags"] = sorted(tags)
    return nb


def _copy_page(
    src: Path, dst: Path, title: str | None = None, fold: bool = False, method: str | None = None
) -> None:
    """Copy one executed notebook: parameters cells removed, optional title and folded code; an
    experiment page (``method``) gets figure and table names of its own
    (:func:`hie_core.report.pages.experiment_page.label_page`)."""
    nb = nbformat.read(src, as_version=4)
    if method is not None:
        from hie_core.report.pages.experiment_page import label_page

        label_page(nb, method)
    if title is not None and nb.cells and nb.cells[0].cell_type == "markdown":
        first, _, rest = nb.cells[0].source.partition("\n")
        if first.startswith("# "):
            nb.cells[0].source = f"# {title}\n{rest}"
    if fold:
        fold_code(nb)
    else:
        for cell in nb.cells:
            tags = set(cell.get("metadata", {}).get("tags", []))
            if tags & _PARAMETER_TAGS:
                cell.metadata["tags"] = sorted(tags | {"remove-cell"})
    atomic_write_text(dst, nbformat.writes(nb))


def collect_notebooks(root: Path, study_dir: Path) -> list[Path]:
    """Copy the study's executed notebooks to ``book/generated/``; return what was written.

    Everything is checked before ``book/generated/`` is replaced.

    Raises:
        BookError: a study page is missing, or the study has no finished experiment notebook.
    """
    root, study_dir = Path(root), Path(study_dir)
    pages = {name: study_dir / "book" / f"{name}.ipynb" for name in BOOK_NOTEBOOKS}
    missing = [str(p) for p in pages.values() if not p.is_file()]
    if missing:
        raise BookError(
            f"executed study notebooks missing for the book: {', '.join(missing)}; "
            f"run `python -m hie_core.study --study {study_dir.name}` to execute them"
        )
    experiments = experiment_notebooks(study_dir)
    if not experiments:
        raise BookError(
            f"no finished training notebook in {study_dir} (looked for <loss>/seed<k>/train.ipynb "
            f"for the losses {', '.join(LOSS_NAMES)}); run the study first"
        )
    generated = root / "book" / "generated"
    if generated.exists():
        shutil.rmtree(generated)
    written = []
    from hie_core.report.book.meta import book_title, study_synthetic

    titles = {"intro": book_title(study_synthetic(study_dir))}  # the front page names the data
    for name, src in pages.items():
        written.append(generated / f"{name}.ipynb")
        _copy_page(src, written[-1], title=titles.get(name), fold=True)
    for loss, src in experiments.items():
        written.append(generated / "experiments" / f"{loss}.ipynb")
        _copy_page(src, written[-1], title=f"Experiment: {label_of_id(loss)}", fold=True, method=loss)
    return written


def write_toc(root: Path, losses: list[str]) -> Path:
    """Write ``book/generated/_toc.yml``: the committed ``_toc.yml`` with its experiments glob
    replaced by one entry per method (``losses``: method ids, the page names), in the given order.

    Raises:
        BookError: ``_toc.yml`` has no ``glob: book/generated/experiments/*`` entry.
    """
    root = Path(root)
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    replaced = False
    for part in toc.get("parts", []):
        chapters = []
        for entry in part.get("chapters", []):
            if entry.get("glob") == EXPERIMENTS_GLOB:
                chapters += [{"file": f"book/generated/experiments/{loss}"} for loss in losses]
                replaced = True
            elif entry.get("file") == API_ENTRY:
                pages = [f"book/{name}" for name in API_PAGES if (root / "book" / f"{name}.md").is_file()]
                chapters.append({**entry, "sections": [{"file": page} for page in pages]} if pages else entry)
            else:
                chapters.append(entry)
        part["chapters"] = chapters
    if not replaced:
        raise BookError(
            f"{root / '_toc.yml'} has no `- glob: {EXPERIMENTS_GLOB}` chapter for the experiments"
        )
    header = "# Generated by hie_core.report.book.contents.write_toc from _toc.yml: do not edit.\n"
    return atomic_write_text(root / GENERATED_TOC, header + yaml.safe_dump(toc, sort_keys=False))
