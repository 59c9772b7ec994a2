"""Lighter interactive figures: each large plotly figure's script gzip-compressed in its page.

A slice viewer's script holds every slice of its volumes (plotly's ``bdata``: base64 of raw
bytes), 0.9-2 MB of text that gzip reduces about four times. Once the book is written
(``build-finished``, :func:`compress_figure_scripts`), each inline ``<script>`` of a plotly
figure over :data:`MIN_BYTES` becomes a short loader: the gzip of the original script in base64,
which the browser inflates with its own ``DecompressionStream`` (Chromium 80, Firefox 113,
Safari 16.4) and runs as it was, so the figure is the same, from ``file://`` and over HTTP.

:func:`drop_brand_font` removes the theme's Font Awesome brands font (0.12 MB, declared on every
page) when no page shows a brand icon.
"""

from __future__ import annotations

import base64
import gzip
import re
from pathlib import Path

from hie_core.io import atomic_write_text

__all__ = ["MIN_BYTES", "compress_figure_scripts", "compressed_script", "drop_brand_font", "inflate_script"]

#: a figure script shorter than this stays as it is
MIN_BYTES = 20_000
_SCRIPT = re.compile(r"(<script\b[^>]*>)(\s*window\.PLOTLYENV=.*?)(</script>)", re.DOTALL)
_LOADER = (
    '(function(){{const s=atob("{data}");const b=new Uint8Array(s.length);'
    "for(let i=0;i<s.length;i++)b[i]=s.charCodeAt(i);"
    "new Response(new Blob([b]).stream().pipeThrough(new DecompressionStream('gzip'))).text()"
    ".then(code=>{{(new Function(code))();}});}})();"
)
_DATA = re.compile(r'atob\("([A-Za-z0-9+/=]*)"\)')


def compressed_script(code: str) -> str:
    """The loader that runs ``code`` (JavaScript) once the browser has inflated it."""
    data = base64.b64encode(gzip.compress(code.encode("utf-8"), 9, mtime=0)).decode("ascii")
    return _LOADER.format(data=data)


def inflate_script(loader: str) -> str:
    """The code a :func:`compressed_script` loader runs (for tests and for reading a page)."""
    match = _DATA.search(loader)
    if match is None:
        raise ValueError("not a compressed figure script")
    return gzip.decompress(base64.b64decode(match.group(1))).decode("utf-8")


def compress_figure_scripts(outdir: Path, min_bytes: int = MIN_BYTES) -> dict[str, tuple[int, int]]:
    """In a built book: each plotly figure script of at least ``min_bytes`` as a gzip loader.

    Returns:
        ``{page relative to outdir: (bytes before, bytes after)}`` for each page changed.
    """
    outdir = Path(outdir)
    changed = {}
    for page in sorted(outdir.rglob("*.html")):
        if "_static" in page.relative_to(outdir).parts:
            continue
        text = page.read_text(encoding="utf-8")
        if "window.PLOTLYENV" not in text:
            continue

        def squeeze(m: re.Match) -> str:
            code = m.group(2)
            if len(code) < min_bytes:
                return m.group(0)
            return f"{m.group(1)}{compressed_script(code)}{m.group(3)}"

        new = _SCRIPT.sub(squeeze, text)
        if new != text:
            atomic_write_text(page, new)
            changed[page.relative_to(outdir).as_posix()] = (len(text.encode()), len(new.encode()))
    return changed


_BRANDS_FACE = re.compile(r"@font-face\s*{[^}]*Font Awesome\\?\s*6 Brands[^}]*}", re.IGNORECASE)
_BRAND_CLASS = re.compile(r"""class\s*=\s*["'][^"']*\b(?:fa-brands|fab)\b""")


def drop_brand_font(outdir: Path) -> list[str]:
    """In a built book where no page has an element of class ``fa-brands`` or ``fab``: the brands
    ``@font-face`` out of every stylesheet, and its font files deleted. Returns the deleted files."""
    outdir = Path(outdir)
    pages = [p for p in outdir.rglob("*.html") if "_static" not in p.relative_to(outdir).parts]
    if any(_BRAND_CLASS.search(p.read_text(encoding="utf-8", errors="replace")) for p in pages):
        return []
    fonts: set[Path] = set()
    for sheet in outdir.rglob("*.css"):
        css = sheet.read_text(encoding="utf-8", errors="surrogateescape")
        faces = _BRANDS_FACE.findall(css)
        if not faces:
            continue
        for face in faces:
            fonts.update(
                (sheet.parent / u).resolve() for u in re.findall(r"url\(\s*[\"']?([^\"')?#]+)", face)
            )
        atomic_write_text(sheet, _BRANDS_FACE.sub("", css))
    deleted = []
    for font in sorted(fonts):
        if font.is_file():
            font.unlink()
            deleted.append(font.relative_to(outdir.resolve()).as_posix())
    return deleted
