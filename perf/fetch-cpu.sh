#!/usr/bin/env bash
# Fetch cost in broker CPU-seconds per GB: zero-copy (splice from the segment files) versus the
# copying path (`corelog.fetch.zero.copy=false`), on the same data, side by side in one run.
# On loopback every send copies inside the kernel anyway, so throughput says little; what the
# zero-copy path saves is the broker's own CPU, measured here from /proc/<pid>/stat (all threads,
# io_uring workers included).
# Usage: perf/fetch-cpu.sh [MiB to produce, default 512] [consume rounds, default 3]
set -euo pipefail
cd "$(dirname "$0")/.."

mib="${1:-512}"
rounds="${2:-3}"
port=19790
work="$(mktemp -d "${TMPDIR:-/tmp}/corelog-fetch-cpu.XXXXXX")"
trap 'pkill -TERM -f "corelog serve.*$work" 2>/dev/null || true; rm -rf "$work"' EXIT

bash scripts/install-tools.sh
bash scripts/install-interop.sh --quiet
cargo build --release -q -p corelog-server
bin=target/release/corelog
ticks=$(getconf CLK_TCK)

start_broker() { # $1 = zero copy true|false
  "$bin" serve --set "listeners=PLAINTEXT://127.0.0.1:$port" --set "log.dirs=$work/data" \
    --set "corelog.fetch.zero.copy=$1" >"$work/broker-$1.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do kcat -L -b "127.0.0.1:$port" -m 1 >/dev/null 2>&1 && return; sleep 0.1; done
  echo "broker did not start" >&2; exit 1
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
stop_broker() { kill -TERM "$pid"; wait "$pid" || true; }

# 100 KiB messages, produced once.
python3 -c "
import sys
line = b'x' * (100 * 1024 - 1) + b'\n'
for _ in range($mib * 1024 // 100): sys.stdout.buffer.write(line)
" >"$work/payload"
start_broker true
kcat -P -b "127.0.0.1:$port" -t fetchcpu -X message.max.bytes=200000 <"$work/payload"
stop_broker
bytes=$(du -sb "$work/data"/fetchcpu-0/*.log | awk '{s+=$1} END {print s}')

for mode in true false; do
  start_broker "$mode"
  for r in $(seq "$rounds"); do
    before=$(cpu_ticks); t0=$(date +%s.%N)
    kcat -C -b "127.0.0.1:$port" -t fetchcpu -o beginning -e -q -f '' -X fetch.max.bytes=52428800 >/dev/null
    t1=$(date +%s.%N); after=$(cpu_ticks)
    python3 -c "
cpu = ($after - $before) / $ticks; gb = $bytes / 1e9; wall = $t1 - $t0
print(f'zero_copy=$mode round=$r  {cpu:.2f} broker CPU-s for {gb:.2f} GB = {cpu/gb:.3f} CPU-s/GB, {gb/wall*1000:.0f} MB/s')"
  done
  stop_broker
  grep -h "fetch totals" "$work/broker-$mode.log" | sed 's/\x1b\[[0-9;]*m//g' | sed 's/^.*fetch totals/  fetch totals/'
done
