# Shared by device_check.sh and device_study.sh (sourced, not run): one stage of a device call
# in its own time box. Needs START, BUDGET, WORK, the arrays BOX and CMD, and RESERVE_S (seconds
# kept back from the budget for a killed stage's 10 s, the report and any packing). A command's
# text DEADLINE is replaced by the stage's limit less 20 s (a stage that stops itself in time).
run_stage() { # name: run CMD[name] in its time box, log to $WORK/<name>.log and stdout, record the outcome
    local name="$1" left limit t0 rc secs timed=false
    left=$((START + BUDGET - RESERVE_S - $(date +%s)))
    limit=$((BOX[$name] < left ? BOX[$name] : left))
    if [ "$limit" -lt 15 ]; then
        echo "{\"name\": \"$name\", \"rc\": null, \"seconds\": 0, \"limit_s\": $limit, \"timed_out\": false, \"skipped\": true}" >>"$WORK/stages.jsonl"
        echo "== $name: skipped, $left s left" && return
    fi
    echo "== $name (time box $limit s)"
    t0=$(date +%s.%N)
    timeout --kill-after=10 "$limit" bash -c "${CMD[$name]//DEADLINE/$((limit - 20))}" 2>&1 | tee "$WORK/$name.log"
    rc=${PIPESTATUS[0]}
    secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    { [ "$rc" = 124 ] || [ "$rc" = 137 ]; } && timed=true
    echo "{\"name\": \"$name\", \"rc\": $rc, \"seconds\": $secs, \"limit_s\": $limit, \"timed_out\": $timed}" >>"$WORK/stages.jsonl"
    echo "== $name: rc $rc in $secs s"
}
