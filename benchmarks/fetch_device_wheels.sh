#!/usr/bin/env bash
# Fetch, here, the Python 3.12 manylinux x86_64 wheels that the GPU machine lacks, into the
# git-ignored .whl/ that a device call carries (benchmarks/device_check.sh installs them there).
#
# The GPU machine (python 3.12) already has torch 2.11 with CUDA 13, cupy-cuda13x, triton,
# numpy, scipy, pandas, statsmodels, matplotlib, pytest, tqdm, scikit-image, and the other
# needs of TorchIO (einops, humanize, jaxtyping, packaging, rich, typer) and nibabel
# (packaging, typing-extensions), and deprecated's wrapt. A call carries at most 64 MiB,
# working tree included (about 1 MiB). The plan, sizes as measured 2026-11:
#
#   wheel              MB    why the check needs it
#   SimpleITK 2.5.7  52.8    TorchIO imports it (the MONAI + TorchIO baseline of bench_pipeline.py);
#                            the study reads and resamples MHA volumes with it (hie_core.io, preprocess)
#   monai 1.6.1       1.7    the Dice, DiceFocal and Tversky losses; MONAI's HausdorffDTLoss (baseline, tests)
#   nibabel 5.4.2     3.3    imported by TorchIO
#   edt 3.1.2         3.0    CPU distance transforms of the study's native-grid metrics (else SciPy, 6x slower)
#   torchio 1.2.1     0.2    the baseline's augmentation
#   deprecated 1.3.1  0.0    imported by TorchIO
#   total            61.0 MB = 58.2 MiB, plus the tree: under 64 MiB
#
# Left behind, since the check does not use them: papermill, nbclient, nbformat, jupyter_client,
# ipykernel (the study calls run_experiment, not the notebooks), plotly (the book), submitit.
# The study through papermill (benchmarks/device_study.sh) carries them instead as one packed site
# folder: benchmarks/pack_device_site.sh.
# The training step, losses, metrics, batched augmentation and model import none of SimpleITK,
# nibabel or TorchIO (tests/test_device_check.py checks it), so `pytest -m cuda` and the "ours"
# pipeline would run without them; SimpleITK is carried for the baseline and the study only.
#
# Usage: bash benchmarks/fetch_device_wheels.sh   (HIE_WHEEL_DIR overrides .whl)
set -euo pipefail
cd "$(dirname "$0")/.."
DEST="${HIE_WHEEL_DIR:-.whl}"
LIMIT_MIB=64
WHEELS=(SimpleITK==2.5.7 monai==1.6.1 nibabel==5.4.2 edt==3.1.2 torchio==1.2.1 deprecated==1.3.1)
PLATFORMS=(manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64)

mkdir -p "$DEST"
args=(--no-deps --only-binary=:all: --python-version 3.12 --implementation cp -d "$DEST")
for p in "${PLATFORMS[@]}"; do args+=(--platform "$p"); done
python3 -m pip download -q "${args[@]}" "${WHEELS[@]}"

# One version of each package: any other wheel left in $DEST would stop the install there.
keep=()
for spec in "${WHEELS[@]}"; do keep+=("$(echo "${spec%%==*}-${spec##*==}-" | tr '[:upper:]' '[:lower:]')"); done
for f in "$DEST"/*.whl; do
    name=$(basename "$f" | tr '[:upper:]' '[:lower:]')
    wanted=0
    for k in "${keep[@]}"; do [[ "$name" == "$k"* ]] && wanted=1; done
    if [ "$wanted" = 0 ]; then echo "removing $f (not in the list)"; rm -f "$f"; fi
done

total=0
for f in "$DEST"/*.whl; do
    s=$(stat -c %s "$f")
    total=$((total + s))
    printf '%10d  %s\n' "$s" "$(basename "$f")"
done
printf '%10d  total in %s (%s MiB of the %d MiB a device call may carry, tree included)\n' "$total" "$DEST" \
    "$(awk -v b="$total" 'BEGIN { printf "%.1f", b / 1048576 }')" "$LIMIT_MIB"
echo "next: bash benchmarks/device_check.sh --dry-run"
