"""The book the main job built: offline, light, and its viewers working in a real browser.

Uses the session's ``main_study`` (``conftest.py``): the quick study on the synthetic data and
its book under ``_build/html``. The browser test drives Debian's headless Chromium.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from hie_core.report.book import book_size, external_references

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("HIE_ARTIFACTS", ROOT / "runs" / "artifacts"))


def test_book_is_built_offline_and_light(main_study):
    assert (main_study.html_dir / "index.html").is_file()
    for page in ("book/generated/results.html", "book/generated/experiments/tversky_hdt.html",
                 "book/generated/data.html", "book/generated/methods.html", "book/api.html"):  # fmt: skip
        assert (main_study.html_dir / page).is_file(), page
    assert external_references(main_study.html_dir) == []
    total, (largest, size) = book_size(main_study.html_dir)
    print(f"book: {total / 1e6:.1f} MB in total, largest page {largest} {size / 1e6:.1f} MB")
    assert size < 10e6
    results = (main_study.html_dir / "book/generated/results.html").read_text()
    assert "SYNTHETIC" in results and "figure6" in results
    assert "ZADC &lt; -2 (baseline)" in results or "ZADC < -2 (baseline)" in results


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


def _driver(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = _chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--window-size=1400,1000",
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
