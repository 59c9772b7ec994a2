#!/usr/bin/env bash
# Pack, here, the Python packages the GPU machine lacks as ONE tar.xz that a device call carries
# (benchmarks/device_study.sh unpacks it there and puts it on PYTHONPATH).
#
# Why a site folder and not wheels: a call carries at most 64 MiB, working tree included, and
# SimpleITK's wheel alone is 53 MB. Installed here with `pip install --target` for the device's
# Python (cp312, manylinux x86_64, binary wheels only), stripped and packed with xz -6, the study's
# whole stack fits: SimpleITK, MONAI, nibabel, edt, TorchIO (+ deprecated) without their
# dependencies (the device has torch, numpy, scipy, ...), and papermill + nbclient + nbformat +
# jupyter_client + ipykernel + IPython + pyzmq + tornado + traitlets + submitit + PyYAML + plotly
# (the training notebook's charts) WITH theirs. Then removed: what the device already has
# (benchmarks/device_has.txt: torch, numpy and the needs of its pandas, matplotlib, rich, typer,
# pytest, scikit-image), debugpy (ipykernel runs without it: no debugger), tests/ folders,
# __pycache__, bin/. Versions: those of this checkout's venv, so the device runs what the CPU
# tests ran. Measured 2026-12-04: 41.7 MiB packed, 43.1 MiB with the working tree.
#
# Usage: bash benchmarks/pack_device_site.sh [--dry-run] [--python-version 3.12] [--dest .device_site]
#   --dry-run         print the plan, and the sizes of what is already packed; fetch nothing
#   --python-version  the target Python: 3.12 for the device; 3.11 for a CPU rehearsal here (with a
#                     --dest outside .device_site: a device call carries that whole folder)
#   --dest            git-ignored folder that gets site-cp<XY>.tar.xz (default .device_site)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
[ -z "$PY" ] && { [ -x .venv/bin/python ] && PY=.venv/bin/python || PY=python3; }
PYVER=3.12
DEST=.device_site
DRY=0
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY=1 ;;
        --python-version) PYVER="$2"; shift ;;
        --dest) DEST="$2"; shift ;;
        -h | --help) sed -n '2,21p' "$0"; exit 0 ;;
        *) echo "pack_device_site.sh: error: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
TAG="cp${PYVER/./}"
ARCHIVE="$DEST/site-$TAG.tar.xz"
LIMIT_MIB=64

# Installed without dependencies: what they need beyond these the device has.
NO_DEPS=(SimpleITK==2.5.7 monai==1.6.1 nibabel==5.4.2 edt==3.1.2 torchio==1.2.1 deprecated==1.3.1)
# Installed with dependencies (the Jupyter stack papermill runs a notebook with, the study's, plotly
# for the training notebook's charts).
WITH_DEPS=(papermill==2.7.0 nbclient==0.11.0 nbformat==5.11.1 jupyter_client==8.10.0 ipykernel==7.4.0
    ipython==9.18.1 pyzmq==27.3.0 tornado==6.6.1 traitlets==5.16.1 submitit==1.5.4 PyYAML==6.0.4 plotly==7.1.0)
# Distributions the device already has (benchmarks/device_has.txt), and debugpy (not needed).
DEVICE_HAS="$(grep -v '^#' benchmarks/device_has.txt | tr '\n' ' ') debugpy"
PLATFORMS=(manylinux2014_x86_64 manylinux_2_17_x86_64 manylinux_2_27_x86_64 manylinux_2_28_x86_64)
PIP_ARGS=(--quiet --disable-pip-version-check --no-compile --only-binary=:all: --python-version "$PYVER"
    --implementation cp)
for p in "${PLATFORMS[@]}"; do PIP_ARGS+=(--platform "$p"); done

tree_bytes() { # the working tree a device call carries: tracked + untracked files not ignored
    git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
        [ -f "$f" ] && stat -c %s "$f"; done | awk '{ s += $1 } END { print s + 0 }'
}
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }

report_sizes() {
    local tree packed total
    tree=$(tree_bytes)
    packed=$(stat -c %s "$ARCHIVE" 2>/dev/null || echo 0)
    total=$((tree + packed))
    printf '  %-40s %10d bytes = %5s MiB\n' "working tree" "$tree" "$(mib "$tree")"
    printf '  %-40s %10d bytes = %5s MiB\n' "$ARCHIVE" "$packed" "$(mib "$packed")"
    others=$(find "$DEST" -type f ! -path "$ARCHIVE" -printf '%s\n' 2>/dev/null | awk '{ s += $1 } END { print s + 0 }')
    if [ "$others" -gt 0 ]; then  # a call carries the whole folder
        printf '  %-40s %10d bytes = %5s MiB (other files: the call carries them too)\n' "$DEST/*" "$others" "$(mib "$others")"
        packed=$((packed + others))
    fi
    printf '  %-40s %10d bytes = %5s MiB of the %d MiB a call may carry\n' "total" "$total" "$(mib "$total")" "$LIMIT_MIB"
    if [ "$total" -gt $((LIMIT_MIB * 1048576)) ]; then echo "  OVER the limit"; return 1; fi
}

if [ "$DRY" = 1 ]; then
    echo "device site plan for Python $PYVER ($TAG), nothing fetched:"
    echo "  pip install --target SITE --no-deps ${NO_DEPS[*]}"
    echo "  pip install --target SITE ${WITH_DEPS[*]}"
    echo "  removed: $(echo "$DEVICE_HAS" | tr '\n' ' ')tests/ test/ __pycache__/ bin/"
    echo "  packed: $ARCHIVE (xz -6); carry [\"$DEST\"]"
    if [ -f "$ARCHIVE" ]; then
        echo "sizes (already packed):"
        report_sizes || true
        tar -tJf "$ARCHIVE" | awk -F/ 'NF > 2 && $2 != "" { print $2 }' | sort -u | tr '\n' ' '
        echo
    else
        echo "sizes: nothing packed yet (run without --dry-run)"
    fi
    exit 0
fi

BUILD=$(mktemp -d "${TMPDIR:-/tmp}/hie-site.XXXXXX")
trap 'rm -rf "$BUILD"' EXIT
SITE="$BUILD/site"
echo "== pip install --target (Python $PYVER, manylinux x86_64 binaries only)"
"$PY" -m pip install "${PIP_ARGS[@]}" --target "$BUILD/nodeps" --no-deps "${NO_DEPS[@]}"
"$PY" -m pip install "${PIP_ARGS[@]}" --target "$BUILD/deps" "${WITH_DEPS[@]}"
mkdir -p "$SITE"
cp -a "$BUILD/deps/." "$SITE/"
cp -a "$BUILD/nodeps/." "$SITE/"
before=$(du -sb "$SITE" | cut -f1)

echo "== strip"
"$PY" - "$SITE" "$DEVICE_HAS" <<'EOF'
import csv, re, shutil, sys
from pathlib import Path

site, has = Path(sys.argv[1]), set(sys.argv[2].split())
norm = lambda name: re.sub(r"[-_.]+", "-", name).lower()
for info in sorted(site.glob("*.dist-info")):
    name = norm(info.name[: -len(".dist-info")].rsplit("-", 1)[0])
    if name not in has:
        continue
    record = info / "RECORD"
    paths = [row[0] for row in csv.reader(record.open())] if record.exists() else []
    for rel in paths:
        target = (site / rel).resolve()
        if target.is_file() and site.resolve() in target.parents:
            target.unlink()
    shutil.rmtree(info, ignore_errors=True)
    print(f"  removed {name}")
for d in sorted(site.rglob("*"), key=lambda p: len(p.parts), reverse=True):  # now-empty folders
    if d.is_dir() and not any(d.iterdir()):
        d.rmdir()
EOF
find "$SITE" -depth -type d \( -name __pycache__ -o -name tests -o -name test \) -exec rm -rf {} +
rm -rf "$SITE/bin"
after=$(du -sb "$SITE" | cut -f1)
echo "  site folder: $(mib "$before") MiB installed, $(mib "$after") MiB stripped; largest:"
du -sb "$SITE"/* | sort -rn | head -8 | while read -r s f; do printf '    %8s MiB  %s\n' "$(mib "$s")" "$(basename "$f")"; done

echo "== pack (xz -6)"
mkdir -p "$DEST"
tmp="$ARCHIVE.tmp"
tar -C "$BUILD" -cf - site | xz -6 -T0 >"$tmp"
mv -f "$tmp" "$ARCHIVE"
echo "sizes:"
report_sizes
echo "carry [\"$DEST\"]; next: bash benchmarks/device_study.sh --dry-run"
