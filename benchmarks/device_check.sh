#!/usr/bin/env bash
# The GPU check of issue 12 in one call, at most about HIE_CHECK_BUDGET_S seconds (default 460,
# under 8 minutes) on one H100/H200, installation included. Stages, each in its own time box:
#   install  the wheels carried in .whl/ (benchmarks/fetch_device_wheels.sh), then an env probe
#   tests    pytest -m cuda tests/test_cuda.py (CuPy, losses vs MONAI, metrics, augmentation, training)
#   bench    benchmarks/bench_pipeline.py --pipelines ours --losses all (hie_core.training.step)
#   study    benchmarks/device_check.py study: the six losses, seed protocol, a few epochs each
#   native   the same for the native preset (2.5 x 1 x 1 mm patches, sliding window), Tversky+HDT, 2 epochs
#   baseline benchmarks/bench_pipeline.py --pipelines baseline (MONAI + TorchIO as shipped) for Dice and
#            Tversky+HDT, the rates its study projection uses; last, since it is the most expendable
#   report   one JSON, benchmarks/results/<device>.json (and a copy in $OUT), targets evaluated
# A stage that fails or times out is recorded and the next one still runs; the report is
# always written. Usage:
#   bash benchmarks/device_check.sh [--dry-run] [--stages install,tests,bench,study,native,baseline]
# --dry-run prints what a device call carries (paths, sizes, total against 64 MiB) and the
# commands, and runs nothing. benchmarks/README.md gives the device tool call.
set -uo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-python3}"
WHEELS="${HIE_WHEEL_DIR:-.whl}"
BUDGET="${HIE_CHECK_BUDGET_S:-460}"
WORK="${HIE_CHECK_WORK:-${TMPDIR:-/tmp}/hie-device-check}"
OUT_DIR="${OUT:-}"
LIMIT_MIB=64
ALL_STAGES="install tests bench study native baseline"
STAGES="${ALL_STAGES// /,}"
DRY=0
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY=1 ;;
        --stages) STAGES="$2"; shift ;;
        --stages=*) STAGES="${1#*=}" ;;
        -h | --help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "device_check.sh: error: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

# Default time boxes in seconds (the whole run is also held to $BUDGET, the report included).
declare -A BOX=([install]=40 [tests]=110 [bench]=150 [study]=150 [native]=90 [baseline]=130)
SITE="$WORK/site"
RESULTS="${HIE_CHECK_RESULTS_DIR:-benchmarks/results}"
# Overridable for a CPU rehearsal (tests/test_device_check.py); the defaults are the device's.
BENCH_ARGS="${HIE_CHECK_BENCH_ARGS:---steps 5 --warmup 2 --infer-repeats 3}"
STUDY_ARGS="${HIE_CHECK_STUDY_ARGS:---epochs 3} --out $WORK/study --json $WORK/study.json"
declare -A CMD=(
    [install]="$PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target $SITE $WHEELS/*.whl && $PY benchmarks/device_check.py env --json $WORK/env.json"
    [tests]="$PY -m pytest -v -m cuda tests/test_cuda.py"
    [bench]="$PY benchmarks/bench_pipeline.py --pipelines ours --losses all $BENCH_ARGS --json $WORK/bench.json"
    [study]="$PY benchmarks/device_check.py study $STUDY_ARGS --deadline-s DEADLINE"
    [native]="$PY benchmarks/device_check.py study --preset native --losses tversky_hdt ${HIE_CHECK_NATIVE_ARGS:---epochs 2} --out $WORK/study --json $WORK/native.json --deadline-s DEADLINE"
    [baseline]="$PY benchmarks/bench_pipeline.py --pipelines baseline --losses dice tversky_hdt $BENCH_ARGS --json $WORK/baseline.json"
)
REPORT_CMD="$PY benchmarks/device_check.py report --work $WORK --out-dir $RESULTS${OUT_DIR:+ --copy-to $OUT_DIR}"

size_of() { # apparent bytes of files (what a transfer sends)
    local total=0 f s
    while IFS= read -r -d '' f; do
        s=$(stat -c %s "$f" 2>/dev/null || echo 0)
        total=$((total + s))
    done
    echo "$total"
}

dry_run() {
    local tree wheels total mib ready=1
    tree=$(git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
        [ -f "$f" ] && printf '%s\0' "$f"; done | size_of)
    echo "device check plan (nothing is run)"
    echo "  working tree that travels (tracked + untracked not ignored): $tree bytes; largest files:"
    git ls-files -z --cached --others --exclude-standard | xargs -0 stat -c '%s %n' 2>/dev/null | sort -rn |
        head -5 | while read -r s f; do printf '    %10d  %s\n' "$s" "$f"; done
    if [ -d "$WHEELS" ] && ls "$WHEELS"/*.whl >/dev/null 2>&1; then
        echo "  carry $WHEELS:"
        for f in "$WHEELS"/*.whl; do printf '    %10d  %s\n' "$(stat -c %s "$f")" "$(basename "$f")"; done
        wheels=$(find "$WHEELS" -type f -print0 | size_of)
    else
        echo "  carry $WHEELS: MISSING - run bash benchmarks/fetch_device_wheels.sh first"
        wheels=0
        ready=0
    fi
    total=$((tree + wheels))
    mib=$(awk -v b="$total" 'BEGIN { printf "%.1f", b / 1048576 }')
    echo "  total: $total bytes = $mib MiB of the $LIMIT_MIB MiB a call may carry"
    if [ "$total" -gt $((LIMIT_MIB * 1048576)) ]; then
        echo "  OVER the limit: carry fewer wheels or make the tree smaller"
        ready=0
    fi
    echo "time boxes (s), whole run at most $BUDGET s:"
    for s in $ALL_STAGES; do
        [[ ",$STAGES," == *",$s,"* ]] && echo "  $s (${BOX[$s]}): ${CMD[$s]}"
    done
    echo "  report: $REPORT_CMD"
    echo "device tool call: run(command=\"HIE_GIT_COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
        "bash benchmarks/device_check.sh\", carry=[\"$WHEELS\"], timeout_s=540)"
    if [ "$ready" = 1 ]; then echo "READY"; else echo "NOT READY (see above)"; fi
    exit 0
}

[ "$DRY" = 1 ] && dry_run

START=$(date +%s)
rm -rf "$WORK"
mkdir -p "$WORK"
: >"$WORK/stages.jsonl"
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TQDM_DISABLE=1
export HIE_CACHE_DIR="$WORK/cache"

. benchmarks/_stages.sh  # run_stage
RESERVE_S=25  # kept: a killed stage's 10 s and the report's 15 s

for s in $ALL_STAGES; do
    [[ ",$STAGES," == *",$s,"* ]] && run_stage "$s"
done
mkdir -p "$RESULTS"
timeout 15 bash -c "$REPORT_CMD" 2>&1 | tee "$WORK/report.log"
rc=${PIPESTATUS[0]}
if [ -n "$OUT_DIR" ]; then
    for f in $ALL_STAGES report; do [ -f "$WORK/$f.log" ] && cp "$WORK/$f.log" "$OUT_DIR/"; done
fi
echo "device check: $(($(date +%s) - START)) s in all"
exit "$rc"
