"""Every table the book's hand-written pages hold is numbered and captioned (issue 27).

A Markdown pipe table outside a MyST ``{table}`` directive with a caption and a ``:name:`` renders
as a bare table, which the browser test's copy check (``figure_problems``) flags; this finds it in
the source in milliseconds.
"""

from __future__ import annotations

import re
from pathlib import Path

BOOK = Path(__file__).resolve().parents[1] / "book"
_RULE = re.compile(r"^\|\s*:?-{3,}")  # a pipe table's header rule: |---|---|


def unnumbered_tables(text: str) -> list[int]:
    """Line numbers (1-based) of pipe tables not inside a ```{table} <caption> directive with a ``:name:``."""
    lines = text.splitlines()
    found, fence = [], None  # fence: (caption, has_name) of the open {table} directive
    for i, line in enumerate(lines):
        if line.startswith("```{table}"):
            fence = [line.removeprefix("```{table}").strip(), False]
        elif fence is not None and line.startswith(":name:") and line.split(":name:")[1].strip():
            fence[1] = True
        elif fence is not None and line.strip() == "```":
            fence = None
        elif _RULE.match(line) and not (fence and fence[0] and fence[1]):
            found.append(i)  # the header line above the rule
    return found


def test_unnumbered_tables_finds_a_bare_table_and_accepts_a_named_one() -> None:
    bare = "Text:\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"
    named = "```{table} Two numbers.\n:name: tbl-x\n\n| a | b |\n|---|---|\n| 1 | 2 |\n```\n"
    unnamed = "```{table} Two numbers.\n\n| a | b |\n|---|---|\n| 1 | 2 |\n```\n"
    assert unnumbered_tables(bare) == [3] and unnumbered_tables(named) == []
    assert unnumbered_tables(unnamed) == [3]


def test_every_table_of_the_book_pages_is_numbered_and_captioned() -> None:
    pages = sorted(BOOK.glob("*.md"))
    assert any(p.name == "reproduce.md" for p in pages)
    problems = {p.name: lines for p in pages if (lines := unnumbered_tables(p.read_text()))}
    assert problems == {}, f"pipe tables outside a named {{table}} directive (file: line numbers): {problems}"
