"""The study's method options, checked before anything runs: ``--set``, ``--grid``, ``--archs``, ``--external``.

:func:`parse_grid` turns ``--grid KEY=V1,V2`` (repeatable) and ``--archs A,B`` into the grid's
values per parameter, :func:`grid_combinations` into its combinations (each a method with every
loss, :mod:`hie_core.methods`), and :func:`parse_externals` checks ``--external NAME=FOLDER``.
Each problem is one :class:`hie_core.errors.ConfigError` naming the option.

Grid values are separated by commas; a value that is itself a list is written with ``x``
(``--grid patch_shape=16x48x48,24x64x64``) or in brackets (``--grid "patch_shape=[16,48,48],[24,64,64]"``).

Every key is a field of the configuration's schema (``hie_core.config.FIELDS``), checked there:
any field can be set or gridded except those the study sets itself (``GRID_PARAMETERS``, each
with its own option). :func:`notebook_values` passes them to ``notebooks/train.ipynb``, the
parameters of its parameters cell by name and every other field in its ``overrides``.

Loss settings (``hie_core.config.LOSS_SETTINGS``: ``tversky_alpha``, ``hybrid_weight``, ...)
apply to the losses that read them only (:func:`hie_core.losses.uses_setting`), whether given by
``--grid`` or by ``--set`` (:func:`loss_settings_to_grid` makes a ``--set`` of one a one-value
grid): ``--losses dice,tversky_hdt --grid hybrid_weight=0.1,0.5`` trains Dice once. A setting no
loss of the study reads is refused. A grid point whose values equal the run's values without the
grid (the seed's loss settings, the preset's and ``--set``'s others) is that plain method, in its
plain folder (``tversky_hdt``, not ``tversky_hdt+hybrid_weight=0.1``): :func:`method_settings`.
"""

from __future__ import annotations

import ast
import itertools
import json
import re
from collections.abc import Sequence
from pathlib import Path

from hie_core.config import FIELD_NAMES, LOSS_SETTINGS, NOTEBOOK_PARAMETERS
from hie_core.errors import ConfigError
from hie_core.losses import LOSS_NAMES, uses_setting

__all__ = [
    "GRID_PARAMETERS",
    "STUDY_FOLDERS",
    "SHAPE_PARAMETERS",
    "check_settings_read",
    "grid_combinations",
    "loss_settings_to_grid",
    "method_settings",
    "notebook_values",
    "parse_externals",
    "parse_grid",
    "parse_overrides",
]

#: The study sets these fields itself, each with its own option (``--losses``, ``--seeds``, ...).
GRID_PARAMETERS = {"loss": "--losses", "seed": "--seeds and --seed-start", "output_dir": "--runs-dir and --study",
                   "data_dir": "--data-dir", "preset": "--preset", "device": "--device", "folds": "--folds",
                   "fold": "--folds", "synthetic_test_cases": "--synthetic-test-cases"}  # fmt: skip
#: Folders of a study that are not methods, the references among them; ``--external`` cannot take these names.
STUDY_FOLDERS = ("baseline", "ceiling", "results", "book", "jobs")
_EXTERNAL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
#: Parameters whose one value is a list of numbers: a grid writes each as ``16x48x48``.
SHAPE_PARAMETERS = ("patch_shape", "target_shape", "target_spacing_mm")


def _split_values(text: str) -> list[str]:
    """``"0.1,0.3"`` -> ``["0.1", "0.3"]``; commas inside brackets stay (``"[8, 16],[4, 8]"``: two values)."""
    values, depth, current = [], 0, ""
    for ch in text:
        depth += (ch in "[(") - (ch in "])")
        if ch == "," and depth == 0:
            values.append(current.strip())
            current = ""
        else:
            current += ch
    return [*values, current.strip()]


def _literal(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def check_parameter_key(option: str, key: str) -> None:
    """A ``--set`` or ``--grid`` key must be a field of the schema that the study does not set itself.

    Raises:
        ConfigError: one line naming the option and the key, and what to use instead.
    """
    if key in GRID_PARAMETERS:
        raise ConfigError(f"{option} {key}: set by the study itself; use {GRID_PARAMETERS[key]}")
    if key not in FIELD_NAMES:
        valid = ", ".join(k for k in FIELD_NAMES if k not in GRID_PARAMETERS)
        raise ConfigError(f"{option} {key}: not a configuration field; valid: {valid}")


def notebook_values(params: dict) -> dict:
    """A run's values as ``notebooks/train.ipynb`` takes them: its named parameters, the other fields in ``overrides``.

    Args:
        params: ``{field: value}`` (the study's shared values and the run's own).
    """
    named = {k: v for k, v in params.items() if k in NOTEBOOK_PARAMETERS or k not in FIELD_NAMES}
    others = {k: list(v) if isinstance(v, tuple) else v for k, v in params.items() if k not in named}
    return {**named, "overrides": others} if others else named


def parse_grid(items: Sequence[str], archs: str = "", fixed: Sequence[str] = ()) -> dict:
    """``--grid KEY=V1,V2`` (repeatable) and ``--archs A,B`` -> ``{key: [values]}``, keys in the order given.

    Args:
        items: The ``--grid`` options (keys: fields of ``hie_core.config.FIELDS``).
        archs: ``--archs``, the grid over ``arch`` ("" for none).
        fixed: Keys ``--set`` gives (a key is set once: by ``--set`` or by a grid).

    Raises:
        ConfigError: A malformed option, a field the study sets itself or the schema lacks,
            an empty or repeated value, a key given twice.
    """
    options = [("--grid", item) for item in items] + ([("--archs", f"arch={archs}")] if archs else [])
    grid: dict[str, list] = {}
    for option, item in options:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or not text.strip():
            raise ConfigError(f"{option} {item!r}: expected KEY=V1,V2,..., e.g. --grid hybrid_weight=0.1,0.3")
        check_parameter_key(option, key)
        if key in grid or key in fixed:
            where = "--set" if key in fixed else ("--archs and --grid" if key == "arch" else "--grid")
            raise ConfigError(f"{option} {key}: already given by {where}; give each parameter once")
        values = [_literal(v) for v in _split_values(text)]
        if any(v == "" for v in values):
            raise ConfigError(f"{option} {item!r}: an empty value; separate values by single commas")
        if key in SHAPE_PARAMETERS and any(isinstance(v, (int, float)) for v in values):
            raise ConfigError(f"{option} {item!r}: commas separate the grid's values, and a {key} is three numbers; "
                              f"write each as 16x48x48, e.g. --grid {key}=16x48x48,24x64x64")  # fmt: skip
        seen = [json.dumps(v, default=str) for v in values]
        if len(set(seen)) < len(seen):
            raise ConfigError(f"{option} {item!r}: a value appears twice; give each value once")
        grid[key] = values
    return grid


def parse_overrides(items: Sequence[str]) -> dict:
    """``["epochs=1", "patch_shape=[8, 16, 16]"]`` -> values (Python literals, else strings).

    Raises:
        ConfigError: a malformed item, a key the schema lacks or the study sets, a key given twice.
    """
    values = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set epochs=1")
        check_parameter_key("--set", key)
        if key in values:
            raise ConfigError(f"--set {key}: given twice ({values[key]!r} and {text.strip()!r}); give each "
                              "parameter once (--grid runs several values)")  # fmt: skip
        values[key] = _literal(text.strip())
    return values


def loss_settings_to_grid(grid: dict, overrides: dict) -> tuple[dict, dict]:
    """Move the loss settings of ``--set`` into the grid as one-value keys: (grid, other overrides).

    A loss setting belongs to the losses that read it, so it is applied per run
    (:func:`method_settings`), never to every run.
    """
    moved = {k: [v] for k, v in overrides.items() if k in LOSS_SETTINGS}
    return {**grid, **moved}, {k: v for k, v in overrides.items() if k not in LOSS_SETTINGS}


def check_settings_read(losses: Sequence[str], grid: dict, given_by: Sequence[str] = ()) -> None:
    """Refuse a loss setting in ``grid`` that no loss of the study reads.

    Args:
        losses: the study's losses.
        grid: ``{key: [values]}`` (after :func:`loss_settings_to_grid`).
        given_by: keys that came from ``--set`` (named as such in the message).
    """
    for key in grid:
        if key in LOSS_SETTINGS and not any(uses_setting(loss, key) for loss in losses):
            option = "--set" if key in given_by else "--grid"
            readers = ", ".join(LOSS_SETTINGS[key].readers)
            raise ConfigError(f"{option} {key}: no loss of this study reads it ({', '.join(losses)}); it applies to "
                              f"{readers} and to your own losses whose __init__ takes {key}")  # fmt: skip


def method_settings(loss: str, combo: dict, configure) -> dict:
    """The grid values that make ``loss``'s method differ from its plain run (see the module docstring).

    Args:
        loss: the run's loss.
        combo: one grid combination, ``{key: value}``.
        configure: ``configure(values) -> TrainConfig`` of the study with ``values`` set (its
            preset, device and ``--set``), used to compare values as the run will hold them
            (``16x48x48`` equals ``(16, 48, 48)``).

    Returns:
        ``combo`` without the loss settings ``loss`` does not read and without the values equal to
        the plain run's.
    """
    kept = {k: v for k, v in combo.items() if k not in LOSS_SETTINGS or uses_setting(loss, k)}
    if not kept:
        return {}
    plain, full = configure({"loss": loss}), configure({"loss": loss, **kept})
    return {k: v for k, v in kept.items() if not hasattr(full, k) or getattr(full, k) != getattr(plain, k)}


def grid_combinations(grid: dict) -> list[dict]:
    """Every combination of the grid's values, ``{key: value}`` each (``[{}]`` without a grid)."""
    keys = list(grid)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(grid[k] for k in keys))]


def parse_externals(items: Sequence[str], taken: Sequence[str] = ()) -> tuple[tuple[str, Path], ...]:
    """``--external NAME=FOLDER`` (repeatable) -> ``((name, folder), ...)``, each checked.

    Args:
        items: The options.
        taken: Method ids of the study's runs (an outside method cannot share a folder with one).

    Raises:
        ConfigError: A malformed option, a name that is not a plain folder name or is taken (a
            loss, a method of this study, a reference or a study folder), a folder that is missing.
    """
    out: dict[str, Path] = {}
    for item in items:
        name, sep, folder = item.partition("=")
        name, folder = name.strip(), folder.strip()
        if not sep or not name or not folder:
            raise ConfigError(
                f"--external {item!r}: expected NAME=FOLDER, e.g. --external nnunet=preds/nnunet"
            )
        if not _EXTERNAL_NAME.match(name):
            raise ConfigError(
                f"--external {name!r}: a name of letters, digits, '.', '_' and '-' (it names a folder)"
            )
        if name in out or name in LOSS_NAMES or name in STUDY_FOLDERS or name in taken:
            raise ConfigError(f"--external {name}: the name is already a loss, a method or a folder of this study; "
                              "choose another")  # fmt: skip
        path = Path(folder).expanduser()
        if not path.is_dir():
            raise ConfigError(f"--external {name}={folder}: no such folder of predicted masks")
        out[name] = path.resolve()
    return tuple(out.items())
