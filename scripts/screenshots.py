"""Screenshots of the book's overlay figures, taken in headless Chromium from a built book.

Opens the Results page (its slice viewer, ``#figure6``: one method against the reference, the
method menu, the colour key) and one experiment page (its example overlay still) at 1400 x 1000
CSS pixels from ``file://``, and saves PNGs under ``book/screenshots/ (not under book/assets, which every built book copies)``:

- ``results-viewer.png``: the viewer as it opens (the first method, the key under the panels);
- ``results-viewer-menu.png``: the same with the method menu open;
- ``experiment-overlay.png``: the experiment page's still (true positives, misses, false
  positives, legend);
- ``page-<name>-<width>px.png``: the first screen (``<width>`` x 1000 CSS pixels) of the Intro,
  Results, one experiment page and the Discussion, at 1280 and 800 px, as a reader opens them.

Usage (after building the book)::

    python scripts/screenshots.py [BOOK_HTML_DIR] [--out book/screenshots] [--experiment dice]

Needs Debian's ``chromium`` and ``chromedriver`` and the ``selenium`` package (as the browser
tests do); no network.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

WIDTH, HEIGHT = 1400, 1000
ROOT = Path(__file__).resolve().parents[1]

_PLOTTED = """
const gd = document.getElementById(arguments[0]);
return Boolean(gd && gd.data && gd.layout && gd.layout.sliders);
"""


def _driver(profile: Path):
    """Headless Chromium at WIDTH x HEIGHT with no network (the flags of tests/test_book.py)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (browser and driver):
        sys.exit("chromium and chromedriver are needed (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--hide-scrollbars",
                 f"--window-size={WIDTH},{HEIGHT}", f"--user-data-dir={profile}",
                 "--proxy-server=http://127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND"):  # fmt: skip
        options.add_argument(flag)
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    set_viewport(chrome, WIDTH, HEIGHT)
    return chrome


def set_viewport(chrome, width: int, height: int) -> None:
    """Make the viewport itself ``width`` x ``height`` CSS pixels (the window adds its frame)."""
    chrome.set_window_size(width, height)
    inner = chrome.execute_script("return [window.innerWidth, window.innerHeight];")
    chrome.set_window_size(2 * width - inner[0], 2 * height - inner[1])


def _scroll_to(chrome, element, offset_px: int = 80) -> None:
    chrome.execute_script(
        "const r = arguments[0].getBoundingClientRect(); window.scrollBy(0, r.top - arguments[1]);",
        element,
        offset_px,
    )
    time.sleep(1.0)


def results_shots(chrome, html_dir: Path, out: Path) -> list[Path]:
    """The Results page's viewer, as it opens and with its method menu open."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    page = html_dir / "book" / "generated" / "results.html"
    if not page.is_file():
        sys.exit(f"{page} not found: build the book first, or give its HTML folder")
    chrome.get(page.as_uri())
    WebDriverWait(chrome, 60).until(lambda d: d.execute_script(_PLOTTED, "figure6"))
    figure = chrome.find_element(By.ID, "figure6")
    _scroll_to(chrome, figure)
    shots = [out / "results-viewer.png"]
    chrome.save_screenshot(str(shots[0]))
    headers = figure.find_elements(By.CSS_SELECTOR, ".updatemenu-header")
    if headers:  # plotly's menu header is an SVG group: send it the click plotly listens to
        chrome.execute_script(
            "arguments[0].dispatchEvent(new MouseEvent('click', {bubbles: true}));", headers[0]
        )
        time.sleep(0.8)
        shots.append(out / "results-viewer-menu.png")
        chrome.save_screenshot(str(shots[1]))
    return shots


def experiment_shot(chrome, html_dir: Path, out: Path, loss: str | None) -> Path:
    """One experiment page's example overlay still (the page's last image)."""
    from selenium.webdriver.common.by import By

    pages = sorted((html_dir / "book" / "generated" / "experiments").glob("*.html"))
    if loss:
        pages = [p for p in pages if p.stem == loss]
    if not pages:
        sys.exit(
            f"no experiment page{' ' + loss if loss else ''} under {html_dir}/book/generated/experiments"
        )
    chrome.get(pages[0].as_uri())
    time.sleep(2.0)
    images = chrome.find_elements(By.CSS_SELECTOR, "section#example-overlays img") or chrome.find_elements(
        By.CSS_SELECTOR, "article img"
    )
    if not images:
        sys.exit(f"{pages[0]}: no image to show")
    _scroll_to(chrome, images[-1])
    shot = out / "experiment-overlay.png"
    chrome.save_screenshot(str(shot))
    return shot


PAGE_WIDTHS = (1280, 800)


def page_shots(chrome, html_dir: Path, out: Path, loss: str | None) -> list[Path]:
    """The first screen of the Intro, Results, one experiment page and the Discussion per width."""
    generated = html_dir / "book" / "generated"
    experiments = sorted((generated / "experiments").glob("*.html"))
    if loss:
        experiments = [p for p in experiments if p.stem == loss]
    pages = {"intro": generated / "intro.html", "results": generated / "results.html"}
    if experiments:
        pages["experiment"] = experiments[0]
    pages["discussion"] = generated / "discussion.html"
    shots = []
    for width in PAGE_WIDTHS:
        set_viewport(chrome, width, HEIGHT)
        for name, page in pages.items():
            if not page.is_file():
                print(f"skipped {name}: {page} is not in this book", file=sys.stderr)
                continue
            chrome.get(page.as_uri())
            time.sleep(2.0)  # plotly and MathJax draw after load
            shots.append(out / f"page-{name}-{width}px.png")
            chrome.save_screenshot(str(shots[-1]))
    set_viewport(chrome, WIDTH, HEIGHT)
    return shots


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "html_dir", nargs="?", default="_build/html", help="the built book (default _build/html)"
    )
    parser.add_argument("--out", default=str(ROOT / "book" / "screenshots"), help="folder of the PNGs")
    parser.add_argument(
        "--experiment", default=None, help="the experiment page (a loss, e.g. dice); default first"
    )
    args = parser.parse_args(argv)
    html_dir = Path(args.html_dir).resolve()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        chrome = _driver(Path(profile))
        try:
            shots = [
                *results_shots(chrome, html_dir, out),
                experiment_shot(chrome, html_dir, out, args.experiment),
                *page_shots(chrome, html_dir, out, args.experiment),
            ]
        finally:
            chrome.quit()
    for shot in shots:
        print(f"saved {shot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
