#!/usr/bin/env bash
# The main job: set up the environment if needed, run the six-loss study on the embedded
# synthetic dataset (quick preset on CPU, seed protocol on a GPU), then build the book.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup_env.sh book,dev
exec python -m hie_core.study "$@"
