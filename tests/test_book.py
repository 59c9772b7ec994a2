"""The book the main job built: offline, light, folded code, outputs within the text column,
and its viewers working in a real browser.

Uses the session's ``main_study`` (``conftest.py``): the quick study on the synthetic data and
its book under ``_build/html``. The browser tests drive Debian's headless Chromium. Unit tests
of the build itself (on tiny study folders) are in ``test_book_build.py``.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pytest

from hie_core.report.book import BOOK_NOTEBOOKS, book_size, experiment_notebooks, external_references

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("HIE_ARTIFACTS", ROOT / "runs" / "artifacts"))


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
    results = (main_study.html_dir / "book/generated/results.html").read_text()
    assert "SYNTHETIC" in results and "figure6" in results
    assert "ZADC &lt; -2 (baseline)" in results or "ZADC < -2 (baseline)" in results


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
                 "--host-resolver-rules=MAP * ~NOTFOUND"):  # fmt: skip
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
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "results-page-viewer.png"
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
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                driver.save_screenshot(str(ARTIFACTS / "results-page-1280px.png"))
    finally:
        driver.quit()
