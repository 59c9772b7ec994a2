"""The copy editor's scan (hie_core.report.book.copy_check) on small HTML pages and book folders."""

from __future__ import annotations

from pathlib import Path

from hie_core.methods import ALIASES, COLUMN_LABELS, DISPLAY_NAMES, column_label
from hie_core.report.book.copy_check import (
    aliases_in_book,
    aliases_in_page,
    copy_slips,
    figure_problems,
    page_text,
)

_PAGE = """<html><head><title>Hausdorff DT</title></head><body>
<nav class="bd-sidebar-primary">HDT</nav>
<article><h1>Results</h1>
<p>The Hausdorff distance transform loss and HDT collapse; Dice Focal does not.</p>
<table><tr><th>Dice<wbr>Focal+<wbr>HDT</th><th>volume (ml)</th></tr>
<tr><td>Tversky+HDT</td><td>0.5 ml</td></tr></table>
<p>The hybrid adds <span class="math">\\(\\log(1 + L_HD)\\)</span> and log(1 + HDT).</p>
<pre>papermill train.ipynb -p loss hdt  # HDT</pre><p>Use <code>Hausdorff DT</code> here.</p>
<p>1 cases, 2 case, +-0.02 Dice, -0.000 and 21 cases.</p>
</article></body></html>"""


def test_page_text_keeps_prose_and_tables_and_drops_code_formulas_and_navigation() -> None:
    text = page_text(_PAGE)
    assert "DiceFocal+HDT" in text  # <wbr> joins, a cell boundary separates
    assert "volume (ml) Tversky+HDT" in text
    assert "papermill" not in text and "L_HD" not in text and "Use here" in text
    assert not text.startswith("Hausdorff") and "HDT collapse" in text


def test_aliases_are_found_with_their_display_name() -> None:
    found = aliases_in_page(_PAGE)
    names = sorted(hit.split(":")[0] for hit in found)
    assert names == sorted([
        "'Hausdorff distance transform loss' for HausdorffDT",
        "'HDT' for HausdorffDT",
        "'Dice Focal' for DiceFocal",
        "'ml' for mL",
        "'ml' for mL",
    ]), found  # fmt: skip
    assert (
        aliases_in_page("<p>HausdorffDT, DiceFocal+HDT, Tversky+HDT, log(1 + HDT), 0.50 mL, html</p>") == []
    )


def test_copy_slips() -> None:
    found = copy_slips(_PAGE)
    assert len(found) == 3, found
    assert copy_slips("<p>1 case, 11 cases, 0.1 cases, ±0.02, -0.001, 10.000</p>") == []


def test_aliases_in_book_reads_reader_pages_only(tmp_path: Path) -> None:
    (tmp_path / "book" / "generated").mkdir(parents=True)
    (tmp_path / "_static").mkdir()
    (tmp_path / "book" / "generated" / "results.html").write_text("<p>Hausdorff DT</p>")
    (tmp_path / "book" / "api-losses.html").write_text("<p>Hausdorff DT</p>")
    (tmp_path / "_static" / "x.html").write_text("<p>Hausdorff DT</p>")
    (tmp_path / "index.html").write_text("<p>HausdorffDT, 1 cases</p>")
    assert list(aliases_in_book(tmp_path)) == ["book/generated/results.html"]
    assert list(aliases_in_book(tmp_path, slips=True)) == ["book/generated/results.html", "index.html"]


def test_registry_names_each_thing_once() -> None:
    assert DISPLAY_NAMES["loss:hdt"] == "HausdorffDT" and DISPLAY_NAMES["unit:ml"] == "mL"
    assert (
        column_label("masd_mm") == "MASD (mm)" and column_label("pred_volume_ml") == "predicted volume (mL)"
    )
    assert column_label("new_column") == "new column"
    # no display name is itself an alias of another
    for label in [*DISPLAY_NAMES.values(), *COLUMN_LABELS.values()]:
        assert aliases_in_page(f"<p>{label}</p>") == [], label
    assert set(ALIASES) <= set(DISPLAY_NAMES.values())


_FIGURES = """<html><body><img src="logo.png" alt=""><article>
<figure id="fig-ok"><img src="data:image/png;base64,AA" alt="Two line charts of the training curves">
<figcaption><p><span class="caption-number">Fig. 3 </span>Curves.</p></figcaption></figure>
<img src="../../_images/abc.png" alt="../../_images/abc.png">
<figure><div class="plotly-graph-div" id="viewer"></div><figcaption><p>No number</p></figcaption></figure>
<figure class="captioned_table"><table><tr><td><table><tr><td>inner</td></tr></table></td></tr></table>
<figcaption><p><span class="caption-number">Table 2 </span>Runs.</p></figcaption></figure>
<table><tr><td>loose table</td></tr></table>
<table id="tbl-md"><caption><span class="caption-number">Table 3 </span>A {table} directive's.</caption>
<tr><td>captioned</td></tr></table>
</article></body></html>"""


def test_figure_problems_finds_paths_as_alt_text_and_figures_without_numbered_captions() -> None:
    found = figure_problems(_FIGURES)
    assert len(found) == 4, found
    assert sum("alt text" in f and "a path" in f for f in found) == 1  # the logo outside the article is not read
    assert any("div without a numbered caption: 'viewer'" in f for f in found)
    assert any("table without a numbered caption: 'loose table'" in f for f in found)
    assert sum("img without a numbered caption" in f for f in found) == 1  # the path-named image, not Fig. 3
    assert not any("inner" in f for f in found)


def test_figure_problems_finds_alt_text_that_names_no_content() -> None:
    page = ('<article><figure><img src="data:image/png;base64,AA" alt="Figure"><figcaption><p>'
            '<span class="caption-number">Fig. 1 </span>A diagram.</p></figcaption></figure></article>')  # fmt: skip
    assert figure_problems(page) == ["image alt text 'Figure' does not describe the image"]
