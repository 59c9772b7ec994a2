"""A run's configuration: the schema (every field, its default and range), presets as data, one loader.

- :mod:`hie_core.config.schema`: ``FIELDS``, the only place a configuration default is
  written, each field with its section, choices, range, label, unit, whether it changes results
  and the version that added it; :func:`~hie_core.config.check_value` checks one value.
- :mod:`hie_core.config.presets`: ``seed``, ``quick`` and ``native`` as data (``quick`` and
  ``native`` inherit from ``seed``); :func:`~hie_core.config.preset_values` resolves one.
- :mod:`hie_core.config.load`: :func:`~hie_core.config.upgrade_config` and :func:`~hie_core.config.upgrade_model_file`, the one
  loader that turns a ``config.json`` or model file of any version into the current fields.

The frozen configuration built from them, with the rules between fields, is
:class:`hie_core.training.config.TrainConfig`.
"""

from __future__ import annotations

from hie_core.config.load import (
    NOTEBOOK_PARAMETERS,
    fingerprint_settings,
    jsonable,
    notebook_overrides,
    upgrade_config,
    upgrade_model_file,
)
from hie_core.config.presets import (
    DEVICE_VALUES,
    PRESET_NAMES,
    PRESETS,
    Preset,
    preset_settings,
    preset_values,
    resolve_preset_name,
)
from hie_core.config.schema import (
    CONFIG_VERSION,
    DEFAULTS,
    FIELD_NAMES,
    FIELDS,
    LOSS_SETTINGS,
    SECTIONS,
    Field,
    check_value,
    section_fields,
)

__all__ = ["CONFIG_VERSION", "DEFAULTS", "DEVICE_VALUES", "FIELDS", "FIELD_NAMES", "LOSS_SETTINGS",
           "NOTEBOOK_PARAMETERS", "PRESETS", "PRESET_NAMES", "SECTIONS", "Field", "Preset", "check_value",
           "fingerprint_settings", "jsonable", "notebook_overrides", "preset_settings", "preset_values", "resolve_preset_name",
           "section_fields", "upgrade_config", "upgrade_model_file"]  # fmt: skip
