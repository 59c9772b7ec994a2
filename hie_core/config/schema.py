"""The run configuration's schema: every field of a training run, its default, choices and range.

This module is the one place where a configuration default is written. Each :class:`Field`
carries its section (``SECTIONS``), its type, its default (the seed study's value where it
has one), its choices or range, a label and unit for readers, whether it changes a run's
results (a field that does not, such as ``output_dir``, is left out of the run's fingerprint),
and the schema version it was added in (``CONFIG_VERSION``). A field added after the first
version has, as its default, the value every run written before it had, so the loader
(:mod:`hie_core.config.load`) fills it in for old ``config.json`` and model files, and the
fingerprint leaves it out while it is at that value (old runs keep their hash).

:func:`~hie_core.config.check_value` checks and normalises one value (``"16,48,48"`` -> ``(16, 48, 48)``, the
text ``"none"`` -> None where a field may be None) and raises a
:class:`~hie_core.errors.ConfigError` that names the field. Rules between fields (exactly one
preprocessing grid, a patch that fits the network, a loss name that loads) are the
configuration's own: :class:`hie_core.training.config.TrainConfig`.

The loss settings (section ``"loss"``, all but ``loss`` itself) also name the built-in losses
that read them (``Field.readers``) and their short name in a method's display name
(``Field.short``); :mod:`hie_core.losses` builds the losses from them.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

from hie_core.augment.config import BACKENDS
from hie_core.errors import ConfigError
from hie_core.model import ARCHS, NORMS
from hie_core.preprocess import ZADC_NORMS

__all__ = ["CONFIG_VERSION", "SECTIONS", "KINDS", "Field", "FieldError", "FIELDS", "FIELD_NAMES", "DEFAULTS", "LOSS_SETTINGS",
           "MAX_SYNTHETIC_TEST_CASES", "check_value", "section_fields"]  # fmt: skip

#: The schema's version: 1 for the fields of the first runs, 2 for cross-validation, the synthetic
#: test count, the network choice and the loss settings.
CONFIG_VERSION = 2
#: The configuration's sections, in the order a reader meets them.
SECTIONS = ("data", "grid", "model", "loss", "training", "augmentation", "inference")
#: Field types: text, whole number, number, True/False, a tuple of whole numbers or numbers, spatial axes.
KINDS = ("str", "int", "float", "bool", "ints", "floats", "axes")
#: Most synthetic test cases (the generator's id range of the test split).
MAX_SYNTHETIC_TEST_CASES = 499


@dataclass(frozen=True)
class Field:
    """One configuration field.

    Attributes:
        name: the field's name (a ``config.json`` key, a notebook and ``--set`` parameter).
        section: one of ``SECTIONS``.
        kind: one of ``KINDS``.
        default: the value when neither preset nor user sets it (the seed's, where it has one).
        label: a few words for a reader.
        unit: ``"mm"``, ``"voxels"``, ``"epochs"`` ... or ``""`` (no unit).
        choices: the allowed values (text fields), or None.
        low, high: the allowed range (numbers, and each item of a tuple), None for open.
        bounds: ``"[]"``, ``"[)"``, ``"(]"`` or ``"()"``: whether ``low``/``high`` are allowed.
        optional: None is allowed (the text ``"none"`` sets it).
        length: the number of items of a tuple field (None: any number).
        results: whether the value can change a run's numbers (else it is not fingerprinted).
        added: the ``CONFIG_VERSION`` that introduced the field.
        short: a loss setting's short name in a method's display name (``"w"``).
        readers: the built-in losses that read a loss setting.
        group: a loss setting's row in the Methods page's deviations table (settings of one
            row, such as Tversky's two weights, share it).
    """

    name: str
    section: str
    kind: str
    default: Any
    label: str
    unit: str = ""
    choices: tuple | None = None
    low: float | None = None
    high: float | None = None
    bounds: str = "[]"
    optional: bool = False
    length: int | None = None
    results: bool = True
    added: int = 1
    short: str = ""
    readers: tuple[str, ...] = ()
    group: str = ""

    @property
    def is_loss_setting(self) -> bool:
        """A setting of the losses (``tversky_alpha`` ...), applied only to the losses that read it."""
        return self.section == "loss" and self.name != "loss"

    def describe_range(self) -> str:
        """``"in [0, 1)"``, ``">= 1"``, ``"one of a, b"`` or ``""``."""
        if self.choices:
            return "one of " + ", ".join(map(str, self.choices))
        lo, hi = self.low, self.high
        if lo is not None and hi is not None:
            return f"in {self.bounds[0]}{lo:g}, {hi:g}{self.bounds[1]}"
        if lo is not None:
            return (">= " if self.bounds[0] == "[" else "> ") + f"{lo:g}"
        if hi is not None:
            return ("<= " if self.bounds[1] == "]" else "< ") + f"{hi:g}"
        return ""

    def inside(self, value: float) -> bool:
        """Whether the number ``value`` is in the field's range."""
        if self.low is not None and not (value >= self.low if self.bounds[0] == "[" else value > self.low):
            return False
        return self.high is None or (value <= self.high if self.bounds[1] == "]" else value < self.high)


def _f(name: str, section: str, kind: str, default: Any, label: str, **kw: Any) -> Field:
    return Field(name, section, kind, default, label, **kw)


_POS = {"low": 0, "bounds": "(]"}
_NONNEG = {"low": 0}
_AT_LEAST_1 = {"low": 1}
_FRACTION = {"low": 0, "high": 1, "bounds": "[)"}

# fmt: off
#: Every field of a run's configuration, section by section.
FIELDS: tuple[Field, ...] = (
    # data
    _f("data_dir", "data", "str", "", "BONBID-HIE folder (empty: the embedded synthetic dataset)",
       results=False),
    _f("synthetic_preset", "data", "str", "small", "synthetic dataset size", choices=("small", "full")),
    _f("synthetic_test_cases", "data", "int", 0, "synthetic test cases (0: the synthetic preset's count)",
       unit="cases", low=0, high=MAX_SYNTHETIC_TEST_CASES, added=2),
    _f("folds", "data", "int", 0, "cross-validation folds (0: none)", unit="folds", **_NONNEG, added=2),
    _f("fold", "data", "int", 0, "held-out fold of this run", **_NONNEG, added=2),
    _f("selection_fraction", "data", "float", 0.2, "share of the training split held out for early stopping",
       **_FRACTION),
    # grid
    # the seed's (x, y, z) = (192, 192, 32) as an array shape
    _f("target_shape", "grid", "ints", (32, 192, 192), "preprocessing grid as an array shape (D, H, W)",
       unit="voxels", low=1, optional=True, length=3),
    _f("target_spacing_mm", "grid", "floats", None, "preprocessing grid as a voxel size (D, H, W)", unit="mm",
       **_POS, optional=True, length=3),
    _f("zadc_norm", "grid", "str", "volume", "ZADC channel scaling", choices=ZADC_NORMS),
    _f("patch_shape", "grid", "ints", None, "training patch (D, H, W); none: whole volumes", unit="voxels",
       low=1, optional=True, length=3),
    _f("foreground_fraction", "grid", "float", 0.0, "share of patches centred on a lesion voxel", low=0,
       high=1),
    # model
    _f("arch", "model", "str", "unet3d", "network", choices=ARCHS, added=2),
    _f("widths", "model", "ints", (32, 64, 128, 256), "U-Net channel widths", unit="channels", low=1, length=4),
    _f("dropout", "model", "floats", (0.0, 0.1, 0.2, 0.3),
       "U-Net dropout at encoder levels 1-3 and the bottleneck", **_FRACTION, length=4),
    _f("norm", "model", "str", "batch", "U-Net normalisation", choices=NORMS),
    _f("prior_probability", "model", "float", 0.01, "initial lesion probability of the network (output bias)",
       low=0, high=1, bounds="()"),
    # loss
    _f("loss", "loss", "str", "tversky_hdt", "training loss (a built-in name or package.module:Class)"),
    _f("tversky_alpha", "loss", "float", 0.3, "Tversky weight of false positives", **_NONNEG, added=2,
       short="alpha", readers=("tversky", "tversky_hdt"), group="Tversky weights"),
    _f("tversky_beta", "loss", "float", 0.7, "Tversky weight of false negatives", **_NONNEG, added=2,
       short="beta", readers=("tversky", "tversky_hdt"), group="Tversky weights"),
    _f("focal_gamma", "loss", "float", 2.0, "focal exponent of DiceFocal", **_NONNEG, added=2, short="gamma",
       readers=("dice_focal", "dice_focal_hdt"), group="focal gamma"),
    _f("hdt_alpha", "loss", "float", 2.0, "exponent of the distances in the Hausdorff loss", **_POS, added=2,
       short="HDT alpha", readers=("hdt", "dice_focal_hdt", "tversky_hdt"), group="Hausdorff DT alpha"),
    _f("hybrid_weight", "loss", "float", 0.1, "weight of log(1 + HDT) in the hybrid losses", low=0, high=1,
       added=2, short="w", readers=("dice_focal_hdt", "tversky_hdt"), group="hybrid weight"),
    # training
    _f("preset", "training", "str", "quick", "preset the run started from"),
    _f("seed", "training", "int", 0, "seed of the split, weights, batches, patches and augmentation",
       **_NONNEG),
    _f("device", "training", "str", "cpu", "device (cpu, cuda, cuda:N)", results=False),
    _f("output_dir", "training", "str", "runs/default", "run folder", results=False),
    _f("epochs", "training", "int", 100, "most epochs", unit="epochs", **_AT_LEAST_1),
    _f("patience", "training", "int", 10, "early-stopping patience", unit="epochs", **_AT_LEAST_1),
    _f("batch_size", "training", "int", 4, "samples per step", unit="samples", **_AT_LEAST_1),
    _f("lr", "training", "float", 1e-3, "AdamW learning rate", **_POS),
    _f("weight_decay", "training", "float", 1e-3, "AdamW weight decay", **_NONNEG),
    _f("lr_decay", "training", "float", 0.9, "exponential learning-rate decay per epoch", **_POS),
    _f("l1", "training", "float", 1e-4, "weight of the L1 penalty on the weights", **_NONNEG),
    _f("grad_clip", "training", "float", 1.0, "gradient-norm clipping threshold", **_POS),
    _f("steps_per_epoch", "training", "int", None,
       "optimiser steps per epoch (none: one pass over the cases)", unit="steps", **_AT_LEAST_1,
       optional=True),
    _f("num_workers", "training", "int", 0, "DataLoader workers", **_NONNEG, results=False),
    _f("amp", "training", "bool", False, "bf16 autocast (CUDA)"),
    _f("compile", "training", "bool", False, "torch.compile the training step's model (CUDA)"),
    # augmentation
    _f("augment", "augmentation", "str", "torchio", "augmentation back end", choices=BACKENDS),
    _f("mirror_axes", "augmentation", "axes", (), "axes flipped in training and averaged at prediction"),
    # inference
    _f("sw_overlap", "inference", "float", 0.5, "overlap of neighbouring sliding windows", **_FRACTION),
)
# fmt: on
#: Field by name.
FIELD_NAMES: dict[str, Field] = {f.name: f for f in FIELDS}
#: Every field's default.
DEFAULTS: dict[str, Any] = {f.name: f.default for f in FIELDS}
#: The loss settings (``tversky_alpha``, ``tversky_beta``, ``focal_gamma``, ``hdt_alpha``, ``hybrid_weight``).
LOSS_SETTINGS: dict[str, Field] = {f.name: f for f in FIELDS if f.is_loss_setting}


def section_fields(section: str) -> tuple[Field, ...]:
    """The fields of one of ``SECTIONS``, in schema order."""
    if section not in SECTIONS:
        raise ConfigError(f"section must be one of {', '.join(SECTIONS)}; got {section!r}")
    return tuple(f for f in FIELDS if f.section == section)


class FieldError(ConfigError):
    """A value the schema refuses: ``"<field> must be <what>, got <value>"``; the parts are attributes."""

    def __init__(self, field: str, what: str, value: Any) -> None:
        super().__init__(f"{field} must be {what}, got {value!r}")
        self.field, self.what, self.value = field, what, value


def _bad(field: Field, what: str, value: Any) -> FieldError:
    return FieldError(field.name, what, value)


def _int(field: Field, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _bad(field, "a whole number", value)
    if not math.isfinite(float(value)) or not float(value).is_integer():
        raise _bad(field, "a whole number", value)
    return int(value)


def _float(field: Field, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise _bad(field, "a finite number", value)
    return float(value)


def _items(field: Field, value: Any) -> list:
    """A list from a list/tuple, or from text such as ``"16,64,64"``, ``"16x64x64"``, ``"[16, 64, 64]"``."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and field.kind == "axes":
        return [value]
    if isinstance(value, str):
        text = value.strip().strip("[]()").replace("x", ",").replace(" ", ",")
        return [v for v in text.split(",") if v]
    if isinstance(value, (list, tuple)):
        return list(value)
    raise _bad(field, "a sequence of numbers such as '16,64,64'", value)


def _tuple(field: Field, value: Any) -> tuple:
    n = f"{field.length} " if field.length else ""
    rng = f" {field.describe_range()}" if field.describe_range() else ""
    unit = f" in {field.unit}" if field.unit else ""
    what = f"{n}{'whole numbers' if field.kind == 'ints' else 'numbers'}{rng}{unit}"
    try:
        items = [float(v) if isinstance(v, str) else v for v in _items(field, value)]
        out = tuple((_int if field.kind == "ints" else _float)(field, v) for v in items)
    except (ValueError, ConfigError):
        raise _bad(field, what, value) from None
    if (field.length and len(out) != field.length) or not out or not all(field.inside(v) for v in out):
        raise _bad(field, what, value)
    return out


def _axes(field: Field, value: Any) -> tuple[int, ...]:
    if isinstance(value, str) and value.strip().lower() == "none":
        return ()
    what = "distinct spatial axes among 0 (D), 1 (H), 2 (W), e.g. '2'"
    try:
        out = tuple(_int(field, float(v) if isinstance(v, str) else v) for v in _items(field, value))
    except (ValueError, ConfigError):
        raise _bad(field, what, value) from None
    if any(v not in (0, 1, 2) for v in out) or len(set(out)) != len(out):
        raise _bad(field, what, value)
    return tuple(sorted(out))


def check_value(name: str, value: Any) -> Any:
    """Check one field's value against the schema and return it normalised.

    Tuples come back as tuples (``"16x48x48"`` and ``[16, 48, 48]`` -> ``(16, 48, 48)``), whole
    numbers given as ``2.0`` as ``2``, and the text ``"none"`` as None where the field may be None.

    Raises:
        hie_core.errors.ConfigError: an unknown field, or a value of the wrong type, outside the
            field's range or not among its choices; the message names the field.
    """
    field = FIELD_NAMES.get(name)
    if field is None:
        raise ConfigError(f"unknown configuration field {name!r}; known: {', '.join(sorted(FIELD_NAMES))}")
    if field.optional and (value is None or (isinstance(value, str) and value.strip().lower() == "none")):
        return None
    if field.kind == "str":
        if not isinstance(value, str):
            raise _bad(field, "text", value)
        out: Any = value
    elif field.kind == "bool":
        if not isinstance(value, bool):
            raise _bad(field, "True or False", value)
        out = value
    elif field.kind == "int":
        out = _int(field, value)
    elif field.kind == "float":
        out = _float(field, value)
    elif field.kind == "axes":
        return _axes(field, value)
    else:
        return _tuple(field, value)
    if field.choices is not None and out not in field.choices:
        raise _bad(field, "one of " + ", ".join(field.choices), value)
    if field.kind in ("int", "float") and not field.inside(out):
        raise _bad(field, field.describe_range(), value)
    return out
