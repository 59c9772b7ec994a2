"""Rendering a synthetic case: anatomy, HIE lesions, normal variants, noise and the ZADC map.

:func:`~hie_core.synthetic.render_case` turns a :class:`~hie_core.synthetic.CaseParams` into
ADC (10^-6 mm^2/s), ZADC and label arrays (D, H, W) on the case's native grid. The brain is a deformed
cerebrum with folded cortex, white matter, deep grey nuclei, the internal capsule, ventricles,
the fissure, cerebellum and brainstem; lesions lower the ADC in an HIE pattern; ZADC is the
2 mm FWHM smoothed ADC z-scored against an atlas of the same anatomy (see
:mod:`hie_core.synthetic`).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage
from scipy.special import expit

from hie_core.synthetic.params import (
    ATLAS_SIGMA_MM,
    ATLAS_VAR_WEIGHT,
    ZADC_FWHM_MM,
    CaseParams,
    SyntheticCase,
    _rng,
    sample_case_params,
)

__all__ = ["render_case", "generate_case"]


def _basis(coords_mm: np.ndarray, corr_mm: float) -> np.ndarray:
    centres = np.arange(coords_mm[0] - corr_mm, coords_mm[-1] + corr_mm + 1e-6, 0.8 * corr_mm)
    return np.exp(-0.5 * ((coords_mm[:, None] - centres[None, :]) / corr_mm) ** 2).astype(np.float32)


def _smooth_field(rng: np.random.Generator, axes_mm: tuple[np.ndarray, ...], corr_mm: float) -> np.ndarray:
    """Unit-rms smooth random field on the (d, h, w) grid with the 1D mm positions ``axes_mm``.

    A tensor product of Gaussian bumps (width ``corr_mm``) with normal weights: three small
    matrix products instead of a 3D convolution or an upsampling pass.
    """
    bz, by, bx = (_basis(a, corr_mm) for a in axes_mm)
    coef = rng.standard_normal((bz.shape[1], by.shape[1], bx.shape[1]), dtype=np.float32)
    (i, j, k), (d, h, w) = coef.shape, (bz.shape[0], by.shape[0], bx.shape[0])
    f = (bz @ coef.reshape(i, j * k)).reshape(d, j, k).transpose(1, 0, 2).reshape(j, d * k)
    f = (by @ f).reshape(h * d, k) @ bx.T  # rows (h, d), columns w
    field = np.ascontiguousarray(f.reshape(h, d, w).transpose(1, 0, 2))
    return field / np.float32(np.sqrt(np.mean(field * field)) + 1e-12)


def _gauss(x: np.ndarray, sigma_mm: float, spacing_mm: tuple[float, ...]) -> np.ndarray:
    return ndimage.gaussian_filter(x, [sigma_mm / s for s in spacing_mm], mode="constant", truncate=3.0)


def _crop(p: CaseParams) -> tuple[tuple[slice, ...], tuple[np.ndarray, ...]]:
    """Voxel box around the brain and its axis positions in mm relative to the brain centre."""
    ax, ay, az = p.brain_semi_axes_mm
    r_xy = 1.1 * max(ax, ay) + 8.0
    extents = ((-1.4 * az - 6, 1.05 * az + 6), (-r_xy, r_xy), (-r_xy, r_xy))
    offsets = (p.brain_offset_mm[2], p.brain_offset_mm[1], p.brain_offset_mm[0])
    slices, axes = [], []
    for n, s, off, (lo, hi) in zip(p.shape, p.spacing_mm, offsets, extents, strict=True):
        c = (n - 1) / 2 + off / s
        i0, i1 = max(0, int(np.floor(c + lo / s))), min(n, int(np.ceil(c + hi / s)) + 1)
        slices.append(slice(i0, i1))
        axes.append(((np.arange(i0, i1) - c) * s).astype(np.float32))
    return tuple(slices), tuple(axes)


def _blob(
    abs_x: np.ndarray, v: np.ndarray, t: np.ndarray, centre: tuple, semi: tuple, scale_mm: float
) -> np.ndarray:
    """Soft ellipsoid (x in mm, mirrored to both hemispheres; v, t in brain units)."""
    rho = np.sqrt(
        ((abs_x - centre[0]) / semi[0]) ** 2
        + ((v - centre[1]) / semi[1]) ** 2
        + ((t - centre[2]) / semi[2]) ** 2
    )
    return expit((1 - rho) * (scale_mm / 0.6))


def _anatomy(p: CaseParams, rng: np.random.Generator, axes: tuple[np.ndarray, ...]) -> dict[str, np.ndarray]:
    """Brain depth (mm), soft tissue fractions and brain coordinates on the crop grid."""
    ax, ay, az = p.brain_semi_axes_mm
    cos, sin = math.cos(math.radians(p.yaw_deg)), math.sin(math.radians(p.yaw_deg))
    z, y, x = axes[0][:, None, None], axes[1][None, :, None], axes[2][None, None, :]
    xr, yr = cos * x + sin * y, -sin * x + cos * y
    u, v, t = xr / ax, yr / ay, z / az
    rho = np.sqrt(u * u + v * v + t * t) * (1 + 0.05 * _smooth_field(rng, axes, 35.0))
    depth = (1 - rho) * float(np.cbrt(ax * ay * az))
    depth_cb = (1 - np.sqrt((u / 0.5) ** 2 + ((v - 0.55) / 0.32) ** 2 + ((t + 0.72) / 0.32) ** 2)) * 0.37 * ay
    depth_bs = np.minimum(
        (1 - np.sqrt((xr / (0.17 * ax)) ** 2 + ((v - 0.12) / 0.2) ** 2)) * 8.0, (t + 1.4) * az
    )
    depth_bs = np.where(t < -0.3, depth_bs, -1.0)
    cerebrum = depth >= np.maximum(depth_cb, depth_bs)
    depth_all = np.maximum(depth, np.maximum(depth_cb, depth_bs))
    fold = np.abs(_smooth_field(rng, axes, 7.0))
    abs_x, vs = np.abs(xr), p.ventricle_scale
    gm = np.maximum(expit((4.5 - depth) / 0.5), expit((0.9 - fold) / 0.1) * expit((12.0 - depth) / 1.0))
    x_vent, t_vent = (0.13 + 0.10 * v * v) * ax, 0.12 - 0.3 * v * v
    vent = _blob(
        abs_x - x_vent,
        v,
        t - t_vent + 0.0,
        (0.0, 0.0, 0.0),
        (0.08 * ax * vs, 0.45, 0.10 * vs),
        0.08 * ax * vs,
    )
    third = (
        expit((0.8 - abs_x) / 0.3)
        * expit((0.12 - np.abs(v)) / 0.03)
        * expit((t + 0.35) / 0.03)
        * expit((0.02 - t) / 0.03)
    )
    fissure = expit((1.2 - abs_x) / 0.4) * np.maximum(
        expit((t - 0.25) / 0.05), expit((np.abs(v) - 0.6) / 0.05)
    )
    sulci = expit((0.13 - fold) / 0.03) * expit((8.0 - depth) / 0.7)
    csf = np.maximum(np.maximum(sulci, fissure), np.maximum(vent, third))
    csf = np.maximum(np.where(cerebrum, csf, 0.0), 0.6 * expit((0.7 - depth_all) / 0.4))
    dgm = np.maximum(
        np.maximum(
            _blob(abs_x, v, t, (0.13 * ax, 0.12, -0.12), (0.10 * ax, 0.17, 0.15), 0.1 * ax),
            _blob(abs_x, v, t, (0.30 * ax, -0.10, -0.08), (0.08 * ax, 0.20, 0.15), 0.08 * ax),
        ),
        _blob(abs_x, v, t, (0.17 * ax, -0.32, 0.10), (0.05 * ax, 0.10, 0.10), 0.05 * ax),
    )
    plic = _blob(abs_x, v, t, (0.22 * ax, 0.02, -0.08), (0.025 * ax, 0.16, 0.14), 0.025 * ax)
    return dict(
        mask=depth_all > 0, cerebrum=cerebrum, depth=depth, fold=fold, u=u, v=v, t=t,
        gm=np.where(cerebrum, gm, 0.0), dgm=np.where(cerebrum, dgm, 0.0), plic=np.where(cerebrum, plic, 0.0), csf=csf,
    )  # fmt: skip


def _healthy(p: CaseParams, a: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Lesion-free, variant-free ADC (10^-6 mm^2/s) and per-tissue population sd maps."""
    wm, gm, dgm, csf = p.tissue_adc
    adc = np.broadcast_to(wm * (1 + 0.08 * (np.abs(a["v"]) - 0.3)), a["mask"].shape).astype(np.float32)
    sd = np.full_like(adc, 110.0)
    for frac, val, val_sd in ((a["plic"], 1000.0, 90.0), (a["gm"], gm, 100.0), (a["dgm"], dgm, 90.0)):
        adc += (val - adc) * frac
        sd += (val_sd - sd) * frac
    cereb = 1150.0 + 60.0 * (a["fold"] - 0.8)
    adc = np.where(a["cerebrum"], adc, cereb)
    adc += (csf - adc) * a["csf"]
    sd += (250.0 - sd) * a["csf"]
    mask = a["mask"]
    return np.where(mask, adc, 0).astype(np.float32), np.where(mask, sd, 0).astype(np.float32)


def _lesion_prior(pattern: str, a: dict[str, np.ndarray]) -> tuple[np.ndarray, float]:
    """Where an HIE pattern puts lesions (0..1) and the correlation length (mm) of its shapes."""
    u, v, t, gm, dgm = a["u"], a["v"], a["t"], a["gm"], a["dgm"]
    if pattern == "bgt":
        rolandic = gm * np.exp(-0.5 * (v / 0.12) ** 2) * expit((t - 0.3) / 0.1)
        return dgm + 0.7 * a["plic"] + 0.4 * rolandic, 5.0
    if pattern == "watershed":
        zones = sum(np.exp(-0.5 * ((v - c) ** 2 + (np.abs(u) - 0.45) ** 2) / 0.18**2) for c in (-0.5, 0.55))
        return (gm + 0.6 * (1 - gm - dgm)) * zones * expit((t + 0.1) / 0.1), 7.0
    if pattern == "punctate":
        return np.clip(1 - gm - dgm - a["csf"], 0, 1) * a["cerebrum"], 2.5
    return 0.6 + 0.4 * (gm + dgm), 12.0  # diffuse


def _lesion(
    p: CaseParams, rng: np.random.Generator, axes: tuple, a: dict, n_brain: int
) -> tuple[np.ndarray, np.ndarray]:
    """Binary label and fractional ADC drop map: top-k of prior + smooth noise inside tissue."""
    tissue = a["mask"] & (a["csf"] < 0.5)
    k = min(int(round(p.target_burden * n_brain)), int(tissue.sum()))
    if p.pattern == "none" or k == 0:
        return np.zeros(tissue.shape, bool), np.zeros(tissue.shape, np.float32)
    prior, corr_mm = _lesion_prior(p.pattern, a)
    score = 2.0 * prior / max(float(prior.max()), 1e-6) + _smooth_field(rng, axes, corr_mm)
    values = score[tissue]
    threshold = np.partition(values, values.size - k)[values.size - k]
    label = tissue & (score >= threshold)
    core = np.clip((_gauss(label.astype(np.float32), 1.5, p.spacing_mm) - 0.5) / 0.4, 0, 1)
    texture = 1 + 0.2 * _smooth_field(rng, axes, 2.0)
    drop = np.where(label, p.severity * (0.6 + 0.4 * core) * texture, 0)
    return label, np.clip(drop, 0, 0.8).astype(np.float32)


def _variants(p: CaseParams, rng: np.random.Generator, axes: tuple, a: dict) -> np.ndarray:
    """Multiplicative factor of normal-variant low-ADC blobs (absent from the atlas)."""
    factor = np.ones(a["mask"].shape, np.float32)
    candidates = np.flatnonzero(a["mask"] & (a["csf"] < 0.3))
    for flat in rng.choice(candidates, size=min(p.n_variants, candidates.size), replace=False):
        idx = np.unravel_index(flat, factor.shape)
        r2 = sum((ax_mm - ax_mm[i])[tuple(slice(None) if d == k else None for d in range(3))] ** 2
                 for k, (ax_mm, i) in enumerate(zip(axes, idx, strict=True)))  # fmt: skip
        factor *= 1 - rng.uniform(0.12, 0.30) * np.exp(-0.5 * r2 / rng.uniform(3.0, 8.0) ** 2)
    return factor


def render_case(params: CaseParams) -> SyntheticCase:
    """Render ADC, ZADC and label for ``params`` (deterministic: its own random stream)."""
    rng = _rng(params.seed, params.split, params.index, stream=1)
    slices, axes = _crop(params)
    spacing = params.spacing_mm
    a = _anatomy(params, rng, axes)
    healthy, tissue_sd = _healthy(params, a)
    mask = a["mask"]
    n_brain = int(mask.sum())
    label, drop = _lesion(params, rng, axes, a, n_brain)
    bias = 1 + params.bias_amplitude * _smooth_field(rng, axes, 50.0)
    adc = healthy * params.adc_gain * bias * _variants(params, rng, axes, a) * (1 - drop)
    adc += rng.standard_normal(adc.shape, dtype=np.float32) * (params.noise_sd * (1 + 0.5 * a["csf"]))
    adc = np.where(mask, np.maximum(adc, 20.0), 0).astype(np.float32)
    zadc = _zscore(adc, healthy, tissue_sd, mask, spacing)
    full = {
        k: np.zeros(params.shape, dt)
        for k, dt in (("adc", np.float32), ("zadc", np.float32), ("label", np.uint8))
    }
    full["adc"][slices], full["zadc"][slices], full["label"][slices] = adc, zadc, label
    return SyntheticCase(
        params, params.geometry, full["adc"], full["zadc"], full["label"], n_brain, int(label.sum())
    )


def _zscore(
    adc: np.ndarray, healthy: np.ndarray, tissue_sd: np.ndarray, mask: np.ndarray, spacing: tuple
) -> np.ndarray:
    """ZADC: 2 mm FWHM smoothed ADC z-scored against the atlas (blurred anatomy), clipped to +-10."""
    m = mask.astype(np.float32)
    norm = np.maximum(_gauss(m, ATLAS_SIGMA_MM, spacing), 1e-3)
    mean = _gauss(healthy, ATLAS_SIGMA_MM, spacing) / norm
    var = np.maximum(_gauss(healthy * healthy, ATLAS_SIGMA_MM, spacing) / norm - mean * mean, 0)
    sd = np.sqrt(ATLAS_VAR_WEIGHT * var + (_gauss(tissue_sd, ATLAS_SIGMA_MM, spacing) / norm) ** 2)
    sigma = ZADC_FWHM_MM / (2 * np.sqrt(2 * np.log(2)))
    smooth = _gauss(adc, sigma, spacing) / np.maximum(_gauss(m, sigma, spacing), 1e-3)
    z = np.clip((smooth - mean) / np.maximum(sd, 1.0), -10, 10)
    return np.where(mask, z, 0).astype(np.float32)


def generate_case(seed: int, split: str, index: int, max_size: int | None = None) -> SyntheticCase:
    """Sample and render case ``index`` of ``split`` in memory (see :func:`sample_case_params`)."""
    return render_case(sample_case_params(seed, split, index, max_size=max_size))
