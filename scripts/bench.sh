#!/usr/bin/env bash
# Every benchmark and the simulation behind BENCHMARKS.md, in one command.
#
#   scripts/bench.sh            # full run: criterion statistics, tables, callgrind counts and profiles
#   scripts/bench.sh --quick    # tables only, short runs (under 2 minutes once compiled)
#
# The real-stack bench (benches/real_stack.rs: hyper and tonic over loopback, bare against
# retried) writes bench-results/real_stack/real_stack.txt; the full mode adds its callgrind
# instruction counts per request (real_stack/instructions.txt).
#
# Results (text tables, CSV, the storm chart) go to bench-results/ (override: BENCH_OUT=dir).
# Needs redis-server (installed with apt-get when missing); valgrind is optional (full mode).
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    *) echo "usage: scripts/bench.sh [--quick]" >&2; exit 2 ;;
  esac
done
out="${BENCH_OUT:-bench-results}"
mkdir -p "$out"

if ! command -v redis-server >/dev/null 2>&1; then
  echo "scripts/bench.sh: installing redis-server with apt-get" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
fi

# Compile everything first, so the timings below measure only the runs.
cargo bench -p tower-retrier-integration --bench overhead --bench redis_budget --bench telemetry_overhead --bench real_stack --no-run
cargo build --release -p tower-retrier-integration --example retry_storm --example hedging_latency --example overload

# Instructions per request of the real_stack cases under callgrind (a noise-free cross-check of
# its CPU ratios): the difference between a run of 3000 requests and one of 1000 of one side of
# one case, so set-up and warm-up cancel out. Thread 1 is the client (the main thread); all
# threads together are the process (client and server).
real_stack_count() { # <exe> <case> <side> <requests> -> "client process"
  local tmp
  tmp=$(mktemp -d)
  valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$tmp/cg" \
    "$1" --bench --quick --variants --only "$2" --side "$3" --rounds 1 --batch "$4" >/dev/null 2>&1
  echo "$(sed -n 's/^summary: //p' "$tmp/cg-01") $(cat "$tmp"/cg-* | sed -n 's/^summary: //p' | awk '{ s += $1 } END { print s }')"
  rm -rf "$tmp"
}

real_stack_instructions() {
  local exe="$1" case side a b
  echo "| case | client-thread instructions/request, bare → retried | ratio | process instructions/request, bare → retried | ratio |"
  echo "|---|---|---|---|---|"
  for case in "HTTP/1.1 POST 0 B" "HTTP/1.1 POST 4 KiB" "HTTP/1.1 POST 64 KiB" \
    "HTTP/2 POST 0 B" "HTTP/2 POST 4 KiB" "HTTP/2 POST 64 KiB" \
    "gRPC unary 0 B" "gRPC unary 4 KiB" "gRPC unary 60 KiB"; do
    local per=()
    for side in 0 1; do
      a=$(real_stack_count "$exe" "$case" "$side" 1000)
      b=$(real_stack_count "$exe" "$case" "$side" 3000)
      per+=("$(echo "$a $b" | awk '{ printf "%.0f %.0f", ($3 - $1) / 2000, ($4 - $2) / 2000 }')")
    done
    echo "${per[0]} ${per[1]}" | awk -v c="$case" '{
      printf "| %s | %d → %d (%+d) | %.3f | %d → %d (%+d) | %.3f |\n", c, $1, $3, $3 - $1, $3 / $1, $2, $4, $4 - $2, $4 / $2
    }'
  done
  # By elimination: the retried side of one case with one part of the layer switched off.
  echo
  echo "| retried side of HTTP/1.1 POST 4 KiB | client-thread instructions/request |"
  echo "|---|---|"
  for case in "HTTP/1.1 POST 4 KiB" "HTTP/1.1 POST 4 KiB, admission off" \
    "HTTP/1.1 POST 4 KiB, budget off (Unlimited)" "HTTP/1.1 POST 4 KiB, replay buffer 0" \
    "HTTP/1.1 POST 4 KiB, telemetry off"; do
    a=$(real_stack_count "$exe" "$case" 1 1000)
    b=$(real_stack_count "$exe" "$case" 1 3000)
    echo "$a $b" | awk -v c="$case" '{ printf "| %s | %.0f |\n", c, ($3 - $1) / 2000 }'
  done
}

# The client thread's per-function instruction counts of one case, bare and retried (3000
# requests after the warm-up): the raw source of the profile in BENCHMARKS.md.
real_stack_profile() { # <exe> <case> <output dir>
  local tmp side
  tmp=$(mktemp -d)
  for side in 0 1; do
    valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$tmp/cg$side" \
      "$1" --quick --only "$2" --side "$side" --rounds 1 --batch 3000 >/dev/null 2>&1
    {
      echo "# $2, side $side ($([ "$side" -eq 0 ] && echo bare || echo retried)), client thread, 3100 requests"
      callgrind_annotate --threshold=99 "$tmp/cg$side-01" |
        awk '/file:function/ { on = 1; print; getline; next } on && /^-----/ { exit } on' || true
    } >"$3/callgrind_$([ "$side" -eq 0 ] && echo bare || echo retried).txt"
  done
  rm -rf "$tmp"
}

machine() {
  echo "date: $(date -u +%FT%TZ)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//') ($(nproc) cores)"
  echo "kernel: $(uname -sr)"
  echo "rustc: $(rustc --version)"
  echo "redis-server: $(redis-server --version | cut -d' ' -f3)"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
}
machine | tee "$out/machine.txt"

start=$(date +%s)
if [ "$quick" -eq 1 ]; then
  BENCH_SUMMARY_ONLY=1 cargo bench -p tower-retrier-integration --bench overhead -- --quick | tee "$out/overhead.txt"
  cargo bench -p tower-retrier-integration --bench redis_budget -- --quick | tee "$out/redis_budget.txt"
  cargo bench -p tower-retrier-integration --bench telemetry_overhead -- --quick | tee "$out/telemetry_overhead.txt"
  mkdir -p "$out/real_stack"
  cargo bench -p tower-retrier-integration --bench real_stack -- --quick | tee "$out/real_stack/real_stack.txt"
  cargo run --release -p tower-retrier-integration --example retry_storm -- --quick --out "$out" | tee "$out/storm.txt"
  cargo run --release -p tower-retrier-integration --example hedging_latency | tee "$out/hedging.txt"
  mkdir -p "$out/overload"
  cargo run --release -p tower-retrier-integration --example overload -- --quick --out "$out/overload" | tee "$out/overload/overload.txt"
else
  cargo bench -p tower-retrier-integration --bench overhead | tee "$out/overhead.txt"
  cargo bench -p tower-retrier-integration --bench redis_budget | tee "$out/redis_budget.txt"
  cargo bench -p tower-retrier-integration --bench telemetry_overhead | tee "$out/telemetry_overhead.txt"
  mkdir -p "$out/real_stack"
  cargo bench -p tower-retrier-integration --bench real_stack | tee "$out/real_stack/real_stack.txt"
  cargo run --release -p tower-retrier-integration --example retry_storm -- --out "$out" | tee "$out/storm.txt"
  cargo run --release -p tower-retrier-integration --example hedging_latency | tee "$out/hedging.txt"
  mkdir -p "$out/overload"
  cargo run --release -p tower-retrier-integration --example overload -- --out "$out/overload" | tee "$out/overload/overload.txt"

  # Instruction counts per call and per-function profiles (noise-free cross-check of the
  # timings): instructions.txt and callgrind/<case>.txt.
  if command -v valgrind >/dev/null 2>&1; then
    exe=$(cargo bench -p tower-retrier-integration --bench overhead --no-run 2>&1 |
      sed -n 's/.*Executable .*(\(.*\)).*/\1/p' | tail -1)
    scripts/instructions.sh "$exe" "$out" 200000
    exe=$(cargo bench -p tower-retrier-integration --bench real_stack --no-run 2>&1 |
      sed -n 's/.*Executable .*(\(.*\)).*/\1/p' | tail -1)
    real_stack_instructions "$exe" | tee "$out/real_stack/instructions.txt"
    real_stack_profile "$exe" "HTTP/1.1 POST 4 KiB" "$out/real_stack"
  else
    echo "valgrind not installed: instruction counts skipped" | tee "$out/instructions.txt"
  fi
fi
echo "scripts/bench.sh: runs took $(($(date +%s) - start)) s; results in $out/"
