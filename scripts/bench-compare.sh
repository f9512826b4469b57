#!/usr/bin/env bash
# corelog against a reference Apache Kafka, on this machine, in one run: the machine's own limits
# (fio, iperf3), the corelog-bench matrix against both brokers, the durability-equal case, a
# fixed-rate latency run, and a cross-check of corelog-bench against Kafka's own perf-test tools.
#
# Usage: scripts/bench-compare.sh [--quick] [--out DIR] [--partitions LIST] [--acks LIST]
#                                 [--duration D] [--steps LIST] [--records N]
#                                 [--kafka-port P] [--corelog-port P] [--rate R]
#   --quick           smoke run: partitions 1,16, 3 s runs, quick baseline, 200000 records in
#                     the cross-check
#   --out DIR         results folder (default target/bench-compare/<UTC timestamp>)
#   --partitions LIST matrix partition counts (default 1,4,16,64,256,1024)
#   --acks LIST       matrix acks values (default 0,1,all)
#   --duration D      measured time of each matrix cell, e.g. 10s (default 10s)
#   --steps LIST      which steps to run, of baseline,matrix,durable,latency,crosscheck
#                     (default all; summary.md is always written from what is in DIR)
#   --records N       records per cross-check run (default 1000000)
#   --kafka-port P    reference Kafka's client port (default 19192; controller on P+10000)
#   --corelog-port P  corelog's port (default 19193)
#   --rate R          records/s of the fixed-rate latency step (default: half of the slower
#                     broker's acks=1, 16-partition, 1 KiB produce rate in the matrix)
#   --no-build        use the binaries already built (with CORELOG_BIN / CORELOG_BENCH_BIN)
#
# Env: CORELOG_BIN, CORELOG_BENCH_BIN: the corelog and corelog-bench binaries (default
# target/release/corelog and target/release/corelog-bench), e.g. to measure another build.
#
# Steps, all against both brokers in the same run (DIR holds every output):
#   baseline   scripts/baseline.sh: fio + iperf3 loopback         -> DIR/baseline.json
#   matrix     corelog-bench compare over acks x partitions, 1 KiB, its three phases per cell
#              (produce at max rate; consume: catch-up read of it; latency: producers + consumers
#              at half of the slower target's max, the same rate)-> DIR/matrix/
#   durable    acks=all produce, Kafka's topics with flush.messages=1 (fsync before ack, like
#              corelog's acks=all)                                -> DIR/durable/
#   latency    acks=1, 16 partitions, both brokers at the SAME fixed rate (latency from each
#              record's intended send time)                       -> DIR/latency/
#   crosscheck kafka-producer-perf-test / kafka-consumer-perf-test and corelog-bench run on the
#              same workload (acks=1, 16 partitions, 1 KiB, 1 producer) against both brokers
#                                                                 -> DIR/crosscheck.csv
#   summary    machine, baseline, headline figures as fractions of the physical limits, ratios
#                                                                 -> DIR/summary.md
# Both brokers start fresh (empty data dirs in a temp dir under target/, the filesystem the
# baseline measures) and are stopped on exit, failure and Ctrl-C included.
#
# Needs: cargo, java (the Kafka jars: scripts/install-interop.sh), fio, iperf3, python3.
set -euo pipefail

usage() { sed -n '/^# Usage:/,/^# Needs:/p' "$0" | sed 's/^# \{0,1\}//'; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

QUICK=0
OUT=""
PARTITIONS=""
ACKS="0,1,all"
DURATION=""
STEPS="baseline,matrix,durable,latency,crosscheck"
RECORDS=""
KAFKA_PORT=19192
CORELOG_PORT=19193
RATE=""
BUILD=1

while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) QUICK=1; shift ;;
    --out) OUT="${2:?--out needs a value}"; shift 2 ;;
    --partitions) PARTITIONS="${2:?--partitions needs a value}"; shift 2 ;;
    --acks) ACKS="${2:?--acks needs a value}"; shift 2 ;;
    --duration) DURATION="${2:?--duration needs a value}"; shift 2 ;;
    --steps) STEPS="${2:?--steps needs a value}"; shift 2 ;;
    --records) RECORDS="${2:?--records needs a value}"; shift 2 ;;
    --kafka-port) KAFKA_PORT="${2:?--kafka-port needs a value}"; shift 2 ;;
    --corelog-port) CORELOG_PORT="${2:?--corelog-port needs a value}"; shift 2 ;;
    --rate) RATE="${2:?--rate needs a value}"; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench-compare: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done

if [[ $QUICK -eq 1 ]]; then
  PARTITIONS="${PARTITIONS:-1,16}"; DURATION="${DURATION:-3s}"; RECORDS="${RECORDS:-200000}"
  WARMUP=1s; BASELINE_ARGS=(--quick)
else
  PARTITIONS="${PARTITIONS:-1,4,16,64,256,1024}"; DURATION="${DURATION:-10s}"
  RECORDS="${RECORDS:-1000000}"; WARMUP=2s; BASELINE_ARGS=()
fi
# The Kafka controller needs a port of its own; kafka-reference.sh's default (client port + 1)
# would be corelog's with the default ports.
KAFKA_CONTROLLER_PORT=$((KAFKA_PORT + 10000))
OUT="${OUT:-$ROOT/target/bench-compare/$(date -u +%Y%m%dT%H%M%SZ)}"
# The cross-check workload, fixed by the targets of issue 5.
XC_PARTITIONS=16
XC_RECORD_BYTES=1024
# How long a broker gets to accept connections after it starts, in seconds.
BROKER_START_TIMEOUT_SECS=60
# The baseline takes 10-60 s; past this it is stuck, in seconds.
BASELINE_TIMEOUT_SECS=300
# How long corelog gets for its graceful shutdown before SIGKILL, in seconds.
BROKER_STOP_TIMEOUT_SECS=30

log() { echo "bench-compare: $*" >&2; }
die() { echo "bench-compare: error: $*" >&2; exit 1; }
has_step() { [[ ",$STEPS," == *",$1,"* ]]; }

for s in ${STEPS//,/ }; do
  case "$s" in baseline|matrix|durable|latency|crosscheck) ;; *) die "unknown step: $s" ;; esac
done
for v in "$KAFKA_PORT" "$CORELOG_PORT"; do
  [[ "$v" =~ ^[0-9]+$ && "$v" -ge 1024 && "$v" -lt 55535 ]] || die "bad port: $v"
done
[[ "$RECORDS" =~ ^[0-9]+$ && "$RECORDS" -gt 0 ]] || die "bad --records: $RECORDS"
[[ -z "$RATE" || "$RATE" =~ ^[1-9][0-9]*$ ]] || die "bad --rate: $RATE"

mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
mkdir -p "$ROOT/target"
WORK="$(mktemp -d "$ROOT/target/bench-compare-work.XXXXXX")"
BENCH="${CORELOG_BENCH_BIN:-$ROOT/target/release/corelog-bench}"
CORELOG="${CORELOG_BIN:-$ROOT/target/release/corelog}"
CORELOG_PID=""
KAFKA_PID=""
# The Kafka perf-test tools run with the JVM flags Kafka's own scripts give them
# (kafka-run-class.sh: KAFKA_JVM_PERFORMANCE_OPTS), not kafka-tool.sh's start-up-tuned defaults:
# these are throughput runs, where C2 and G1 matter.
# The broker gets the heap Kafka's own kafka-server-start.sh gives it (1 GiB), not
# kafka-reference.sh's test-sized default.
export KAFKA_REF_HEAP_OPTS="${KAFKA_REF_HEAP_OPTS:--Xmx1G -Xms1G}"
export KAFKA_TOOL_JAVA_OPTS="${KAFKA_TOOL_JAVA_OPTS:--Xmx512m -Xms512m -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true -Dorg.slf4j.simpleLogger.defaultLogLevel=warn}"

stop_corelog() {
  [[ -n "$CORELOG_PID" ]] || return 0
  if kill -0 "$CORELOG_PID" 2>/dev/null; then
    kill -TERM "$CORELOG_PID" 2>/dev/null || true
    local i
    for ((i = 0; i < BROKER_STOP_TIMEOUT_SECS * 4; i++)); do
      kill -0 "$CORELOG_PID" 2>/dev/null || break
      sleep 0.25
    done
    kill -KILL "$CORELOG_PID" 2>/dev/null || true
  fi
  wait "$CORELOG_PID" 2>/dev/null || true
  CORELOG_PID=""
}

cleanup() {
  local rc=$?
  set +e
  stop_corelog
  if [[ -d "$WORK/kafka" ]]; then
    bash "$ROOT/scripts/kafka-reference.sh" stop --port "$KAFKA_PORT" --dir "$WORK/kafka" >&2
  fi
  mkdir -p "$OUT/logs"
  cp "$WORK/corelog.log" "$OUT/logs/corelog.log" 2>/dev/null
  cp "$WORK/kafka/logs/server.log" "$OUT/logs/kafka-server.log" 2>/dev/null
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Every step starts with no dirty page cache: on ext4 (data=ordered) an fdatasync can have to wait
# for the writeback of other files' data written just before, so without this the fsync-bound
# cells pay for the megabytes the cells before them left in memory.
settle_disk() { sync; }

start_corelog() {
  port_open "$CORELOG_PORT" && die "127.0.0.1:$CORELOG_PORT is already in use"
  # group.initial.rebalance.delay.ms=0 as in kafka-reference.sh's config, so a consumer group's
  # first join costs the same on both brokers (the consume cross-check times it).
  "$CORELOG" serve --set "listeners=PLAINTEXT://127.0.0.1:$CORELOG_PORT" \
    --set "log.dirs=$WORK/corelog-data" --set "corelog.metrics.listener=" \
    --set "group.initial.rebalance.delay.ms=0" \
    </dev/null >"$WORK/corelog.log" 2>&1 &
  CORELOG_PID=$!
  local i
  for ((i = 0; i < BROKER_START_TIMEOUT_SECS * 10; i++)); do
    kill -0 "$CORELOG_PID" 2>/dev/null || { tail -n 20 "$WORK/corelog.log" >&2; die "corelog exited at start-up"; }
    port_open "$CORELOG_PORT" && { log "corelog pid $CORELOG_PID on 127.0.0.1:$CORELOG_PORT"; return 0; }
    sleep 0.1
  done
  die "corelog did not accept connections within ${BROKER_START_TIMEOUT_SECS}s"
}

start_kafka() {
  # file.delete.delay.ms=0: Kafka unlinks a deleted topic's files at once (default: a minute
  # later). Both brokers share one filesystem, and a delayed unlink of a 1024-partition topic
  # lands in the middle of a later cell: an fdatasync of the broker measured then waits for the
  # journal commit that carries it (seen: corelog's acks=all cells at 1 and 4 partitions acked
  # nothing in their window, right after Kafka's 1024-partition cell). At once, the `sync` before
  # the next run covers it.
  bash "$ROOT/scripts/kafka-reference.sh" start --port "$KAFKA_PORT" \
    --controller-port "$KAFKA_CONTROLLER_PORT" --dir "$WORK/kafka" \
    --set file.delete.delay.ms=0 >&2
  KAFKA_PID="$(cat "$WORK/kafka/kafka.pid")"
  [[ "$KAFKA_PID" =~ ^[0-9]+$ ]] || die "no Kafka pid"
  log "kafka pid $KAFKA_PID on 127.0.0.1:$KAFKA_PORT"
}

# ---- build and machine baseline ------------------------------------------------------------
if [[ $BUILD -eq 1 ]]; then
  log "building release binaries"
  cargo build --release -q -p corelog-server -p corelog-bench
fi
[[ -x "$BENCH" && -x "$CORELOG" ]] || die "missing binaries: $CORELOG, $BENCH"
log "results in $OUT"
# What else ran on the machine matters to every figure here; the summary shows both.
{ git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown; } >"$OUT/commit.txt"
cat /proc/loadavg >"$OUT/loadavg-start.txt"

if has_step baseline; then
  log "[baseline] fio + iperf3"
  # The brokers' figures stand without it, so a failed or hung baseline (seen once under heavy
  # machine load: the one-off iperf3 server waiting forever) leaves summary.md without the limits
  # rather than ending the run.
  if ! timeout "$BASELINE_TIMEOUT_SECS" bash "$ROOT/scripts/baseline.sh" "${BASELINE_ARGS[@]}" \
       --out "$OUT/baseline.json" | tee "$OUT/baseline.txt"; then
    log "[baseline] failed or took over ${BASELINE_TIMEOUT_SECS}s; going on without it"
    rm -f "$OUT/baseline.json"
  fi
fi

start_corelog
start_kafka
printf 'corelog\t127.0.0.1:%s\t%s\nkafka\t127.0.0.1:%s\t%s\n' \
  "$CORELOG_PORT" "$CORELOG_PID" "$KAFKA_PORT" "$KAFKA_PID" >"$OUT/brokers.tsv"
TARGETS=(--target "corelog=127.0.0.1:$CORELOG_PORT@$CORELOG_PID"
         --target "kafka=127.0.0.1:$KAFKA_PORT@$KAFKA_PID")
COMMON=(--message-bytes-list 1024 --duration "$DURATION" --warmup "$WARMUP" --no-progress)

# ---- the matrix --------------------------------------------------------------------------------
if has_step matrix; then
  settle_disk
  log "[matrix] acks $ACKS x partitions $PARTITIONS, 1 KiB, $DURATION per cell"
  "$BENCH" compare "${TARGETS[@]}" --acks-list "$ACKS" --partitions-list "$PARTITIONS" \
    "${COMMON[@]}" --out "$OUT/matrix" | tee "$OUT/matrix.txt"
fi

# ---- durability-equal: fsync before every ack on both -------------------------------------------
if has_step durable; then
  settle_disk
  log "[durable] acks=all; Kafka topics with flush.messages=1"
  "$BENCH" compare "${TARGETS[@]}" --acks-list all --partitions-list "$PARTITIONS" \
    --phases produce --target-config kafka:flush.messages=1 "${COMMON[@]}" --out "$OUT/durable" \
    | tee "$OUT/durable.txt"
fi

# ---- fixed-rate latency ----------------------------------------------------------------------------
if has_step latency; then
  if [[ -z "$RATE" ]]; then
    # Half of the slower broker's maximum, so that neither is saturated and both carry the same
    # load (the matrix's latency phase does the same in each of its cells).
    RATE="$(python3 "$ROOT/scripts/bench-summary.py" half-rate "$OUT/matrix" "$XC_PARTITIONS")" ||
      die "--rate not given and no acks=1, $XC_PARTITIONS-partition matrix cell in $OUT/matrix"
  fi
  settle_disk
  log "[latency] acks=1, $XC_PARTITIONS partitions, fixed $RATE records/s"
  echo "$RATE" >"$OUT/latency-rate.txt"
  "$BENCH" compare "${TARGETS[@]}" --acks-list 1 --partitions-list "$XC_PARTITIONS" \
    --phases latency --rate "$RATE" "${COMMON[@]}" --out "$OUT/latency" | tee "$OUT/latency.txt"
fi

# ---- cross-check against Kafka's own tools ---------------------------------------------------------
if has_step crosscheck; then
  settle_disk
  XC="$OUT/crosscheck"
  mkdir -p "$XC"
  # Each tool writes to a topic of its own, created empty, so the producers compare on equal terms
  # and each consumer reads exactly what its producer wrote.
  for broker in corelog kafka; do
    if [[ $broker == corelog ]]; then bootstrap="127.0.0.1:$CORELOG_PORT"; pid=$CORELOG_PID
    else bootstrap="127.0.0.1:$KAFKA_PORT"; pid=$KAFKA_PID; fi
    tag="$(date +%s)"
    ktopic="xc-kafkatools-$tag"
    btopic="xc-corelogbench-$tag"
    log "[crosscheck] $broker: kafka-topics --create $ktopic ($XC_PARTITIONS partitions)"
    bash "$ROOT/scripts/kafka-tool.sh" TopicCommand --bootstrap-server "$bootstrap" --create \
      --topic "$ktopic" --partitions "$XC_PARTITIONS" --replication-factor 1 >&2
    log "[crosscheck] $broker: kafka-producer-perf-test, $RECORDS records"
    bash "$ROOT/scripts/kafka-tool.sh" ProducerPerformance --topic "$ktopic" \
      --num-records "$RECORDS" --record-size "$XC_RECORD_BYTES" --throughput -1 \
      --command-property "bootstrap.servers=$bootstrap" acks=1 \
      2>&1 | tee "$XC/$broker-producer-perf-test.txt" >&2
    log "[crosscheck] $broker: corelog-bench run (produce only), $RECORDS records"
    "$BENCH" run --bootstrap "$bootstrap" --topic "$btopic" --partitions "$XC_PARTITIONS" \
      --acks 1 --message-bytes "$XC_RECORD_BYTES" --producers 1 --consumers 0 \
      --messages "$RECORDS" --warmup 0s --broker-pid "$pid" --no-progress \
      --json "$XC/$broker-bench-produce.json" >"$XC/$broker-bench-produce.txt"
    log "[crosscheck] $broker: kafka-consumer-perf-test, $RECORDS records"
    bash "$ROOT/scripts/kafka-tool.sh" ConsumerPerformance --bootstrap-server "$bootstrap" \
      --topic "$ktopic" --num-records "$RECORDS" \
      2>&1 | tee "$XC/$broker-consumer-perf-test.txt" >&2
    log "[crosscheck] $broker: corelog-bench run (consume only, from earliest), $RECORDS records"
    "$BENCH" run --bootstrap "$bootstrap" --topic "$btopic" --partitions "$XC_PARTITIONS" \
      --producers 0 --consumers 1 --consume-from earliest --messages "$RECORDS" --warmup 0s \
      --broker-pid "$pid" --no-progress \
      --json "$XC/$broker-bench-consume.json" >"$XC/$broker-bench-consume.txt"
  done
  python3 "$ROOT/scripts/bench-summary.py" crosscheck "$XC" "$OUT/crosscheck.csv"
fi

# ---- summary -------------------------------------------------------------------------------------
cat /proc/loadavg >"$OUT/loadavg-end.txt"
python3 "$ROOT/scripts/bench-summary.py" summary "$OUT" >"$OUT/summary.md"
cat "$OUT/summary.md"
log "done: $OUT/summary.md"
