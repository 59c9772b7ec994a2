"""hie_core.distance on the CPU: values against SciPy, back-end names, the host-copy warning.

The CUDA back end (CuPy) is tested in tests/test_cuda.py.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
import torch
from scipy import ndimage

from hie_core import distance
from hie_core.distance import HostCopyWarning, backend_name, distance_transform_edt

SPACING = (2.5, 0.9, 1.1)


def _mask(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.normal(size=(9, 14, 12)), 1.5) > 0.05


@pytest.mark.parametrize("hide_edt", [False, True])
def test_values_equal_scipy_for_arrays_and_cpu_tensors(monkeypatch, hide_edt):
    if hide_edt:
        monkeypatch.setitem(sys.modules, "edt", None)  # import edt -> ImportError: the SciPy fallback
    mask = _mask()
    want = ndimage.distance_transform_edt(mask, sampling=SPACING)
    got_np = distance_transform_edt(mask, SPACING)
    got_t = distance_transform_edt(torch.from_numpy(mask), SPACING)
    assert got_np.dtype == np.float32 and got_t.dtype == torch.float32
    np.testing.assert_allclose(got_np, want, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(got_t.numpy(), want, rtol=1e-6, atol=1e-5)


def test_backend_name_cpu_and_cuda_without_cupy(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    threads = distance.cpu_threads()
    if distance._importable("edt"):
        assert backend_name("cpu").endswith(f"(CPU, {threads} threads)") and backend_name("cpu").startswith(
            "edt "
        )
        assert backend_name("cuda:1") == backend_name("cpu").replace("(CPU,", "(host copy,")
    monkeypatch.setitem(sys.modules, "edt", None)
    assert backend_name(torch.device("cpu")).startswith("scipy ") and backend_name("cpu").endswith("(CPU)")
    assert backend_name("cuda").startswith("scipy ") and backend_name("cuda").endswith("(host copy)")
    with pytest.raises(ValueError, match="mps"):
        backend_name("mps")


def test_backend_name_cuda_with_cupy(monkeypatch):
    class FakeCupy:
        __version__ = "99.1"

    monkeypatch.setitem(sys.modules, "cupy", FakeCupy())
    assert backend_name("cuda:0") == "cupy 99.1"
    assert not backend_name("cpu").startswith("cupy")


def test_host_copy_warning_is_shown_once_per_process(monkeypatch):
    monkeypatch.setattr(distance, "_host_copy_warned", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        distance._warn_host_copy()
        distance._warn_host_copy()
    assert len(caught) == 1 and issubclass(caught[0].category, HostCopyWarning)
    text = str(caught[0].message)
    assert "CuPy is not installed" in text and "cupy-cuda" in text and "once per process" in text
