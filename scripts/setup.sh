#!/usr/bin/env bash
# Create .venv if missing and install pathosynth with every dependency pinned. Idempotent: it
# reinstalls only when pyproject.toml or constraints.txt changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
stamp=.venv/.pathosynth-installed
wanted=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
    # torch 2.14.1 / torchvision 0.29.1 come from the machine's local package store through plain pip
    # (this machine's pip.conf lists local indexes that lack most names: drop those notices)
    .venv/bin/python -m pip install --quiet -c constraints.txt -e '.[dev]' 2>&1 \
        | { grep -v "is neither a file nor a directory" || true; }
    echo "$wanted" > "$stamp"
fi
