#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment and install what is missing.
# Sourced by scripts/main.sh and scripts/test.sh:  . scripts/setup_env.sh [extras]
# On a machine without CUDA it installs a CPU build of PyTorch first, so that the
# `torch` requirement never pulls a multi-GB CUDA build.
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

has_cuda() { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; }

if ! python -c "import torch" >/dev/null 2>&1; then
    if has_cuda; then
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

stamp="$HIE_VENV/.hie-installed-$HIE_EXTRAS"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "[setup] installing hie_core and its dependencies ([$HIE_EXTRAS])"
    python -m pip install -q -e ".[$HIE_EXTRAS]"
    python -m ipykernel install --sys-prefix --name python3 >/dev/null
    touch "$stamp"
fi
echo "[setup] $(python -c 'import torch, monai, torchio; print(f"torch {torch.__version__}, monai {monai.__version__}, torchio {torchio.__version__}, cuda {torch.cuda.is_available()}")')"
