"""The book's front matter and weight, unit by unit: the reading path (``_toc.yml``), the title
that names the data, "cite this book" and where the code comes from (``book_meta``), the
reference list's order and capitals (``bibliography``), the icons, source maps and page weights
(``book_weight``), MathJax only where there is maths, and which plotly.js a page loads
(``book_plotly``). Small inputs written here; the whole book is built in ``test_book_build.py``.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest
import yaml

from hie_core.report.book import meta as book_meta
from hie_core.report.book import plotly_bundle as book_plotly
from hie_core.report.book import weight as book_weight

ROOT = Path(__file__).resolve().parent.parent


# --- the reading path -----------------------------------------------------------------------------


def _page_title(entry: str) -> str:
    """The first heading of a toc entry's page (a committed .md, or the notebook it is made from)."""
    md = ROOT / f"{entry}.md"
    if md.is_file():
        text = md.read_text()
    else:
        nb = nbformat.read(ROOT / "notebooks" / f"{Path(entry).name}.ipynb", as_version=4)
        text = nb.cells[0].source
    return next(line[2:].strip() for line in text.splitlines() if line.startswith("# "))


def test_toc_is_one_reading_path():
    """The paper in order, then the appendix (experiments), then the API reference; no part
    caption is also a page's title."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    assert toc["root"] == "book/generated/intro"
    parts = toc["parts"]
    assert [p["caption"] for p in parts] == ["The paper", "Appendix: the experiments", "For developers"]
    paper = [e["file"] for e in parts[0]["chapters"]]
    assert paper == ["book/generated/data", "book/generated/methods", "book/analysis-plan",
                     "book/generated/results", "book/generated/discussion", "book/reproduce",
                     "book/references"]  # fmt: skip
    assert parts[1]["chapters"][0] == {"glob": "book/generated/experiments/*"}
    assert parts[2]["chapters"] == [{"file": "book/api"}]
    titles = [_page_title(e) for e in paper + ["book/api", "book/generated/performance"]]
    titles.append(_page_title("book/generated/intro"))
    assert not {p["caption"] for p in parts} & set(titles), titles
    assert "The study" not in titles and "Results" not in [p["caption"] for p in parts]


# --- the title, "cite this book", the code's origin ----------------------------------------------------


def test_book_title_names_the_data(tmp_path):
    assert book_meta.book_title(True).endswith("A 3D U-Net on a synthetic BONBID-like dataset")
    assert book_meta.book_title(False).endswith("A 3D U-Net on BONBID-HIE")
    assert "BONBID-HIE" not in book_meta.book_title(None) and "not recorded" in book_meta.book_title(None)
    assert all(book_meta.book_title(s).startswith(book_meta.BOOK_QUESTION) for s in (True, False, None))
    study = tmp_path / "study"
    assert book_meta.study_synthetic(study) is None
    (study / "dice" / "seed0").mkdir(parents=True)
    (study / "dice" / "seed0" / "config.json").write_text(json.dumps({"config": {"loss": "dice"}, "synthetic": False}))
    assert book_meta.study_synthetic(study) is False  # the runs' own record
    (study / "results").mkdir()
    (study / "results" / "study.json").write_text(json.dumps({"synthetic": True}))
    assert book_meta.study_synthetic(study) is True  # the study's record wins


def _git(folder: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.org", "HOME": str(folder), "PATH": "/usr/bin:/bin"}  # fmt: skip
    return subprocess.run(["git", "-C", str(folder), *args], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()  # fmt: skip


def test_git_facts_of_a_checkout_a_plain_folder_and_a_folder_inside_a_checkout(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    assert book_meta.git_facts(tmp_path) == book_meta.GitFacts()  # not a git checkout
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "a.txt").write_text("a\n")
    _git(repo, "add", "a.txt")
    _git(repo, "commit", "-q", "-m", "one")
    head = _git(repo, "rev-parse", "HEAD")
    assert book_meta.git_facts(repo) == book_meta.GitFacts(head, False, None)
    _git(repo, "remote", "add", "origin", "https://user:secret-token@example.org/team/hie-lesion-book.git")
    (repo / "a.txt").write_text("b\n")
    (repo / "new.txt").write_text("untracked files do not make the commit dirty\n")
    facts = book_meta.git_facts(repo)
    assert facts == book_meta.GitFacts(head, True, "https://example.org/team/hie-lesion-book.git")
    (repo / "sub").mkdir()
    assert book_meta.git_facts(repo / "sub") == book_meta.GitFacts()  # a folder inside someone's checkout


def test_cite_block_and_get_the_code_say_where_the_book_comes_from(tmp_path):
    day = dt.date(2026, 12, 7)
    facts = book_meta.GitFacts("abc123", False, "https://example.org/t/hie.git")
    cite = book_meta.cite_markdown("T: a title", "0.1.0", day, facts)
    assert "## Cite this book" in cite and "Version 0.1.0, built on 2026-12-07 from commit `abc123`" in cite
    assert (
        "title        = {{T: a title}}" in cite and "url          = {https://example.org/t/hie.git}" in cite
    )
    plain = book_meta.cite_markdown("T", "0.1.0", day, book_meta.GitFacts())
    assert "from a folder that is not a git checkout" in plain and "url " not in plain
    dirty = book_meta.cite_markdown("T", "0.1.0", day, book_meta.GitFacts("abc123", True, None))
    assert "(with uncommitted changes)" in dirty and "commit abc123 with uncommitted changes" in dirty
    code = book_meta.get_the_code_markdown(facts, tmp_path)
    assert "git clone https://example.org/t/hie.git hie-lesion-book" in code and "git checkout abc123" in code
    local = book_meta.get_the_code_markdown(book_meta.GitFacts(), tmp_path)
    assert f"built from the folder `{tmp_path}` (not a git checkout)" in local and "git clone" not in local


def test_write_build_files_leaves_the_committed_config_alone(tmp_path):
    shutil.copy(ROOT / "_config.yml", tmp_path / "_config.yml")
    committed = (tmp_path / "_config.yml").read_bytes()
    study = tmp_path / "study" / "results"
    study.mkdir(parents=True)
    (study / "study.json").write_text(json.dumps({"synthetic": False}))
    config = book_meta.write_build_files(tmp_path, study.parent)
    assert config == tmp_path / book_meta.GENERATED_CONFIG
    written = yaml.safe_load(config.read_text())
    assert written["title"] == book_meta.book_title(False)
    assert {k: v for k, v in written.items() if k != "title"} == {
        k: v for k, v in yaml.safe_load(committed).items() if k != "title"
    }
    assert (tmp_path / "_config.yml").read_bytes() == committed
    assert "BONBID-HIE" not in yaml.safe_load(committed)["title"]  # the committed title names no data
    assert "Cite this book" in (tmp_path / book_meta.CITE_PAGE).read_text()
    assert "use that folder" in (tmp_path / book_meta.CODE_PAGE).read_text()


# --- the reference list ----------------------------------------------------------------------------


def test_reference_list_sorted_by_surname_with_its_capitals_and_a_link_each():
    from pybtex.database import parse_file
    from pybtex.plugin import find_plugin

    from hie_core.report.book.bibliography import STYLE, plain_key

    assert plain_key('{\\c{C}}i{\\c{c}}ek, {\\"O}zg{\\"u}n') == "cicek, ozgun"
    bib = parse_file(ROOT / "book" / "references.bib")
    for key, entry in bib.entries.items():
        assert entry.fields.get("doi") or entry.fields.get("url"), f"{key}: neither doi nor url"
    assert bib.entries["paszke2019pytorch"].fields["doi"] == "10.48550/arXiv.1912.01703"
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["sphinx"]["config"]["bibtex_default_style"] == STYLE
    formatted = list(find_plugin("pybtex.style.formatting", STYLE)().format_entries(bib.entries.values()))
    keys = [e.key for e in formatted]
    assert keys.index("cicek2016unet3d") < keys.index("efron1993bootstrap") < keys.index("wilcoxon1945")
    surnames = [plain_key(bib.entries[k].persons["author"][0].last_names[0]) for k in keys]
    assert surnames == sorted(surnames)
    text = {e.key: e.text.render_as("text") for e in formatted}
    assert "Boston neonatal brain injury" in text["bonbid2023challenge"]
    assert "Swin UNETR: Swin transformers" in text["hatamizadeh2022swinunetr"]


# --- weight: icons, source maps, what a page loads ----------------------------------------------------

# Two packs of a Font Awesome 6-like bundle: solid "bars" (alias "navicon") and brands "github".
_BUNDLE = (
    'var a={bars:[448,512,["navicon"],"f0c9","M0 96h448v64H0z"],"x-mark":[384,512,[],"f00d","M1 1z"]};'
    'd("fas",a);var b={"github":[496,512,[],"f09b","M165 397z"]};d("fab",b);'
)


def test_icons_replace_the_font_awesome_bundle(tmp_path):
    icons = book_weight.parse_fontawesome(_BUNDLE)
    assert icons[("fas", "bars")] == (448, 512, "M0 96h448v64H0z") == icons[("fas", "navicon")]
    assert ("fab", "github") in icons and ("fas", "github") not in icons
    page = ('<i class="fa-solid fa-bars fa-lg"></i><span class="fa-brands fa-github"></span>'
            '<i class="fas fa-missing"></i>')  # fmt: skip
    used = book_weight.icons_used([page])
    assert used == {("fas", "bars"), ("fab", "github"), ("fas", "missing")}
    css = book_weight.icon_css(icons, used)
    assert ".fa-solid.fa-bars::before" in css and ".fab.fa-github::before" in css and "missing" not in css
    assert "width:0.875em" in css and 'mask-image:url("data:image/svg+xml,' in css
    site = tmp_path / "site"
    (site / "_static" / "scripts").mkdir(parents=True)
    (site / book_weight.FONTAWESOME_JS).write_text(_BUNDLE)
    (site / "sub").mkdir()
    html = '<head><script defer src="{}_static/scripts/fontawesome.js?digest=1"></script></head>' + page
    (site / "index.html").write_text(html.format(""))
    (site / "sub" / "page.html").write_text(html.format("../"))
    assert book_weight.replace_fontawesome(site) == 2
    assert not (site / book_weight.FONTAWESOME_JS).exists()
    assert (
        '<link rel="stylesheet" href="../_static/hie-icons.css" />'
        in (site / "sub" / "page.html").read_text()
    )
    assert "fontawesome.js" not in (site / "index.html").read_text()
    assert book_weight.replace_fontawesome(site) == 0  # nothing left to replace


def test_source_maps_and_unloaded_plotly_go(tmp_path):
    static = tmp_path / "_static"
    static.mkdir()
    (static / "a.js").write_text("var a = 1;\n//# sourceMappingURL=a.js.map\n")
    (static / "a.js.map").write_text("{}")
    (static / "b.css").write_text("p{color:red}\n/*# sourceMappingURL=b.css.map */")
    (static / "b.css.map").write_text("{}")
    assert book_weight.remove_source_maps(tmp_path) == 2
    assert not list(tmp_path.rglob("*.map"))
    assert (static / "a.js").read_text() == "var a = 1;\n" and (
        static / "b.css"
    ).read_text() == "p{color:red}"
    (static / "plotly.min.js").write_text("full")
    (static / "plotly-cartesian.min.js").write_text("cartesian")
    (tmp_path / "p.html").write_text('<script src="_static/plotly-cartesian.min.js"></script>')
    assert book_weight.remove_unloaded(tmp_path) == ["plotly.min.js"]
    assert (static / "plotly-cartesian.min.js").is_file()


def test_page_weights_sum_what_each_page_loads(tmp_path):
    """The page, its scripts, stylesheets, images, what the stylesheets load (the first source
    of a font), nothing behind a plain link or on the network, each file once."""
    site = tmp_path / "site"
    (site / "_static" / "fonts").mkdir(parents=True)
    (site / "book").mkdir()
    sizes = {"_static/s.js": 1000, "_static/i.png": 300, "_static/fonts/f.woff2": 70, "_static/fonts/f.ttf": 90,
             "_static/bg.png": 20, "_static/other.css": 30, "_static/unused.js": 5000}  # fmt: skip
    for name, size in sizes.items():
        (site / name).write_bytes(b"x" * size)
    css = ('@import "other.css";\n@font-face{font-family:F;src:url(fonts/f.woff2) format("woff2"),'
           'url(fonts/f.ttf) format("truetype")}\nbody{background:url("bg.png")}'
           "a{background:url(data:image/png;base64,AAAA)}")  # fmt: skip
    (site / "_static" / "s.css").write_text(css)
    page = ('<link rel="stylesheet" href="../_static/s.css?digest=1"><script src="../_static/s.js"></script>'
            '<script src="../_static/s.js"></script><img src="../_static/i.png" alt="x">'
            '<a href="../_static/unused.js">a link</a><script src="https://example.org/x.js"></script>'
            '<link rel="next" href="../_static/unused.js">')  # fmt: skip
    (site / "book" / "p.html").write_text(page)
    (site / "_static" / "skipped.html").write_text("<p>a template, not a page</p>")
    expected = len(page) + len(css) + 1000 + 300 + 70 + 20 + 30
    assert book_weight.page_weights(site) == {"book/p.html": expected}
    assert book_weight.book_bytes(site) == sum(p.stat().st_size for p in site.rglob("*") if p.is_file())


def test_mathjax_only_on_pages_with_their_own_equations(tmp_path):
    """Sphinx would load MathJax on the root page, whose toctree includes a page with maths."""
    from sphinx.application import Sphinx

    src = tmp_path / "src"
    src.mkdir()
    (src / "conf.py").write_text(
        'extensions = ["sphinx.ext.mathjax", "hie_core.report.book.weight"]\nmathjax_path = "m/tex-svg.js"\n'
    )
    (src / "index.rst").write_text("Root\n====\n\nNo maths.\n\n.. toctree::\n\n   maths\n")
    (src / "maths.rst").write_text("Maths\n=====\n\n.. math:: x^2\n")
    app = Sphinx(str(src), str(src), str(tmp_path / "out"), str(tmp_path / "doctrees"), "html",
                 status=None, warning=None, freshenv=True)  # fmt: skip
    app.build()
    assert "m/tex-svg.js" in (tmp_path / "out" / "maths.html").read_text()
    assert "tex-svg.js" not in (tmp_path / "out" / "index.html").read_text()


# --- which plotly.js ----------------------------------------------------------------------------------


def _figure(div: str, traces: list[dict]) -> str:
    layout = {
        "template": {"data": {"scatter3d": [{"type": "scatter3d"}], "choropleth": [{"type": "choropleth"}]}}
    }
    return (
        f'<div id="{div}" class="plotly-graph-div"></div><script>Plotly.newPlot(  "{div}",  '
        f"{json.dumps(traces)}, {json.dumps(layout)}, {{}}).then(function(){{Plotly.addFrames('{div}', "
        f"{json.dumps([{'data': [{'z': [[1]]}], 'name': '0'}])});}})</script>"
    )


def test_page_bundle_takes_the_cartesian_plotly_where_it_draws_every_trace():
    flat = _figure("a", [{"type": "heatmap", "z": [[1]]}, {"x": [1], "y": [2]}])
    assert book_plotly.trace_types(flat) == {"heatmap", "scatter"}  # the template's types are not traces
    assert book_plotly.page_bundle(flat, "plotly.min.js", True) == book_plotly.CARTESIAN_JS
    assert book_plotly.page_bundle(flat, "plotly.min.js", False) == "plotly.min.js"
    solid = flat + _figure("b", [{"type": "scatter3d", "x": [1], "y": [1], "z": [1]}])
    assert book_plotly.page_bundle(solid, "plotly.min.js", True) == "plotly.min.js"
    broken = '<div class="plotly-graph-div"></div><script>Plotly.newPlot("c", data, layout)</script>'
    assert book_plotly.trace_types(broken) == {"unknown"}
    assert book_plotly.page_bundle(broken, "plotly.min.js", True) == "plotly.min.js"
    assert book_plotly.page_bundle("<p>no figure</p>", "plotly.min.js", True) is None


def test_committed_cartesian_bundle_matches_the_installed_plotly(tmp_path):
    """After an upgrade of plotly, this fails: update book/vendor/ (book_plotly's docstring says how)."""
    from hie_core.report.viewers.display import plotly_js_path

    full = Path(plotly_js_path())
    assert book_plotly.bundle_version(ROOT / book_plotly.CARTESIAN_SOURCE) == book_plotly.bundle_version(full)
    (tmp_path / "book" / "vendor").mkdir(parents=True)
    (tmp_path / "book" / "assets").mkdir()
    shutil.copy(ROOT / book_plotly.CARTESIAN_SOURCE, tmp_path / book_plotly.CARTESIAN_SOURCE)
    assert book_plotly.vendor_cartesian(tmp_path, full)
    target = tmp_path / "book" / "assets" / book_plotly.CARTESIAN_JS
    assert target.read_bytes() == (ROOT / book_plotly.CARTESIAN_SOURCE).read_bytes()
    other = tmp_path / "other.min.js"
    other.write_text("/**\n* plotly.js v9.9.9\n*/")
    assert not book_plotly.vendor_cartesian(tmp_path, other) and not target.exists()  # stale copy removed


def test_mathjax_parts_render_tex_from_a_file(tmp_path):
    """The vendored components typeset inline and display maths, an AMS environment and a package
    loaded on demand, with MathML for screen readers, from file:// and without console errors;
    page_weights counts the components startup.js loads."""
    from hie_core.report.book.build import mathjax_source
    from hie_core.report.book.mathjax import MATHJAX_CONFIG, vendor_mathjax

    site = tmp_path / "site"
    vendor_mathjax(mathjax_source().parent, site / "_static" / "mathjax")
    page = (f"<html><head><script>window.MathJax = {json.dumps(MATHJAX_CONFIG)};</script>"
            '<script defer src="_static/mathjax/startup.js"></script></head><body><p>\\(x^2 + \\boldsymbol{y}\\)</p>'
            "<div>\\[\\begin{aligned} a &= \\operatorname{Dice}(P, G) \\\\ b &= \\tfrac{1}{2} \\end{aligned}\\]</div>"
            "</body></html>")  # fmt: skip
    (site / "p.html").write_text(page)
    loaded = book_weight.page_assets(site, site / "p.html")
    assert {p.relative_to(site / "_static" / "mathjax").as_posix() for p in loaded if "mathjax" in p.parts} == {
        "startup.js", "core.js", "input/tex.js", "output/svg.js", "output/svg/fonts/tex.js", "a11y/assistive-mml.js"
    }  # fmt: skip
    assert book_weight.page_weights(site)["p.html"] < 1_800_000
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None or shutil.which("chromedriver") is None:
        pytest.skip("chromium/chromedriver not installed")
    import time

    from tests.test_book import _driver

    driver = _driver(tmp_path, width=1000)
    try:
        driver.get((site / "p.html").as_uri())
        deadline = time.time() + 30
        count = "return document.querySelectorAll('mjx-container svg').length"
        while driver.execute_script(count) < 2 and time.time() < deadline:
            time.sleep(0.2)
        state = driver.execute_script(
            "return {svg: document.querySelectorAll('mjx-container svg').length,"
            " mml: document.querySelectorAll('mjx-assistive-mml').length,"
            " errors: document.querySelectorAll('[data-mjx-error], mjx-merror').length}"
        )
        logs = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    finally:
        driver.quit()
    assert state == {"svg": 2, "mml": 2, "errors": 0} and logs == [], (state, logs)


def test_fonts_keep_their_woff2_and_pages_without_typing_search_drop_the_index(tmp_path):
    fonts = tmp_path / "_static" / "fonts"
    fonts.mkdir(parents=True)
    for name in ("a.woff2", "a.ttf", "b.ttf"):
        (fonts / name).write_bytes(b"x")
    css = ('@font-face{font-family:A;src:url(fonts/a.woff2) format("woff2"),url(fonts/a.ttf) format("truetype")}'
           '@font-face{font-family:B;src:url(fonts/b.ttf) format("truetype")}')  # fmt: skip
    (tmp_path / "_static" / "s.css").write_text(css)
    assert book_weight.drop_font_fallbacks(tmp_path) == ["_static/fonts/a.ttf"]
    assert (tmp_path / "_static" / "s.css").read_text() == (
        '@font-face{font-family:A;src:url(fonts/a.woff2) format("woff2")}'
        '@font-face{font-family:B;src:url(fonts/b.ttf) format("truetype")}'
    )  # B has no woff2: kept whole
    assert (fonts / "b.ttf").is_file() and (fonts / "a.woff2").is_file()
    scripts = ('<script>DOCUMENTATION_OPTIONS.search_as_you_type = false;</script>\n'
               '<script src="../_static/searchtools.js"></script>\n<script src="../_static/language_data.js"></script>\n'
               '<script src="../searchindex.js"></script>\n<script src="../_static/doctools.js"></script>')  # fmt: skip
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "p.html").write_text(scripts)
    (tmp_path / "search.html").write_text(scripts.replace("../", ""))
    (tmp_path / "typing.html").write_text(scripts.replace("false", "true").replace("../", ""))
    assert book_weight.drop_search_scripts(tmp_path) == 1
    page = (tmp_path / "book" / "p.html").read_text()
    assert "searchindex" not in page and "searchtools" not in page and "language_data" not in page
    assert "doctools.js" in page and "searchindex.js" in (tmp_path / "search.html").read_text()
    assert "searchindex.js" in (tmp_path / "typing.html").read_text()  # a theme that searches as one types


def test_translation_catalogues_go_unless_a_page_loads_them(tmp_path):
    po = tmp_path / "_static" / "locales" / "de" / "LC_MESSAGES"
    po.mkdir(parents=True)
    (po / "booktheme.po").write_text("msgid x")
    (po / "booktheme.mo").write_bytes(b"\0")
    (tmp_path / "index.html").write_text('<script src="_static/locales/de/x.js"></script>')
    assert book_weight.remove_translation_catalogues(tmp_path) == 0 and (po / "booktheme.mo").exists()
    (tmp_path / "index.html").write_text("<p>the text may name <code>_static/locales/</code></p>")
    assert book_weight.remove_translation_catalogues(tmp_path) == 2
    assert not (tmp_path / "_static" / "locales").exists()
    assert book_weight.remove_translation_catalogues(tmp_path) == 0
