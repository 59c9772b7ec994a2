"""Only the schema spells a configuration default.

Four scans of every source a user runs (``hie_core``, ``benchmarks``, ``scripts`` and the code
cells of ``notebooks``), all but ``hie_core/config/``:

- a function parameter named after a field whose default is the field's default
  (``zadc_norm="volume"``, ``arch="unet3d"``, ``widths=DEFAULT_WIDTHS``): a caller that leaves it
  out silently gets the schema's value, which the run's configuration may not hold;
- a tuple literal equal to a tuple-valued default (``(32, 64, 128, 256)``, ``(32, 192, 192)``);
- a preset's own values (the quick and native grids, patches and widths), and ``"unet3d"`` outside
  the networks' registry;
- ``.get("<field>", <its default>)``: a stored configuration read with a default of its own.

Defaults that mean "nothing" (``None``, ``""``, 0, 0.0, False, an empty tuple) and ``device``
(where a function runs, not how a run is configured) are left out.
"""

from __future__ import annotations

import ast
import io
import json
import re
import tokenize
from collections.abc import Iterator
from pathlib import Path

from hie_core.config import DEFAULTS, FIELD_NAMES

ROOT = Path(__file__).resolve().parent.parent
#: The folders scanned, and the one left out.
SCANNED = ("hie_core", "benchmarks", "scripts")
SCHEMA_DIR = "hie_core/config/"
#: A preset's own values that other modules once repeated, in code (docstrings and comments may name them).
_LITERALS = (r"\(4\.0, 2\.0, 2\.0\)", r"\(2\.5, 1\.0, 1\.0\)", r"\(16, 48, 48\)", r"\(32, 128, 128\)",
             r"\(8, 16, 32, 64\)")  # fmt: skip
#: A quoted string in a line of code.
_STRING = re.compile(r"'[^']*'|\"[^\"]*\"")
#: ``.get("<field>", <its default>)``.
_GET = re.compile(r"""\.get\(\s*["'](\w+)["']\s*,\s*([^()]+?)\s*\)""")
#: Parameters named after a field that are not a run's configuration.
_NOT_CONFIG = {"device"}
#: The tuple-valued defaults a literal may not repeat.
_TUPLES = {name: value for name, value in DEFAULTS.items() if isinstance(value, tuple) and len(value) >= 3}


def _literal(node: ast.AST | str) -> tuple[object, bool]:
    """The value of a literal (a node or source text) and whether it is one; lists read as tuples."""
    try:
        value = ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        return None, False
    return (tuple(value) if isinstance(value, list) else value), True


def _nothing(value: object) -> bool:
    return value is None or value is False or value in ("", ()) or (isinstance(value, int | float) and value == 0)


def _sources() -> Iterator[tuple[str, str]]:
    """(a name to report, Python source) for every scanned file and notebook code cell."""
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if not rel.startswith(SCHEMA_DIR):
                yield rel, path.read_text()
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for number, cell in enumerate(json.loads(path.read_text())["cells"]):
            if cell["cell_type"] == "code":
                source = "".join(cell["source"])
                source = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
                yield f"notebooks/{path.name}[cell {number}]", source


def _parameter_defaults(rel: str, tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        args = node.args
        positional = args.posonlyargs + args.args
        pairs = list(zip(positional[len(positional) - len(args.defaults):], args.defaults, strict=True))
        pairs += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is not None]
        for arg, default in pairs:
            if arg.arg not in FIELD_NAMES or arg.arg in _NOT_CONFIG:
                continue
            value, is_literal = _literal(default)
            # A module's own DEFAULT_<FIELD> constant hides a copy of the value.
            borrowed = not is_literal and re.search(r"\bDEFAULT_[A-Z]", ast.unparse(default)) is not None
            if borrowed or (is_literal and not _nothing(value) and value == DEFAULTS[arg.arg]):
                found.append(f"{rel}:{default.lineno}: parameter {arg.arg}={ast.unparse(default)}")
    return found


def _tuple_literals(rel: str, tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Tuple | ast.List):
            value, is_literal = _literal(node)
            names = [name for name, default in _TUPLES.items() if is_literal and value == default]
            found += [f"{rel}:{node.lineno}: {ast.unparse(node)} is the default of {names[0]}"] if names else []
    return found


def _line_scans(rel: str, source: str) -> list[str]:
    """The preset literals, ``"unet3d"`` and ``.get(field, default)``, line by line, comments left out."""
    lines: dict[int, tuple[str, list]] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE):
            continue
        code, strings = lines.get(tok.start[0], ("", []))
        text = tok.string
        if tok.type == tokenize.STRING:
            value = _literal(text)[0]  # None for an f-string
            strings.append(value)
            text = "S" if "\n" in text or value is None else repr(value)
        lines[tok.start[0]] = (code + " " + text, strings)
    found = []
    for number, (code, strings) in lines.items():
        where = f"{rel}:{number}: {code.strip()[:100]}"
        if not rel.startswith("hie_core/model/") and "unet3d" in strings:
            found.append(where)
        bare = _STRING.sub("S", code).replace(" ", "").replace(",", ", ")  # strings left out
        found += [where for pattern in _LITERALS if re.search(pattern, bare)]
        for key, text in _GET.findall(code.replace(" ", "")):
            value, is_literal = _literal(text)
            if is_literal and key in FIELD_NAMES and not _nothing(value) and value == DEFAULTS[key]:
                found.append(where)
    return found


def scan(rel: str, source: str) -> list[str]:
    """Every configuration default ``source`` spells (one line each, naming the place)."""
    tree = ast.parse(source)
    return _parameter_defaults(rel, tree) + _tuple_literals(rel, tree) + _line_scans(rel, source)


def test_no_source_outside_the_schema_spells_a_configuration_default() -> None:
    found = [line for rel, source in _sources() for line in scan(rel, source)]
    assert not found, "configuration defaults outside hie_core/config:\n" + "\n".join(found)


def test_the_scan_finds_each_way_a_default_was_spelled_before() -> None:
    """Not vacuous: each spelling this change removed is found, and a value read from the schema is not."""
    spelled = {
        "def preprocess_case(case, target_shape=DEFAULT_TARGET_SHAPE): ...": "parameter target_shape",
        "def get(self, case, zadc_norm: str = 'volume'): ...": "parameter zadc_norm",
        "def build_model(arch='unet3d', in_channels=2): ...": "parameter arch",
        "def f(*, norm='batch'): ...": "parameter norm",
        "DEFAULT_WIDTHS = (32, 64, 128, 256)": "default of widths",
        "DEFAULT_TARGET_SHAPE: tuple = (32, 192, 192)": "default of target_shape",
        "p.add_argument('--widths', default=[32, 64, 128, 256])": "default of widths",
        "x = config.get('zadc_norm', 'volume')": "get ( 'zadc_norm'",
        "grid = (16, 48, 48)": "( 16 , 48 , 48 )",
    }
    for source, expected in spelled.items():
        found = scan("example.py", source)
        assert found and any(expected in line for line in found), (source, found)
    allowed = [
        "def f(device='cpu', seed=0, patch_shape=None, foreground_fraction=0.0): ...",
        "def f(widths=DEFAULTS['widths'], hdt_alpha=LOSS_SETTINGS['hdt_alpha'].default, seed=DEV_SEED): ...",
        "x = config.get('seed', 0); y = (8, 16, 16)",
        "def f(zadc_norm='atlas'): ...",  # not the default: a choice, not a copy of one
    ]
    for source in allowed:
        assert scan("example.py", source) == [], source
