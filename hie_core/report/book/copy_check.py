"""A copy editor's scan of built pages: aliases of the book's names and number-copy slips.

Every loss, metric and unit has one display name (:data:`hie_core.methods.DISPLAY_NAMES`); the
names a page must not use instead are :data:`hie_core.methods.ALIASES`. :func:`aliases_in_book`
reads every page of a built book and lists each alias with the sentence it stands in, so a test
(or a person, ``python -m hie_core.report.book.copy_check _build/html``) finds "Hausdorff DT" or
"5 ml" on any page. :func:`copy_slips` finds the number slips the book promises not to make:
a count of one with a plural noun ("1 cases"), ``+-`` for ±, "-0.000".

Only what a reader reads is scanned: text set as code (``<code>``, ``<pre>``: names a reader
types), scripts, styles and formulas (MathJax source, ``.math``) are left out, and so are the
API reference pages (``book/api*``), whose text is the package's docstrings.
"""

from __future__ import annotations

import re
import sys
from html.parser import HTMLParser
from pathlib import Path

from hie_core.methods import ALIASES

__all__ = ["aliases_in_book", "aliases_in_page", "copy_slips", "figure_problems", "page_text", "reader_pages"]

#: Elements whose text a reader does not read as prose.
_SKIPPED = {"code", "pre", "script", "style", "kbd", "samp", "svg", "math", "mjx-container", "head", "title"}
_INLINE = {"a", "abbr", "b", "em", "i", "small", "span", "strong", "sub", "sup", "u", "wbr", "cite", "mark"}
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
#: Class names of formulas (Sphinx's ``math`` / MathJax's) and of the theme's navigation.
_SKIPPED_CLASSES = {
    "math",
    "MathJax",
    "MathJax_SVG",
    "bd-sidebar-primary",
    "bd-sidebar-secondary",
    "bd-header",
}
_ALIASES = [(name, re.compile(pattern)) for name, patterns in ALIASES.items() for pattern in patterns]
_PLURAL_ONE = re.compile(
    r"(?<![\d.,])\b1 (cases|seeds|runs|lesions|folds|epochs|voxels|slices|patients|methods)\b"
)
_SLIPS = (
    (_PLURAL_ONE, "a count of one with a plural noun"),
    (re.compile(r"\+-(?=\s?\d|margin)|\+/-"), "'+-' for '±'"),
    (re.compile(r"(?<![\w.])-0\.0+(?![\d])"), "a negative zero"),
)


class _Text(HTMLParser):
    """Collects the text outside :data:`_SKIPPED` elements and :data:`_SKIPPED_CLASSES`."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._stack: list[bool] = []  # per open element: does it start a skipped region?
        self._skip = 0

    def handle_starttag(self, tag, attrs) -> None:
        if tag not in _INLINE:  # a block (cell, paragraph, line break) separates words; <wbr> does not
            self.parts.append(" ")
        if tag in _VOID:
            return
        classes = set((dict(attrs).get("class") or "").split())
        skip = tag in _SKIPPED or bool(classes & _SKIPPED_CLASSES)
        self._stack.append(skip)
        self._skip += skip

    def handle_endtag(self, tag) -> None:
        if tag not in _INLINE:
            self.parts.append(" ")
        if tag in _VOID or not self._stack:
            return
        self._skip -= self._stack.pop()

    def handle_data(self, data) -> None:
        if not self._skip:
            self.parts.append(data)


def page_text(page_html: str) -> str:
    """The text a reader reads on a page: its prose, headings, tables and captions, as one string
    with whitespace collapsed; code, scripts, styles and formulas left out."""
    parser = _Text()
    parser.feed(page_html)
    parser.close()
    return re.sub(r"\s+", " ", "".join(parser.parts)).strip()


def _context(text: str, match: re.Match, width: int = 40) -> str:
    return text[max(0, match.start() - width) : match.end() + width]


def aliases_in_page(page_html: str) -> list[str]:
    """Each alias of a display name on the page, as ``"'Hausdorff DT' for HausdorffDT: ...context..."``."""
    text = page_text(page_html)
    return [
        f"{match.group(0)!r} for {name}: ...{_context(text, match)}..."
        for name, pattern in _ALIASES
        for match in pattern.finditer(text)
    ]


def copy_slips(page_html: str) -> list[str]:
    """Each number slip on the page: "1 cases", "+-" for ±, "-0.000", with its context."""
    text = page_text(page_html)
    return [f"{what} {match.group(0)!r}: ...{_context(text, match)}..." for pattern, what in _SLIPS
            for match in pattern.finditer(text)]  # fmt: skip


def reader_pages(html_dir: Path) -> list[str]:
    """The pages of a built book a reader reads (every ``.html`` but the theme's static files, the
    API reference and the generated indexes), relative to ``html_dir``."""
    return sorted(
        path.relative_to(html_dir).as_posix()
        for path in Path(html_dir).rglob("*.html")
        if "_static" not in path.parts
        and not path.name.startswith(("api", "genindex", "py-modindex", "search"))
    )


def aliases_in_book(html_dir: str | Path, slips: bool = False) -> dict[str, list[str]]:
    """Every alias (and, with ``slips``, every number slip) on every reader page of a built book.

    Args:
        html_dir: The built book (``_build/html``).
        slips: Also report :func:`copy_slips`.

    Returns:
        Page (relative to ``html_dir``) -> its findings; pages without any are left out.
    """
    html_dir = Path(html_dir)
    found: dict[str, list[str]] = {}
    for page in reader_pages(html_dir):
        text = (html_dir / page).read_text(encoding="utf-8", errors="replace")
        hits = aliases_in_page(text) + (copy_slips(text) if slips else [])
        if hits:
            found[page] = hits
    return found


if __name__ == "__main__":  # pragma: no cover - a convenience for a person
    for name, hits in aliases_in_book(
        Path(sys.argv[1] if len(sys.argv) > 1 else "_build/html"), slips=True
    ).items():
        print(name)
        for hit in hits:
            print("   ", hit)


_IMAGE_PATH = re.compile(r"(^|/)_images/|\.(png|jpe?g|svg|gif|webp)$", re.IGNORECASE)
#: Alt texts that name the kind of thing and not what it shows (BookFigure's fallback without titles).
_BARE_ALTS = frozenset({"figure", "image", "plot", "chart", "diagram", "png"})


def figure_problems(page_html: str) -> list[str]:
    """Every table, image and plotly figure of a page's article that is not in a numbered, captioned
    figure (Sphinx's ``<figure>`` with a ``figcaption`` holding its "Fig. N" / "Table N", or a MyST
    ``{table}``'s ``<caption>``), and every
    image whose alt text is missing or a file path.

    Needs BeautifulSoup (installed with the book's extras).
    """
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(page_html, "html.parser")
    article = soup.find("article") or soup
    found = []
    for img in article.find_all("img"):
        alt = (img.get("alt") or "").strip()
        if not alt or _IMAGE_PATH.search(alt):
            found.append(f"image alt text {alt[:60]!r} is {'a path' if alt else 'missing'}")
        elif alt.lower().rstrip(".") in _BARE_ALTS:
            found.append(f"image alt text {alt!r} does not describe the image")
    items = [*article.find_all("table"), *article.find_all("img"),
             *article.find_all("div", class_="plotly-graph-div")]  # fmt: skip
    for item in items:
        if item.find_parent("table") is not None:  # a table inside a table's cell is the outer one's
            continue
        figure = item.find_parent("figure")
        caption = figure.find("figcaption") if figure is not None else None
        if caption is None and item.name == "table":  # a MyST {table} directive: Sphinx's <caption>
            caption = item.find("caption", recursive=False)
        if caption is None or caption.find(class_="caption-number") is None:
            text = item.get("alt") or item.get("id") or item.get_text(" ", strip=True)
            found.append(f"{item.name} without a numbered caption: {str(text)[:60]!r}")
    return found
