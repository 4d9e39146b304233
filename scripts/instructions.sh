#!/usr/bin/env bash
# Instruction counts per call for every case of benches/overhead.rs, under callgrind.
#
#   scripts/instructions.sh <overhead bench executable> <output dir> [calls]
#
# Writes <output dir>/instructions.txt (one table row per case: instructions per call, counting
# only the timed call loop) and <output dir>/callgrind/<case>.txt (callgrind_annotate's
# per-function breakdown of that loop: the raw source of the profile in BENCHMARKS.md).
set -euo pipefail
exe="$1"
out="$2"
calls="${3:-200000}"
mkdir -p "$out/callgrind"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
{
  echo "| # | case | instructions/call (callgrind, $calls calls) |"
  echo "|---:|---|---:|"
  i=0
  while :; do
    log=$(BENCH_INSTRUCTIONS="$i:$calls" valgrind --tool=callgrind \
      --callgrind-out-file="$tmp/cg.out" --toggle-collect='*counted_calls*' "$exe" 2>&1) || break
    name=$(printf '%s\n' "$log" | grep -v '^==' | tail -1)
    ir=$(printf '%s\n' "$log" | sed -n 's/.*Collected : *\([0-9]*\).*/\1/p')
    awk -v i="$i" -v n="$name" -v ir="$ir" -v c="$calls" 'BEGIN { printf "| %d | %s | %.1f |\n", i, n, ir / c }'
    {
      echo "# $name: $calls calls, only the call loop counted (--toggle-collect='*counted_calls*')"
      # The per-function table only: its header, then rows up to the next rule.
      callgrind_annotate --threshold=99 "$tmp/cg.out" |
        awk '/file:function/ { on = 1; print; getline; next } on && /^-----/ { exit } on' || true
    } >"$out/callgrind/$(printf '%02d' "$i").txt"
    i=$((i + 1))
  done
} | tee "$out/instructions.txt"
