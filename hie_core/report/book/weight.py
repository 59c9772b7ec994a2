"""The book's weight: what each page loads, and a lighter built book.

A Sphinx extension (listed in ``_config.yml``) that loads MathJax only on the pages that hold
an equation themselves (:func:`mathjax_own_equations`: Sphinx also loads it on a page whose
toctree includes such a page, which is every page for the front page), and, once the HTML is
written (``build-finished``):

- replaces the theme's Font Awesome bundle (``_static/scripts/fontawesome.js``, 1.5 MB on every
  page, which turns ``<i class="fa-solid fa-bars">`` into inline SVG) by a stylesheet of only the
  icons the book's pages use (:func:`icon_css`: each icon as a CSS mask of its SVG path, a few
  hundred bytes each), and removes the bundle;
- drops the search scripts (the whole search index among them) from every page but the search
  page, where the theme does not search as one types (:func:`drop_search_scripts`: its search
  box sends the query to the search page);
- keeps only the woff2 source of a web font that has one (:func:`drop_font_fallbacks`: every
  browser that runs the book reads woff2; the theme's truetype copies are 0.7 MB);
- removes the theme's translation catalogues (:func:`remove_translation_catalogues`: ``.po`` and
  ``.mo`` files under ``_static/locales``, read at build time, never by a page);
- removes the source maps (``*.map``) and the comments that name them, and the plotly.js
  bundles that no page loads (:func:`remove_unloaded`: the full bundle where every figure
  takes the cartesian one).

- gzips each large plotly figure's script in its page, inflated by the browser
  (:func:`hie_core.report.book.compress.compress_figure_scripts`: a slice viewer 4 times lighter);
- writes each table's and figure's CSV (a ``data:`` link in the notebook output) to a file beside
  its page (:func:`hie_core.report.viewers.csv_links.write_csv_files`).

``html_copy_source: false`` (``_config.yml``) keeps the ``_sources/`` copies out of the book.
:func:`page_weights` measures what a browser loads for each page on a first visit (the page,
its scripts, stylesheets and images, and what the stylesheets load), :func:`book_bytes` the
whole book.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from hie_core.io import atomic_write_text
from hie_core.report.book.compress import compress_figure_scripts, drop_brand_font
from hie_core.report.book.mathjax import MATHJAX_COMPONENTS, MATHJAX_ENTRY
from hie_core.report.viewers.csv_links import write_csv_files

__all__ = [
    "FONTAWESOME_JS",
    "ICON_CSS",
    "OPTIONAL_SCRIPTS",
    "book_bytes",
    "drop_font_fallbacks",
    "drop_search_scripts",
    "icon_css",
    "mathjax_own_equations",
    "icons_used",
    "page_assets",
    "page_weights",
    "parse_fontawesome",
    "remove_source_maps",
    "remove_translation_catalogues",
    "remove_unloaded",
    "replace_fontawesome",
    "setup",
]

#: the theme's Font Awesome bundle in a built book
FONTAWESOME_JS = "_static/scripts/fontawesome.js"
#: the stylesheet of the icons the pages use, written to ``_static/`` in its place
ICON_CSS = "hie-icons.css"
_STYLES = {
    "fas": "fas",
    "fa-solid": "fas",
    "far": "far",
    "fa-regular": "far",
    "fab": "fab",
    "fa-brands": "fab",
}
#: Font Awesome's utility classes, which name no icon
_NOT_ICONS = {"fa-lg", "fa-xs", "fa-sm", "fa-xl", "fa-2x", "fa-3x", "fa-fw", "fa-spin", "fa-pulse", "fa-inverse",
              "fa-border", "fa-pull-left", "fa-pull-right", "fa-flip", "fa-stack", "fa-ul", "fa-li"}  # fmt: skip
_PACK = re.compile(r'\b\w+\("(fas|far|fab)",')  # where a pack's icon table is registered
_ICON = re.compile(
    r'(?:"([\w-]+)"|([A-Za-z_]\w*)):\[(\d+),(\d+),\[([^\]]*)\],"[0-9a-f]*",("(?:[^"\\]|\\.)*")\]'
)
_CLASS = re.compile(r"""<(?:i|span)\b[^>]*\bclass\s*=\s*["']([^"']*\bfa[\w-]*[^"']*)["']""", re.IGNORECASE)
_FA_SCRIPT = re.compile(
    r"""<script\b[^>]*\bsrc\s*=\s*["']([^"']*?)_static/scripts/fontawesome\.js[^"']*["'][^>]*>\s*</script>"""
)
_MAP_COMMENT = re.compile(r"\n?(?://[#@] sourceMappingURL=[^\n]*|/\*[#@] sourceMappingURL=[^*]*\*/)")
_ASSET = re.compile(
    r"""<(script|link|img|source|iframe|embed|video|audio)\b([^>]*?)\b(src|href)\s*=\s*["']([^"']+)["']([^>]*)>""",
    re.IGNORECASE,
)
_CSS_REF = re.compile(r"""url\(\s*["']?([^"')]+)["']?\s*\)|@import\s+["']([^"']+)["']""", re.IGNORECASE)
_FONT_FACE = re.compile(r"@font-face\s*{[^}]*}", re.IGNORECASE)
_LOADED_LINKS = {"stylesheet", "preload", "modulepreload", "icon", "shortcut icon"}


def parse_fontawesome(text: str) -> dict[tuple[str, str], tuple[int, int, str]]:
    """The icons of a Font Awesome 6 bundle: ``{(pack, name): (width, height, svg path)}``.

    ``pack`` is ``fas`` (solid), ``far`` (regular) or ``fab`` (brands); every alias an icon
    lists is a name too. Each pack's table precedes the call that registers it.
    """
    icons: dict[tuple[str, str], tuple[int, int, str]] = {}
    start = 0
    for match in _PACK.finditer(text):
        pack = match.group(1)
        for icon in _ICON.finditer(text, start, match.start()):
            name = icon.group(1) or icon.group(2)
            width, height, path = int(icon.group(3)), int(icon.group(4)), json.loads(icon.group(6))
            aliases = [a.strip().strip('"') for a in icon.group(5).split(",") if a.strip().startswith('"')]
            for key in (name, *aliases):
                icons.setdefault((pack, key), (width, height, path))
        start = match.end()
    return icons


def icons_used(pages: list[str]) -> set[tuple[str, str]]:
    """The ``(pack, icon name)`` pairs the pages' ``<i>``/``<span>`` elements ask for (solid by default)."""
    used = set()
    for page in pages:
        for classes in _CLASS.findall(page):
            names = classes.split()
            pack = next((_STYLES[n] for n in names if n in _STYLES), "fas")
            for name in names:
                if name.startswith("fa-") and name not in _STYLES and name not in _NOT_ICONS:
                    used.add((pack, name[3:]))
    return used


def icon_css(icons: dict[tuple[str, str], tuple[int, int, str]], used: set[tuple[str, str]]) -> str:
    """A stylesheet that draws each used icon as a mask of its SVG path in the text colour.

    An icon is ``height`` 1 em and ``width/height`` em wide, on the baseline as Font Awesome
    sets it; ``fa-lg`` is 1.25 times larger. Used names that the bundle lacks get no rule.
    """
    packs = {"fas": ("fa-solid", "fas"), "far": ("fa-regular", "far"), "fab": ("fa-brands", "fab")}
    rules, selectors = [], []
    for pack, name in sorted(used):
        if (pack, name) not in icons:
            continue
        width, height, path = icons[(pack, name)]
        svg = (
            f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {width} {height}'><path d='{path}'/></svg>"
        )
        uri = "data:image/svg+xml," + quote(svg, safe=" /:=',.-")
        sel = ",".join(f".{cls}.fa-{name}::before" for cls in packs[pack])
        if pack == "fas":
            sel += f",.fa-{name}:not(.fa-regular):not(.far):not(.fa-brands):not(.fab)::before"
        selectors.append(sel)
        rules.append(
            f'{sel}{{width:{width / height:.4g}em;-webkit-mask-image:url("{uri}");mask-image:url("{uri}")}}'
        )
    if not rules:
        return ""
    head = (
        "/* The icons of the book's pages, from Font Awesome Free 6 (icons CC BY 4.0, "
        "https://fontawesome.com/license/free), written by hie_core.report.book.weight. */\n"
        ".fa-lg{font-size:1.25em;line-height:.05em;vertical-align:-.075em}\n"
        ".fa-fw{text-align:center;width:1.25em}\n"
        f"{','.join(selectors)}{{content:'';display:inline-block;height:1em;vertical-align:-.125em;"
        "background-color:currentColor;-webkit-mask-repeat:no-repeat;mask-repeat:no-repeat;"
        "-webkit-mask-position:center;mask-position:center;-webkit-mask-size:contain;mask-size:contain}\n"
    )
    return head + "\n".join(rules) + "\n"


def replace_fontawesome(outdir: Path) -> int:
    """In a built book: the icon stylesheet in place of ``fontawesome.js`` on every page.

    Returns:
        How many icons the stylesheet draws (0, and nothing changed, when the theme loads no
        ``fontawesome.js``).
    """
    outdir = Path(outdir)
    bundle = outdir / FONTAWESOME_JS
    if not bundle.is_file():
        return 0
    pages = {p: p.read_text(encoding="utf-8") for p in outdir.rglob("*.html")}
    icons = parse_fontawesome(bundle.read_text(encoding="utf-8"))
    used = icons_used(list(pages.values()))
    atomic_write_text(outdir / "_static" / ICON_CSS, icon_css(icons, used))
    for path, text in pages.items():
        new = _FA_SCRIPT.sub(
            lambda m: f'<link rel="stylesheet" href="{m.group(1)}_static/{ICON_CSS}" />', text
        )
        if new != text:
            atomic_write_text(path, new)
    bundle.unlink()
    return len([u for u in used if u in icons])


def remove_source_maps(outdir: Path) -> int:
    """Delete every ``*.map`` of a built book and the comments naming them; return how many maps."""
    outdir = Path(outdir)
    maps = [p for p in outdir.rglob("*.map") if p.is_file()]
    for path in maps:
        path.unlink()
    for path in [*outdir.rglob("*.js"), *outdir.rglob("*.css")]:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
        if "sourceMappingURL" in text:
            atomic_write_text(path, _MAP_COMMENT.sub("", text))
    return len(maps)


_SEARCH_SCRIPT = re.compile(
    r"""\s*<script\b[^>]*\bsrc\s*=\s*["'][^"']*(?:_static/searchtools\.js|_static/language_data\.js|searchindex\.js)"""
    r"""[^"']*["'][^>]*>\s*</script>"""
)
_NO_TYPING_SEARCH = "DOCUMENTATION_OPTIONS.search_as_you_type = false"


def drop_search_scripts(outdir: Path) -> int:
    """Remove the search scripts from each page but ``search.html`` that does not search as one
    types (the theme's ``search_as_you_type`` off: the page says so); return how many pages."""
    changed = 0
    for path in Path(outdir).rglob("*.html"):
        if path.name == "search.html" or "_static" in path.relative_to(outdir).parts:
            continue
        text = path.read_text(encoding="utf-8")
        if _NO_TYPING_SEARCH in text:
            new = _SEARCH_SCRIPT.sub("", text)
            if new != text:
                atomic_write_text(path, new)
                changed += 1
    return changed


_FONT_SRC = re.compile(r"src\s*:\s*([^;}]*)", re.IGNORECASE)
_FONT_URL = re.compile(r"""url\(\s*["']?([^"')]+)["']?\s*\)""", re.IGNORECASE)


def _woff2_sources(css: str) -> tuple[str, list[str]]:
    """A stylesheet with each ``@font-face`` that has a woff2 source reduced to it, and the
    addresses of the sources it dropped."""
    dropped: list[str] = []

    def source(src: re.Match) -> str:
        parts = [part.strip() for part in re.split(r",(?=\s*(?:url|local)\()", src.group(1))]
        woff2 = [part for part in parts if ".woff2" in part]
        if not woff2 or len(woff2) == len(parts):
            return src.group(0)
        dropped.extend(url for part in parts if part not in woff2 for url in _FONT_URL.findall(part))
        return "src:" + ",".join(woff2)

    return _FONT_FACE.sub(lambda face: _FONT_SRC.sub(source, face.group(0)), css), dropped


def drop_font_fallbacks(outdir: Path) -> list[str]:
    """In each stylesheet's ``@font-face`` with a woff2 source, drop the other sources; then delete
    the font files that no file of the book names any more. Returns the deleted files."""
    outdir = Path(outdir).resolve()
    dropped: set[Path] = set()
    for sheet in outdir.rglob("*.css"):
        css = sheet.read_text(encoding="utf-8", errors="surrogateescape")
        new, urls = _woff2_sources(css)
        dropped.update((sheet.parent / unquote(url.split("?")[0])).resolve() for url in urls)
        if new != css:
            atomic_write_text(sheet, new)
    texts = [p.read_text(encoding="utf-8", errors="replace") for p in outdir.rglob("*")
             if p.suffix in {".html", ".css", ".js"}]  # fmt: skip
    deleted = []
    for font in sorted(dropped):
        if font.is_file() and not any(font.name in text for text in texts):
            font.unlink()
            deleted.append(font.relative_to(outdir).as_posix())
    return deleted


#: the ``_static/`` scripts a page may load or not; the book keeps only those some page loads
OPTIONAL_SCRIPTS = ("plotly.min.js", "plotly-cartesian.min.js")


def remove_unloaded(outdir: Path, names: tuple[str, ...] = OPTIONAL_SCRIPTS) -> list[str]:
    """Delete each ``_static/<name>`` of a built book that no page names; return those deleted."""
    outdir = Path(outdir)
    present = [n for n in names if (outdir / "_static" / n).is_file()]
    if not present:
        return []
    pages = [p.read_text(encoding="utf-8", errors="replace") for p in outdir.rglob("*.html")]
    unused = [n for n in present if not any(f"_static/{n}" in page for page in pages)]
    for name in unused:
        (outdir / "_static" / name).unlink()
    return unused


def _local(base: Path, ref: str, html_dir: Path) -> Path | None:
    """The file a relative reference names, or ``None`` (network, data: URI, fragment, outside)."""
    parts = urlsplit(ref)
    if parts.scheme or parts.netloc or not parts.path:
        return None
    path = (base / unquote(parts.path)).resolve()
    return path if path.is_file() and html_dir.resolve() in path.parents else None


def page_assets(html_dir: Path, page: Path) -> set[Path]:
    """The files a browser loads to show ``page`` on a first visit: the page itself, the scripts,
    stylesheets, preloads, icons and images it references (plain ``<a>`` links load nothing),
    and what those stylesheets load in turn (fonts, images, ``@import``); with MathJax's
    ``startup.js``, the components it loads on every page
    (:data:`hie_core.report.book.mathjax.MATHJAX_COMPONENTS`).

    An upper bound: every font a stylesheet declares counts (a browser fetches only those a
    page uses), and so does an image behind a class no element has.
    """
    html_dir = Path(html_dir).resolve()
    page = Path(page).resolve()
    found = {page}
    text = page.read_text(encoding="utf-8", errors="replace")
    sheets = []
    for tag, before, _, ref, after in _ASSET.findall(text):
        if tag.lower() == "link":
            rel = re.search(r"""\brel\s*=\s*["']([^"']+)""", before + after, re.IGNORECASE)
            if not rel or rel.group(1).lower() not in _LOADED_LINKS:
                continue
        path = _local(page.parent, ref, html_dir)
        if path is not None:
            found.add(path)
            if path.suffix == ".css":
                sheets.append(path)
    for script in [p for p in found if p.name == MATHJAX_ENTRY and p.parent.name == "mathjax"]:
        found.update(c for c in (script.parent / name for name in MATHJAX_COMPONENTS) if c.is_file())
    while sheets:
        sheet = sheets.pop()
        for url, imported in _css_refs(sheet.read_text(encoding="utf-8", errors="replace")):
            path = _local(sheet.parent, url or imported, html_dir)
            if path is not None and path not in found:
                found.add(path)
                if path.suffix == ".css":
                    sheets.append(path)
    return found


def _css_refs(css: str) -> list[tuple[str, str]]:
    """A stylesheet's ``(url, @import)`` references; of a ``@font-face``'s sources only the first,
    the one a browser that reads it takes (woff2 before a truetype fallback)."""
    refs = []
    for face in _FONT_FACE.findall(css):
        refs += _CSS_REF.findall(face)[:1]
    return refs + _CSS_REF.findall(_FONT_FACE.sub("", css))


def page_weights(html_dir: Path) -> dict[str, int]:
    """Bytes each page of a built book loads on a first visit (:func:`page_assets` summed).

    Returns:
        ``{page path relative to html_dir: bytes}`` for every ``*.html`` outside ``_static``.
    """
    html_dir = Path(html_dir)
    pages = sorted(p for p in html_dir.rglob("*.html") if "_static" not in p.relative_to(html_dir).parts)
    return {
        p.relative_to(html_dir).as_posix(): sum(a.stat().st_size for a in page_assets(html_dir, p))
        for p in pages
    }


def book_bytes(html_dir: Path) -> int:
    """Bytes of every file of a built book."""
    return sum(p.stat().st_size for p in Path(html_dir).rglob("*") if p.is_file())


def remove_translation_catalogues(outdir: Path) -> int:
    """Delete ``_static/locales/`` of a built book (the theme's ``.po``/``.mo`` translation catalogues,
    0.7 MB that Sphinx reads at build time and no page loads); return how many files went."""
    folder = Path(outdir) / "_static" / "locales"
    if not folder.is_dir():
        return 0
    pages = [p.read_text(encoding="utf-8", errors="replace") for p in Path(outdir).rglob("*.html")]
    loads = re.compile(r"""(?:src|href)=["'][^"']*_static/locales/""")
    if any(loads.search(page) for page in pages):  # a theme that does load them keeps them
        return 0
    files = [f for f in folder.rglob("*") if f.is_file()]
    shutil.rmtree(folder)
    return len(files)


def _lighten(app, exception) -> None:
    """Sphinx ``build-finished``: the icon stylesheet for fontawesome.js; no source maps or unloaded plotly.js."""
    if exception is not None or app.builder.format != "html":
        return
    write_csv_files(Path(app.outdir))  # first: the pages then weigh what a reader loads
    compress_figure_scripts(Path(app.outdir))
    drop_brand_font(Path(app.outdir))
    replace_fontawesome(Path(app.outdir))
    drop_search_scripts(Path(app.outdir))
    remove_source_maps(Path(app.outdir))
    drop_font_fallbacks(Path(app.outdir))
    remove_unloaded(Path(app.outdir))
    remove_translation_catalogues(Path(app.outdir))


def mathjax_own_equations(app, pagename: str, templatename: str, context: dict, doctree) -> None:
    """Sphinx ``html-page-context`` (after ``sphinx.ext.mathjax``): no MathJax on a page without
    an equation of its own.

    Sphinx counts the equations of the pages a page's toctree includes, so the front page,
    whose toctree is the whole book, would load MathJax's 2.1 MB for none.
    """
    path = getattr(app.config, "mathjax_path", None)
    files = getattr(app.builder, "_js_files", None)  # the page's scripts; Sphinx restores them per page
    if not path or files is None or app.env.get_domain("math").data["has_equations"].get(pagename):
        return
    names = {path, f"_static/{path}"}  # Sphinx puts a relative script under _static/

    def mathjax(js) -> bool:  # the script, or the inline ``window.MathJax = {...}`` before it
        body = str(getattr(js, "attributes", {}).get("body", ""))
        return getattr(js, "filename", None) in names or body.startswith("window.MathJax")

    files[:] = [js for js in files if not mathjax(js)]


def setup(app) -> dict:
    """Register :func:`mathjax_own_equations` and, at ``build-finished``, the icon stylesheet and
    the removal of source maps (``_config.yml`` lists this module)."""
    app.connect("html-page-context", mathjax_own_equations, priority=900)
    app.connect("build-finished", _lighten)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
