"""Build the Jupyter Book from a study's executed notebooks, offline and with only Python.

:func:`build_book` runs four steps:

1. :func:`collect_notebooks` copies the executed notebooks of a study folder into
   ``book/generated/``: the five study pages (``runs/<study>/book/<name>.ipynb``) with their
   code folded away (:func:`fold_code`), and one page per loss that the study has
   (:func:`experiment_notebooks`), titled "Experiment: <loss>", with its code visible;
2. :func:`write_toc` writes ``book/generated/_toc.yml`` from the committed ``_toc.yml``, whose
   experiments part is a glob, listing the experiment pages in the order of Table 1;
3. :func:`vendor_assets` copies plotly.js (from the installed ``plotly``) and MathJax 3's
   self-contained ``tex-svg.js`` (from the installed ``sphinx-mathjax-offline``) into
   ``book/assets/``: no npm, node or network at build time;
4. ``jupyter-book build . -W -n --keep-going --toc book/generated/_toc.yml``, then
   :func:`external_references` checks that no built page loads anything from the network.

The committed ``_toc.yml`` is never rewritten.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import nbformat
import yaml

from hie_core.errors import UserError
from hie_core.io import atomic_write_bytes, atomic_write_text
from hie_core.losses import LOSS_LABELS, LOSS_NAMES

__all__ = [
    "BOOK_NOTEBOOKS",
    "BookError",
    "build_book",
    "collect_notebooks",
    "experiment_notebooks",
    "fold_code",
    "write_toc",
    "vendor_assets",
    "mathjax_source",
    "external_references",
    "book_size",
]

#: study-level notebooks executed by the study, in book order (each notebooks/<name>.ipynb)
BOOK_NOTEBOOKS = ("intro", "data", "methods", "results", "performance")
#: the committed _toc.yml's entry that stands for "every experiment page"
EXPERIMENTS_GLOB = "book/generated/experiments/*"
#: where build_book writes the study's table of contents (git-ignored, like the pages)
GENERATED_TOC = "book/generated/_toc.yml"
MATHJAX_DISTRIBUTION = "sphinx-mathjax-offline"
MATHJAX_FILE = "tex-svg.js"  # MathJax 3's TeX-to-SVG bundle: one file, no web fonts
_PARAMETER_TAGS = {"parameters", "injected-parameters"}
_REMOVED = {"remove-cell", "remove_cell"}
_NO_INPUT = {"remove-input", "remove_input", "hide-input", "hide_input"}
_SEED_DIR = re.compile(r"seed(\d+)(?:-fold(\d+))?")  # a run folder: seed<k>, or seed<k>-fold<f>


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
        ``{loss: path}`` with the losses in :data:`hie_core.losses.LOSS_NAMES` order.
    """
    study_dir = Path(study_dir)
    found: dict[str, Path] = {}
    for loss in LOSS_NAMES:
        candidates = []
        for run in (study_dir / loss).glob("seed*"):
            match = _SEED_DIR.fullmatch(run.name)
            if match and (run / "train.ipynb").is_file():
                candidates.append((int(match.group(1)), int(match.group(2) or 0), run / "train.ipynb"))
        if not candidates and (study_dir / loss / "train.ipynb").is_file():  # the old layout
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


def _copy_page(src: Path, dst: Path, title: str | None = None, fold: bool = False) -> None:
    """Copy one executed notebook: parameters cells removed, optional title and folded code."""
    nb = nbformat.read(src, as_version=4)
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
    for name, src in pages.items():
        written.append(generated / f"{name}.ipynb")
        _copy_page(src, written[-1], fold=True)
    for loss, src in experiments.items():
        written.append(generated / "experiments" / f"{loss}.ipynb")
        _copy_page(src, written[-1], title=f"Experiment: {LOSS_LABELS.get(loss, loss)}", fold=True)
    return written


def write_toc(root: Path, losses: list[str]) -> Path:
    """Write ``book/generated/_toc.yml``: the committed ``_toc.yml`` with its experiments glob
    replaced by one entry per loss, in the given order.

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
            else:
                chapters.append(entry)
        part["chapters"] = chapters
    if not replaced:
        raise BookError(
            f"{root / '_toc.yml'} has no `- glob: {EXPERIMENTS_GLOB}` chapter for the experiments"
        )
    header = "# Generated by hie_core.report.book.write_toc from _toc.yml: do not edit.\n"
    return atomic_write_text(root / GENERATED_TOC, header + yaml.safe_dump(toc, sort_keys=False))


def mathjax_source() -> Path:
    """MathJax 3's ``tex-svg.js`` as shipped by the installed ``sphinx-mathjax-offline`` wheel.

    Raises:
        BookError: the package is not installed (it is part of the ``book`` extra).
    """
    try:
        dist = metadata.distribution(MATHJAX_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        dist = None
    files = [f for f in (dist.files or []) if f.name == MATHJAX_FILE] if dist else []
    path = Path(dist.locate_file(files[0])) if files else None
    if path is None or not path.is_file():
        raise BookError(
            f"{MATHJAX_DISTRIBUTION} (which ships MathJax 3 for the offline book) is not installed: "
            f"pip install -e '.[book]'"
        )
    return path


def _copy_if_changed(src: Path, dst: Path) -> None:
    if dst.is_file() and dst.stat().st_size == src.stat().st_size and dst.read_bytes() == src.read_bytes():
        return
    atomic_write_bytes(dst, src.read_bytes())


def vendor_assets(root: Path) -> None:
    """Put plotly.min.js and MathJax's tex-svg.js under ``book/assets/``, from Python packages."""
    from hie_core.report.display import plotly_js_path

    assets = Path(root) / "book" / "assets"
    _copy_if_changed(Path(plotly_js_path()), assets / "plotly.min.js")
    _copy_if_changed(mathjax_source(), assets / "mathjax" / MATHJAX_FILE)


_REF = re.compile(
    r"""<(script|link|img|iframe|source)\b[^>]*?\b(src|href)\s*=\s*["']((?:https?:)?//[^"']+)["']""",
    re.IGNORECASE,
)
_CSS_URL = re.compile(r"""url\(\s*["']?((?:https?:)?//[^"')]+)""", re.IGNORECASE)


def external_references(html_dir: Path) -> list[str]:
    """Every script/style/font/image reference to the network in the built HTML and CSS.

    Plain hyperlinks (``<a href="https://...">``) are allowed: they load nothing.
    """
    found = []
    for page in sorted(html_dir.rglob("*.html")):
        text = page.read_text(errors="replace")
        if "THEBE_JS_URL" in text:
            found.append(f"{page.relative_to(html_dir)}: inline script naming the thebe bundle on unpkg")
        for tag, _, url in _REF.findall(text):
            if tag.lower() == "link" and not _is_resource_link(text, url):
                continue
            found.append(f"{page.relative_to(html_dir)}: <{tag}> {url}")
    for sheet in sorted(html_dir.rglob("*.css")):
        for url in _CSS_URL.findall(sheet.read_text(errors="replace")):
            found.append(f"{sheet.relative_to(html_dir)}: url({url})")
    return found


def _is_resource_link(text: str, url: str) -> bool:
    """True when a <link> with this href loads something (stylesheet, font, preload...)."""
    for tag in re.findall(r"<link\b[^>]*>", text, re.IGNORECASE):
        if url in tag:
            rel = re.search(r"""rel\s*=\s*["']([^"']+)""", tag, re.IGNORECASE)
            if rel and rel.group(1).lower() in {"stylesheet", "preload", "prefetch", "modulepreload", "icon"}:
                return True
    return False


def book_size(html_dir: Path) -> tuple[int, tuple[str, int]]:
    """Total bytes of the built book and (largest page, its bytes)."""
    total = sum(p.stat().st_size for p in html_dir.rglob("*") if p.is_file())
    pages = [(str(p.relative_to(html_dir)), p.stat().st_size) for p in html_dir.rglob("*.html")]
    return total, max(pages, key=lambda x: x[1])


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _first_problems(log: Path, count: int = 3) -> str:
    """The first warnings/errors of a build log (what ``-W`` turned into a failure), or its tail."""
    lines = [_ANSI.sub("", line).strip() for line in log.read_text(errors="replace").splitlines()]
    problems = [line for line in lines if "WARNING:" in line or "ERROR:" in line or "CRITICAL:" in line]
    shown = problems[:count] or [line for line in lines if line][-6:]
    more = f" (+{len(problems) - count} more)" if len(problems) > count else ""
    return " | ".join(shown) + more


def build_book(root: Path, study_dir: Path) -> Path:
    """Collect, write the toc, vendor, build with ``-W -n --keep-going`` and check offline-ness.

    The book is built into a staging folder (``_build/.staging-<pid>``) and replaces ``_build/html``
    only when the build passed and the pages reference no network: an interrupted or failed
    build leaves the previous book as it was. The new book holds the pages of this study only
    (a study of two losses leaves no page of a third behind).

    Returns:
        The path of the built ``index.html``.

    Raises:
        BookError: a notebook or package is missing, the build failed or warned (the log,
            ``<study_dir>/book-build.log``, is named), or a page references the network.
    """
    root, study_dir = Path(root).resolve(), Path(study_dir).resolve()
    collect_notebooks(root, study_dir)
    toc = write_toc(root, list(experiment_notebooks(study_dir)))
    vendor_assets(root)
    staging = root / "_build" / f".staging-{os.getpid()}"  # one per process: two builds never share one
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(root / "_build" / ".doctrees", ignore_errors=True)  # left by builds before staging
    jb = shutil.which("jupyter-book", path=str(Path(sys.executable).parent))
    cmd = [jb] if jb else [sys.executable, "-m", "jupyter_book"]
    cmd += ["build", str(root), "-W", "-n", "--keep-going", "--toc", str(toc), "--path-output", str(staging)]
    log = study_dir / "book-build.log"
    with open(log, "w") as fh:
        proc = subprocess.run(cmd, cwd=root, stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise BookError(f"jupyter-book build failed (log: {log}); the previous book is unchanged: "
                        f"{_first_problems(log)}")  # fmt: skip
    built = staging / "_build" / "html"
    refs = external_references(built)
    if refs:
        raise BookError(f"{len(refs)} network reference(s) in the built book, e.g. {refs[:3]}; the previous book is "
                        "unchanged")  # fmt: skip
    html, old = root / "_build" / "html", root / "_build" / ".html-previous"
    shutil.rmtree(old, ignore_errors=True)
    if html.exists():
        html.rename(old)
    built.rename(html)
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)
    return html / "index.html"
