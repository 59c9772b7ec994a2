"""A Sphinx extension that keeps the book offline: it drops sphinx-thebe's scripts.

Jupyter Book 1 always loads ``sphinx_thebe``, which adds an inline script naming
``https://unpkg.com/thebe...`` (fetched only on a click, but a network reference all the
same) and, in the Sphinx/Jupyter Book versions we use, adds it twice on each page, which
raises ``SyntaxError: Identifier 'THEBE_JS_URL' has already been declared`` in the
browser. The book has no live-code button, so both scripts go.
"""

from __future__ import annotations

from typing import Any


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


def setup(app) -> dict:
    app.connect("env-before-read-docs", _drop_thebe, priority=900)  # after sphinx-thebe's own hook
    return {"parallel_read_safe": True, "parallel_write_safe": True}
