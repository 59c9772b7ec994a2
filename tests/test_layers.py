"""The package's layers, as the README's map declares them, hold for every import.

``hie_core`` is layered: the science core (every top-level module, ``augment/``, ``config/``,
``contrib/``, ``synthetic/``) imports only the core; ``training/`` and ``report/`` each import
the core and themselves, never each other; ``study/`` (the study runner, ``hie-score`` and
outside predictions) may import anything. The test reads every module with :mod:`ast`, so an
import inside a function, a ``TYPE_CHECKING`` block or a ``try`` counts as much as one at the
top, and fails naming each import that runs against the layers.
"""

from __future__ import annotations

import ast
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


def test_no_import_runs_against_the_layers() -> None:
    found = violations(sorted(PACKAGE.rglob("*.py")))
    assert not found, "imports against the README's layers:\n" + "\n".join(found)


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
    for name in ("`training/`", "`report/`", "`study/`", "`run_folder`"):
        assert name in line, name
    assert "`external`" not in line.split("`training/`")[0], "external is not in the core"
