"""The one loader of stored configurations: an old ``config.json`` or model file, upgraded.

A run folder's ``config.json`` holds the configuration under ``"config"``; a model file
(``model_best.pt``) holds it under ``"config"`` too since schema version 2, and before that as
13 hand-picked keys beside the weights (``widths``, ``arch``, ``norm``, ``target_shape``,
``target_spacing_mm``, ``patch_shape``, ``sw_overlap``, ``mirror_axes``, ``zadc_norm``,
``loss`` with ``state_dict``, ``in_channels``, ``arch_options`` and ``epoch``).
:func:`~hie_core.config.upgrade_config` turns either into the current configuration: every field of the schema
(:mod:`hie_core.config.schema`), each checked, a field the file lacks at its default (the value
every run had before the field existed), keys the schema no longer has dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hie_core.config.schema import DEFAULTS, FIELD_NAMES, FIELDS, check_value
from hie_core.errors import ConfigError

__all__ = ["MODEL_FILE_CONFIG_KEYS", "NOTEBOOK_PARAMETERS", "upgrade_config", "upgrade_model_file", "fingerprint_settings",
           "notebook_overrides", "jsonable"]  # fmt: skip

#: The configuration fields a model file written before schema version 2 kept beside its weights.
MODEL_FILE_CONFIG_KEYS = ("widths", "arch", "norm", "target_shape", "target_spacing_mm", "patch_shape",
                          "sw_overlap", "mirror_axes", "zadc_norm", "loss")  # fmt: skip

#: The fields ``notebooks/train.ipynb`` names in its parameters cell; every other field goes in its
#: ``overrides`` (or is given with ``-p NAME VALUE``).
NOTEBOOK_PARAMETERS = ("loss", "data_dir", "output_dir", "preset", "seed", "device")


def upgrade_config(stored: Mapping[str, Any]) -> dict[str, Any]:
    """A stored configuration (``config.json``'s ``"config"``, or the whole file) -> every current field.

    Args:
        stored: the configuration as written by any version (lists for tuples).

    Returns:
        ``{field: value}`` for every field of the schema, in schema order, values normalised
        (tuples, None) by :func:`~hie_core.config.check_value`.

    Raises:
        hie_core.errors.ConfigError: a stored value the schema refuses, naming the field.
    """
    if "config" in stored and isinstance(stored["config"], Mapping):
        stored = stored["config"]
    known = {k: v for k, v in stored.items() if k in FIELD_NAMES}
    if known.get("target_spacing_mm") is not None and "target_shape" not in known:
        known["target_shape"] = None  # a fixed-spacing grid written before target_shape could be None
    return {f.name: check_value(f.name, known[f.name]) if f.name in known else f.default for f in FIELDS}


def upgrade_model_file(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The configuration of a model file of any version (see the module docstring).

    A file from before version 2 holds only the fields that rebuild the network and predict;
    the others are at the schema's defaults (they are not known).
    """
    if isinstance(payload.get("config"), Mapping):
        return upgrade_config(payload["config"])
    old = {k: payload[k] for k in MODEL_FILE_CONFIG_KEYS if k in payload}
    if old.get("loss") is None:
        old.pop("loss", None)
    old.setdefault("target_spacing_mm", None)
    return upgrade_config(old)


def fingerprint_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The fields that identify a run's numbers, for its fingerprint.

    Leaves out the fields that cannot change results (``Field.results`` False: where the run is
    written, the device, the data folder's path, the loader's workers) and the fields added after
    the schema's first version while at their default, so that runs written before a field
    existed keep their hash.
    """
    out = {}
    for name, value in config.items():
        field = FIELD_NAMES[name]
        if not field.results or (field.added > 1 and value == DEFAULTS[name]):
            continue
        out[name] = value
    return out


def jsonable(config: Mapping[str, Any]) -> dict[str, Any]:
    """Tuples as lists, as ``config.json`` and a model file hold them."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()}


def notebook_overrides(
    overrides: Mapping[str, Any] | None, parameters: Mapping[str, Any] | None = None
) -> dict:
    """The configuration fields a notebook run was given, from its ``overrides`` and its namespace.

    Args:
        overrides: the notebook's ``overrides`` parameter, ``{field: value}`` (None: none).
        parameters: the notebook's namespace (``globals()``): a field name there was given with
            papermill's ``-p NAME VALUE`` (papermill adds it after the parameters cell); the
            parameters cell's own names (``NOTEBOOK_PARAMETERS``) are not taken from it.

    Returns:
        ``{field: value}``, values as given (the configuration checks them).

    Raises:
        hie_core.errors.ConfigError: ``overrides`` is not a dict, names an unknown field, or a
            field is given both ways.
    """
    if overrides is None:
        overrides = {}
    if not isinstance(overrides, Mapping):
        raise ConfigError(
            f"overrides must be a dict of configuration fields, e.g. {{'epochs': 1}}; got {overrides!r}"
        )
    unknown = sorted(set(overrides) - set(FIELD_NAMES))
    if unknown:
        raise ConfigError(f"overrides: unknown field(s) {', '.join(map(str, unknown))}; known: "
                          f"{', '.join(sorted(FIELD_NAMES))}")  # fmt: skip
    given = {k: v for k, v in (parameters or {}).items() if k in FIELD_NAMES and k not in NOTEBOOK_PARAMETERS}
    both = sorted(set(given) & set(overrides))
    if both:
        raise ConfigError(f"{both[0]} is given both as -p {both[0]} and in overrides; give it once")
    return {**given, **overrides}
