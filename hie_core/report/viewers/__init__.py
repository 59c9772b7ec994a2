"""Pictures any page can use: tables and figures for the book, slice viewers, montages, charts.

Imports :mod:`hie_core.report.analysis` and nothing above it (no page, no book build).
"""
