"""The reference list's style: sorted by first author's surname as a reader spells it.

pybtex's ``alpha`` style (sphinxcontrib-bibtex's default) sorts on the raw BibTeX name, so a
surname written with LaTeX accents (``{\\c{C}}i{\\c{c}}ek``) sorts after every plain letter,
after Wilcoxon. :class:`SurnameSorting` sorts on the decoded name without accents ("cicek"),
then the year and the title. The formatting is ``alpha``'s (the labels are hidden by
``book/assets/book.css``; citations read "(Author et al., year)"), under the name
:data:`STYLE`, which ``_config.yml`` sets as ``bibtex_default_style``.

Titles are set in sentence case, as ``alpha`` does: a word keeps its capitals only inside
braces in ``book/references.bib`` (``{Boston}``, ``{Swin}``).
"""

from __future__ import annotations

import codecs
import re
import unicodedata

import latexcodec  # noqa: F401  (registers the "ulatex" codec)
from pybtex.plugin import register_plugin
from pybtex.style.formatting.alpha import Style as AlphaStyle
from pybtex.style.sorting.author_year_title import SortingStyle

__all__ = ["STYLE", "SORTING", "SurnameSorting", "SurnameStyle", "plain_key", "setup"]

#: the formatting style's name in pybtex (``bibtex_default_style`` in ``_config.yml``)
STYLE = "hie_surname"
#: the sorting style's name in pybtex
SORTING = "hie_surname"


def plain_key(latex: str) -> str:
    """A BibTeX string as a sort key: LaTeX decoded, braces dropped, accents stripped, lower case.

    >>> plain_key("{\\\\c{C}}i{\\\\c{c}}ek")
    'cicek'
    """
    text = codecs.decode(latex, "ulatex")
    text = re.sub(r"[{}]", "", text)
    text = unicodedata.normalize("NFKD", text)
    return "".join(c for c in text if not unicodedata.combining(c)).lower().strip()


class SurnameSorting(SortingStyle):
    """``author_year_title`` on plain keys: surnames, then given names, then year and title."""

    def sorting_key(self, entry):
        author, year, title = super().sorting_key(entry)
        return (plain_key(author), year, plain_key(title))


class SurnameStyle(AlphaStyle):
    """pybtex's ``alpha`` formatting, sorted by :class:`SurnameSorting`."""

    default_sorting_style = SORTING


register_plugin("pybtex.style.sorting", SORTING, SurnameSorting, force=True)
register_plugin("pybtex.style.formatting", STYLE, SurnameStyle, force=True)


def setup(app) -> dict:
    """A Sphinx extension: importing this module registers the style (``_config.yml`` lists it)."""
    return {"parallel_read_safe": True, "parallel_write_safe": True}
