#!/usr/bin/env bash
# The test command: set up the environment if needed, then run every test and notebook on CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup_env.sh book,dev
exec python -m pytest --nbval-lax --nbval-current-env -q "$@"
