"""scripts/setup_env.sh picks the CuPy extra of torch's CUDA major version (with a stand-in python and GPU)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FAKE_PYTHON = """#!/bin/sh
echo "$*" >> "$FAKE_LOG"
case "$*" in
    *torch.version.cuda*) echo "$FAKE_TORCH_CUDA" ;;
esac
exit 0
"""


def _setup(tmp_path: Path, torch_cuda: str, gpu: bool, **env: str) -> tuple[subprocess.CompletedProcess, str]:
    """Source setup_env.sh with a stand-in venv python (logs its calls) and, if ``gpu``, an nvidia-smi."""
    venv, bin_dir, log = tmp_path / "venv", tmp_path / "bin", tmp_path / "calls.log"
    (venv / "bin").mkdir(parents=True)
    bin_dir.mkdir()
    (venv / "bin" / "activate").write_text(f'PATH="{venv / "bin"}:$PATH"\n')
    python = venv / "bin" / "python"
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    if gpu:
        smi = bin_dir / "nvidia-smi"
        smi.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H200'\n")
        smi.chmod(0o755)
    path = f"{bin_dir}:/usr/bin:/bin" if gpu else "/usr/bin:/bin"  # no real venv, no real GPU tool
    full_env = {"PATH": path, "HOME": str(tmp_path), "HIE_VENV": str(venv), "FAKE_LOG": str(log),
                "FAKE_TORCH_CUDA": torch_cuda, **env}  # fmt: skip
    proc = subprocess.run(["bash", "-c", ". scripts/setup_env.sh book,dev"], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    return proc, log.read_text() if log.exists() else ""


@pytest.mark.parametrize(("torch_cuda", "extra"), [("13.0", "cuda13"), ("12.8", "cuda12")])
def test_gpu_installs_the_cupy_extra_of_torchs_cuda(tmp_path, torch_cuda, extra):
    proc, calls = _setup(tmp_path, torch_cuda, gpu=True)
    assert proc.returncode == 0, proc.stderr
    assert f"-m pip install -q -e .[book,dev,{extra}]" in calls
    assert "backend_name" in calls  # the set-up reports the CUDA distance-transform back end


def test_gpu_with_unsupported_cuda_fails_clearly(tmp_path):
    proc, calls = _setup(tmp_path, "11.8", gpu=True)
    assert proc.returncode == 1
    assert "built for CUDA 11.8" in proc.stderr and "HIE_CUPY=skip" in proc.stderr
    assert "pip install" not in calls
    proc, calls = _setup(tmp_path / "skip", "11.8", gpu=True, HIE_CUPY="skip")
    assert proc.returncode == 0 and "-m pip install -q -e .[book,dev]" in calls


def test_gpu_with_cpu_torch_warns_and_cpu_machine_never_asks_for_cupy(tmp_path):
    proc, calls = _setup(tmp_path, "", gpu=True)
    assert proc.returncode == 0 and "built without CUDA" in proc.stderr
    assert "-m pip install -q -e .[book,dev]" in calls
    proc, calls = _setup(tmp_path / "cpu", "13.0", gpu=False)
    assert proc.returncode == 0, proc.stderr
    assert "-m pip install -q -e .[book,dev]" in calls and "torch.version.cuda" not in calls
    assert "backend_name" not in calls
