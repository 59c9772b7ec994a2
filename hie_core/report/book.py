"""Build the Jupyter Book from a study's executed notebooks, offline.

:func:`build_book` copies the executed notebooks of a study folder into
``book/generated/`` (hiding the parameters cells), vendors plotly.js (from the installed
plotly package) and MathJax 3 (``tex-svg.js``, from the npm registry's ``mathjax``
package, self-contained: no web fonts) into ``book/assets/``, runs
``jupyter-book build . -W -n --keep-going`` and then checks that no built page loads a
script, stylesheet, font or image from the network.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import nbformat

from hie_core.losses import LOSS_NAMES

__all__ = [
    "BOOK_NOTEBOOKS",
    "build_book",
    "collect_notebooks",
    "vendor_assets",
    "external_references",
    "book_size",
]

#: study-level notebooks executed by the study, in book order (each notebooks/<name>.ipynb)
BOOK_NOTEBOOKS = ("intro", "data", "methods", "results", "performance")
MATHJAX_VERSION = "3.2.2"
_HIDDEN_TAGS = {"parameters", "injected-parameters"}


def _hide_parameters(src: Path, dst: Path, title: str | None = None) -> None:
    nb = nbformat.read(src, as_version=4)
    if title is not None and nb.cells and nb.cells[0].cell_type == "markdown":
        first, _, rest = nb.cells[0].source.partition("\n")
        if first.startswith("# "):
            nb.cells[0].source = f"# {title}\n{rest}"
    for cell in nb.cells:
        tags = set(cell.get("metadata", {}).get("tags", []))
        if tags & _HIDDEN_TAGS:
            cell.metadata["tags"] = sorted(tags | {"remove-cell"})
    dst.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, dst)


def collect_notebooks(root: Path, study_dir: Path) -> list[Path]:
    """Copy the study's executed notebooks to ``book/generated/``; return what was copied."""
    generated = root / "book" / "generated"
    if generated.exists():
        shutil.rmtree(generated)
    sources = {f"{name}.ipynb": study_dir / "book" / f"{name}.ipynb" for name in BOOK_NOTEBOOKS}
    sources.update({f"experiments/{loss}.ipynb": study_dir / loss / "train.ipynb" for loss in LOSS_NAMES})
    missing = [str(p) for p in sources.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError("executed notebooks missing for the book: " + ", ".join(missing))
    copied = []
    for rel, src in sources.items():
        loss = rel.split("/")[1].removesuffix(".ipynb") if rel.startswith("experiments/") else None
        _hide_parameters(src, generated / rel, title=f"Experiment: {loss}" if loss else None)
        copied.append(generated / rel)
    return copied


def _vendor_mathjax(target: Path) -> None:
    if (target / "tex-svg.js").is_file():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm not found: it is needed once to vendor MathJax for the offline book")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([npm, "pack", f"mathjax@{MATHJAX_VERSION}", "--silent", "--pack-destination", tmp],
                       check=True, capture_output=True, timeout=300)  # fmt: skip
        tarball = next(Path(tmp).glob("mathjax-*.tgz"))
        with tarfile.open(tarball) as tar:
            member = tar.getmember("package/es5/tex-svg.js")
            data = tar.extractfile(member).read()
    target.mkdir(parents=True, exist_ok=True)
    (target / "tex-svg.js").write_bytes(data)


def vendor_assets(root: Path) -> None:
    """Put plotly.min.js and MathJax's tex-svg.js under ``book/assets/``."""
    from hie_core.report.viewers import plotly_js_path

    assets = root / "book" / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(plotly_js_path(), assets / "plotly.min.js")
    _vendor_mathjax(assets / "mathjax")


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


def build_book(root: Path, study_dir: Path) -> Path:
    """Collect, vendor, build with ``-W -n --keep-going`` and check offline-ness.

    Returns:
        The path of the built ``index.html``.

    Raises:
        RuntimeError: the build failed or warned, or a page references the network.
    """
    root, study_dir = Path(root).resolve(), Path(study_dir).resolve()
    collect_notebooks(root, study_dir)
    vendor_assets(root)
    cmd = [sys.executable, "-m", "jupyter_book", "build", str(root), "-W", "-n", "--keep-going"]
    jb = shutil.which("jupyter-book", path=str(Path(sys.executable).parent))
    if jb:
        cmd = [jb, "build", str(root), "-W", "-n", "--keep-going"]
    log = study_dir / "book-build.log"
    with open(log, "w") as fh:
        proc = subprocess.run(cmd, cwd=root, stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-6:])
        raise RuntimeError(f"jupyter-book build failed (log: {log}): {tail}")
    html = root / "_build" / "html"
    refs = external_references(html)
    if refs:
        raise RuntimeError(f"{len(refs)} network reference(s) in the built book, e.g. {refs[:3]}")
    return html / "index.html"
