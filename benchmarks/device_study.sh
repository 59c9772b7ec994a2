#!/usr/bin/env bash
# The GPU study of issue 20 in ONE device call, at most about HIE_STUDY_BUDGET_S seconds (default 555)
# on one H200, unpacking included. Stages, each in its own time box (a stage gets its box or what is
# left of the budget, whichever is less; one that fails or times out is recorded and the next runs):
#   unpack   the site folder carried as .device_site/site-cp312.tar.xz (benchmarks/pack_device_site.sh),
#            a python3 kernelspec for papermill, then an environment probe (env.json)
#   tests    pytest -v -m cuda tests/test_cuda.py
#   study    python -m hie_core.study as a user runs it: seed preset, all six losses, one seed,
#            --set epochs=N, every run through notebooks/train.ipynb with papermill, --no-book
#   bench    benchmarks/bench_pipeline.py --pipelines ours --losses all (throughput against the targets)
#   seedrun  one seed-protocol run to early stopping (Dice, default epochs and patience) through the
#            study runner: its measured seconds are what the study's --plan needs
#   profile  benchmarks/device_study.py profile: torch.profiler of a Dice and a Tversky+HDT step
#   report   benchmarks/results/<device>.json (device_check.py's schema + papermill_study, seed_run,
#            profile) and a copy in $OUT, with runs.tar.xz (run folders without checkpoints or
#            predictions, split in 16 MiB parts if larger) and logs.tar.xz
# Usage:
#   bash benchmarks/device_study.sh [--dry-run] [--device cpu] [--stages unpack,tests,study,...]
# --device cpu is the CPU rehearsal: tiny settings (HIE_STUDY_* variables below override any), and
# results outside the repository unless HIE_STUDY_RESULTS_DIR says otherwise.
set -uo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-python3}"
DEVICE=cuda
ALL_STAGES="unpack tests study bench seedrun profile"
STAGES="${ALL_STAGES// /,}"
DRY=0
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY=1 ;;
        --device) DEVICE="$2"; shift ;;
        --stages) STAGES="$2"; shift ;;
        -h | --help) sed -n '2,21p' "$0"; exit 0 ;;
        *) echo "device_study.sh: error: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
case "$DEVICE" in cuda | cpu) ;; *) echo "device_study.sh: error: --device is cuda or cpu" >&2; exit 2 ;; esac

WORK="${HIE_STUDY_WORK:-${TMPDIR:-/tmp}/hie-device-study}"
OUT_DIR="${OUT:-}"
ARCHIVE="${HIE_SITE_ARCHIVE:-.device_site/site-cp312.tar.xz}"
LIMIT_MIB=64
if [ "$DEVICE" = cuda ]; then
    BUDGET="${HIE_STUDY_BUDGET_S:-555}"
    RESULTS="${HIE_STUDY_RESULTS_DIR:-benchmarks/results}"
    STUDY_ARGS="${HIE_STUDY_ARGS:---preset seed --device cuda --seeds 1 --jobs 3 --set epochs=3}"
    SEED_ARGS="${HIE_SEEDRUN_ARGS:---preset seed --device cuda --seeds 1 --losses dice}"
    BENCH_ARGS="${HIE_STUDY_BENCH_ARGS:---steps 5 --warmup 2 --infer-repeats 3}"
    PROFILE_ARGS="${HIE_PROFILE_ARGS:---steps 5 --warmup 3}"
    declare -A BOX=([unpack]=45 [tests]=80 [study]=220 [bench]=90 [seedrun]=150 [profile]=60)
else  # the CPU rehearsal: the same commands on tiny settings
    BUDGET="${HIE_STUDY_BUDGET_S:-1500}"
    RESULTS="${HIE_STUDY_RESULTS_DIR:-$WORK/results}"
    TINY="--set steps_per_epoch=2"
    STUDY_ARGS="${HIE_STUDY_ARGS:---preset quick --device cpu --seeds 1 --jobs 2 --set epochs=1 --synthetic-test-cases 2 $TINY}"
    SEED_ARGS="${HIE_SEEDRUN_ARGS:---preset quick --device cpu --seeds 1 --losses dice --set epochs=3 --set patience=1 --synthetic-test-cases 2 $TINY}"
    BENCH_ARGS="${HIE_STUDY_BENCH_ARGS:---device cpu --shape 8 32 32 --widths 4 8 16 32 --batch 2 --steps 2 --warmup 1 --cases 4 --metric-shape 8 32 32 --infer-repeats 1 --threads 1}"
    PROFILE_ARGS="${HIE_PROFILE_ARGS:---device cpu --shape 8 32 32 --widths 4 8 16 32 --batch 2 --steps 2 --warmup 1}"
    declare -A BOX=([unpack]=120 [tests]=120 [study]=700 [bench]=200 [seedrun]=300 [profile]=120)
fi
SITE="$WORK/site"
JUP="$WORK/jupyter"
declare -A CMD=(
    [unpack]="tar -C $WORK -xJf $ARCHIVE && $PY -m ipykernel install --prefix $JUP --name python3 && $PY -c 'import papermill, nbclient, ipykernel, monai, SimpleITK, torchio, nibabel, edt, submitit, yaml, plotly; print(\"site ok:\", papermill.__file__)' && $PY benchmarks/device_check.py env --json $WORK/env.json"
    [tests]="$PY -m pytest -v -p no:cacheprovider -m cuda tests/test_cuda.py"
    [study]="$PY -m hie_core.study $STUDY_ARGS --no-book --runs-dir $WORK/runs --study study; rc=\$?; $PY benchmarks/device_study.py runs --runs-dir $WORK/runs --json $WORK/study_runs.json; exit \$rc"
    [bench]="$PY benchmarks/bench_pipeline.py --pipelines ours --losses all $BENCH_ARGS --json $WORK/bench.json"
    [seedrun]="$PY -m hie_core.study $SEED_ARGS --no-book --runs-dir $WORK/seedrun --study seedrun; rc=\$?; $PY benchmarks/device_study.py runs --runs-dir $WORK/seedrun --json $WORK/seed_run.json; exit \$rc"
    [profile]="$PY benchmarks/device_study.py profile $PROFILE_ARGS --json $WORK/profile.json"
)
REPORT_CMD="$PY benchmarks/device_study.py finish --work $WORK --out-dir $RESULTS${OUT_DIR:+ --copy-to $OUT_DIR}"

if [ "$DRY" = 1 ]; then
    tree=$(git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
        [ -f "$f" ] && stat -c %s "$f"; done | awk '{ s += $1 } END { print s + 0 }')
    packed=$(stat -c %s "$ARCHIVE" 2>/dev/null || echo 0)
    carried=$(find "$(dirname "$ARCHIVE")" -type f -printf '%s\n' 2>/dev/null | awk '{ s += $1 } END { print s + 0 }')
    total=$((tree + carried))
    echo "device study plan ($DEVICE; nothing is run); carry [\"$(dirname "$ARCHIVE")\"]"
    printf '  working tree %d bytes + %s/ %d bytes (%s: %d) = %s MiB of %d MiB\n' "$tree" \
        "$(dirname "$ARCHIVE")" "$carried" "$(basename "$ARCHIVE")" "$packed" \
        "$(awk -v b="$total" 'BEGIN { printf "%.1f", b / 1048576 }')" "$LIMIT_MIB"
    echo "time boxes (s), whole run at most $BUDGET s:"
    for s in $ALL_STAGES; do [[ ",$STAGES," == *",$s,"* ]] && echo "  $s (${BOX[$s]}): ${CMD[$s]}"; done
    echo "  report: $REPORT_CMD"
    echo "device tool call: run(command=\"HIE_GIT_COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
        "bash benchmarks/device_study.sh\", carry=[\"$(dirname "$ARCHIVE")\"], timeout_s=595)"
    if [ "$packed" = 0 ]; then echo "NOT READY: $ARCHIVE missing (bash benchmarks/pack_device_site.sh)"
    elif [ "$total" -gt $((LIMIT_MIB * 1048576)) ]; then echo "NOT READY: over $LIMIT_MIB MiB"
    else echo "READY"; fi
    exit 0
fi

START=$(date +%s)
rm -rf "$WORK"
mkdir -p "$WORK" "$RESULTS"
: >"$WORK/stages.jsonl"
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TQDM_DISABLE=1
export HIE_CACHE_DIR="$WORK/cache" JUPYTER_PATH="$JUP/share/jupyter" JUPYTER_DATA_DIR="$JUP/data"
export JUPYTER_RUNTIME_DIR="$JUP/runtime" JUPYTER_CONFIG_DIR="$JUP/config" JUPYTER_PLATFORM_DIRS=1
export IPYTHONDIR="$WORK/ipython" MPLCONFIGDIR="$WORK/mpl" TORCHINDUCTOR_CACHE_DIR="$WORK/inductor"
[ "$DEVICE" = cpu ] && export CUDA_VISIBLE_DEVICES=""  # the rehearsal must not find a GPU

. benchmarks/_stages.sh  # run_stage
RESERVE_S=40  # kept: a killed stage's 10 s, the report and packing

for s in $ALL_STAGES; do
    [[ ",$STAGES," == *",$s,"* ]] && run_stage "$s"
done
# A stage cut by its time box leaves no summary: summarise what its runs folder holds now.
for pair in study:study_runs seedrun:seed_run; do
    dir="$WORK/${pair%%:*}"; [ "${pair%%:*}" = study ] && dir="$WORK/runs"
    [ -d "$dir" ] && [ ! -f "$WORK/${pair##*:}.json" ] &&
        timeout 20 $PY benchmarks/device_study.py runs --runs-dir "$dir" --json "$WORK/${pair##*:}.json" >/dev/null 2>&1
done
timeout 20 bash -c "$REPORT_CMD" 2>&1 | tee "$WORK/report.log"
rc=${PIPESTATUS[0]}
if [ -n "$OUT_DIR" ]; then
    # The run folders without checkpoints or predictions (at most 8 files of 16 MiB come back).
    tar -C "$WORK" --exclude='*.pt' --exclude='predictions' --exclude='.lock' -cf - \
        $(cd "$WORK" && ls -d runs seedrun 2>/dev/null) | xz -6 -T0 >"$OUT_DIR/runs.tar.xz"
    if [ "$(stat -c %s "$OUT_DIR/runs.tar.xz")" -gt $((16 * 1048576)) ]; then
        split -b 16M -d -a 1 "$OUT_DIR/runs.tar.xz" "$OUT_DIR/runs.tar.xz.part" && rm -f "$OUT_DIR/runs.tar.xz"
        ls "$OUT_DIR"/runs.tar.xz.part* | tail -n +7 | xargs -r rm -f  # 6 parts at most (8 files in all)
    fi
    (cd "$WORK" && tar -cJf "$OUT_DIR/logs.tar.xz" ./*.log ./*.json ./stages.jsonl 2>/dev/null)
    ls -l "$OUT_DIR"
fi
echo "device study: $(($(date +%s) - START)) s in all"
exit "$rc"
