"""The statistical analysis plan: which version a study ran under, and the hash of its page.

The plan is a page of the book, ``book/analysis-plan.md`` (:data:`PLAN_PAGE`): hypotheses,
endpoints, margins, the noise model, designs and what they can detect, and its own history.
Its first lines carry its version and date (``Version 2, 2026-12-07``); :func:`plan_info`
reads them and the page's sha256, and ``results/study.json`` records them, so a study says
which plan, word for word, it was analysed under. A change of the plan is a new version with a
new date and a line in the page's history; ``tests/test_analysis_plan.py`` fails when the
page and :data:`PLAN_VERSION` / :data:`PLAN_DATE` disagree.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

__all__ = [
    "PLAN_DATE",
    "PLAN_PAGE",
    "PLAN_VERSION",
    "PlanPageError",
    "plan_info",
    "plan_path",
    "read_plan_header",
]

#: The plan's version; raised with every change of what the plan fixes.
PLAN_VERSION = 2
#: The date (ISO 8601) of :data:`PLAN_VERSION`.
PLAN_DATE = "2026-12-07"
#: The plan's page, relative to the project root.
PLAN_PAGE = "book/analysis-plan.md"
_HEADER = re.compile(r"^\*\*Version (\d+), (\d{4}-\d{2}-\d{2})\*\*", re.MULTILINE)


class PlanPageError(ValueError):
    """The plan's page does not state the version and date the code says it is at."""


def plan_path(root: str | Path | None = None) -> Path:
    """The plan's page under ``root`` (default: the project root, the folder above ``hie_core/``)."""
    base = Path(root) if root is not None else Path(__file__).resolve().parents[3]
    return base / PLAN_PAGE


def read_plan_header(text: str) -> tuple[int, str] | None:
    """``(version, date)`` from the page's ``**Version N, YYYY-MM-DD**`` line; None without one."""
    match = _HEADER.search(text)
    return (int(match.group(1)), match.group(2)) if match else None


def plan_info(root: str | Path | None = None) -> dict:
    """The plan a study is analysed under: ``{"version", "date", "page", "sha256"}``.

    ``sha256`` is the hex digest of the page's bytes, None when the page is not there (a
    package installed without the book's sources); ``page`` is :data:`PLAN_PAGE`.

    Raises:
        PlanPageError: the page states another version or date than :data:`PLAN_VERSION` and
            :data:`PLAN_DATE` (the page was changed without raising the version, or the reverse).
    """
    path = plan_path(root)
    info = {"version": PLAN_VERSION, "date": PLAN_DATE, "page": PLAN_PAGE, "sha256": None}
    if not path.is_file():
        return info
    data = path.read_bytes()
    header = read_plan_header(data.decode("utf-8"))
    if header != (PLAN_VERSION, PLAN_DATE):
        raise PlanPageError(
            f"{path} states {header or 'no **Version N, YYYY-MM-DD** line'}, the code plan version "
            f"{PLAN_VERSION} of {PLAN_DATE}: change both together (hie_core/report/analysis/plan.py)"
        )
    info["sha256"] = hashlib.sha256(data).hexdigest()
    return info
