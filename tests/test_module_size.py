"""No module of ``hie_core`` is over 450 lines (issue 26: a module a newcomer can read whole).

A module that grows past the limit is split by concern (a package whose ``__init__`` re-exports
the public names, as ``hie_core.synthetic`` or ``hie_core.model``), not trimmed.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "hie_core"
#: The most lines a module of the package may have.
LIMIT = 450


def module_lengths() -> dict[str, int]:
    """Lines of every ``.py`` file under ``hie_core/``, keyed by its path relative to the checkout."""
    return {
        path.relative_to(ROOT).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for path in sorted(PACKAGE.rglob("*.py"))
        if "__pycache__" not in path.parts
    }


def test_no_module_is_over_the_limit() -> None:
    over = {path: n for path, n in module_lengths().items() if n > LIMIT}
    assert not over, (
        f"module(s) over {LIMIT} lines: "
        + ", ".join(f"{path} ({n} lines)" for path, n in over.items())
        + "; split each by concern into modules of at most "
        f"{LIMIT} lines (a package whose __init__ re-exports the public names keeps every import path)"
    )
