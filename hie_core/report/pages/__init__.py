"""What each page of the book says and shows, computed from the study's numbers.

Imports :mod:`hie_core.report.analysis` and :mod:`hie_core.report.viewers`, never the book build.
"""
