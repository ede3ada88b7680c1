#!/usr/bin/env bash
# Set up (if needed) and run the test suite: the virtualenv, then PostgreSQL and Chromium from
# Debian's packages for the reader app's tests (scripts/services.sh), then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PATHOSYNTH_TEST_POSTGRES_URL=$(bash scripts/services.sh)
export PATHOSYNTH_TEST_POSTGRES_URL
.venv/bin/ruff check --quiet src tests benchmarks  # style first: a lint error fails like a test
.venv/bin/mypy --no-error-summary  # types of the modules listed in pyproject.toml [tool.mypy]
exec bash scripts/pytest.sh "$@"
