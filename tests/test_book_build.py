"""Unit tests of hie_core.report.book.build on tiny study folders written here (no training, no kernel).

The notebooks are written with nbformat as papermill leaves them (parameters cells, outputs,
papermill metadata). The last test builds a whole tiny book with ``npm`` and ``node`` shadowed
on ``PATH`` by scripts that record any call: the build must not need them.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import sys
from pathlib import Path

import nbformat
import pytest
import yaml
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from hie_core.losses import LOSS_NAMES
from hie_core.report.book import build as book
from hie_core.report.book.contents import (
    API_PAGES,
    BOOK_NOTEBOOKS,
    BookError,
    collect_notebooks,
    experiment_notebooks,
    fold_code,
    write_toc,
)
from hie_core.report.book.mathjax import MATHJAX_COMPONENTS, MATHJAX_CONFIG, MATHJAX_ENTRY
from hie_core.report.book.plotly_bundle import CARTESIAN_JS, CARTESIAN_SOURCE

ROOT = Path(__file__).resolve().parent.parent
#: the keys the book cites; each must be a complete entry of book/references.bib
CITED = ("cicek2016unet3d", "milletari2016vnet", "lin2017focal", "salehi2017tversky", "karimi2019hausdorff",
         "bonbid2023data", "isensee2021nnunet", "nikolov2021surface", "kurinczuk2010hie")  # fmt: skip


def _html(text: str) -> dict:
    return new_output("execute_result", data={"text/html": text, "text/plain": text}, execution_count=1)


def _notebook(title: str, failed: bool = False, extra: list | None = None) -> nbformat.NotebookNode:
    """An executed notebook as papermill leaves it: title, parameters, a result with output."""
    params = new_code_cell('study_dir = ""  # a study folder', metadata={"tags": ["parameters"]})
    injected = new_code_cell(
        '# Parameters\nstudy_dir = "/tmp/x"\n', metadata={"tags": ["injected-parameters"]}
    )
    result = new_code_cell("pages.table(study)", outputs=[_html(f"<table><tr><td>{title}</td></tr></table>")])
    nb = new_notebook(cells=[new_markdown_cell(f"# {title}\n\nWhat this page shows."), params, injected, result]
                      + (extra or []))  # fmt: skip
    nb.metadata["papermill"] = {"exception": True if failed else None}
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def write_tiny_study(study_dir: Path, runs: dict[str, list[int]], layout: str = "seed") -> Path:
    """The five executed study pages and, per loss, one executed train notebook per seed."""
    (study_dir / "book").mkdir(parents=True, exist_ok=True)
    for name in BOOK_NOTEBOOKS:
        cite = new_markdown_cell("Data from {cite:t}`bonbid2023data`; Dice is $2|P \\cap G| / (|P| + |G|)$.")
        extra = [cite]
        if name == "results":  # a captioned table and a captioned figure, each referred to by number
            table = new_code_cell(
                "page.table1(results)",
                outputs=[_html("<table><tr><td>0.5</td></tr></table>")],
                metadata={"mystnb": {"figure": {"caption": "Scores.", "name": "tbl-tiny"}}},
            )
            chart = new_code_cell(
                "page.chart(results)",
                outputs=[_html('<div id="tiny-chart" class="plotly-graph-div"></div>')],
                metadata={"mystnb": {"figure": {"caption": "A chart.", "name": "fig-tiny"}}},
            )
            refs = new_markdown_cell("{numref}`tbl-tiny` lists the scores that {numref}`fig-tiny` draws.")
            extra += [table, chart, refs]
        nbformat.write(_notebook(name.title(), extra=extra), study_dir / "book" / f"{name}.ipynb")
    for loss, seeds in runs.items():
        for seed in seeds:
            run = study_dir / loss / f"seed{seed}" if layout == "seed" else study_dir / loss
            run.mkdir(parents=True, exist_ok=True)
            nbformat.write(_notebook(f"Training one loss (seed {seed})"), run / "train.ipynb")
    return study_dir


def _tags(nb: nbformat.NotebookNode) -> list[list[str]]:
    return [c.metadata.get("tags", []) for c in nb.cells if c.cell_type == "code"]


def test_experiment_notebooks_lowest_finished_seed_in_table_order(tmp_path):
    study = write_tiny_study(tmp_path / "study", {"tversky_hdt": [2, 1], "dice": [0, 1], "hdt": [0]})
    failed = _notebook("Training one loss", failed=True)
    nbformat.write(failed, study / "hdt" / "seed0" / "train.ipynb")  # hdt: its only run failed
    nbformat.write(failed, study / "dice" / "seed0" / "train.ipynb")  # dice: seed 0 failed, seed 1 did not
    (study / "tversky" / "seed0").mkdir(parents=True)  # a run folder without a notebook
    (study / "tversky" / "seedling" / "x").mkdir(parents=True)
    found = experiment_notebooks(study)
    assert list(found) == ["dice", "tversky_hdt"]  # LOSS_NAMES order, not the order of the folders
    assert found["dice"] == study / "dice" / "seed1" / "train.ipynb"
    assert found["tversky_hdt"] == study / "tversky_hdt" / "seed1" / "train.ipynb"


def test_experiment_notebooks_reads_the_old_layout(tmp_path):
    study = write_tiny_study(tmp_path / "study", {"dice": [0], "tversky": [0]}, layout="flat")
    assert experiment_notebooks(study) == {loss: study / loss / "train.ipynb" for loss in ("dice", "tversky")}
    write_tiny_study(study, {"dice": [4]})  # a newer study in the same folder: its seed folders win
    assert experiment_notebooks(study)["dice"] == study / "dice" / "seed4" / "train.ipynb"


def test_fold_code_hides_or_removes_every_code_cell():
    glue = new_output("display_data", data={"application/papermill.record/text/plain": "0.5"},
                      metadata={"scrapbook": {"name": "best", "mime_prefix": "application/papermill.record/"}})  # fmt: skip
    shown = _html("<b>x</b>")
    nb = new_notebook(cells=[
        new_markdown_cell("# Title"),
        new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
        new_code_cell("from hie_core.report import pages\nstudy = pages.open_study(d)"),  # setup, no output
        new_code_cell("glue('best', 0.5, display=False)", outputs=[glue]),  # nothing visible
        new_code_cell("import warnings", outputs=[new_output("stream", name="stderr", text="w")]),
        new_code_cell("pages.table(study)", outputs=[shown]),
        new_code_cell("results.live_viewer(study)", metadata={"tags": ["remove-output"]}),
        new_code_cell("pages.other(study)", outputs=[shown], metadata={"tags": ["remove-input"]}),
        new_code_cell("%matplotlib inline", outputs=[shown]),
    ])  # fmt: skip
    fold_code(nb)
    assert _tags(nb) == [
        ["parameters", "remove-cell"],
        ["remove-cell"],
        ["remove-cell"],
        ["remove-input"],
        ["remove-input"],
        ["remove-input", "remove-output"],
        ["remove-input"],
        ["remove-input"],
    ]
    assert nb.cells[3].outputs == [glue]  # myst-nb still reads the glued value


def test_collect_notebooks_folds_study_pages_and_titles_experiments(tmp_path):
    study = write_tiny_study(tmp_path / "study", {"dice": [0], "tversky_hdt": [3]})
    root = tmp_path / "root"
    stale = root / "book" / "generated" / "experiments" / "hdt.ipynb"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")
    written = collect_notebooks(root, study)
    generated = root / "book" / "generated"
    assert sorted(p.relative_to(generated).as_posix() for p in written) == sorted(
        [f"{n}.ipynb" for n in BOOK_NOTEBOOKS] + ["experiments/dice.ipynb", "experiments/tversky_hdt.ipynb"]
    )
    assert not stale.exists()
    results = nbformat.read(generated / "results.ipynb", as_version=4)
    assert _tags(results) == [
        ["parameters", "remove-cell"],
        ["injected-parameters", "remove-cell"],
        ["remove-input"],
        ["remove-input"],  # the captioned table and chart of the results page
        ["remove-input"],
    ]
    dice = nbformat.read(generated / "experiments" / "dice.ipynb", as_version=4)
    assert dice.cells[0].source.startswith("# Experiment: Dice\n")
    assert _tags(dice)[:2] == [["parameters", "remove-cell"], ["injected-parameters", "remove-cell"]]
    assert all(
        "remove-input" in t or "remove-cell" in t for t in _tags(dice)
    )  # no code in front of the reader


def test_collect_notebooks_checks_everything_before_writing(tmp_path):
    study = write_tiny_study(tmp_path / "study", {"dice": [0]})
    (study / "book" / "methods.ipynb").unlink()
    root = tmp_path / "root"
    kept = root / "book" / "generated" / "intro.ipynb"
    kept.parent.mkdir(parents=True)
    kept.write_text("{}")
    with pytest.raises(BookError, match=r"methods\.ipynb"):
        collect_notebooks(root, study)
    assert kept.read_text() == "{}"
    empty = write_tiny_study(tmp_path / "empty", {})
    with pytest.raises(BookError, match="no finished training notebook"):
        collect_notebooks(root, empty)


def test_write_toc_lists_the_study_losses_and_leaves_the_committed_toc_alone(tmp_path):
    shutil.copy(ROOT / "_toc.yml", tmp_path / "_toc.yml")
    committed = (tmp_path / "_toc.yml").read_bytes()
    toc = yaml.safe_load(write_toc(tmp_path, ["dice", "tversky_hdt"]).read_text())
    files = [e.get("file") or e.get("glob") for part in toc["parts"] for e in part["chapters"]]
    assert "book/generated/experiments/dice" in files and "book/generated/experiments/tversky_hdt" in files
    assert not any("*" in f for f in files) and not any(f.endswith("/hdt") for f in files)
    assert files.index("book/generated/experiments/dice") < files.index(
        "book/generated/experiments/tversky_hdt"
    )
    assert "book/references" in files
    api = next(e for part in toc["parts"] for e in part["chapters"] if e.get("file") == "book/api")
    assert "sections" not in api  # no API page under tmp_path/book: the entry as committed
    for name in ("api-book", "api-data"):
        (tmp_path / "book" / f"{name}.md").write_text(f"# {name}\n")
    toc = yaml.safe_load(write_toc(tmp_path, ["dice"]).read_text())
    api = next(e for part in toc["parts"] for e in part["chapters"] if e.get("file") == "book/api")
    assert api["sections"] == [{"file": "book/api-data"}, {"file": "book/api-book"}]  # in API_PAGES order
    assert (tmp_path / "_toc.yml").read_bytes() == committed
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: intro\n")
    with pytest.raises(BookError, match="glob"):
        write_toc(tmp_path, ["dice"])


def _shadow_npm_and_node(tmp_path: Path, monkeypatch) -> Path:
    """Put scripts named npm and node first on PATH; each records its call and fails."""
    fake = tmp_path / "fakebin"
    fake.mkdir()
    for name in ("npm", "node", "npx"):
        script = fake / name
        script.write_text(f'#!/bin/sh\necho "{name} $*" >> "{fake}/calls"\nexit 1\n')
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv(
        "PATH", f"{fake}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    )
    assert shutil.which("npm") == str(fake / "npm")
    return fake / "calls"


def test_vendor_assets_takes_mathjax_from_the_python_package(tmp_path, monkeypatch):
    calls = _shadow_npm_and_node(tmp_path, monkeypatch)
    book.vendor_assets(tmp_path)
    mathjax = tmp_path / "book" / "assets" / "mathjax"
    stale = mathjax / "tex-svg.js"  # what builds before the components vendored
    stale.write_text("old")
    book.vendor_assets(tmp_path)
    package = book.mathjax_source().parent
    for name in (MATHJAX_ENTRY, *MATHJAX_COMPONENTS, "input/tex/extensions/boldsymbol.js"):
        assert (mathjax / name).read_bytes() == (package / name).read_bytes(), name
    assert not stale.exists()
    assert b"MathJax" in (mathjax / MATHJAX_ENTRY).read_bytes()
    assert (mathjax / "output" / "svg" / "fonts" / "tex.js").stat().st_size > 1_000_000  # the SVG font
    assert (tmp_path / "book" / "assets" / "plotly.min.js").stat().st_size > 1_000_000
    assert not calls.exists()


def test_mathjax_source_names_the_missing_package(monkeypatch):
    def missing(name):
        raise book.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(book.metadata, "distribution", missing)
    with pytest.raises(BookError, match=r"sphinx-mathjax-offline.*pip install"):
        book.mathjax_source()


def test_api_pages_are_listed_once_in_book_order():
    """Every book/api-*.md is a section of the API reference (API_PAGES), and the reverse."""
    pages = sorted(p.stem for p in (ROOT / "book").glob("api-*.md"))
    assert sorted(API_PAGES) == pages and len(set(API_PAGES)) == len(pages)
    documented = [
        m
        for name in pages
        for m in re.findall(r"automodule:: (\S+)", (ROOT / "book" / f"{name}.md").read_text())
    ]
    assert len(documented) == len(set(documented))  # each module on one page


def test_table_never_scrolls_and_figures_have_no_toolbar():
    """display.table: no scroll box or fixed height; display.figure_html: no mode bar over titles."""
    import pandas as pd
    import plotly.graph_objects as go

    from hie_core.report.viewers import display

    frame = pd.DataFrame({"case_id": [f"case {i}" for i in range(40)], "dice": [0.5] * 40})
    for kwargs in ({}, {"scroll": True}, {"wrap": True}):
        html_text = display.table(frame, **kwargs)._repr_html_()
        assert "overflow" not in html_text and "max-height" not in html_text and "nowrap" not in html_text
        assert html_text.count("<tr>") == 41
    assert 'class="hie-table hie-table-compact"' in display.table(frame, scroll=True)._repr_html_()
    fig_html = display.figure_html(go.Figure(go.Scatter(x=[1, 2], y=[3, 4])), "tiny")
    assert '"displayModeBar": false' in fig_html


def test_references_bib_has_every_cited_work_complete():
    from pybtex.database import parse_file

    entries = parse_file(ROOT / "book" / "references.bib").entries
    for key in CITED:
        fields = entries[key].fields
        assert entries[key].persons["author"], key
        for field in ("title", "year", "doi"):
            assert fields.get(field), (key, field)
        assert fields["doi"].startswith("10."), key
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["bibtex_bibfiles"] == ["book/references.bib"]
    sphinx = config["sphinx"]["config"]
    assert (
        sphinx["mathjax_path"] == f"mathjax/{MATHJAX_ENTRY}" and sphinx["mathjax3_config"] == MATHJAX_CONFIG
    )
    assert (ROOT / sphinx["html_static_path"][0] / sphinx["html_css_files"][0]).is_file()


def _next_page(html: Path, page: str) -> str:
    """The href of a built page's "next" link (the reading path)."""
    match = re.search(r'<link rel="next" title="[^"]*" href="([^"]+)"', (html / page).read_text())
    assert match, page
    return match.group(1)


@pytest.mark.slow
def test_tiny_book_builds_with_only_python(tmp_path, monkeypatch):
    """Two losses of six, npm and node shadowed: a complete book with folded code and references."""
    calls = _shadow_npm_and_node(tmp_path, monkeypatch)
    root = tmp_path / "root"
    (root / "book" / "assets").mkdir(parents=True)
    (root / "book" / "vendor").mkdir()
    for name in ("_config.yml", "_toc.yml", "book/reproduce.md", "book/references.md", "book/references.bib",
                 "book/assets/book.css", "book/assets/hie-code-math.css", "book/assets/hie-search-scorer.js",
                 CARTESIAN_SOURCE):  # fmt: skip
        shutil.copy(ROOT / name, root / name)
    (root / "book" / "api.md").write_text("# API reference\n\nThe docstrings of hie_core.\n")
    (root / "book" / "api-book.md").write_text("# The book\n\nHow it is built.\n")
    (root / "book" / "analysis-plan.md").write_text("# Analysis plan\n\nThe tests, fixed before the runs.\n")
    committed_toc = (root / "_toc.yml").read_bytes()
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    study = write_tiny_study(tmp_path / "runs" / "tiny", {"dice": [0], "tversky_hdt": [0, 1]})
    (study / "results").mkdir()
    (study / "results" / "study.json").write_text('{"synthetic": true}')  # what the study's data were
    monkeypatch.setenv(book.BOOK_DIR_ENV, str(tmp_path / "out"))
    index = book.build_book(root, study)
    html = index.parent
    assert html == tmp_path / "out" / "html"
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before  # nothing written in the project
    experiments = sorted(p.name for p in (html / "book" / "generated" / "experiments").glob("*.html"))
    assert experiments == ["dice.html", "tversky_hdt.html"]
    assert set(LOSS_NAMES) > {"dice", "tversky_hdt"}
    assert (
        "Experiment: Tversky+HDT"
        in (html / "book" / "generated" / "experiments" / "tversky_hdt.html").read_text()
    )
    results = (html / "book" / "generated" / "results.html").read_text()
    assert "tag_remove-input" in results and "study_dir = " not in results and "cell_input" not in results
    assert "Bao" in results and "references.html#" in results
    assert (
        "Table 1" in results and "Fig. 1" in results and "Fig. 2" not in results
    )  # tables numbered as tables
    references = (html / "book" / "references.html").read_text()
    assert all(doi in references for doi in ("10.1038/s41597-024-03986-7", "10.1109/TMI.2019.2930068"))
    listed = re.sub(r"<[^>]+>", "", references)
    assert listed.index("Çiçek") < listed.index("Efron") < listed.index("Wilcoxon")  # by surname as read
    assert "Boston neonatal" in listed and "Swin UNETR: Swin transformers" in listed  # braced capitals kept
    assert "Cite this book" in listed and "not a git checkout" in listed  # tmp_path is no git checkout
    reproduce = re.sub(r"<[^>]+>", "", (html / "book" / "reproduce.html").read_text())
    assert f"built from the folder {root}" in reproduce and "<this repository>" not in reproduce
    assert (html / "_static" / "mathjax" / MATHJAX_ENTRY).is_file()
    assert not (html / "_static" / "mathjax" / "tex-svg.js").exists()
    # the page with a plotly figure loads the cartesian plotly.js (its figure has no other trace); no
    # other page loads any, and the full bundle, which no page loads, is not in the book
    assert f"_static/{CARTESIAN_JS}" in results
    loads_plotly = re.compile(r'<script[^>]*src="[^"]*plotly[^"]*\.js')
    assert [p.name for p in html.rglob("*.html") if loads_plotly.search(p.read_text())] == ["results.html"]
    assert (html / "_static" / CARTESIAN_JS).is_file() and not (html / "_static" / "plotly.min.js").exists()
    # the front page names the data; the browser's title bar says which page it is
    title = "Which loss for HIE lesions? A 3D U-Net on a synthetic BONBID-like dataset"
    intro = (html / "book" / "generated" / "intro.html").read_text()
    assert f"<h1>{title}<a" in intro and f"<title>Abstract and introduction &#8212; {title}</title>" in intro
    assert f"&#8212; {title}</title>" in (html / "book" / "reproduce.html").read_text()
    # the reading path: the paper's pages, then the appendix's experiments, then the API reference
    assert _next_page(html, "book/references.html") == "generated/experiments/dice.html"
    assert _next_page(html, "book/generated/performance.html") == "../api.html"
    # light: no page sources, source maps or Font Awesome script; its few icons as a stylesheet
    assert not (html / "_sources").exists() and not list(html.rglob("*.map"))
    assert not (html / "_static" / "scripts" / "fontawesome.js").exists() and "fontawesome.js" not in intro
    assert (
        "hie-icons.css" in intro
        and ".fa-magnifying-glass" in (html / "_static" / "hie-icons.css").read_text()
    )
    reproduce_html = (html / "book" / "reproduce.html").read_text()
    assert (
        "mathjax/startup.js" in intro
        and "mathjax/" not in reproduce_html
        and "window.MathJax" not in reproduce_html
    )
    # search ranks the API reference's pages below the paper's
    assert 'docname.startsWith("book/api")' in (html / "_static" / "language_data.js").read_text()
    assert (html / "book" / "api-book.html").is_file()
    assert "api-book.html" in (html / "book" / "api.html").read_text()
    page_text = (html / "_static" / book.PAGE_TEXT_JS).read_text()  # search excerpts from file://
    assert page_text.startswith("window.HIE_PAGE_TEXT = ") and "What this page shows." in page_text
    assert book.PAGE_TEXT_JS in (html / "search.html").read_text()
    assert book.external_references(html) == []
    assert (root / "_toc.yml").read_bytes() == committed_toc
    assert not calls.exists(), calls.read_text()
