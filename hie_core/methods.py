"""A study's methods: one folder each, ``<study>/<method_id>/seed<k>[-fold<f>]/``, and its display name.

A method is a loss trained with one network and one value of each grid parameter
(``python -m hie_core.study --grid KEY=V1,V2 --archs A,B``), or a folder of outside predictions
(``--external NAME=FOLDER``). Its id names its folder:

- the loss name alone for the seed's network (``unet3d``) without grid parameters, so a study
  of the six losses reads as before (``tversky_hdt``);
- otherwise the loss (for a custom loss ``package.module:Name`` its ``Name``), ``@<arch>`` when
  the network is not ``unet3d``, then ``+<key>=<value>`` per grid key in sorted order
  (``tversky_hdt@segresnet``, ``tversky_hdt+hybrid_weight=0.3``).

The module is also the book's one registry of display names (:data:`DISPLAY_NAMES`): each
loss, metric, per-case column and unit has one name a reader sees, the decimals it is shown
with (:data:`DECIMALS`), and the aliases no page may use (:data:`ALIASES`, scanned for in every
built page by ``hie_core.report.book.copy_check.aliases_in_book``).

Each run's ``config.json`` is the source of truth: :func:`method_id` and :func:`method_label`
read it (or a ``TrainConfig.to_dict()``); the grid keys of a folder can be read back from its id
(:func:`grid_keys_of`). :func:`method_sort_key` orders methods for every table and figure.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from hie_core.config import DEFAULTS
from hie_core.losses import LOSS_LABELS, LOSS_NAMES, LOSS_SETTINGS, loss_label
from hie_core.metrics import METRIC_LABELS

__all__ = [
    "ALIASES",
    "COLUMN_LABELS",
    "DECIMALS",
    "DISPLAY_NAMES",
    "UNIT_LABELS",
    "column_label",
    "config_of_id",
    "label_of_id",
    "format_value",
    "grid_keys_of",
    "is_external",
    "is_seed_method",
    "method_id",
    "method_label",
    "method_sort_key",
    "run_config",
    "sort_methods",
]

_UNSAFE = re.compile(r"[^A-Za-z0-9._=,-]+")


def run_config(config: Mapping[str, Any]) -> dict:
    """The run settings of a ``config.json`` (its ``config`` entry) or of a flat ``TrainConfig`` dict.

    The top-level ``external``/``label``/``loss`` of an outside-predictions folder are kept.
    """
    inner = config.get("config")
    if not isinstance(inner, Mapping):
        return dict(config)
    merged = dict(inner)
    for key in ("external", "label", "loss"):
        if key in config and key not in merged:
            merged[key] = config[key]
    return merged


def is_external(config: Mapping[str, Any]) -> bool:
    """Whether a ``config.json`` is that of a folder of outside predictions (``"external": true``)."""
    return bool(run_config(config).get("external")) or bool(config.get("external"))


def format_value(value: Any) -> str:
    """A grid value as it appears in a method id and label: ``0.1``, ``16x48x48``, ``batched``."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):  # no "+" (it separates an id's grid keys): 1e+06 -> 1e6
        return f"{value:g}".replace("e+0", "e").replace("e+", "e")
    if isinstance(value, (list, tuple)):
        return "x".join(format_value(v) for v in value)
    return _UNSAFE.sub("_", str(value))


def _loss_part(loss: str) -> str:
    """The loss's part of an id: the loss name, or ``Name`` of a custom ``package.module:Name``."""
    return loss.rsplit(":", 1)[-1] if ":" in loss else loss


def method_id(config: Mapping[str, Any], grid_keys: Iterable[str] = ()) -> str:
    """The folder name of a run's method (see the module docstring).

    Args:
        config: A run's ``config.json`` or ``TrainConfig`` fields (``loss``, ``arch`` and the grid keys).
        grid_keys: The study's grid parameters (``--grid`` keys; not ``arch``, which ``--archs`` sets).

    Returns:
        e.g. ``"dice"``, ``"tversky_hdt@segresnet"``, ``"tversky_hdt+hybrid_weight=0.3"``; for
        outside predictions its ``label``.
    """
    cfg = run_config(config)
    if is_external(config):
        return str(cfg.get("label") or cfg.get("loss"))
    out = _loss_part(str(cfg.get("loss", "")))
    arch = cfg.get("arch") or DEFAULTS["arch"]
    if arch != DEFAULTS["arch"]:  # the seed's network shows no @<arch>
        out += f"@{arch}"
    for key in sorted(k for k in set(grid_keys) if k != "arch"):
        out += f"+{key}={format_value(cfg.get(key))}"
    return out


def grid_keys_of(method: str) -> list[str]:
    """The grid keys named in a method id (``"tversky_hdt+hybrid_weight=0.3"`` -> ``["hybrid_weight"]``)."""
    return [part.partition("=")[0] for part in method.split("+")[1:] if "=" in part]


def _shown_by_loss_label(config: Mapping[str, Any], key: str) -> bool:
    if key not in LOSS_SETTINGS or key not in config:
        return False
    field = LOSS_SETTINGS[key]
    try:
        return config.get("loss") in field.readers and not math.isclose(float(config[key]), field.default)
    except (TypeError, ValueError):
        return False


def method_label(config: Mapping[str, Any], grid_keys: Iterable[str] = ()) -> str:
    """A method's name for a reader: ``loss_label``, `` · <network>`` when not the seed's, then the other grid values.

    Args:
        config: A run's ``config.json`` or ``TrainConfig`` fields.
        grid_keys: The study's grid parameters.

    Returns:
        e.g. ``"Tversky+HDT"``, ``"Tversky+HDT (w 0.3) · SegResNet"``, ``"Dice (lr 0.001)"``; for
        outside predictions its ``label``.
    """
    from hie_core.model import ARCH_LABELS

    cfg = run_config(config)
    if is_external(config):
        return str(cfg.get("label") or cfg.get("loss"))
    label = loss_label(cfg)
    if ":" in label:  # a custom loss without a display name of its own: its class name
        label = _loss_part(label)
    arch = cfg.get("arch") or DEFAULTS["arch"]
    if arch != DEFAULTS["arch"]:
        label += f" · {ARCH_LABELS.get(arch, arch)}"
    extra = []
    for key in sorted(k for k in set(grid_keys) if k != "arch"):
        if _shown_by_loss_label(cfg, key):
            continue
        name = LOSS_SETTINGS[key].short if key in LOSS_SETTINGS else key
        extra.append(f"{name} {format_value(cfg.get(key))}")
    return f"{label} ({', '.join(extra)})" if extra else label


def is_seed_method(method: str) -> bool:
    """Whether a method id is one of the seed's six (its loss on ``unet3d``, no grid parameter)."""
    return method in LOSS_NAMES


def _value_key(text: str) -> tuple:
    try:
        return (0, float(text), "")
    except ValueError:
        return (1, 0.0, text)


def method_sort_key(method: str, external: bool = False) -> tuple:
    """Table order: the six losses, then other methods by loss, network, grid values; then outside predictions."""
    from hie_core.model import ARCHS

    if external:
        return (2, 0, "", 0, (), method)
    head, *grid = method.split("+")
    loss, _, arch = head.partition("@")
    loss_rank = LOSS_NAMES.index(loss) if loss in LOSS_NAMES else len(LOSS_NAMES)
    arch_rank = ARCHS.index(arch) if arch in ARCHS else (0 if not arch else len(ARCHS))
    values = tuple((k, _value_key(v)) for k, _, v in (g.partition("=") for g in grid))
    return (0 if is_seed_method(method) else 1, loss_rank, loss, arch_rank, values, method)


def sort_methods(methods: Sequence[str], external: Iterable[str] = ()) -> list[str]:
    """``methods`` (each once) in table order (:func:`method_sort_key`); ``external`` ones last."""
    outside = set(external)
    return sorted(dict.fromkeys(methods), key=lambda m: method_sort_key(m, m in outside))


def _parse_value(text: str) -> Any:
    if "x" in text and all(_value_key(p)[0] == 0 for p in text.split("x")):
        return [float(p) if "." in p else int(p) for p in text.split("x")]
    kind, number, _ = _value_key(text)
    return text if kind else (int(number) if re.fullmatch(r"-?\d+", text) else number)


def config_of_id(method: str) -> dict:
    """The settings a method id names (loss, network, grid values), for a label without its ``config.json``."""
    head, *grid = method.split("+")
    loss, _, arch = head.partition("@")
    config: dict[str, Any] = {"loss": loss, "arch": arch or DEFAULTS["arch"]}
    for part in grid:
        key, _, value = part.partition("=")
        config[key] = _parse_value(value)
    return config


def label_of_id(method: str) -> str:
    """:func:`method_label` of the settings a method id names (a reference or unknown id: the id)."""
    return method_label(config_of_id(method), grid_keys_of(method))


# --- The registry of display names -------------------------------------------------------------

#: Each unit as a reader sees it (SI spelling: millilitres are mL, never ml).
UNIT_LABELS: dict[str, str] = {"mm": "mm", "ml": "mL", "s": "s", "percent": "%"}
#: Each per-case column of a run's ``metrics.csv`` (and of the report's tables) as a table header.
COLUMN_LABELS: dict[str, str] = {
    "split": "split",
    "seed": "seed",
    "case_id": "case",
    "stratum": "lesion-burden stratum",
    "burden_percent": "lesion burden (%)",
    **METRIC_LABELS,
    "n_pred": "predicted voxels",
    "n_ref": "reference voxels",
    "pred_volume_ml": f"predicted volume ({UNIT_LABELS['ml']})",
    "ref_volume_ml": f"reference volume ({UNIT_LABELS['ml']})",
    "volume_error_ml": f"volume error ({UNIT_LABELS['ml']})",
    "abs_volume_error_ml": f"absolute volume error ({UNIT_LABELS['ml']})",
    "fp_lesion_volume_ml": f"false-positive lesion volume ({UNIT_LABELS['ml']})",
    "n_ref_lesions": "reference lesions",
    "n_pred_lesions": "predicted lesions",
    "n_detected_lesions": "detected lesions",
    "n_fp_lesions": "false-positive lesions",
    "lesion_sensitivity": "lesion sensitivity",
    "lesion_f1": "lesion F1",
    "lesion_dice": "lesion-wise Dice",
}
#: Digits after the point of each column in tables and prose (Dice and NSD to 3, distances in mm
#: and volumes in mL to 2, the burden in % to 2); counts are integers.
DECIMALS: dict[str, int] = {
    "dice": 3, "nsd": 3, "masd_mm": 2, "burden_percent": 2, "lesion_sensitivity": 3, "lesion_f1": 3,
    "lesion_dice": 3, "pred_volume_ml": 2, "ref_volume_ml": 2, "volume_error_ml": 2,
    "abs_volume_error_ml": 2, "fp_lesion_volume_ml": 2,
}  # fmt: skip
#: Every display name of the book: ``"loss:<name>"``, ``"metric:<name>"``, ``"unit:<name>"``.
DISPLAY_NAMES: dict[str, str] = {
    **{f"loss:{k}": v for k, v in LOSS_LABELS.items()},
    **{f"metric:{k}": v for k, v in METRIC_LABELS.items()},
    **{f"unit:{k}": v for k, v in UNIT_LABELS.items()},
}
#: Names no page may use, each a regular expression (case-sensitive) keyed by the display name
#: that replaces it. "HDT" alone is an alias; inside a hybrid's name ("Tversky+HDT") it is not.
ALIASES: dict[str, tuple[str, ...]] = {
    LOSS_LABELS["hdt"]: (
        r"Hausdorff distance[- ]transform(?: loss)?",
        r"Hausdorff DT",
        r"Hausdorff-DT",
        r"\bL_HD\b",
        r"(?<![+\w])HDT\b(?!\))",
    ),
    LOSS_LABELS["dice_focal"]: (r"Dice Focal", r"Dice-Focal", r"Dicefocal"),
    UNIT_LABELS["ml"]: (r"(?<=[\d\s(])ml\b",),
}


def column_label(column: str) -> str:
    """A column's table header (:data:`COLUMN_LABELS`); an unknown column, its name with spaces."""
    return COLUMN_LABELS.get(column, column.replace("_", " "))
