"""The Jupyter Book build: notebooks and table of contents, Sphinx extensions, offline assets, page weight.

The top layer of :mod:`hie_core.report`: :func:`hie_core.report.book.build.build_book` builds the book.
"""
