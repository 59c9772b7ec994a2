"""A Sphinx extension that numbers the book's captioned tables as tables, not as figures.

myst-nb gives a notebook output a number and a caption through the cell metadata
``mystnb: figure: {caption, name}``, which makes a *figure* node, so Sphinx numbers a table
shown that way as "Fig. N". Every table of the book is named ``tbl-...`` (figures
``fig-...``); this extension turns those figure nodes into :class:`captioned_table` nodes,
registered as enumerable in Sphinx's ``table`` family: they are numbered "Table N" in
sequence with any other table, ``{numref}`` writes "Table N", and the HTML is a figure's.
"""

from __future__ import annotations

from docutils import nodes
from sphinx.transforms import SphinxTransform

__all__ = ["TABLE_PREFIX", "captioned_table", "setup"]

#: Names of captioned outputs that are tables start with this.
TABLE_PREFIX = "tbl-"


class captioned_table(nodes.figure):  # noqa: N801 - docutils node classes are lower case
    """A captioned notebook output that is a table (numbered with the tables)."""


class RetypeTables(SphinxTransform):
    """Replace each figure named ``tbl-...`` by a :class:`captioned_table` with the same content."""

    default_priority = 210  # while reading, before labels and numbers are collected

    def apply(self, **kwargs) -> None:
        for figure in list(self.document.findall(nodes.figure)):
            if type(figure) is not nodes.figure or not any(
                n.startswith(TABLE_PREFIX) for n in figure["names"]
            ):
                continue
            table = captioned_table(figure.rawsource, *figure.children, **figure.attributes)
            figure.replace_self(table)
            for node_id in table["ids"]:
                self.document.ids[node_id] = table


def _visit(translator, node) -> None:
    translator.visit_figure(node)


def _depart(translator, node) -> None:
    translator.depart_figure(node)


def setup(app) -> dict:
    app.add_enumerable_node(captioned_table, "table", html=(_visit, _depart), latex=(_visit, _depart),
                            text=(_visit, _depart))  # fmt: skip
    app.add_transform(RetypeTables)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
