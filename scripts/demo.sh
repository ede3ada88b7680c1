#!/usr/bin/env bash
# Set up (if needed) and run the main job: `pathosynth demo` on the built-in datasets.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/pathosynth demo "$@"
