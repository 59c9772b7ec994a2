"""MathJax for the offline book: only the components its pages use, 1.7 MB instead of 2.1 MB.

MathJax 3's combined ``tex-svg.js`` (2.1 MB) holds its contextual menu (0.4 MB) beside the TeX
input and the SVG output. The book loads ``startup.js`` instead, which loads the TeX input (with
the AMS, newcommand and autoload packages), the SVG output with its font, and the assistive
MathML that screen readers read (:data:`MATHJAX_CONFIG`, set as ``mathjax3_config`` in
``_config.yml``); a TeX package that a page's maths needs beyond those (``\\boldsymbol``, say)
is loaded on demand from ``input/tex/extensions/``. :func:`vendor_mathjax` copies these files
from the installed ``sphinx-mathjax-offline`` package (no npm or network) into
``book/assets/mathjax/`` and removes anything else there. SVG output needs no web fonts, so the
maths renders from ``file://`` too.
"""

from __future__ import annotations

from pathlib import Path

from hie_core.io import atomic_write_bytes

__all__ = ["MATHJAX_COMPONENTS", "MATHJAX_CONFIG", "MATHJAX_ENTRY", "ON_DEMAND", "vendor_mathjax"]

#: the script a page loads (``mathjax_path`` is ``mathjax/`` + this)
MATHJAX_ENTRY = "startup.js"
#: what ``startup.js`` loads on every page with maths, relative to the MathJax folder
MATHJAX_COMPONENTS = (
    "core.js",
    "input/tex.js",
    "output/svg.js",
    "output/svg/fonts/tex.js",
    "a11y/assistive-mml.js",
)
#: TeX packages that the autoload package fetches only when a page's maths uses them
ON_DEMAND = "input/tex/extensions"
#: ``window.MathJax`` before ``startup.js``: the components to load (``_config.yml``'s ``mathjax3_config``)
MATHJAX_CONFIG = {"loader": {"load": ["input/tex", "output/svg", "a11y/assistive-mml"]}}


def vendor_mathjax(source: Path, target: Path) -> list[str]:
    """Copy :data:`MATHJAX_ENTRY`, :data:`MATHJAX_COMPONENTS` and :data:`ON_DEMAND` from a MathJax 3
    distribution folder (``source``, the one holding ``tex-svg.js``) to ``target``; delete every
    other file under ``target`` (a ``tex-svg.js`` of an older build, say).

    Returns:
        The files now under ``target``, relative to it.

    Raises:
        FileNotFoundError: ``source`` lacks a component.
    """
    source, target = Path(source), Path(target)
    wanted = [MATHJAX_ENTRY, *MATHJAX_COMPONENTS]
    wanted += sorted(p.relative_to(source).as_posix() for p in (source / ON_DEMAND).rglob("*.js"))
    for name in wanted:
        src, dst = source / name, target / name
        if not src.is_file():
            raise FileNotFoundError(f"{src}: MathJax component missing from the installed package")
        if (
            not dst.is_file()
            or dst.stat().st_size != src.stat().st_size
            or dst.read_bytes() != src.read_bytes()
        ):
            atomic_write_bytes(dst, src.read_bytes())
    keep = set(wanted)
    for path in sorted(target.rglob("*")) if target.is_dir() else []:
        if path.is_file() and path.relative_to(target).as_posix() not in keep:
            path.unlink()
    return wanted
