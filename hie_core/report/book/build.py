"""Build the Jupyter Book from a study's executed notebooks, offline and with only Python.

:func:`build_book` runs four steps:

1. :func:`~hie_core.report.book.contents.collect_notebooks` copies the executed notebooks of a study folder into
   ``book/generated/``: the study pages of ``BOOK_NOTEBOOKS`` (``runs/<study>/book/<name>.ipynb``) with their
   code folded away (:func:`~hie_core.report.book.contents.fold_code`), and one page per loss that the study has
   (:func:`~hie_core.report.book.contents.experiment_notebooks`), titled "Experiment: <loss>", with its code visible;
2. :func:`~hie_core.report.book.contents.write_toc` writes ``book/generated/_toc.yml`` from the committed ``_toc.yml``, whose
   appendix's experiments are a glob, listing the experiment pages in the order of Table 1;
   :func:`hie_core.report.book.meta.write_build_files` writes ``book/generated/_config.yml``
   (the committed one with a title naming the study's data), the "Cite this book" block and
   how to get the code the book was built from;
3. :func:`vendor_assets` copies plotly.js (from the installed ``plotly``) and the MathJax 3
   components the pages load (from the installed ``sphinx-mathjax-offline``) into
   ``book/assets/``: no npm, node or network at build time;
4. ``jupyter-book build . -W -n --keep-going --toc book/generated/_toc.yml --config
   book/generated/_config.yml``, then
   :func:`external_references` checks that no built page loads anything from the network.

The committed ``_toc.yml`` is never rewritten. The module is also a Sphinx extension (listed in
``_config.yml``, see :func:`setup`): plotly.js only on the pages with a plotly figure, and a
search page that works from ``file://``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from hie_core.io import atomic_write_bytes, atomic_write_text
from hie_core.report.book.contents import BookError, collect_notebooks, experiment_notebooks, write_toc

__all__ = [
    "build_book",
    "vendor_assets",
    "mathjax_source",
    "external_references",
    "book_size",
    "book_dir",
    "BOOK_DIR_ENV",
    "BOOK_SOURCES",
    "page_scripts",
    "write_page_text",
    "setup",
]

#: environment variable naming a folder to build the book in, outside the project (see book_dir)
BOOK_DIR_ENV = "HIE_BOOK_DIR"
#: the committed sources of the book, copied when it is built outside the project
BOOK_SOURCES = ("_config.yml", "_toc.yml", "book")
MATHJAX_DISTRIBUTION = "sphinx-mathjax-offline"
MATHJAX_FILE = (
    "tex-svg.js"  # how mathjax_source finds the package's MathJax folder (the pages load its parts)
)
PLOTLY_JS = "plotly.min.js"  # vendored into book/assets/, loaded by the pages that draw a plotly figure
PLOTLY_DIV = 'class="plotly-graph-div"'  # how a page's HTML shows it draws a plotly figure
PAGE_TEXT_JS = "hie-page-text.js"  # the pages' text, for search excerpts from file:// (see setup)


def mathjax_source() -> Path:
    """MathJax 3's ``tex-svg.js`` as shipped by the installed ``sphinx-mathjax-offline`` wheel
    (its folder holds the components :func:`vendor_assets` copies).

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
    """Put plotly.min.js and MathJax's components (:mod:`hie_core.report.book.mathjax`) under
    ``book/assets/``, from Python packages, and the committed cartesian plotly.js bundle
    (:mod:`hie_core.report.book.plotly_bundle`) when it fits."""
    from hie_core.report.book.mathjax import vendor_mathjax
    from hie_core.report.book.plotly_bundle import vendor_cartesian
    from hie_core.report.viewers.display import plotly_js_path

    assets = Path(root) / "book" / "assets"
    _copy_if_changed(Path(plotly_js_path()), assets / PLOTLY_JS)
    vendor_cartesian(root, assets / PLOTLY_JS)  # the 1.5 MB bundle, when it matches the installed plotly
    vendor_mathjax(mathjax_source().parent, assets / "mathjax")  # the components the pages load


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


def book_dir(out_dir: Path | str | None = None) -> Path | None:
    """Where :func:`build_book` puts a book built outside the project: ``out_dir``, else
    ``$HIE_BOOK_DIR`` (tests set it to a temporary folder), else ``None`` (the project itself)."""
    chosen = out_dir if out_dir not in (None, "") else os.environ.get(BOOK_DIR_ENV) or None
    return Path(chosen).expanduser().resolve() if chosen else None


def _stage_sources(root: Path, source: Path) -> Path:
    """Copy the book's committed sources (:data:`BOOK_SOURCES`, not ``book/generated``) to ``source``."""
    shutil.rmtree(source, ignore_errors=True)
    source.mkdir(parents=True)
    for name in BOOK_SOURCES:
        src = root / name
        if src.is_dir():
            shutil.copytree(src, source / name, ignore=shutil.ignore_patterns("generated"))
        elif src.is_file():
            shutil.copy2(src, source / name)
    return source


def build_book(root: Path, study_dir: Path, out_dir: Path | str | None = None) -> Path:
    """Collect, write the toc, vendor, build with ``-W -n --keep-going`` and check offline-ness.

    The book is built into a staging folder (``.staging-<pid>`` beside the HTML folder) and
    replaces the HTML folder only when the build passed and the pages reference no network: an
    interrupted or failed build leaves the previous book as it was. The new book holds the pages
    of this study only (a study of two losses leaves no page of a third behind).

    Args:
        root: the project (its ``_config.yml``, ``_toc.yml`` and ``book/``).
        study_dir: the study folder, ``runs/<study>``.
        out_dir: build outside the project (default ``$HIE_BOOK_DIR``, see :func:`book_dir`):
            the sources are copied to ``<out_dir>/source``, the notebooks collected there, and
            the HTML written to ``<out_dir>/html``; nothing under ``root`` is written. Without
            it: ``root/book/generated`` and ``root/_build/html``.

    Returns:
        The path of the built ``index.html``.

    Raises:
        BookError: a notebook or package is missing, the build failed or warned (the log,
            ``<study_dir>/book-build.log``, is named), or a page references the network.
    """
    from hie_core.report.book.meta import write_build_files

    root, study_dir = Path(root).resolve(), Path(study_dir).resolve()
    project = root
    outside = book_dir(out_dir)
    if outside is not None:
        root, html = _stage_sources(root, outside / "source"), outside / "html"
    else:
        html = root / "_build" / "html"
    collect_notebooks(root, study_dir)
    toc = write_toc(root, list(experiment_notebooks(study_dir)))
    config = write_build_files(root, study_dir, project)  # the title, "cite this book", the code's origin
    vendor_assets(root)
    staging = html.parent / f".staging-{os.getpid()}"  # one per process: two builds never share one
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(html.parent / ".doctrees", ignore_errors=True)  # left by builds before staging
    jb = shutil.which("jupyter-book", path=str(Path(sys.executable).parent))
    cmd = [jb] if jb else [sys.executable, "-m", "jupyter_book"]
    cmd += [
        "build",
        str(root),
        "-W",
        "-n",
        "--keep-going",
        "--toc",
        str(toc),
        "--config",
        str(config),
        "--path-output",
        str(staging),
    ]
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
    old = html.parent / ".html-previous"
    shutil.rmtree(old, ignore_errors=True)
    if html.exists():
        html.rename(old)
    built.rename(html)
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)
    return html / "index.html"


# --- The Sphinx extension: per-page scripts and an offline search page -------------------------

#: On the search page: from ``file://`` the browser forbids the fetch of each result's page
#: that Sphinx's search makes for its excerpt, so fetch answers from the text that
#: :func:`write_page_text` stored (a script, which file:// may load), and a note says so.
_FILE_SEARCH = """
if (location.protocol === 'file:') {
  const pageFetch = window.fetch;
  window.fetch = (url, ...rest) => {
    const root = new URL(document.documentElement.dataset.content_root || './', location.href).href;
    const page = new URL(String(url), location.href).href.split('#')[0];
    const doc = page.startsWith(root) ? page.slice(root.length).replace(/\\.html$/, '') : null;
    const text = (window.HIE_PAGE_TEXT || {})[doc];
    if (text === undefined) return pageFetch(url, ...rest);
    const main = document.createElement('div');
    main.setAttribute('role', 'main');
    main.textContent = text;
    return Promise.resolve(new Response(main.outerHTML, {headers: {'Content-Type': 'text/html'}}));
  };
  document.addEventListener('DOMContentLoaded', () => {
    const note = document.createElement('p');
    note.className = 'hie-search-note';
    note.textContent = 'This book is open from a file: search runs on the copy of each page\\'s text shipped '
      + 'with the book. Over a local web server (python -m http.server -d _build/html) it reads the pages '
      + 'themselves.';
    const form = document.querySelector('#search-results') || document.querySelector('form');
    if (form) form.parentNode.insertBefore(note, form);
  });
}
"""


def page_scripts(app, pagename: str, templatename: str, context: dict, doctree) -> None:
    """Sphinx ``html-page-context``: plotly.js on the pages that draw a plotly figure only (the
    cartesian bundle where it draws every trace: :func:`hie_core.report.book.plotly_bundle.page_bundle`), and
    the offline search script on the search page; records each page's text for the latter."""
    from hie_core.report.book.plotly_bundle import CARTESIAN_JS, page_bundle

    cartesian = (Path(app.srcdir) / "book" / "assets" / CARTESIAN_JS).is_file()
    bundle = page_bundle(context.get("body", ""), PLOTLY_JS, cartesian)  # None without a figure_html output
    if bundle:
        app.add_js_file(bundle)
    if pagename == "search":
        app.add_js_file(PAGE_TEXT_JS)
        app.add_js_file(None, body=_FILE_SEARCH)
    if doctree is not None:
        from docutils import nodes

        words = (t.astext() for t in doctree.findall(nodes.Text) if not isinstance(t.parent, (nodes.raw,)))
        texts = app.builder.__dict__.setdefault("hie_page_text", {})
        texts[pagename] = re.sub(r"\s+", " ", " ".join(words)).strip()


def write_page_text(app, exception) -> None:
    """Sphinx ``build-finished``: ``_static/hie-page-text.js``, each page's text for search excerpts."""
    texts = getattr(app.builder, "hie_page_text", None)
    if exception is not None or texts is None:
        return
    body = json.dumps(dict(sorted(texts.items())), ensure_ascii=False, separators=(",", ":"))
    atomic_write_text(Path(app.outdir) / "_static" / PAGE_TEXT_JS, f"window.HIE_PAGE_TEXT = {body};\n")


def setup(app) -> dict:
    """Register :func:`page_scripts` and :func:`write_page_text` (``_config.yml`` lists this module)."""
    app.connect("html-page-context", page_scripts)
    app.connect("build-finished", write_page_text)
    return {"parallel_read_safe": True, "parallel_write_safe": False}
