"""The synthetic cases' parameters: split ids, burden strata, scan grids and everything drawn
before rendering (:class:`~hie_core.synthetic.CaseParams`), and the rendered case's container
(:class:`~hie_core.synthetic.SyntheticCase`).

Case ``i`` of a split depends only on ``(seed, split, i)``: each draw has its own random stream
(``_rng(seed, split, index, stream)``). See :mod:`hie_core.synthetic` for the dataset as a whole.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hie_core.io import ImageGeometry

__all__ = [
    "GENERATOR_VERSION",
    "PRESETS",
    "SITE",
    "MANIFEST",
    "ZADC_FWHM_MM",
    "ATLAS_SIGMA_MM",
    "ATLAS_VAR_WEIGHT",
    "CaseParams",
    "SyntheticCase",
    "sample_case_params",
]

GENERATOR_VERSION = "1.0"
SITE = "SYNNICU"
MANIFEST = "SYNTHETIC.json"
PRESETS: dict[str, dict[str, int]] = {
    "small": {"train": 40, "val": 4, "test": 16},
    "full": {"train": 85, "val": 4, "test": 44},
}
_SPLIT_CODE = {"train": 0, "val": 1, "test": 2}
_ID_RANGE = {"train": (1, 400), "val": (401, 100), "test": (501, 499)}  # first number, max count
_BLOCK_A = ("empty", ">5%", "1-5%", "1-5%", "<1%", "<1%", "<1%", "<1%")
_BLOCK_B = (">5%", ">5%", "1-5%", "1-5%") + ("<1%",) * 6
_BURDEN_RANGE = {"<1%": (3e-4, 0.01), "1-5%": (0.01, 0.05), ">5%": (0.05, 0.30)}
_PATTERNS = {
    "<1%": (("punctate", "bgt", "watershed"), (0.35, 0.35, 0.30)),
    "1-5%": (("bgt", "watershed"), (0.45, 0.55)),
    ">5%": (("diffuse", "watershed", "bgt"), (0.5, 0.3, 0.2)),
}
ZADC_FWHM_MM = 2.0
ATLAS_SIGMA_MM = 2.0
ATLAS_VAR_WEIGHT = 0.5


@dataclass(frozen=True)
class CaseParams:
    """Everything drawn for one case before rendering (JSON-serialisable).

    Brain position and size are in mm in the image frame (x, y, z = W, H, D axes);
    ``tissue_adc`` is (white matter, cortex, deep grey matter, CSF) in 10^-6 mm^2/s;
    ``target_burden`` is the lesion fraction of brain voxels (0 for an empty label).
    """

    case_id: str
    split: str
    index: int
    seed: int
    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    origin_mm: tuple[float, float, float]
    direction: tuple[float, ...]
    brain_semi_axes_mm: tuple[float, float, float]
    brain_offset_mm: tuple[float, float, float]
    yaw_deg: float
    ventricle_scale: float
    tissue_adc: tuple[float, float, float, float]
    adc_gain: float
    bias_amplitude: float
    noise_sd: float
    n_variants: int
    stratum: str
    target_burden: float
    pattern: str
    severity: float

    @property
    def geometry(self) -> ImageGeometry:
        return ImageGeometry(self.shape, self.spacing_mm, self.origin_mm, self.direction)


@dataclass(frozen=True)
class SyntheticCase:
    """A rendered case: (D, H, W) arrays on ``geometry``'s grid and what was realised."""

    params: CaseParams
    geometry: ImageGeometry
    adc: np.ndarray  # float32, 10^-6 mm^2/s, 0 outside the brain
    zadc: np.ndarray  # float32 in [-10, 10], 0 outside the brain
    label: np.ndarray  # uint8 {0, 1}
    brain_voxels: int
    lesion_voxels: int

    @property
    def lesion_burden(self) -> float:
        """Lesion voxels / brain voxels."""
        return self.lesion_voxels / max(self.brain_voxels, 1)


def _rng(seed: int, split: str, index: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, _SPLIT_CODE[split], index, stream]))


def _stratum(seed: int, split: str, index: int) -> str:
    """Burden stratum of case ``index``: blocks of 8 + 10 shuffled per (seed, split, cycle)."""
    cycle, pos = divmod(index, len(_BLOCK_A) + len(_BLOCK_B))
    rng = _rng(seed, split, cycle, stream=99)
    block_a, block_b = list(rng.permutation(_BLOCK_A)), list(rng.permutation(_BLOCK_B))
    return str((block_a + block_b)[pos])


def _check_split_index(split: str, index: int) -> None:
    if split not in _SPLIT_CODE:
        raise ValueError(f"split must be one of {sorted(_SPLIT_CODE)}, got {split!r}")
    if not 0 <= index < _ID_RANGE[split][1]:
        raise ValueError(f"index {index} out of range for split {split!r} (0..{_ID_RANGE[split][1] - 1})")


def _sample_grid(rng: np.random.Generator, max_size: int | None) -> tuple[tuple, tuple, tuple, tuple]:
    """Shape, spacing (mm, array order), origin (mm) and direction of a scan in the real ranges."""
    n_xy = int(rng.choice([128, 160, 256], p=[0.35, 0.25, 0.40]))
    n_z = int(np.clip(round(rng.normal(42, 10)), 16, 64))
    s_xy = float(np.clip(rng.uniform(160.0, 200.0) / n_xy, 0.70, 2.0))  # field of view 160-200 mm
    s_z = float(rng.uniform(2.2, 3.0))
    if max_size is not None:
        if max_size < 8:
            raise ValueError(f"max_size must be at least 8, got {max_size}")
        s_xy, s_z = s_xy * n_xy / min(n_xy, max_size), s_z * n_z / min(n_z, max_size)
        n_xy, n_z = min(n_xy, max_size), min(n_z, max_size)
    tilt = np.deg2rad(rng.uniform(-6.0, 6.0))  # oblique-axial tilt about x
    rot = np.array([[1, 0, 0], [0, np.cos(tilt), -np.sin(tilt)], [0, np.sin(tilt), np.cos(tilt)]])
    centre = np.array([rng.normal(0, 4), rng.normal(-15, 8), rng.normal(25, 10)])
    origin = centre - rot @ (np.array([(n_xy - 1) * s_xy, (n_xy - 1) * s_xy, (n_z - 1) * s_z]) / 2)
    as_floats = lambda a: tuple(float(x) for x in a)  # noqa: E731
    return (n_z, n_xy, n_xy), (s_z, s_xy, s_xy), as_floats(origin), as_floats(rot.ravel())


def sample_case_params(seed: int, split: str, index: int, max_size: int | None = None) -> CaseParams:
    """Draw one case's geometry, anatomy and lesion parameters (no rendering; microseconds).

    Args:
        seed: dataset seed (non-negative).
        split: ``"train"``, ``"val"`` or ``"test"``.
        index: position of the case in its split (its id number follows from it).
        max_size: cap on the in-plane size and slice count (the field of view is kept by
            enlarging the spacing); for fast tests only.
    """
    _check_split_index(split, index)
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    rng = _rng(seed, split, index, stream=0)
    shape, spacing, origin, direction = _sample_grid(rng, max_size)
    semi = tuple(float(rng.uniform(lo, hi)) for lo, hi in ((41, 48), (51, 59), (36, 42)))
    stratum, burden, pattern = _stratum(seed, split, index), 0.0, "none"
    if stratum != "empty":
        lo, hi = _BURDEN_RANGE[stratum]
        burden = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        names, probs = _PATTERNS[stratum]
        pattern = str(rng.choice(names, p=probs))
    mild = rng.random() < 0.2
    offset = (float(rng.normal(0, 3)), float(rng.normal(0, 4)), float(0.1 * semi[2] + rng.uniform(-6, 6)))
    return CaseParams(
        case_id=f"{SITE}_{_ID_RANGE[split][0] + index:03d}-VISIT_01",
        split=split, index=index, seed=seed,
        shape=shape, spacing_mm=spacing, origin_mm=origin, direction=direction,
        brain_semi_axes_mm=semi, brain_offset_mm=offset,
        yaw_deg=float(rng.normal(0, 4)),
        ventricle_scale=float(rng.uniform(0.9, 1.6)),
        tissue_adc=tuple(float(rng.normal(m, s)) for m, s in ((1400, 50), (1100, 40), (1030, 40), (2900, 80))),
        adc_gain=float(rng.normal(1.0, 0.025)),
        bias_amplitude=float(rng.uniform(0.02, 0.05)),
        noise_sd=float(rng.uniform(40, 90)),
        n_variants=int(rng.integers(2, 7)),
        stratum=stratum, target_burden=burden, pattern=pattern,
        severity=float(rng.uniform(0.15, 0.28) if mild else rng.uniform(0.35, 0.60)),
    )  # fmt: skip
