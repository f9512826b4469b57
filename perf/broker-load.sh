#!/usr/bin/env bash
# Drives one produce or consume load at a running broker with Kafka's own perf tools
# (ProducerPerformance / ConsumerPerformance) and reports throughput and the broker's CPU per MiB,
# read from /proc/<pid>/stat (utime+stime of every thread, io_uring workers included). The JVM
# client shares the cores with the broker, so CPU per MiB is the number to compare, not MiB/s.
#
# Usage: perf/broker-load.sh produce|consume BOOTSTRAP BROKER_PID TOPIC PARTITIONS ACKS RECORDS [EXTRA_TOPIC_CONFIG]
#   produce  creates TOPIC (PARTITIONS, optional EXTRA_TOPIC_CONFIG like flush.messages=1) if
#            missing, then sends RECORDS records of 1 KiB with acks=ACKS
#   consume  reads RECORDS records of TOPIC from the beginning (ACKS ignored)
# Prints one line: mode, MiB, seconds, MiB/s, broker CPU-s, broker CPU-ms per MiB.
set -euo pipefail
cd "$(dirname "$0")/.."

[[ $# -ge 7 ]] || { sed -n '/^# Usage:/,/^# Prints/p' "$0" >&2; exit 2; }
mode="$1" bootstrap="$2" pid="$3" topic="$4" partitions="$5" acks="$6" records="$7" extra="${8:-}"
record_bytes=1024
ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
tool() { KAFKA_TOOL_JAVA_OPTS="-Xmx512m -Xms512m -XX:+UseParallelGC" bash scripts/kafka-tool.sh "$@"; }

if [[ "$mode" == produce ]]; then
  if ! tool TopicCommand --bootstrap-server "$bootstrap" --describe --topic "$topic" >/dev/null 2>&1; then
    cfg=()
    [[ -n "$extra" ]] && cfg=(--config "$extra")
    tool TopicCommand --bootstrap-server "$bootstrap" --create --topic "$topic" \
      --partitions "$partitions" --replication-factor 1 "${cfg[@]}" >/dev/null 2>&1
  fi
  before=$(cpu_ticks); t0=$(date +%s.%N)
  tool ProducerPerformance --topic "$topic" --num-records "$records" --record-size "$record_bytes" \
    --throughput -1 --producer-props "bootstrap.servers=$bootstrap" "acks=$acks" \
    linger.ms=5 batch.size=65536 >/tmp/broker-load.$$.out 2>&1 || { cat /tmp/broker-load.$$.out >&2; exit 1; }
  t1=$(date +%s.%N); after=$(cpu_ticks)
else
  before=$(cpu_ticks); t0=$(date +%s.%N)
  tool ConsumerPerformance --bootstrap-server "$bootstrap" --topic "$topic" --messages "$records" \
    --timeout 60000 --fetch-size 1048576 >/tmp/broker-load.$$.out 2>&1 || { cat /tmp/broker-load.$$.out >&2; exit 1; }
  t1=$(date +%s.%N); after=$(cpu_ticks)
fi
summary=$(grep -E "records sent|MB.sec|data.consumed" /tmp/broker-load.$$.out | tail -2 | tr '\n' ' ')
rm -f /tmp/broker-load.$$.out
python3 -c "
mib = $records * $record_bytes / 2**20; cpu = ($after - $before) / $ticks; wall = $t1 - $t0
print(f'$mode p=$partitions acks=$acks: {mib:.0f} MiB in {wall:.1f} s (incl. JVM start) = {mib/wall:.0f} MiB/s; broker {cpu:.2f} CPU-s = {cpu*1000/mib:.2f} CPU-ms/MiB')"
echo "  tool: $summary"
