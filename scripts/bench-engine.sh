#!/usr/bin/env bash
# Engine benchmarks beside the machine's own baselines, measured in the same run:
#   fio (buffered sequential write, fdatasync latency) and iperf3 loopback (scripts/baseline.sh),
#   then criterion's append benchmark (1/16/256/1024 partitions on one shard, written vs durable),
#   then a summary of medians as MiB/s and as ratios to the baselines.
# Usage: scripts/bench-engine.sh [--quick] [criterion filter]
# CORELOG_BENCH_APPENDERS sets the minimum number of concurrent appenders (default 64).
set -euo pipefail
cd "$(dirname "$0")/.."

quick=()
if [[ "${1:-}" == "--quick" ]]; then
  quick=(--quick)
  shift
fi
filter="${1:-}"

bash scripts/install-tools.sh
bash scripts/baseline.sh "${quick[@]}" --out target/baseline/baseline.json
cargo bench -p corelog-engine --bench append -- ${filter:+"$filter"} 2>&1 | grep -E '^append/|thrpt:|flush stats' | grep -v '%'

python3 - <<'PY'
import json, os, glob
base = json.load(open("target/baseline/baseline.json"))
fio = base["fio_seq_write_buffered_mib_s"]
fio16 = base["fio_seq_write_fdatasync16_mib_s"]
rows = {}
for path in glob.glob("target/criterion/append/*/*/new/estimates.json"):
    ack, parts = path.split("/")[3:5]
    bench = json.load(open(os.path.join(os.path.dirname(path), "benchmark.json")))
    bytes_per_iter = bench["throughput"]["Bytes"]
    median_ns = json.load(open(path))["median"]["point_estimate"]
    rows[(ack, int(parts))] = bytes_per_iter / (median_ns * 1e-9) / 2**20
print()
print(f"baselines: fio buffered seq write {fio:.1f} MiB/s, fio write+fdatasync/1MiB {fio16:.1f} MiB/s, "
      f"fdatasync p50 {base['fio_fdatasync_p50_us']:.0f} us, iperf3 loopback {base['iperf3_loopback_gbit_s']:.1f} Gbit/s")
print(f"{'ack':8} {'partitions':>10} {'MiB/s':>9} {'vs fio':>7} {'vs 1 partition':>15}")
for (ack, parts), mib in sorted(rows.items()):
    one = rows.get((ack, 1))
    print(f"{ack:8} {parts:>10} {mib:9.1f} {mib / fio:7.0%} {mib / one if one else float('nan'):15.0%}")
PY
