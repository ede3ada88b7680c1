#!/usr/bin/env bash
# Rerun the tests that train a network (listed by a run of scripts/test.sh with
# PATHOSYNTH_TEST_TRAINING_LIST=FILE) with oneDNN and ATen capped to AVX2: kernels that are sound
# on AVX-512 machines have corrupted the heap on AVX2-only CPUs. glibc's malloc checker is loaded
# where it exists, so such corruption aborts at once instead of some allocations later.
set -euo pipefail
cd "$(dirname "$0")/.."
list=${1:?usage: scripts/test_avx2.sh TRAINING_TESTS_FILE}
if [ ! -s "$list" ]; then
    echo "test_avx2.sh: $list lists no training tests; run scripts/test.sh with PATHOSYNTH_TEST_TRAINING_LIST=$list first" >&2
    exit 1
fi
PATHOSYNTH_TEST_POSTGRES_URL=$(bash scripts/services.sh)  # teaching tests train runs and use the database
export PATHOSYNTH_TEST_POSTGRES_URL
echo "rerunning $(wc -l < "$list") training tests with ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2"
checker=$(ls /lib/*-linux-gnu/libc_malloc_debug.so.0 2>/dev/null | head -1 || true)
export ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2
if [ -n "$checker" ]; then
    export LD_PRELOAD=$checker MALLOC_CHECK_=3
fi
exec bash scripts/pytest.sh -p no:cacheprovider "@$list"
