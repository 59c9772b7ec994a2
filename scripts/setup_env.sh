#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment and install what is missing.
# Sourced by scripts/main.sh and scripts/test.sh:  . scripts/setup_env.sh [extras]
# On a machine without CUDA it installs a CPU build of PyTorch first, so that the
# `torch` requirement never pulls a multi-GB CUDA build. With an NVIDIA GPU it installs
# PyTorch with CUDA, then the CuPy wheel of torch's CUDA major version (the `cuda12` or
# `cuda13` extra of pyproject.toml), which the Hausdorff losses and the metrics need to
# compute distance transforms on the GPU. HIE_CUPY=skip leaves CuPy to you.
set -euo pipefail
HIE_EXTRAS="${1:-book,dev}"
HIE_VENV="${HIE_VENV:-.venv}"
HIE_PYTHON="${HIE_PYTHON:-python3}"
HIE_TORCH_CPU_VERSION="${HIE_TORCH_CPU_VERSION:-2.13.0}"

if [ ! -x "$HIE_VENV/bin/python" ]; then
    echo "[setup] creating virtual environment $HIE_VENV"
    "$HIE_PYTHON" -m venv "$HIE_VENV"
fi
# shellcheck disable=SC1091
. "$HIE_VENV/bin/activate"
python - <<'PY' || { echo "[setup] Python 3.10 or newer is required" >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 10) else 1)
PY

HIE_HAS_CUDA=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then HIE_HAS_CUDA=1; fi

if ! python -c "import torch" >/dev/null 2>&1; then
    if [ "$HIE_HAS_CUDA" = 1 ]; then
        echo "[setup] NVIDIA GPU found: installing PyTorch with CUDA"
        python -m pip install -q "torch>=2.3"
    else
        tmp="$(mktemp -d)"
        if python -m pip download -q --no-deps --no-index -d "$tmp" "torch==$HIE_TORCH_CPU_VERSION" >/dev/null 2>&1; then
            echo "[setup] no GPU: installing the local CPU wheel torch==$HIE_TORCH_CPU_VERSION"
            python -m pip install -q "torch==$HIE_TORCH_CPU_VERSION"
        else
            echo "[setup] no GPU: installing CPU PyTorch from the PyTorch CPU index"
            python -m pip install -q torch --index-url https://download.pytorch.org/whl/cpu
        fi
        rm -rf "$tmp"
    fi
fi

# CuPy must match the CUDA that torch was built for: cupy-cuda12x for 12.x, cupy-cuda13x for 13.x.
if [ "$HIE_HAS_CUDA" = 1 ] && [ "${HIE_CUPY:-}" != skip ]; then
    torch_cuda="$(python -c 'import torch; print(torch.version.cuda or "")')"
    case "${torch_cuda%%.*}" in
        12 | 13) HIE_EXTRAS="$HIE_EXTRAS,cuda${torch_cuda%%.*}" ;;
        "") echo "[setup] warning: an NVIDIA GPU is visible but this PyTorch was built without CUDA;" \
            "training will run on the CPU. Install a CUDA build of torch into $HIE_VENV to use the GPU." >&2 ;;
        *)
            echo "[setup] error: PyTorch here is built for CUDA $torch_cuda, and CuPy is installed for CUDA 12" \
                "or 13 only (cupy-cuda12x, cupy-cuda13x). Install a PyTorch built for CUDA 12 or 13, or" \
                "install the CuPy wheel of CUDA $torch_cuda yourself and rerun with HIE_CUPY=skip." >&2
            exit 1
            ;;
    esac
fi

stamp="$HIE_VENV/.hie-installed-$HIE_EXTRAS"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "[setup] installing hie_core and its dependencies ([$HIE_EXTRAS])"
    python -m pip install -q -e ".[$HIE_EXTRAS]"
    python -m ipykernel install --sys-prefix --name python3 >/dev/null
    touch "$stamp"
fi
echo "[setup] $(python -c 'import torch, monai, torchio; print(f"torch {torch.__version__}, monai {monai.__version__}, torchio {torchio.__version__}, cuda {torch.cuda.is_available()}")')"
if [ "$HIE_HAS_CUDA" = 1 ]; then
    echo "[setup] distance transforms of CUDA tensors: $(python -c 'from hie_core.distance import backend_name; print(backend_name("cuda"))')"
fi
