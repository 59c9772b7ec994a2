"""The embedded synthetic data set is the same, file for file, on every machine.

``tests/synthetic_small_seed0.sha256.json`` holds the sha256 of every file of the default set
(the ``small`` preset, generator seed 0: 40 + 4 + 16 cases, 181 files) and one digest over all
of them. Generating the whole set takes about 40 s of one core, so the test regenerates the
three smallest cases (their 9 image files; a case depends only on its seed, split and index)
in this process and, with two BLAS/OpenMP threads, in a fresh one, and compares them with the
committed digests. A cached copy of the full set, where one exists (the study's own), is
compared whole, its manifest included.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hie_core import synthetic
from hie_core.synthetic import (
    GENERATOR_VERSION,
    dataset_digest,
    file_digests,
    sample_case_params,
    synthetic_cache_dir,
)

COMMITTED = json.loads((Path(__file__).parent / "synthetic_small_seed0.sha256.json").read_text())


def _smallest_cases(n: int = 3) -> list[tuple[str, int]]:
    """``(split, index)`` of the ``n`` cases of the default set with the fewest voxels."""
    sizes = [(int(np.prod(sample_case_params(0, split, i).shape)), split, i)
             for split, count in COMMITTED["counts"].items() for i in range(count)]  # fmt: skip
    return [(split, i) for _, split, i in sorted(sizes)[:n]]


def _write_cases(root: Path, cases: list[tuple[str, int]]) -> dict[str, str]:
    """Write ``cases`` of generator seed 0 under ``root``; return their file digests."""
    for split, index in cases:
        synthetic._write_case(sample_case_params(0, split, index), root)
    return file_digests(root)


def test_the_committed_digest_is_of_its_files() -> None:
    assert COMMITTED["generator_version"] == GENERATOR_VERSION, "a new generator version needs new digests"
    assert len(COMMITTED["files"]) == 3 * sum(COMMITTED["counts"].values()) + 1
    assert dataset_digest(COMMITTED["files"]) == COMMITTED["dataset_digest"]


def test_dataset_digest_covers_paths_and_contents(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.mha").write_bytes(b"1")
    first = dataset_digest(file_digests(tmp_path))
    (tmp_path / "a" / "x.mha").rename(tmp_path / "a" / "y.mha")
    renamed = dataset_digest(file_digests(tmp_path))
    (tmp_path / "a" / "y.mha").write_bytes(b"2")
    assert len({first, renamed, dataset_digest(file_digests(tmp_path))}) == 3


def test_regenerated_cases_match_the_committed_files(tmp_path: Path) -> None:
    got = _write_cases(tmp_path, _smallest_cases())
    assert len(got) == 9
    assert got == {path: COMMITTED["files"][path] for path in got}


def test_two_threads_write_the_same_files(tmp_path: Path) -> None:
    """Thread counts must not change the data: the same cases from a process with two threads."""
    env = {**os.environ, "OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    cases = json.dumps(_smallest_cases(2))
    code = ("import json, sys; from pathlib import Path; from tests.test_synthetic_digest import _write_cases; "
            f"print(json.dumps(_write_cases(Path(sys.argv[1]), json.loads({cases!r}))))")  # fmt: skip
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], env=env, cwd=root, capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    got = json.loads(out.strip().splitlines()[-1])
    assert got == {path: COMMITTED["files"][path] for path in got} and len(got) == 6


def test_a_cached_default_set_is_the_committed_one() -> None:
    cached = synthetic_cache_dir("small", 0)
    if not (cached / "SYNTHETIC.json").is_file():
        pytest.skip(f"no cached default set at {cached}")
    assert dataset_digest(file_digests(cached)) == COMMITTED["dataset_digest"]
