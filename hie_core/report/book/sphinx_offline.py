"""A Sphinx extension that keeps the book offline: it drops sphinx-thebe's scripts.

Jupyter Book 1 always loads ``sphinx_thebe``, which adds an inline script naming
``https://unpkg.com/thebe...`` (fetched only on a click, but a network reference all the
same) and, in the Sphinx/Jupyter Book versions we use, adds it twice on each page, which
raises a ``SyntaxError`` in the browser (the constant that holds the bundle's address is
declared twice). The book has no live-code button, so both scripts go.

It also reads ``html_search_scorer`` (the book's search scorer, ``_config.yml``) from the source
folder: Sphinx opens that path from the working directory, so a build started elsewhere would
not find it.

And it keeps napoleon from reading a type into the first line of a constant's or property's
docstring: napoleon takes everything before the first colon of that line as the type
(``#: The seed study's protocol (arXiv:2502.09148), ...`` would be "of type *The seed study's
protocol (arXiv*"), while this package writes types as annotations and its docstrings in prose.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["setup"]


def _is_thebe(entry: Any) -> bool:
    if isinstance(entry, tuple):  # registry: (filename, attributes)
        filename, attributes = entry[0], entry[1] if len(entry) > 1 else {}
    else:  # builder: sphinx's _JavaScript
        filename, attributes = getattr(entry, "filename", None), getattr(entry, "attributes", {})
    body = str(attributes.get("body", "")) if isinstance(attributes, dict) else ""
    return "thebe" in str(filename or "") or "THEBE_JS_URL" in body


def _drop_thebe(app, env, docnames) -> None:
    app.registry.js_files[:] = [js for js in app.registry.js_files if not _is_thebe(js)]
    files = getattr(app.builder, "_js_files", None)
    if files is not None:
        files[:] = [js for js in files if not _is_thebe(js)]


def _scorer_from_source(app, config) -> None:
    """Sphinx ``config-inited``: a relative ``html_search_scorer`` is relative to the source folder."""
    scorer = config.html_search_scorer
    if scorer and not Path(scorer).is_absolute():
        config.html_search_scorer = str(Path(app.srcdir) / scorer)


def _no_inline_type(app, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    """``autodoc-process-docstring``, before napoleon: a leading ": " gives napoleon an empty type,
    so that the first line of a constant's or property's docstring stays prose."""
    if what in ("data", "attribute", "property") and lines and ":" in lines[0]:
        lines[0] = ": " + lines[0]


def setup(app) -> dict:
    app.connect("config-inited", _scorer_from_source)
    app.connect("autodoc-process-docstring", _no_inline_type, priority=400)  # napoleon's is 500
    app.connect("env-before-read-docs", _drop_thebe, priority=900)  # after sphinx-thebe's own hook
    return {"parallel_read_safe": True, "parallel_write_safe": True}
