"""The book the main job built: offline, light, folded code, outputs within the text column,
and its viewers working in a real browser.

Uses the session's ``main_study`` (``conftest.py``): the quick study on the synthetic data and
its book, both in temporary folders. Screenshots go to ``$HIE_ARTIFACTS`` when it is set (CI
sets it), else to the test's temporary folder. The browser tests drive Debian's headless Chromium. Unit tests
of the build itself (on tiny study folders) are in ``test_book_build.py``.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import re
import shutil
import threading
import time
from pathlib import Path

import pytest

from hie_core.report.book.build import book_size, external_references
from hie_core.report.book.contents import API_PAGES, BOOK_NOTEBOOKS, experiment_notebooks


def artifacts(tmp_path: Path) -> Path:
    """Where screenshots go: ``$HIE_ARTIFACTS`` when set (CI keeps them), else the test's tmp_path."""
    folder = Path(os.environ["HIE_ARTIFACTS"]) if os.environ.get("HIE_ARTIFACTS") else tmp_path / "artifacts"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


STUDY_PAGES = [f"book/generated/{name}.html" for name in BOOK_NOTEBOOKS]


def unfolded_code_cells(page_html: str) -> int:
    """How many code cells of a built page show their source (not behind a hide-input toggle)."""
    cells = re.findall(r'<div class="cell( [^"]*)?"', page_html)
    inputs = page_html.count('<div class="cell_input')
    hidden = sum(1 for classes in cells if "tag_hide-input" in (classes or ""))
    return inputs - hidden


def test_book_is_built_offline_and_light(main_study):
    assert (main_study.html_dir / "index.html").is_file()
    losses = list(experiment_notebooks(main_study.study_dir))
    experiments = [f"book/generated/experiments/{loss}.html" for loss in losses]
    for page in STUDY_PAGES + experiments + ["book/api.html", "book/references.html"]:
        assert (main_study.html_dir / page).is_file(), page
    built = sorted(p.stem for p in (main_study.html_dir / "book/generated/experiments").glob("*.html"))
    assert built == sorted(losses)
    assert external_references(main_study.html_dir) == []
    total, (largest, size) = book_size(main_study.html_dir)
    print(f"book: {total / 1e6:.1f} MB in total, largest page {largest} {size / 1e6:.1f} MB")
    assert size < 10e6
    for page in book_pages(main_study.html_dir):  # plotly.js only where a plotly figure is
        text = (main_study.html_dir / page).read_text()
        loads = re.search(r"<script[^>]*\bsrc=\"[^\"]*plotly[^\"]*\.js", text) is not None  # either bundle
        assert loads == ('class="plotly-graph-div"' in text), page
    results = (main_study.html_dir / "book/generated/results.html").read_text()
    assert "SYNTHETIC" in results and "figure6" in results
    assert "ZADC &lt; -2 (baseline)" in results or "ZADC < -2 (baseline)" in results


_TUPLE = re.compile(r"\(\s*-?\d[\d.]*\s*(,\s*-?\d[\d.]*\s*)+,?\)|\(\d+,\)|\(\)")
_SNAKE = re.compile(r"\b[a-z]+_[a-z0-9_]+\b")


def raw_values(page_html: str) -> list[str]:
    """What a copy editor would strike in a page's tables and prose: ``None``, "(s)" plurals,
    Python tuples in table cells, raw column names (snake_case) in table headers. Text set as
    code (``<code>``, ``<pre>``: parameter and file names a reader types) and formulas are left alone."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(page_html, "html.parser")
    article = soup.find("article") or soup
    for code in article.find_all(["code", "pre", "script", "style"]):
        code.decompose()
    for math in article.select(".math"):  # formulas: a(s) is a function of s there
        math.decompose()
    found = [f"'(s)' in {m!r}" for m in re.findall(r"\w+\(s\)", article.get_text(" "))]
    for cell in article.find_all(["td", "th"]):
        text = cell.get_text(" ", strip=True)
        if re.search(r"\bNone\b", text):
            found.append(f"None in cell {text[:60]!r}")
        if _TUPLE.search(text):
            found.append(f"tuple in cell {text[:60]!r}")
        if cell.name == "th" and _SNAKE.search(text):
            found.append(f"raw column name {text[:60]!r}")
    return found


def test_raw_values_are_found() -> None:
    page = (
        "<article><table><tr><th>case_id</th><th>Dice</th></tr><tr><td>None</td><td>(32, 192, 192)</td>"
        "</tr><tr><td><code>mirror_axes</code></td><td>(2,)</td></tr></table><p>2 seed(s)</p></article>"
    )
    found = raw_values(page)
    assert len(found) == 5 and not any("mirror_axes" in f for f in found), found
    assert (
        raw_values(
            "<article><table><tr><th>cases (case-runs)</th></tr><tr><td>0 (0)</td></tr></table></article>"
        )
        == []
    )


def test_book_pages_have_no_python_reprs_or_raw_column_names(main_study):
    pages = [
        p
        for p in book_pages(main_study.html_dir)
        if not p.startswith(("book/api", "genindex", "py-modindex"))
    ]
    problems = {
        page: found for page in pages if (found := raw_values((main_study.html_dir / page).read_text()))
    }
    assert problems == {}, problems


def test_study_pages_fold_their_code(main_study):
    for page in STUDY_PAGES:
        text = (main_study.html_dir / page).read_text()
        assert unfolded_code_cells(text) == 0, page
        assert "tag_parameters" not in text and "tag_injected-parameters" not in text, page
    references = (main_study.html_dir / "book/references.html").read_text()
    assert "10.1038/s41597-024-03986-7" in references


def _chromium() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


# pydata-sphinx-theme logs an error when a file:// page has no stored theme mode yet.
KNOWN_HARMLESS = (
    "favicon",
    "invalid theme mode",
    "ERR_NAME_NOT_RESOLVED",
    "ERR_PROXY_CONNECTION_FAILED",
    "ERR_INTERNET_DISCONNECTED",
)


def _driver(tmp_path, width: int = 1400):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = _chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", f"--window-size={width},1000",
                 f"--user-data-dir={tmp_path / 'profile'}", "--proxy-server=http://127.0.0.1:9",
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)


_STATE = """
const gd = document.getElementById(arguments[0]);
if (!gd || !gd.data || !gd.layout.sliders) return null;
const z = gd.data[0].z;  // plotly sends numpy arrays as {dtype, bdata, shape}
const text = (z && typeof z.bdata === 'string') ? z.bdata : JSON.stringify(z);
let hash = 0;
for (let i = 0; i < text.length; i++) hash = (hash * 31 + text.charCodeAt(i)) | 0;
return {active: gd.layout.sliders[0].active, checksum: hash, length: text.length,
        frames: (gd._transitionData._frames || []).length};
"""


def test_results_page_viewer_slider_moves_in_a_real_browser(main_study, tmp_path):
    if _chromium() is None:
        if os.environ.get("CI"):
            pytest.fail(
                "chromium and chromedriver are required in CI (apt-get install chromium chromium-driver)"
            )
        pytest.skip("chromium/chromedriver not installed")
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = _driver(tmp_path)
    try:
        driver.get((main_study.html_dir / "book/generated/results.html").as_uri())
        WebDriverWait(driver, 60).until(lambda d: d.execute_script(_STATE, "figure6") is not None)
        before = driver.execute_script(_STATE, "figure6")
        assert before["frames"] > 1
        figure = driver.find_element(By.ID, "figure6")
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", figure)
        rail = figure.find_element(By.CSS_SELECTOR, ".slider-rail-rect")
        width = rail.size["width"]
        ActionChains(driver).move_to_element_with_offset(rail, int(width * 0.45) - 3, 0).click().perform()
        WebDriverWait(driver, 30).until(
            lambda d: d.execute_script(_STATE, "figure6")["active"] != before["active"]
        )
        time.sleep(1.0)
        after = driver.execute_script(_STATE, "figure6")
        assert after["checksum"] != before["checksum"], "the slider moved but the image did not change"
        shot = artifacts(tmp_path) / "results-page-viewer.png"
        driver.save_screenshot(str(shot))
        print(f"screenshot of the results page viewer: {shot}")
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        errors = [e for e in errors if not any(k in e["message"] for k in KNOWN_HARMLESS)]
        assert errors == [], errors
    finally:
        driver.quit()


# Each output's box against the article's content box. Tables and text may scroll inside their
# own output box (myst-nb's `.output` scrolls): then that box is measured. Images and plotly
# figures must fit themselves (a clipped figure loses its legend or title).
_WIDE_OUTPUTS = """
const article = document.querySelector('article.bd-article');
if (!article) return null;
const a = article.getBoundingClientRect(), s = getComputedStyle(article);
const left = a.left + parseFloat(s.paddingLeft), right = a.right - parseFloat(s.paddingRight);
const scrolls = (el) => ['auto', 'scroll', 'hidden'].includes(getComputedStyle(el).overflowX);
const kinds = [['table', true], ['pre', true], ['img', false], ['.plotly-graph-div', false], ['.main-svg', false]];
const wide = [];
let outputs = 0;
for (const [selector, mayScroll] of kinds) {
  for (const el of article.querySelectorAll('.cell_output ' + selector)) {
    let box = el;
    if (mayScroll) for (let p = el; p && p !== article; p = p.parentElement) if (scrolls(p)) { box = p; break; }
    const r = box.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) continue;  // folded away
    outputs += 1;
    const extent = box === el ? Math.max(r.right, r.left + el.scrollWidth) : r.right;
    if (r.left < left - 1 || extent > right + 1) {
      const owner = el.closest('[id]');
      wide.push(`${selector} in #${owner ? owner.id : '?'}: ${Math.round(r.left)}..${Math.round(extent)} px`);
    }
  }
}
return {column: [Math.round(left), Math.round(right)], outputs, wide};
"""

_PLOTS_DRAWN = (
    "return [...document.querySelectorAll('.plotly-graph-div')].every(d => d.querySelector('.main-svg'));"
)

# A page with one figure wider than its column and one wide table that scrolls in its own box.
_TOO_WIDE = """data:text/html,<html><body style="margin:0"><article class="bd-article" style="width:600px;padding:0 20px">
<div class="cell_output"><div class="plotly-graph-div" id="wide-figure" style="width:900px;height:20px"></div>
<div class="output" style="overflow-x:auto"><table style="width:2000px"><tr><td>x</td></tr></table></div></div>
</article></body></html>"""


def test_study_page_outputs_fit_the_text_column(main_study, tmp_path):
    if _chromium() is None:
        if os.environ.get("CI"):
            pytest.fail("chromium and chromedriver are required in CI")
        pytest.skip("chromium/chromedriver not installed")
    from selenium.webdriver.support.ui import WebDriverWait

    driver = _driver(tmp_path, width=1280)
    try:
        driver.get(_TOO_WIDE)
        probe = driver.execute_script(_WIDE_OUTPUTS)
        assert probe["outputs"] == 2 and len(probe["wide"]) == 1 and "#wide-figure" in probe["wide"][0], probe
        assert driver.execute_script("return window.innerWidth") <= 1280
        for page in STUDY_PAGES:
            driver.get((main_study.html_dir / page).as_uri())
            WebDriverWait(driver, 60).until(lambda d: d.execute_script(_PLOTS_DRAWN))
            measured = driver.execute_script(_WIDE_OUTPUTS)
            print(f"{page}: {measured['outputs']} outputs, text column {measured['column']} px")
            assert measured["wide"] == [], (page, measured)
            if page.endswith("results.html"):
                driver.save_screenshot(str(artifacts(tmp_path) / "results-page-1280px.png"))
    finally:
        driver.quit()


# --- Every page, as a reader sees it over HTTP: tables whole, captions with content, no console error.

#: Tables hidden by a scroll box or cut by their container, and captions that caption nothing.
_CLIPPED = """
const root = document.querySelector('article.bd-article') || document.body;
const problems = [];
const clips = (el) => { const s = getComputedStyle(el);
  return [s.overflowX, s.overflowY].some(v => ['hidden', 'auto', 'scroll', 'clip'].includes(v)); };
const where = (el) => { const o = el.closest('[id]'); return o ? '#' + o.id : el.tagName.toLowerCase(); };
const ar = root.getBoundingClientRect();
for (const table of root.querySelectorAll('table')) {
  const r = table.getBoundingClientRect();
  if (r.width === 0 || r.height === 0) continue;  // folded away (a closed <details>)
  let clipped = false;
  for (let box = table; box && box !== root.parentElement; box = box.parentElement) {
    if (!clips(box)) continue;
    const dy = box.scrollHeight - box.clientHeight, dx = box.scrollWidth - box.clientWidth;
    if (dy > 1 || dx > 1) {
      problems.push(`table in ${where(table)} clipped by <${box.tagName.toLowerCase()} class="${box.className}">: `
                    + `${dx} px hidden across, ${dy} px down`);
      clipped = true;
      break;
    }
  }
  if (!clipped && r.right > ar.right + 1) problems.push(`table in ${where(table)} runs ${Math.round(r.right - ar.right)} px past the page`);
}
// equations and code: a box whose content is wider than it scrolls or hides the rest
for (const el of root.querySelectorAll('div.math, mjx-container[display="true"], pre, div.highlight')) {
  const r = el.getBoundingClientRect();
  if (r.width === 0 || r.height === 0) continue;
  const dx = el.scrollWidth - el.clientWidth;
  if (dx > 1 && clips(el)) problems.push(`${el.tagName.toLowerCase()} in ${where(el)}: ${dx} px hidden across`);
  else if (r.right > ar.right + 1) problems.push(`${el.tagName.toLowerCase()} in ${where(el)} runs ${Math.round(r.right - ar.right)} px past the page`);
}
const content = 'table, img, svg, canvas, iframe, video, pre, .plotly-graph-div, .math';
for (const figure of root.querySelectorAll('figure, div.figure')) {
  const caption = figure.querySelector('figcaption, .caption');
  if (!caption) continue;
  const shown = [...figure.querySelectorAll(content)].filter(el => !caption.contains(el)).filter(el => {
    const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0; });
  if (shown.length === 0) problems.push(`caption without a table or figure in ${where(figure)}: `
                                        + caption.textContent.trim().slice(0, 60));
}
return problems;
"""

_READY = """
return document.readyState === 'complete'
  && [...document.querySelectorAll('.plotly-graph-div')].every(d => d.querySelector('.main-svg'));
"""


@contextlib.contextmanager
def serve(folder: Path):
    """A local HTTP server for ``folder`` on a free port, in a thread; yields its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class _Server(http.server.ThreadingHTTPServer):
    """Room for the search page's burst of page fetches: with the default backlog of 5, a busy
    machine resets some (``net::ERR_CONNECTION_RESET``), which the test would read as a broken page."""

    request_queue_size = 128


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        """No request log on stderr: the test's output stays readable."""


def book_pages(html_dir: Path) -> list[str]:
    """Every page of a built book, as paths relative to ``html_dir``."""
    return sorted(
        p.relative_to(html_dir).as_posix() for p in html_dir.rglob("*.html") if "_static" not in p.parts
    )


def console_errors(driver) -> list[str]:
    """The browser's SEVERE console entries since the last call (the favicon's 404 aside)."""
    return [
        e["message"]
        for e in driver.get_log("browser")
        if e["level"] == "SEVERE" and "favicon" not in e["message"]
    ]


def check_pages(
    driver, base_url: str, pages: list[str], widths=(1280, 800), heights: dict | None = None
) -> list[str]:
    """Visit each page at each window width; every clipped table, empty caption and console error.

    ``heights``, when given, receives each page's height in px at the first width.
    """
    from selenium.webdriver.support.ui import WebDriverWait

    problems = []
    for width in widths:
        driver.set_window_size(width, 1000)
        for page in pages:
            driver.get(base_url + page)
            WebDriverWait(driver, 60).until(lambda d: d.execute_script(_READY))
            problems += [f"{page} at {width} px: {p}" for p in driver.execute_script(_CLIPPED)]
            problems += [f"{page} at {width} px: console: {m}" for m in console_errors(driver)]
            if heights is not None and width == widths[0]:
                heights[page] = driver.execute_script("return document.documentElement.scrollHeight")
    return problems


# A table in a fixed-height scroll box, a wide table in a sideways-scrolling box, a caption
# without content, a console error, an equation and a code line wider than their boxes: the
# check must report all six (and not the short code block).
_CLIPPED_PAGE = """<html><body><article class="bd-article" style="width:600px">
<div id="tall" style="max-height:50px;overflow-y:auto"><table><tr><td>1</td></tr><tr><td>2</td></tr>
<tr><td>3</td></tr><tr><td>4</td></tr></table></div>
<div id="wide" style="overflow-x:auto"><table style="width:2000px"><tr><td>x</td></tr></table></div>
<figure id="empty"><div class="cell_output"></div><figcaption>Table 3: augmentations</figcaption></figure>
<figure id="fine"><table><tr><td>ok</td></tr></table><figcaption>Table 4: fine</figcaption></figure>
<div id="eq"><div class="math" style="overflow-x:auto"><span style="display:inline-block;width:1500px">L = a + b</span></div></div>
<div id="code"><pre style="overflow-x:auto">a_very_long_line_of_code = 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'</pre></div>
<div id="wrapped"><pre style="white-space:pre-wrap;overflow-x:auto">short enough</pre></div>
<script>console.error("boom")</script></article></body></html>"""


def test_page_check_finds_clipped_tables_and_empty_captions(tmp_path):
    if _chromium() is None:
        pytest.skip("chromium/chromedriver not installed")
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "bad.html").write_text(_CLIPPED_PAGE)
    driver = _driver(tmp_path, width=1280)
    try:
        with serve(tmp_path / "site") as url:
            problems = check_pages(driver, url, ["bad.html"], widths=(1280,))
    finally:
        driver.quit()
    assert len(problems) == 6, problems
    assert any("#tall" in p and "down" in p for p in problems), problems
    assert any(p.startswith("bad.html at 1280 px: div in #eq") and "across" in p for p in problems), problems
    assert any("pre in #code" in p and "across" in p for p in problems), problems
    assert any("#wide" in p and "across" in p for p in problems), problems
    assert any("caption without" in p and "#empty" in p for p in problems), problems
    assert any("boom" in p for p in problems), problems


def test_every_page_whole_at_1280_and_800_px_over_http(main_study, tmp_path):
    """No clipped table, no caption without content, no console error; no API page longer than
    the longest study page."""
    if _chromium() is None:
        if os.environ.get("CI"):
            pytest.fail("chromium and chromedriver are required in CI")
        pytest.skip("chromium/chromedriver not installed")
    pages = book_pages(main_study.html_dir)
    assert len(pages) > 10
    heights: dict[str, int] = {}
    driver = _driver(tmp_path, width=1280)
    try:
        with serve(main_study.html_dir) as url:
            problems = check_pages(driver, url, pages, heights=heights)
    finally:
        driver.quit()
    assert problems == [], "\n".join(problems)
    chapter = max(heights[page] for page in STUDY_PAGES)
    api = {page: px for page, px in heights.items() if page.startswith("book/api")}
    assert len(api) == len(API_PAGES) + 1 and max(api.values()) <= chapter, (chapter, api)


def test_names_numbers_captions_and_alt_texts_on_every_page_in_a_real_browser(main_study, tmp_path):
    """Every reader page as the browser renders it (after its scripts ran) names each loss, metric
    and unit by its one display name (hie_core.methods.ALIASES), makes no number slip ("1 cases",
    "+-", "-0.000"), shows every table, image and plotly figure in a numbered, captioned figure and
    gives every image an alt text that is not a file path (the scans are unit-tested in
    test_copy_check.py)."""
    from selenium.webdriver.support.ui import WebDriverWait

    from hie_core.report.book.copy_check import aliases_in_page, copy_slips, figure_problems, reader_pages

    if _chromium() is None:
        if os.environ.get("CI"):
            pytest.fail("chromium and chromedriver are required in CI")
        pytest.skip("chromium/chromedriver not installed")
    pages = reader_pages(main_study.html_dir)
    assert any("experiments/" in page for page in pages), pages
    problems = []
    driver = _driver(tmp_path, width=800)
    try:
        with serve(main_study.html_dir) as url:
            for page in pages:
                driver.get(url + page)
                WebDriverWait(driver, 60).until(lambda d: d.execute_script(_READY))
                rendered = driver.page_source
                hits = aliases_in_page(rendered) + copy_slips(rendered) + figure_problems(rendered)
                problems += [f"{page}: {hit}" for hit in hits]
    finally:
        driver.quit()
    assert problems == [], "\n".join(problems)


_SEARCH_RESULTS = """
const items = [...document.querySelectorAll('#search-results li')];
return {done: !document.querySelector('#search-progress') || /found|did not match/.test(document.body.innerText),
        titles: items.map(li => li.querySelector('a').textContent),
        excerpts: items.map(li => (li.querySelector('p.context') || {}).textContent || ''),
        note: !!document.querySelector('.hie-search-note')};
"""


def _search(driver, url: str) -> dict:
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, 30).until(
        lambda d: sum(map(bool, d.execute_script(_SEARCH_RESULTS)["excerpts"])) >= 3
    )
    time.sleep(0.5)  # the other excerpts arrive
    return driver.execute_script(_SEARCH_RESULTS)


def test_search_shows_excerpts_over_http_and_from_a_file(main_study, tmp_path):
    """Excerpts from the pages' text (never a file name) over HTTP and from file://, where a
    note says the search runs on the copy of the text shipped with the book; no console error."""
    if _chromium() is None:
        pytest.skip("chromium/chromedriver not installed")
    driver = _driver(tmp_path, width=1280)
    try:
        with serve(main_study.html_dir) as url:
            served = _search(driver, url + "search.html?q=Dice")
            # leave the page while the server still runs: a fetch the search page still has in flight
            # would fail when the server stops and be logged under the file:// visit below
            driver.get("about:blank")
            assert console_errors(driver) == []
        opened = _search(driver, (main_study.html_dir / "search.html").as_uri() + "?q=Dice")
        errors = console_errors(driver)
    finally:
        driver.quit()
    for result, note in ((served, False), (opened, True)):
        assert len(result["titles"]) >= 3 and result["note"] is note, result
        assert not any(re.fullmatch(r"[.\s]*\S*\.ipynb[.\s]*", e) for e in result["excerpts"]), result[
            "excerpts"
        ]
        assert any("dice" in e.lower() for e in result["excerpts"]), result["excerpts"]
    assert errors == [], errors


# --- The front page, the reading path, search order and weight ---------------------------------------

#: the issue's limits: the whole built book, and what one page loads on a first visit
BOOK_LIMIT_BYTES = 15_000_000
PAGE_LIMIT_BYTES = 3_000_000


def test_book_within_its_weight(main_study):
    """At most 15 MB in all: no ``_sources``, no source maps, no icon font script (hie_core.report.book.weight)."""
    from hie_core.report.book.weight import book_bytes, page_weights

    html = main_study.html_dir
    total, weights = book_bytes(html), page_weights(html)
    print(f"book: {total / 1e6:.2f} MB")
    for page, size in sorted(weights.items(), key=lambda item: -item[1]):
        print(f"{size / 1e6:6.2f} MB  {page}")
    assert not (html / "_sources").exists() and not list(html.rglob("*.map"))
    assert not (html / "_static" / "scripts" / "fontawesome.js").exists()
    assert total <= BOOK_LIMIT_BYTES, f"book {total / 1e6:.2f} MB"


def test_every_page_within_its_weight(main_study):
    """No page over 3 MB on a first visit (the page, its scripts, stylesheets and images, and what the
    stylesheets load: hie_core.report.book.weight)."""
    from hie_core.report.book.weight import page_weights

    weights = page_weights(main_study.html_dir)
    heavy = {page: round(size / 1e6, 2) for page, size in weights.items() if size > PAGE_LIMIT_BYTES}
    assert not heavy, heavy


_SIDEBAR = """
return [...document.querySelectorAll('.bd-sidebar-primary p.caption, .bd-sidebar-primary li.toctree-l1 > a')]
  .map(e => (e.matches('p.caption') ? 'PART: ' : '') + e.textContent.trim());
"""
_FRONT = """
const article = document.querySelector('article');
const h1 = article.querySelector('h1');
const box = article.querySelector('.admonition');
const abstract = [...article.querySelectorAll('h2')].find(h => /Abstract/.test(h.textContent));
const prose = [...article.querySelectorAll('p')].filter(p => !p.closest('.admonition'));
return {title: document.title, h1: h1 ? h1.textContent.replace('#', '').trim() : '',
        box: box ? box.textContent : '', abstract: !!abstract,
        boxFirst: !!(box && abstract && (box.compareDocumentPosition(abstract) & Node.DOCUMENT_POSITION_FOLLOWING)
                     && (!prose.length || (box.compareDocumentPosition(prose[0]) & Node.DOCUMENT_POSITION_FOLLOWING)))};
"""
_SEARCH_LINKS = """
const done = /Search finished|did not match/.test((document.querySelector('#search-progress') || {}).textContent || '')
  || /found \\d+ page/.test(document.body.innerText);
return {done, links: [...document.querySelectorAll('#search-results li > a')].map(a => a.href)};
"""


def test_front_page_reading_path_and_search_order_in_a_real_browser(main_study, tmp_path):
    """The title names the data (the study is synthetic) and the synthetic box comes before any
    prose; the sidebar is the paper, the appendix, then the API; searching "Dice" lists every
    page of the paper before any page of the API reference."""
    if _chromium() is None:
        pytest.skip("chromium/chromedriver not installed")
    from selenium.webdriver.support.ui import WebDriverWait

    driver = _driver(tmp_path, width=1280)
    try:
        with serve(main_study.html_dir) as url:
            driver.get(url + "book/generated/intro.html")
            WebDriverWait(driver, 60).until(lambda d: d.execute_script(_READY))
            front = driver.execute_script(_FRONT)
            sidebar = driver.execute_script(_SIDEBAR)
            driver.get(url + "search.html?q=Dice")
            WebDriverWait(driver, 60).until(lambda d: d.execute_script(_SEARCH_LINKS)["done"])
            time.sleep(0.5)
            links = driver.execute_script(_SEARCH_LINKS)["links"]
    finally:
        driver.quit()
    title = "Which loss for HIE lesions? A 3D U-Net on a synthetic BONBID-like dataset"
    assert front["h1"] == title and front["title"] == f"Abstract and introduction \u2014 {title}", front
    assert "Synthetic data" in front["box"] and front["abstract"] and front["boxFirst"], front
    parts = [i for i, entry in enumerate(sidebar) if entry.startswith("PART: ")]
    assert [sidebar[i] for i in parts] == ["PART: The paper", "PART: Appendix: the experiments",
                                           "PART: For developers"], sidebar  # fmt: skip
    paper = sidebar[parts[0] + 1 : parts[1]]
    assert paper[0] == "The data" and paper[-2:] == ["How to reproduce", "References"], paper
    assert paper.index("Methods") < paper.index("Analysis plan") < paper.index("Results"), paper
    assert sidebar[parts[2] + 1 :] == ["API reference"], sidebar
    api = [i for i, link in enumerate(links) if "/book/api" in link]
    others = [i for i, link in enumerate(links) if "/book/api" not in link]
    assert api and others and max(others) < min(api), links
