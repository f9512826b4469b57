#!/usr/bin/env bash
# What do transactions cost a producer, on corelog and on Apache Kafka, side by side? Kafka's own
# kafka-producer-perf-test (the Java client) writes the same records to both brokers, idempotent
# (no transactions) and transactional (a commit every --txn-ms ms), alternating which broker goes
# first, RUNS runs each; then kafka-consumer-perf-test reads each transactional topic back with
# isolation.level=read_committed. A table of medians and corelog:kafka ratios follows.
#
# Usage: perf/txn-throughput.sh [--runs N] [--records N] [--record-bytes B] [--partitions P]
#                               [--txn-ms LIST] [--port P] [--kafka-port P] [--out DIR]
#                               [--no-baseline]
#   --runs N          runs per broker and mode (default 3; medians over them)
#   --records N       records per run (default 200000)
#   --record-bytes B  record size (default 1024)
#   --partitions P    partitions of each topic (default 6: both of corelog's shards)
#   --txn-ms LIST     comma-separated transaction durations in ms (default 100,1000)
#   --port P          corelog's port (default 19520); --kafka-port P Kafka's (default 19530)
#   --out DIR         results (default target/txn-throughput/<UTC timestamp>)
#   --no-baseline     skip scripts/baseline.sh (fio, iperf3)
#
# Both brokers run with their defaults but for group.initial.rebalance.delay.ms=0; producers use
# acks=all (corelog's acks=all fdatasyncs by default; Kafka's only reaches the page cache, so the
# idempotent row shows that difference too, and the transactional rows what commits add to it).
#
# Needs: cargo, java (scripts/install-interop.sh puts Kafka's tools and broker jars in .cache),
# python3; fio and iperf3 for the baseline (scripts/install-tools.sh).
set -euo pipefail

usage() { sed -n '/^# Usage:/,/^# Needs:/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

RUNS=3
RECORDS=200000
RECORD_BYTES=1024
PARTITIONS=6
TXN_MS="100,1000"
PORT=19520
KAFKA_PORT=19530
OUT=""
BASELINE=1
BROKER_START_TIMEOUT_SECS=60

die() { echo "txn-throughput: $*" >&2; exit 1; }
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
num() { [[ "$2" =~ ^[1-9][0-9]*$ ]] || die "$1 needs a positive whole number, not $2"; echo "$2"; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --runs) RUNS="$(num "$1" "${2:-}")"; shift 2 ;;
    --records) RECORDS="$(num "$1" "${2:-}")"; shift 2 ;;
    --record-bytes) RECORD_BYTES="$(num "$1" "${2:-}")"; shift 2 ;;
    --partitions) PARTITIONS="$(num "$1" "${2:-}")"; shift 2 ;;
    --txn-ms) TXN_MS="${2:-}"; shift 2 ;;
    --port) PORT="$(num "$1" "${2:-}")"; shift 2 ;;
    --kafka-port) KAFKA_PORT="$(num "$1" "${2:-}")"; shift 2 ;;
    --out) OUT="${2:-}"; shift 2 ;;
    --no-baseline) BASELINE=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
IFS=',' read -r -a TXN_LIST <<<"$TXN_MS"
for t in "${TXN_LIST[@]}"; do num --txn-ms "$t" >/dev/null; done
OUT="${OUT:-$ROOT/target/txn-throughput/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
WORK="$(mktemp -d)"
CORELOG="$ROOT/target/release/corelog"
CORELOG_PID=""

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

cleanup() {
  local rc=$?
  set +e
  [[ -n "$CORELOG_PID" ]] && { kill -TERM "$CORELOG_PID"; wait "$CORELOG_PID"; }
  [[ -d "$WORK/kafka" ]] && bash "$ROOT/scripts/kafka-reference.sh" stop --port "$KAFKA_PORT" --dir "$WORK/kafka" >&2
  cp "$WORK/corelog.log" "$OUT/corelog.log" 2>/dev/null
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "building corelog"
cargo build --release -q -p corelog-server
git rev-parse --short HEAD >"$OUT/commit.txt" 2>/dev/null || true
cat /proc/loadavg >"$OUT/loadavg-start.txt"
if [[ $BASELINE -eq 1 ]]; then
  log "[baseline] fio + iperf3"
  bash scripts/baseline.sh --quick --out "$OUT/baseline.json" | tee "$OUT/baseline.txt" >&2 ||
    log "[baseline] failed; going on without it"
fi

port_open "$PORT" && die "127.0.0.1:$PORT is already in use"
"$CORELOG" serve --set "listeners=PLAINTEXT://127.0.0.1:$PORT" --set "log.dirs=$WORK/corelog-data" \
  --set "corelog.metrics.listener=" --set "group.initial.rebalance.delay.ms=0" \
  </dev/null >"$WORK/corelog.log" 2>&1 &
CORELOG_PID=$!
for ((i = 0; i < BROKER_START_TIMEOUT_SECS * 10; i++)); do
  port_open "$PORT" && break
  kill -0 "$CORELOG_PID" 2>/dev/null || die "corelog exited at start-up"
  sleep 0.1
done
port_open "$PORT" || die "corelog did not start"
bash scripts/kafka-reference.sh start --port "$KAFKA_PORT" --controller-port $((KAFKA_PORT + 1)) \
  --dir "$WORK/kafka" >&2

bootstrap_of() { if [[ $1 == corelog ]]; then echo "127.0.0.1:$PORT"; else echo "127.0.0.1:$KAFKA_PORT"; fi; }

# One producer run: prints "records/s avg_ms p99_ms" from perf-test's summary line.
produce() {
  local broker="$1" mode="$2" run="$3" topic extra=()
  topic="txn-$mode-$run-$(date +%s%N)"
  bash scripts/kafka-tool.sh TopicCommand --bootstrap-server "$(bootstrap_of "$broker")" --create \
    --topic "$topic" --partitions "$PARTITIONS" --replication-factor 1 >/dev/null
  if [[ $mode != idempotent ]]; then
    extra=(--transactional-id "perf-$topic" --transaction-duration-ms "${mode#txn}")
  fi
  sync
  bash scripts/kafka-tool.sh ProducerPerformance --topic "$topic" --num-records "$RECORDS" \
    --record-size "$RECORD_BYTES" --throughput -1 "${extra[@]}" \
    --command-property "bootstrap.servers=$(bootstrap_of "$broker")" acks=all enable.idempotence=true \
    >"$OUT/$broker-$mode-$run-producer.txt" 2>&1 || die "perf-test failed: $OUT/$broker-$mode-$run-producer.txt"
  echo "$topic"
}

# Reads a topic back read_committed; prints records/s.
consume() {
  local broker="$1" topic="$2" out="$3"
  printf 'isolation.level=read_committed\n' >"$WORK/consumer.properties"
  bash scripts/kafka-tool.sh ConsumerPerformance --bootstrap-server "$(bootstrap_of "$broker")" \
    --topic "$topic" --num-records "$RECORDS" --command-config "$WORK/consumer.properties" \
    --timeout 60000 >"$out" 2>&1 || die "consumer perf-test failed: $out"
}

MODES=(idempotent)
for t in "${TXN_LIST[@]}"; do MODES+=("txn$t"); done
for ((run = 1; run <= RUNS; run++)); do
  if (( run % 2 )); then ORDER=(corelog kafka); else ORDER=(kafka corelog); fi
  for mode in "${MODES[@]}"; do
    for broker in "${ORDER[@]}"; do
      log "run $run/$RUNS $mode on $broker"
      topic="$(produce "$broker" "$mode" "$run")"
      if [[ $mode != idempotent ]]; then
        consume "$broker" "$topic" "$OUT/$broker-$mode-$run-consumer.txt"
      fi
    done
  done
done
cat /proc/loadavg >"$OUT/loadavg-end.txt"

python3 - "$OUT" "$RUNS" "${MODES[@]}" <<'EOF' | tee "$OUT/summary.md"
import glob, os, re, statistics, sys
out, runs, modes = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
prod = re.compile(r"records sent, ([\d.]+) records/sec .*?, ([\d.]+) ms avg latency.*?, (\d+) ms 99th")
def producer(broker, mode):
    vals = []
    for r in range(1, runs + 1):
        text = open(f"{out}/{broker}-{mode}-{r}-producer.txt").read()
        m = prod.findall(text)
        if not m:
            sys.exit(f"no summary line in {broker}-{mode}-{r}-producer.txt")
        vals.append(tuple(float(x) for x in m[-1]))
    return [statistics.median(v[i] for v in vals) for i in range(3)]
def consumer(broker, mode):
    vals = []
    for r in range(1, runs + 1):
        path = f"{out}/{broker}-{mode}-{r}-consumer.txt"
        if not os.path.exists(path):
            return None
        rows = [l.split(",") for l in open(path) if re.match(r"^\d{4}-", l)]
        if not rows:
            sys.exit(f"no result row in {path}")
        vals.append(float(rows[-1][5]))  # nMsg.sec
    return statistics.median(vals)
print(f"# Transactional producer cost (medians of {runs} runs; kafka-producer-perf-test, acks=all)\n")
print("| mode | corelog rec/s | kafka rec/s | ratio | corelog avg / p99 ms | kafka avg / p99 ms | read_committed consume rec/s corelog / kafka |")
print("|---|---|---|---|---|---|---|")
for mode in modes:
    c, k = producer("corelog", mode), producer("kafka", mode)
    cc, kc = consumer("corelog", mode), consumer("kafka", mode)
    cons = "-" if cc is None else f"{cc:.0f} / {kc:.0f}"
    print(f"| {mode} | {c[0]:.0f} | {k[0]:.0f} | {c[0]/k[0]:.2f} | {c[1]:.1f} / {c[2]:.0f} | {k[1]:.1f} / {k[2]:.0f} | {cons} |")
EOF
log "results in $OUT"
