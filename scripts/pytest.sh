#!/usr/bin/env bash
# pytest in the project's virtualenv, saying which test was running if the interpreter dies (a
# segfault or abort inside a native kernel ends the process before pytest can report it).
set -uo pipefail
cd "$(dirname "$0")/.."
current=$(mktemp)
trap 'rm -f "$current"' EXIT
PATHOSYNTH_TEST_CURRENT=$current .venv/bin/python -m pytest -q "$@"
status=$?
if [ -s "$current" ]; then
    echo "pytest died (exit status $status) inside: $(cat "$current")" >&2
    [ "$status" -eq 0 ] && status=1
fi
exit "$status"
