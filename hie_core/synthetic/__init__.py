"""A synthetic BONBID-HIE-like dataset: the project's embedded default data.

It writes exactly the BONBID-HIE release layout (see :mod:`hie_core.data`), with case ids
``SYNNICU_<nnn>-VISIT_01`` so they can never be mistaken for patients, and a
``SYNTHETIC.json`` at the root with the generator version, seed, counts and every case's
parameters and realised lesion burden.

Each case is a skull-stripped neonatal brain ADC map (10^-6 mm^2/s) on a native grid drawn
from the real ranges (128/160/256 square in-plane, 16-64 slices, field of view 160-200 mm,
slices 2.2-3.0 mm), built from a deformed cerebrum with folded cortex, white matter,
thalami/lentiform/caudate nuclei, the posterior limb of the internal capsule, lateral and
third ventricles, the interhemispheric fissure, cerebellum and brainstem. Lesions lower the
ADC (12-55 % at the core, tapering to the edge, heterogeneous) in HIE patterns: basal
ganglia/thalami, watershed cortex/white matter, punctate white matter, or diffuse.

ZADC is computed as the release describes it: the ADC smoothed by a 2 mm FWHM Gaussian
(in mm, per axis), z-scored voxel-wise against a normative model, clipped to [-10, 10], zero
outside the brain. The normative model is a population atlas of the same anatomy: its mean
is the lesion-free, variant-free ADC blurred by 2 mm (sigma), its sd the local anatomical
variance under that blur plus a per-tissue sd. The subject differs from the atlas by a
global ADC gain, a smooth bias, normal-variant low-ADC blobs, sharp tissue edges the atlas
blurs, and noise: so ``ZADC < -2`` finds most lesions but also false positives, and misses
mild ones, as on the real data (baseline mean Dice about 0.45 on the test split).

Lesion burden is stratified by a fixed schedule per (seed, split): among every 18
consecutive cases 1 is empty, 10 are under 1 % of the brain, 4 are 1-5 %, 3 are over 5 %;
the first 8 cases of each split hold all four strata, so the small preset's train and test
splits cover every stratum and an empty label. Case ``i`` of a split depends only on
``(seed, split, i)``.

The package in three parts: ``params`` (case ids, strata and the parameters drawn per case),
``render`` (anatomy, lesions and ZADC) and ``writer`` (files, manifest, digests, the cache and
the command line ``python -m hie_core.synthetic``). Every name below is importable from
``hie_core.synthetic``.
"""

from __future__ import annotations

from hie_core.synthetic.params import (
    GENERATOR_VERSION,
    MANIFEST,  # noqa: F401 (the manifest's file name, read by callers)
    PRESETS,
    SITE,  # noqa: F401
    CaseParams,
    SyntheticCase,
    sample_case_params,
)
from hie_core.synthetic.render import generate_case, render_case
from hie_core.synthetic.writer import (
    _write_case,  # noqa: F401 (tests write single cases)
    dataset_digest,
    ensure_synthetic_dataset,
    file_digests,
    is_synthetic_dir,
    main,
    make_synthetic_dataset,
    synthetic_cache_dir,
)

__all__ = [
    "GENERATOR_VERSION",
    "PRESETS",
    "CaseParams",
    "SyntheticCase",
    "sample_case_params",
    "render_case",
    "generate_case",
    "make_synthetic_dataset",
    "ensure_synthetic_dataset",
    "synthetic_cache_dir",
    "is_synthetic_dir",
    "file_digests",
    "dataset_digest",
    "main",
]
