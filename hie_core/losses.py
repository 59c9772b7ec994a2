"""The six training losses of the study, as MONAI defines them.

Every loss is a ``torch.nn.Module`` called as ``loss(logits, target, target_dt=None)``:

- ``logits``: float tensor (B, C, D, H, W), the model's raw output (a sigmoid is applied
  inside, as MONAI's ``sigmoid=True``). It is cast to float32 first, so a bf16 autocast
  forward still gets a float32 loss.
- ``target``: tensor of the same shape with values in {0, 1} (bool, integer or float).
- ``target_dt``: optional precomputed distance field of the target (see
  :func:`hausdorff_distance_field`); only the Hausdorff losses use it, the others ignore it.

Returns a scalar tensor. :func:`get_loss` builds them by name (:data:`LOSS_NAMES`), with the
settings of :data:`LOSS_SETTINGS` (a run's ``tversky_alpha``, ``tversky_beta``, ``focal_gamma``,
``hdt_alpha`` and ``hybrid_weight``; :func:`loss_from_config` takes them from its configuration).
At the seed's values:

========================  ====================================================================
``dice``                  ``monai.losses.DiceLoss(sigmoid=True)``
``dice_focal``            ``monai.losses.DiceFocalLoss(sigmoid=True)``: gamma 2, Dice + Focal 1:1
``tversky``               ``monai.losses.TverskyLoss(sigmoid=True, alpha=0.3, beta=0.7)``; in
                          MONAI ``alpha`` weights false positives and ``beta`` false negatives
``hdt``                   :class:`HausdorffDTLoss` (alpha 2), MONAI's ``HausdorffDTLoss(sigmoid=True)``
``dice_focal_hdt``        ``0.9 * dice_focal + 0.1 * log(1 + hdt)`` (0.1 is ``hybrid_weight``)
``tversky_hdt``           ``0.9 * tversky + 0.1 * log(1 + hdt)``
========================  ====================================================================

**Your own loss.** A run's ``loss`` may also name a class, ``package.module:Name``
(``-p loss mypkg.losses:MyLoss`` in ``notebooks/train.ipynb``, ``--losses`` in the study). It is
imported with ``importlib`` (the module must be importable where the run runs: installed, or
its folder on ``PYTHONPATH``) and must be:

- a subclass of ``torch.nn.Module`` whose ``forward(logits, target, target_dt=None)`` returns a
  scalar tensor, with the arguments described above. ``target_dt`` may be None (the selection
  set is scored without it), so a loss that uses it computes it itself then, with
  :func:`hausdorff_distance_field`;
- constructible without arguments; ``__init__`` keyword parameters named like the settings of
  :data:`LOSS_SETTINGS` (or ``spacing_mm``) receive the run's values, and a setting it takes
  that is not at the seed's value appears in its display name;
- optionally with a class attribute ``needs_distance`` (bool, default False): True makes the
  training step pass ``target_dt = hausdorff_distance_field(target, loss.spacing_mm)``
  (distances in voxels where the loss has no ``spacing_mm`` attribute or it is None);
- optionally with a class attribute ``label`` (str): its display name in tables and figures
  (:func:`loss_label`); else the class name.

A name that is not such a class is a :class:`~hie_core.errors.ConfigError` when the run's
configuration is built (:func:`check_loss_name`). :mod:`hie_core.contrib.small_lesion` is a
worked example, not part of the seed's six.

Dice, DiceFocal and Tversky are MONAI's own classes. The Hausdorff distance-transform
loss (Karimi & Salcudean 2019, IEEE TMI 39(2):499-513) is reimplemented here with MONAI's
exact arithmetic, but computes its distance transforms on the tensor's own device through
:func:`hie_core.distance.distance_transform_edt` (CuPy on CUDA, the multithreaded ``edt``
package on CPU) instead of MONAI's host SciPy, which made a GPU training step 20x slower.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from hie_core.config.schema import LOSS_SETTINGS as SCHEMA_LOSS_SETTINGS
from hie_core.config.schema import Field
from hie_core.distance import distance_transform_edt
from hie_core.errors import ConfigError

__all__ = [
    "LOSS_NAMES",
    "LOSS_LABELS",
    "LOSS_SETTINGS",
    "loss_label",
    "loss_settings",
    "get_loss",
    "loss_from_config",
    "check_loss_name",
    "load_loss_class",
    "is_custom_loss",
    "uses_setting",
    "custom_loss_digest",
    "HausdorffDTLoss",
    "HybridLoss",
    "MonaiLoss",
    "hausdorff_distance_field",
]

#: The six losses of the study, in the order of its tables.
LOSS_NAMES: tuple[str, ...] = ("dice", "dice_focal", "tversky", "hdt", "dice_focal_hdt", "tversky_hdt")
#: The one name of each loss that a reader sees in tables, legends and prose.
LOSS_LABELS: dict[str, str] = {"dice": "Dice", "dice_focal": "DiceFocal", "tversky": "Tversky", "hdt": "HausdorffDT",
                               "dice_focal_hdt": "DiceFocal+HDT", "tversky_hdt": "Tversky+HDT"}  # fmt: skip

#: The losses' settings as run parameters (fields of :mod:`hie_core.config.schema`): each with the
#: seed's value (``default``), its short name in a method's display name (``short``) and the
#: built-in losses that read it (``readers``).
LOSS_SETTINGS: dict[str, Field] = SCHEMA_LOSS_SETTINGS
_SEED = {key: field.default for key, field in LOSS_SETTINGS.items()}


def is_custom_loss(name: str) -> bool:
    """Whether ``name`` names a researcher's own loss class (``package.module:Name``), not one of the six."""
    return ":" in str(name)


def load_loss_class(name: str) -> type[nn.Module]:
    """Import the loss class named ``package.module:Name`` and check it (see the module docstring).

    Raises:
        hie_core.errors.ConfigError: no colon, the module does not import, no such class, not a
            ``torch.nn.Module`` subclass, or a ``forward`` without ``(logits, target, target_dt=None)``;
            the message names ``name`` and what to do.
    """
    module_name, _, class_name = str(name).partition(":")
    hint = "give one of " + ", ".join(LOSS_NAMES) + " or package.module:ClassName"
    if not module_name or not class_name or ":" in class_name:
        raise ConfigError(f"loss {name!r}: not a loss name; {hint}")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any failure to import is the user's module's
        raise ConfigError(f"loss {name!r}: module {module_name!r} does not import ({type(exc).__name__}: {exc}); "
                          "install it or put its folder on PYTHONPATH") from None  # fmt: skip
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ConfigError(
            f"loss {name!r}: module {module_name!r} has no {class_name!r}; check the class name"
        )
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ConfigError(f"loss {name!r}: {class_name} is not a torch.nn.Module subclass; {hint}")
    try:
        inspect.signature(cls.forward).bind(None, "logits", "target", target_dt=None)
    except (TypeError, ValueError):
        raise ConfigError(
            f"loss {name!r}: {class_name}.forward must take (logits, target, target_dt=None)"
        ) from None
    return cls


def custom_loss_digest(name: str) -> str | None:
    """SHA-256 (16 hex digits) of a researcher's own loss's code; None for the six.

    The code is the loss's module and every module it imports, directly or through others, that
    is the user's own (not the standard library, an installed package or ``hie_core``):
    :func:`hie_core.fingerprint.user_code_digest`. A run's fingerprint
    (:func:`hie_core.training.config.run_fingerprint`) includes it, so a finished run is trained
    again when the loss or a helper module it imports changed, as for an edit of ``hie_core``.
    """
    if not is_custom_loss(name):
        return None
    from hie_core.fingerprint import user_code_digest

    module = inspect.getmodule(load_loss_class(name))
    if module is None:
        return hashlib.sha256(b"").hexdigest()[:16]
    return user_code_digest(module)


def check_loss_name(name: str) -> None:
    """Accept one of :data:`LOSS_NAMES` or a loadable ``package.module:Name``; else a ConfigError naming it."""
    if not isinstance(name, str):
        raise ConfigError(f"loss must be text, got {name!r}")
    if is_custom_loss(name):
        load_loss_class(name)
    elif name not in LOSS_NAMES:
        raise ConfigError(f"loss must be one of {', '.join(LOSS_NAMES)} or package.module:ClassName "
                          f"(your own loss); got {name!r}")  # fmt: skip


def _accepted(cls: type) -> set[str]:
    """The keyword parameters of ``cls.__init__`` (all of :data:`LOSS_SETTINGS` with ``**kwargs``)."""
    if cls.__init__ is nn.Module.__init__:  # no __init__ of its own: Module's (*args, **kwargs) takes none
        return set()
    try:
        params = inspect.signature(cls.__init__).parameters.values()
    except (TypeError, ValueError):
        return set()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return {*LOSS_SETTINGS, "spacing_mm"}
    return {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def uses_setting(name: str, key: str) -> bool:
    """Whether loss ``name`` uses setting ``key`` of :data:`LOSS_SETTINGS` (a custom loss: its ``__init__`` takes it).

    Args:
        name: a loss name or ``package.module:Name`` (False where that no longer imports).
        key: e.g. ``"hybrid_weight"``.
    """
    if not is_custom_loss(name):
        return name in LOSS_SETTINGS[key].readers
    try:
        return key in _accepted(load_loss_class(name))
    except ConfigError:
        return False


def loss_label(config: Mapping[str, Any]) -> str:
    """A run's loss as the reader sees it: the display name, plus every setting not at the seed's value.

    A researcher's own loss (``package.module:Name``) shows its class's ``label`` attribute, else
    the class name (``Name`` where the module no longer imports), and the settings its
    ``__init__`` takes.

    Args:
        config: a run's configuration (``config.json`` or ``TrainConfig.to_dict()``); settings
            it lacks are at the seed's values.

    Returns:
        e.g. ``"Tversky+HDT"`` or ``"Tversky+HDT (w 0.3)"``.
    """
    name = str(config.get("loss", ""))
    changed = [f"{field.short} {float(config[key]):g}" for key, field in LOSS_SETTINGS.items() if key in config
               and not math.isclose(float(config[key]), field.default) and uses_setting(name, key)]  # fmt: skip
    if is_custom_loss(name):
        try:
            cls = load_loss_class(name)
            label = str(getattr(cls, "label", None) or cls.__name__)
        except ConfigError:
            label = name.rpartition(":")[2] or name
    else:
        label = LOSS_LABELS.get(name, name)
    return f"{label} ({', '.join(changed)})" if changed else label


def loss_settings(config: Any = None) -> dict[str, float]:
    """The five loss settings of a run (:data:`LOSS_SETTINGS`), the seed's value where not given.

    Args:
        config: a ``TrainConfig``, a mapping (``config.json``), or None (the seed's values).
    """
    out = {}
    for key, field in LOSS_SETTINGS.items():
        value = config.get(key) if isinstance(config, Mapping) else getattr(config, key, None)
        out[key] = field.default if value is None else float(value)
    return out


def _prepare(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate shapes; return float32 logits and float32 target."""
    if logits.ndim != 5:
        raise ValueError(f"logits must be (B, C, D, H, W), got shape {tuple(logits.shape)}")
    if target.shape != logits.shape:
        raise ValueError(
            f"target shape {tuple(target.shape)} differs from logits shape {tuple(logits.shape)}"
        )
    return logits.float(), target.to(device=logits.device, dtype=torch.float32)


@torch.no_grad()
def hausdorff_distance_field(mask: torch.Tensor, spacing_mm: Sequence[float] | None = None) -> torch.Tensor:
    """Distance field of MONAI's ``HausdorffDTLoss.distance_field``, on the mask's device.

    For each (batch item, channel) volume that is neither empty nor full, the field is
    ``edt(mask) + edt(~mask)``: at every voxel, the distance to the nearest voxel of the
    other class (so 1 voxel next to the boundary on either side). Empty and full volumes get
    a field of zeros (no boundary, so that mask adds no distance weight to the loss; the
    other mask's field still does).
    MONAI passes one channel at a time, so this per-(b, c) rule is its rule.

    Args:
        mask: (B, C, D, H, W) boolean mask, or any tensor thresholded as ``mask > 0.5``
            (MONAI's threshold, applied to probabilities).
        spacing_mm: voxel size (D, H, W) in mm; ``None`` (the default) gives distances in
            voxels, as MONAI does, so the loss equals MONAI's.

    Returns:
        float32 tensor (B, C, D, H, W) on the mask's device.
    """
    fg = mask if mask.dtype == torch.bool else mask > 0.5
    flat = fg.flatten(2)
    # Decided on the device, not per volume on the host: no synchronisation in a CUDA step.
    has_boundary = (flat.any(-1) & ~flat.all(-1))[..., None, None, None]
    fields = torch.stack(
        [
            distance_transform_edt(v, spacing_mm) + distance_transform_edt(~v, spacing_mm)
            for v in fg.flatten(0, 1)
        ]
    ).view(fg.shape)
    return torch.where(has_boundary, fields, torch.zeros((), device=fg.device))


class HausdorffDTLoss(nn.Module):
    """Hausdorff distance-transform loss (Karimi & Salcudean 2019), MONAI's formula.

    With ``p = sigmoid(logits)``, ``g = target`` and distance fields ``d_p`` of
    ``p.detach() > 0.5`` and ``d_g`` of ``g`` (:func:`hausdorff_distance_field`):
    ``loss = mean((p - g)^2 * (d_p^alpha + d_g^alpha))`` over all of (B, C, D, H, W),
    which equals MONAI's mean over the per-(b, c) spatial means. The gradient flows through
    ``p`` only (the fields are constants). Distances are in voxels by default, as in MONAI.

    Args:
        alpha: exponent of the distances (2, the paper's and MONAI's default).
        spacing_mm: voxel size (D, H, W) in mm for distances in mm; ``None`` = voxels.
    """

    def __init__(self, alpha: float = _SEED["hdt_alpha"], spacing_mm: Sequence[float] | None = None) -> None:
        super().__init__()
        if not alpha > 0:
            raise ValueError(f"alpha must be > 0, got {alpha}")
        self.alpha = float(alpha)
        self.spacing_mm = None if spacing_mm is None else tuple(float(s) for s in spacing_mm)

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, target_dt: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Loss value (scalar).

        Args:
            logits: (B, C, D, H, W) raw model output.
            target: (B, C, D, H, W) binary target.
            target_dt: optional ``hausdorff_distance_field(target, spacing_mm)``, e.g.
                computed once per case in the data pipeline; used instead of recomputing it.
        """
        logits, target = _prepare(logits, target)
        prob = torch.sigmoid(logits)
        pred_dt = hausdorff_distance_field(prob.detach() > 0.5, self.spacing_mm)
        if target_dt is None:
            target_dt = hausdorff_distance_field(target > 0.5, self.spacing_mm)
        elif target_dt.shape != target.shape:
            raise ValueError(
                f"target_dt shape {tuple(target_dt.shape)} differs from target {tuple(target.shape)}"
            )
        distance = pred_dt**self.alpha + target_dt.to(device=logits.device, dtype=torch.float32) ** self.alpha
        return ((prob - target) ** 2 * distance).mean()


class MonaiLoss(nn.Module):
    """A MONAI loss with this module's ``(logits, target, target_dt=None)`` signature."""

    def __init__(self, loss: nn.Module) -> None:
        super().__init__()
        self.loss = loss

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, target_dt: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Loss value (scalar); ``target_dt`` is accepted for a uniform signature and ignored."""
        logits, target = _prepare(logits, target)
        return self.loss(logits, target)


class HybridLoss(nn.Module):
    """``weight * base + (1 - weight) * log(1 + hdt)``, the seed's hybrid losses.

    Args:
        base: a region loss with the ``(logits, target, target_dt)`` signature.
        hdt: the Hausdorff distance-transform loss (its fields are computed once per call).
        weight: weight of ``base`` (0.9 in the seed).
    """

    def __init__(self, base: nn.Module, hdt: HausdorffDTLoss, weight: float = 1 - _SEED["hybrid_weight"]) -> None:
        super().__init__()
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"weight must be in [0, 1], got {weight}")
        self.base = base
        self.hdt = hdt
        self.weight = float(weight)

    @property
    def spacing_mm(self) -> tuple[float, ...] | None:
        """Voxel size (D, H, W) in mm of the Hausdorff term's distances, or None for voxels."""
        return self.hdt.spacing_mm

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, target_dt: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Loss value (scalar); ``target_dt`` as in :meth:`HausdorffDTLoss.forward`."""
        region = self.base(logits, target)
        return self.weight * region + (1.0 - self.weight) * torch.log1p(self.hdt(logits, target, target_dt))


def _monai(name: str, settings: Mapping[str, float]) -> MonaiLoss:
    from monai.losses import DiceFocalLoss, DiceLoss, TverskyLoss

    if name == "dice":
        return MonaiLoss(DiceLoss(sigmoid=True))
    if name == "dice_focal":
        gamma = settings["focal_gamma"]
        return MonaiLoss(DiceFocalLoss(sigmoid=True, gamma=gamma, lambda_dice=1.0, lambda_focal=1.0))
    return MonaiLoss(
        TverskyLoss(sigmoid=True, alpha=settings["tversky_alpha"], beta=settings["tversky_beta"])
    )


def _custom(name: str, spacing_mm: Sequence[float] | None, settings: Mapping[str, float]) -> nn.Module:
    """Build a researcher's own loss, passing the settings its ``__init__`` takes."""
    cls = load_loss_class(name)
    accepted = _accepted(cls)
    kwargs: dict[str, Any] = {k: v for k, v in settings.items() if k in accepted}
    if "spacing_mm" in accepted:
        kwargs["spacing_mm"] = spacing_mm
    try:
        loss = cls(**kwargs)
    except Exception as exc:  # the user's constructor
        raise ConfigError(f"loss {name!r}: {cls.__name__}({', '.join(kwargs)}) failed "
                          f"({type(exc).__name__}: {exc}); it must be constructible so") from None  # fmt: skip
    loss.needs_distance = bool(getattr(cls, "needs_distance", False))
    return loss


def get_loss(
    name: str, spacing_mm: Sequence[float] | None = None, settings: Mapping[str, float] | None = None
) -> nn.Module:
    """Build a study loss by name, or a researcher's own (``package.module:Name``).

    Args:
        name: one of :data:`LOSS_NAMES`, or ``package.module:Name`` (see the module docstring).
        spacing_mm: voxel size (D, H, W) in mm for the Hausdorff distance fields; ``None``
            (default) keeps MONAI's voxel units. Ignored by the losses without a Hausdorff term.
        settings: any of the keys of :data:`LOSS_SETTINGS` (``tversky_alpha``, ``tversky_beta``,
            ``focal_gamma``, ``hdt_alpha``, ``hybrid_weight``); missing ones are at the seed's values.

    Returns:
        a module called as ``loss(logits, target, target_dt=None)`` -> scalar tensor. Its
        attribute ``needs_distance`` tells whether ``target_dt`` is used.

    Raises:
        ValueError: an unknown name or setting, or a setting out of range
            (a :class:`~hie_core.errors.ConfigError` for a custom loss that does not load).
    """
    unknown = sorted(set(settings or {}) - set(LOSS_SETTINGS))
    if unknown:
        raise ValueError(f"unknown loss setting(s) {', '.join(unknown)}; valid: {', '.join(LOSS_SETTINGS)}")
    values = loss_settings(settings or {})
    if is_custom_loss(name):
        return _custom(name, spacing_mm, values)
    if name not in LOSS_NAMES:
        raise ValueError(
            f"unknown loss {name!r}; valid names: {', '.join(LOSS_NAMES)} or package.module:ClassName"
        )
    if name == "hdt":
        loss: nn.Module = HausdorffDTLoss(values["hdt_alpha"], spacing_mm)
    elif name.endswith("_hdt"):
        hdt = HausdorffDTLoss(values["hdt_alpha"], spacing_mm)
        loss = HybridLoss(_monai(name.removesuffix("_hdt"), values), hdt, 1.0 - values["hybrid_weight"])
    else:
        loss = _monai(name, values)
    loss.needs_distance = name in ("hdt", "dice_focal_hdt", "tversky_hdt")
    return loss


def loss_from_config(config: Any, spacing_mm: Sequence[float] | None = None) -> nn.Module:
    """:func:`get_loss` of a run: its ``loss`` with its five settings (a ``TrainConfig`` or a mapping)."""
    name = config.get("loss") if isinstance(config, Mapping) else config.loss
    return get_loss(name, spacing_mm, loss_settings(config))
