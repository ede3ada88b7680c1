#!/usr/bin/env bash
# The services the reader app's tests use, from Debian's packages: a PostgreSQL server on loopback
# and Chromium for the browser test. Installs what is missing (needs root, as on CI), starts
# PostgreSQL, and makes the test role and database. Idempotent; prints the URL the tests read from
# PATHOSYNTH_TEST_POSTGRES_URL.
set -euo pipefail
missing=()
command -v pg_ctlcluster >/dev/null || missing+=(postgresql)
command -v chromium >/dev/null || missing+=(chromium fonts-dejavu-core)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "services.sh: install ${missing[*]} (Debian packages) or run as root" >&2
        exit 1
    fi
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
version=$(pg_lsclusters -h | awk 'NR==1 {print $1}')
if [ -z "$version" ]; then
    version=$(ls /usr/lib/postgresql | sort -n | tail -1)
    pg_createcluster "$version" main >&2
fi
if ! pg_lsclusters -h | awk '$4 == "online" {found=1} END {exit !found}'; then
    pg_ctlcluster "$version" main start >&2
fi
port=$(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" {print $3}')
for _ in $(seq 30); do
    pg_isready -q -h 127.0.0.1 -p "$port" && break
    sleep 1
done
as_postgres() { runuser -u postgres -- psql -qtA -p "$port" -c "$1"; }
if [ "$(as_postgres "SELECT 1 FROM pg_roles WHERE rolname = 'pathosynth'")" != 1 ]; then
    as_postgres "CREATE ROLE pathosynth LOGIN CREATEDB PASSWORD 'pathosynth'" >/dev/null
fi
if [ "$(as_postgres "SELECT 1 FROM pg_database WHERE datname = 'pathosynth'")" != 1 ]; then
    as_postgres "CREATE DATABASE pathosynth OWNER pathosynth" >/dev/null
fi
echo "postgresql+psycopg://pathosynth:pathosynth@127.0.0.1:$port/pathosynth"
