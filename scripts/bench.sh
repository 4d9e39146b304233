#!/usr/bin/env bash
# Every benchmark and the simulation behind BENCHMARKS.md, in one command.
#
#   scripts/bench.sh            # full run: criterion statistics, tables, callgrind counts and profiles
#   scripts/bench.sh --quick    # tables only, short runs (under 2 minutes once compiled)
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
cargo bench -p tower-retrier-integration --bench overhead --bench redis_budget --bench telemetry_overhead --no-run
cargo build --release -p tower-retrier-integration --example retry_storm --example hedging_latency --example overload

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
  cargo run --release -p tower-retrier-integration --example retry_storm -- --quick --out "$out" | tee "$out/storm.txt"
  cargo run --release -p tower-retrier-integration --example hedging_latency | tee "$out/hedging.txt"
  mkdir -p "$out/overload"
  cargo run --release -p tower-retrier-integration --example overload -- --quick --out "$out/overload" | tee "$out/overload/overload.txt"
else
  cargo bench -p tower-retrier-integration --bench overhead | tee "$out/overhead.txt"
  cargo bench -p tower-retrier-integration --bench redis_budget | tee "$out/redis_budget.txt"
  cargo bench -p tower-retrier-integration --bench telemetry_overhead | tee "$out/telemetry_overhead.txt"
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
  else
    echo "valgrind not installed: instruction counts skipped" | tee "$out/instructions.txt"
  fi
fi
echo "scripts/bench.sh: runs took $(($(date +%s) - start)) s; results in $out/"
