"""The package's layers, as the README's map declares them, hold for every import.

``hie_core`` is layered: the science core (every top-level module, ``augment/``, ``config/``,
``contrib/``, ``synthetic/``) imports only the core; ``training/`` and ``report/`` each import
the core and themselves, never each other; ``study/`` (the study runner, ``hie-score`` and
outside predictions) may import anything. The test reads every module with :mod:`ast`, so an
import inside a function, a ``TYPE_CHECKING`` block or a ``try`` counts as much as one at the
top, and fails naming each import that runs against the layers. Inside ``report/`` the same holds
for its four layers: ``analysis/`` (the numbers), ``viewers/`` (pictures), ``pages/`` and
``book/`` (the build), each importing only itself and those before it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import hie_core

PACKAGE = Path(hie_core.__file__).resolve().parent
#: The packages that are layers of their own; every other module is the core's.
UPPER = ("training", "report", "study")
#: What each layer may import (besides itself).
ALLOWED = {
    "core": {"core"},
    "training": {"core", "training"},
    "report": {"core", "report"},
    "study": {"core", "training", "report", "study"},
}


#: report/'s own layers, lowest first: each may import itself and those before it.
REPORT_LAYERS = ("analysis", "viewers", "pages", "book")


def layer_of(module: str) -> str:
    """``hie_core.training.fit`` -> ``training``; ``hie_core.metrics`` and ``hie_core`` -> ``core``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in UPPER else "core"


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_imports(path: Path, package_dir: Path = PACKAGE) -> list[tuple[int, str]]:
    """``(line, module)`` of every import of ``hie_core`` in the file, wherever it stands (relative ones resolved)."""
    module = module_name(path, package_dir)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                names = (
                    [".".join([*base, node.module])]
                    if node.module
                    else [".".join([*base, a.name]) for a in node.names]
                )
            else:
                names = [node.module or ""]
            found += [(node.lineno, name) for name in names]
    return [(line, name) for line, name in found if name == "hie_core" or name.startswith("hie_core.")]


def violations(paths, package_dir: Path = PACKAGE) -> list[str]:
    out = []
    for path in paths:
        source = layer_of(module_name(path, package_dir))
        for line, target in project_imports(path, package_dir):
            if layer_of(target) not in ALLOWED[source]:
                where = path.relative_to(package_dir.parent)
                out.append(f"{where}:{line}: {source} imports {target} ({layer_of(target)})")
    return out


def report_layer_of(module: str) -> str | None:
    """``hie_core.report.pages.prose`` -> ``pages``; None outside report's layers (``hie_core.report`` itself)."""
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "report" and parts[2] in REPORT_LAYERS else None


def report_violations(paths, package_dir: Path = PACKAGE) -> list[str]:
    """Imports from a lower report layer into a higher one (``analysis`` importing ``pages``, say)."""
    out = []
    for path in paths:
        source = report_layer_of(module_name(path, package_dir))
        if source is None:
            continue
        allowed = REPORT_LAYERS[: REPORT_LAYERS.index(source) + 1]
        for line, target in project_imports(path, package_dir):
            layer = report_layer_of(target)
            if layer is not None and layer not in allowed:
                where = path.relative_to(package_dir.parent)
                out.append(f"{where}:{line}: report/{source} imports {target} (report/{layer})")
    return out


def test_no_import_runs_against_the_layers() -> None:
    found = violations(sorted(PACKAGE.rglob("*.py")))
    assert not found, "imports against the README's layers:\n" + "\n".join(found)


def test_no_report_module_imports_a_later_report_layer() -> None:
    found = report_violations(sorted((PACKAGE / "report").rglob("*.py")))
    assert not found, "imports against report's layers (analysis, viewers, pages, book):\n" + "\n".join(found)


def test_report_is_its_four_layers_and_nothing_flat() -> None:
    """Every report module lives in one of the four layers; report/ itself holds only its __init__."""
    report = PACKAGE / "report"
    assert sorted(p.name for p in report.glob("*.py")) == ["__init__.py"]
    assert {p.name for p in report.iterdir() if p.is_dir() and (p / "__init__.py").exists()} == set(REPORT_LAYERS)
    assert all(len(list((report / layer).glob("*.py"))) > 2 for layer in REPORT_LAYERS)


def test_the_report_walk_catches_a_page_import_in_analysis(tmp_path: Path) -> None:
    fake = tmp_path / "hie_core"
    (fake / "report" / "analysis").mkdir(parents=True)
    (fake / "report" / "analysis" / "tables.py").write_text(
        "from hie_core.report.analysis import stats\n"
        "def rows():\n"
        "    from hie_core.report.pages import prose\n"
        "    from ..viewers.display import table\n"
        "    from ..book import build\n"
    )
    found = report_violations([fake / "report" / "analysis" / "tables.py"], fake)
    assert [f.split(": ", 1)[1] for f in found] == [
        "report/analysis imports hie_core.report.pages (report/pages)",
        "report/analysis imports hie_core.report.viewers.display (report/viewers)",
        "report/analysis imports hie_core.report.book (report/book)",
    ]


def test_every_layer_is_walked() -> None:
    layers = {layer_of(module_name(p)) for p in PACKAGE.rglob("*.py")}
    assert layers == set(ALLOWED)
    assert sum(len(project_imports(p)) for p in PACKAGE.rglob("*.py")) > 100


def test_the_walk_sees_imports_in_functions_and_relative_ones(tmp_path: Path) -> None:
    """A report module that imports training inside a function, or relatively, is caught."""
    fake = tmp_path / "hie_core"
    (fake / "report").mkdir(parents=True)
    (fake / "report" / "__init__.py").write_text("")
    (fake / "report" / "page.py").write_text(
        "from hie_core.io import read_image\n"
        "def rows():\n"
        "    from hie_core.training.config import make_config\n"
        "    from ..training import fit\n"
        "    from . import tables\n"
        "    import hie_core.study.grid\n"
    )
    found = violations([fake / "report" / "page.py"], fake)
    assert [f.split(": ", 1)[1] for f in found] == [
        "report imports hie_core.training.config (training)",
        "report imports hie_core.training (training)",
        "report imports hie_core.study.grid (study)",
    ]


def test_the_readme_declares_these_layers() -> None:
    """The README's map names the layers this test enforces."""
    readme = (PACKAGE.parent / "README.md").read_text()
    line = next(line for line in readme.splitlines() if line.startswith("| `hie_core/` |"))
    for name in ("`training/`", "`report/`", "`study/`", "`run_folder`", *(f"`{layer}/`" for layer in REPORT_LAYERS)):
        assert name in line, name
    assert "`external`" not in line.split("`training/`")[0], "external is not in the core"


def test_hie_score_loads_only_its_part_of_the_study_package() -> None:
    """``hie_core.study`` imports its parts on first use, so ``hie-score`` loads neither the runner nor the book."""
    code = "import sys, hie_core.study.score; print(' '.join(sorted(m for m in sys.modules if m.startswith('hie_core'))))"
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split())
    assert {"hie_core.study.score", "hie_core.study.external"} <= loaded
    heavy = {"hie_core.study.engine", "hie_core.study.grid", "hie_core.study.finish", "hie_core.training.fit"}
    assert not loaded & heavy and not any(m.startswith(("hie_core.report.pages", "hie_core.report.book")) for m in loaded)
    assert callable(__import__("hie_core.study", fromlist=["main"]).main)  # the names still resolve on use
