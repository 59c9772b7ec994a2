#!/usr/bin/env bash
# The main job: set up the environment if needed, run the six-loss study on the embedded
# synthetic dataset (quick preset on CPU, seed protocol on a GPU), then build the book.
# Prints the wall time of the whole job, set-up included, at the end.
set -uo pipefail
cd "$(dirname "$0")/.."
SECONDS=0
. scripts/setup_env.sh book,dev || exit $?
set +e  # setup_env.sh turns on errexit; the study's status is reported below instead
setup_s=$SECONDS
python -m hie_core.study "$@"
status=$?
echo "[main] wall time $((SECONDS / 60)) min $((SECONDS % 60)) s (set-up ${setup_s} s, study $((SECONDS - setup_s)) s); exit status $status"
exit $status
