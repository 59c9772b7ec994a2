"""What the built book says about itself: a title that names its data, how to cite it, and
where its code comes from.

:func:`hie_core.report.book.build.build_book` calls :func:`write_build_files` once per build:

- the book's title (the site title of every page, from a generated ``_config.yml``, and the
  Intro page's heading) names the data the study ran on (:func:`book_title`): "... on a
  synthetic BONBID-like dataset" for the embedded synthetic data, "... on BONBID-HIE" for the
  real release; the committed ``_config.yml`` is never rewritten;
- ``book/generated/cite.md``, the "Cite this book" block that ``book/references.md`` includes:
  the package version, the build date and the git commit (or "not a git checkout");
- ``book/generated/get-the-code.md``, which ``book/reproduce.md`` includes: ``git clone`` of the
  repository named by the checkout's git remote, or, without one, the folder it was built from.

As a Sphinx extension (``_config.yml`` lists it), the front page, whose heading is the book's
title, is "Abstract and introduction — <title>" in the browser's title bar, not "<title> — <title>".
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from hie_core.io import atomic_write_text
from hie_core.report.analysis.study_model import load_study

__all__ = [
    "BOOK_QUESTION",
    "CITE_PAGE",
    "CODE_PAGE",
    "FRONT_PAGE",
    "GENERATED_CONFIG",
    "GitFacts",
    "book_title",
    "cite_markdown",
    "get_the_code_markdown",
    "git_facts",
    "study_synthetic",
    "write_build_files",
    "write_config",
    "setup",
]

#: the book's question: the first half of its title and the Intro page's heading
BOOK_QUESTION = "Which loss for HIE lesions?"
#: the front page's name in the browser's title bar (its heading is the book's title)
FRONT_PAGE = "Abstract and introduction"
#: the committed _config.yml with the study's title, as the build reads it (git-ignored)
GENERATED_CONFIG = "book/generated/_config.yml"
#: the "Cite this book" block, included by book/references.md
CITE_PAGE = "book/generated/cite.md"
#: how to get the code the book was built from, included by book/reproduce.md
CODE_PAGE = "book/generated/get-the-code.md"
_USERINFO = re.compile(r"^(\w+://)[^/@]+@")  # https://user:token@host/... -> https://host/...


def book_title(synthetic: bool | None) -> str:
    """The book's title, naming the data it was built on.

    Args:
        synthetic: whether the study ran on the embedded synthetic dataset (``None``: the study
            recorded no data source).
    """
    if synthetic is None:
        return f"{BOOK_QUESTION} A 3D U-Net study (data source not recorded)"
    return f"{BOOK_QUESTION} A 3D U-Net on {'a synthetic BONBID-like dataset' if synthetic else 'BONBID-HIE'}"


def study_synthetic(study_dir: Path) -> bool | None:
    """Whether a study ran on synthetic data: ``results/study.json``'s flag, else its runs' own.

    The runs' flag is ``config.json``'s ``synthetic`` (any run that says synthetic makes the
    study synthetic). ``None`` when the study has neither (no result tables and no run record).
    """
    return load_study(study_dir).synthetic if Path(study_dir).is_dir() else None


@dataclass(frozen=True)
class GitFacts:
    """The git checkout a book was built from (all ``None`` when it is not one).

    Attributes:
        commit: the full commit hash of ``HEAD``.
        dirty: whether tracked files differ from that commit.
        remote: the URL of the ``origin`` remote (else the first remote), without user or token.
    """

    commit: str | None = None
    dirty: bool = False
    remote: str | None = None


def _git(root: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def git_facts(root: Path) -> GitFacts:
    """The commit, the state of the tracked files and the remote of the checkout at ``root``."""
    root = Path(root)
    top = _git(root, "rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != root.resolve():  # a folder inside someone else's checkout
        return GitFacts()
    commit = _git(root, "rev-parse", "HEAD")
    dirty = _git(root, "status", "--porcelain", "--untracked-files=no")
    remotes = (_git(root, "remote") or "").split()
    name = "origin" if "origin" in remotes else (remotes[0] if remotes else None)
    url = _git(root, "remote", "get-url", name) if name else None
    return GitFacts(commit, bool(dirty), _USERINFO.sub(r"\1", url) if url else None)


def cite_markdown(title: str, version: str, date: dt.date, git: GitFacts) -> str:
    """The "Cite this book" block (MyST Markdown): a sentence and a BibTeX entry.

    Args:
        title: the book's title (:func:`book_title`).
        version: the ``hie-core`` package version the book was built with.
        date: the build date (UTC).
        git: the checkout (:func:`git_facts`); its commit, or "not a git checkout".
    """
    changes = " with uncommitted changes" if git.dirty else ""
    if git.commit:
        source, origin = f"commit {git.commit}{changes}", f"commit `{git.commit}`"
    else:
        source, origin = "not a git checkout", "a folder that is not a git checkout"
    where = f" of {git.remote}" if git.remote else ""
    url = f"\n  url          = {{{git.remote}}}," if git.remote else ""
    return (
        "## Cite this book\n\n"
        f"hie-lesion-book contributors ({date.year}). *{title}*. Version {version}, built on "
        f"{date.isoformat()} from {origin}{where}{' (with uncommitted changes)' if git.dirty else ''}.\n\n"
        "```bibtex\n"
        f"@misc{{hielesionbook{date.year},\n"
        "  author       = {{hie-lesion-book contributors}},\n"
        f"  title        = {{{{{title}}}}},\n"
        f"  year         = {{{date.year}}},\n"
        f"  note         = {{Version {version}, {source}, built {date.isoformat()}}},{url}\n"
        "}\n"
        "```\n"
    )


def get_the_code_markdown(git: GitFacts, root: Path) -> str:
    """How to get the code the book was built from (MyST Markdown, a sentence and a command block).

    The checkout's remote when it has one (with the commit to check out), else the folder itself.
    """
    if git.remote:
        checkout = f"git checkout {git.commit}\n" if git.commit else ""
        dirty = " (the book was built with uncommitted changes on top of it)" if git.dirty else ""
        return (
            f"The book was built from the repository {git.remote}, commit `{git.commit}`{dirty}:\n\n"
            f"```bash\ngit clone {git.remote} hie-lesion-book && cd hie-lesion-book\n{checkout}```\n"
        )
    state = f"a git checkout at commit `{git.commit}` with no remote" if git.commit else "not a git checkout"
    return (
        f"The book was built from the folder `{root}` ({state}): use that folder, or a copy of it, "
        "as the project below.\n\n"
        f"```bash\ncd {root}\n```\n"
    )


def write_config(root: Path, title: str) -> Path:
    """``book/generated/_config.yml``: the committed ``_config.yml`` with ``title`` as the book's title."""
    root = Path(root)
    config = yaml.safe_load((root / "_config.yml").read_text())
    config["title"] = title
    header = "# Generated by hie_core.report.book.meta.write_config from _config.yml: do not edit.\n"
    return atomic_write_text(root / GENERATED_CONFIG, header + yaml.safe_dump(config, sort_keys=False))


def write_build_files(root: Path, study_dir: Path, project: Path | None = None) -> Path:
    """Write the generated config, the cite block and the get-the-code block; return the config.

    Args:
        root: where the book's sources are (the project, or the staged copy).
        study_dir: the study folder (its data source names the book).
        project: the project the sources come from (its git facts), default ``root``.
    """
    from hie_core import __version__

    project = Path(project or root)
    title = book_title(study_synthetic(study_dir))
    git = git_facts(project)
    today = dt.datetime.now(dt.timezone.utc).date()
    atomic_write_text(Path(root) / CITE_PAGE, cite_markdown(title, __version__, today, git))
    atomic_write_text(Path(root) / CODE_PAGE, get_the_code_markdown(git, project.resolve()))
    return write_config(root, title)


def _title_once(app, pagename: str, templatename: str, context: dict, doctree) -> None:
    """Sphinx ``html-page-context``: the front page, titled as the book, is "Abstract and
    introduction — <book title>" in the browser, not "<book title> — <book title>"."""
    title, book = context.get("title"), context.get("docstitle")
    if title and book and re.sub(r"<[^>]+>", "", str(title)).strip() == str(book).strip():
        context["title"] = FRONT_PAGE


def setup(app) -> dict:
    """Register the front page's browser title (``_title_once``)."""
    app.connect("html-page-context", _title_once)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
