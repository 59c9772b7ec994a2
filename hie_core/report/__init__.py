"""Reporting: the book's tables, figures, prose and slice viewers, and the book build."""
