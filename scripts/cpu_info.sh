#!/usr/bin/env bash
# The CPU this run is on: its model and the instruction-set flags that decide which oneDNN and
# ATen kernels run (crashes and speed differ between AVX2-only and AVX-512 machines).
model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
flags=$(awk -F': ' '/^flags/ {print $2; exit}' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(sse4_2|avx|avx2|fma|avx512[a-z_0-9]*|amx[a-z_0-9]*)$' | tr '\n' ' ')
echo "CPU: ${model:-unknown} ($(nproc) cores)"
echo "instruction sets: ${flags:-none found}"
