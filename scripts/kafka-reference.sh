#!/usr/bin/env bash
# Runs a reference Apache Kafka 4.x broker: single node, KRaft, broker and
# controller in one process, listening on 127.0.0.1 only.
#
# It is what the benchmark harness compares corelog against, and what tells us
# whether an interop test is itself right (a test that fails against real Kafka
# is a wrong test). Its jars come from Maven Central via
# scripts/interop/kafka-broker/pom.xml (installed on first use), its version is
# the one pinned there, so there is no tarball to download.
#
# Usage: scripts/kafka-reference.sh start|stop|status [--port P] [--dir D]
#                                     [--controller-port C] [--set KEY=VALUE]...
#   --port P  client (PLAINTEXT) port, default 19092; the KRaft controller
#             listens on P+1 unless --controller-port says otherwise
#   --controller-port C  the KRaft controller's port (when P+1 is taken, e.g.
#             by a corelog run beside it)
#   --set KEY=VALUE  an extra broker config line appended to server.properties
#             (repeatable; a later line wins over the defaults above it), e.g.
#             --set log.flush.interval.messages=1. Applies to this start only.
#   --dir D   data dir, default .cache/kafka-reference/<P>; holds
#             server.properties, data/ (the log dirs), logs/server.log,
#             logs/stdout.log and kafka.pid
#   start   formats D on first use (random cluster id), starts the broker in the
#           background and returns once it accepts clients; a no-op if it is
#           already running
#   stop    controlled shutdown (SIGTERM, then SIGKILL after 30 s); a no-op if
#           it is not running. Data is kept: `rm -rf D` for a fresh cluster.
#   status  exit 0 and print the pid if running, exit 3 if not
#
# Env: KAFKA_REF_HEAP_OPTS (default "-Xmx512m -Xms512m"), KAFKA_REF_START_TIMEOUT
# (seconds, default 90).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/interop/common.sh
source "$ROOT/scripts/interop/common.sh"

usage() { sed -n '/^# Usage:/,/^# Env:/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

CMD="${1:-}"; [[ $# -gt 0 ]] && shift
PORT=19092
DIR=""
CPORT=""
EXTRA_CONF=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --port) PORT="${2:?--port needs a value}"; shift 2 ;;
    --dir) DIR="${2:?--dir needs a value}"; shift 2 ;;
    --controller-port) CPORT="${2:?--controller-port needs a value}"; shift 2 ;;
    --set)
      [[ "${2:-}" == ?*=* ]] || die "--set needs KEY=VALUE"
      EXTRA_CONF+=("$2"); shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "kafka-reference: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done
[[ "$PORT" =~ ^[0-9]+$ && "$PORT" -ge 1024 && "$PORT" -lt 65535 ]] || die "bad --port: $PORT"
CPORT="${CPORT:-$((PORT + 1))}"
[[ "$CPORT" =~ ^[0-9]+$ && "$CPORT" -ge 1024 && "$CPORT" -lt 65536 && "$CPORT" -ne "$PORT" ]] ||
  die "bad --controller-port: $CPORT"
# One default dir per port, so two reference brokers on different ports never
# share a log dir by accident.
DIR="${DIR:-$CACHE/kafka-reference/$PORT}"
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
PIDFILE="$DIR/kafka.pid"
LIB="$CACHE/kafka-broker/lib"

# The pid in the pid file, if that process is alive and really is our broker
# (kafka.Kafka started on this dir's server.properties): a stale pid file whose
# pid was reused by something else must never be signalled.
running_pid() {
  [[ -f "$PIDFILE" ]] || return 1
  local pid
  pid="$(cat "$PIDFILE")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "kafka.Kafka $DIR/server.properties" || return 1
  echo "$pid"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

write_config() {
  # Rewritten on every start, so a changed --port takes effect; the cluster id
  # lives in data/meta.properties and is unaffected.
  cat >"$DIR/server.properties" <<CONF
# Written by scripts/kafka-reference.sh; edits are overwritten on the next start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CPORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=$DIR/data
# One node: every internal topic has a single replica.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Stock defaults otherwise (num.partitions=1, auto.create.topics.enable=true,
# broker-side fsync left to the OS), so benchmarks compare against Kafka as
# shipped. Only the first-join rebalance delay is cut, as Kafka's own
# quickstart config does, so group tests do not wait 3 s.
group.initial.rebalance.delay.ms=0
CONF
  if [[ ${#EXTRA_CONF[@]} -gt 0 ]]; then
    printf '# --set on the command line:\n' >>"$DIR/server.properties"
    printf '%s\n' "${EXTRA_CONF[@]}" >>"$DIR/server.properties"
  fi
}

java_base() {
  # Kafka's own JVM flags (kafka-run-class.sh: KAFKA_JVM_PERFORMANCE_OPTS), and
  # a small heap: this machine has 2 cores, 24 GiB and other work to do.
  local heap="${KAFKA_REF_HEAP_OPTS:--Xmx512m -Xms512m}"
  local -a h; read -r -a h <<<"$heap"
  JAVA_CMD=(java "${h[@]}" -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent
    -Djava.awt.headless=true
    -Dlog4j2.configurationFile="$ROOT/scripts/interop/kafka-broker/log4j2.properties"
    -Dkafka.logs.dir="$DIR/logs"
    -cp "$LIB/*")
}

do_start() {
  local pid
  if pid="$(running_pid)"; then
    echo "kafka-reference: already running (pid $pid, 127.0.0.1:$PORT, $DIR)"
    return 0
  fi
  ensure_maven_lib kafka-broker
  if port_open "$PORT" || port_open "$CPORT"; then
    die "127.0.0.1:$PORT or :$CPORT is already in use by another process"
  fi
  mkdir -p "$DIR/logs" "$DIR/data"
  write_config
  java_base
  if [[ ! -f "$DIR/data/meta.properties" ]]; then
    # A cluster id is 16 random bytes in unpadded URL-safe base64, as
    # `kafka-storage.sh random-uuid` prints (one JVM start saved). Kafka's own
    # generator never yields one starting with '-' (it would read as an option).
    local cid
    while cid="$(head -c16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"; [[ "$cid" == -* ]]; do :; done
    log "formatting $DIR/data (cluster id $cid)"
    "${JAVA_CMD[@]}" kafka.tools.StorageTool format --cluster-id "$cid" \
      --config "$DIR/server.properties" >"$DIR/logs/format.log" 2>&1 ||
      { cat "$DIR/logs/format.log" >&2; die "kafka-storage format failed"; }
  fi
  : >"$DIR/logs/server.log"
  # setsid: its own session, so it outlives this script and the terminal/job
  # that ran it and gets no SIGINT/SIGHUP meant for them. The inner bash writes
  # its own pid and then becomes java (exec), so the pid file is java's pid
  # whether or not setsid had to fork.
  local start_ns
  start_ns=$(date +%s%N)
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$PIDFILE" \
    "${JAVA_CMD[@]}" kafka.Kafka "$DIR/server.properties" \
    </dev/null >"$DIR/logs/stdout.log" 2>&1 &
  # Ready = the port answers AND the server logged that start-up finished (a
  # KRaft broker binds its port before it has caught up with the metadata log
  # and been unfenced, and clients that come too early get errors).
  local timeout="${KAFKA_REF_START_TIMEOUT:-90}" waited=0
  while :; do
    sleep 0.25; waited=$((waited + 1))
    if [[ -s "$PIDFILE" ]] && ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
      tail -n 30 "$DIR/logs/stdout.log" "$DIR/logs/server.log" >&2 || true
      rm -f "$PIDFILE"
      die "broker exited during start-up (logs above, in $DIR/logs)"
    fi
    if port_open "$PORT" && grep -q "Kafka Server started" "$DIR/logs/server.log" 2>/dev/null; then
      break
    fi
    if (( waited >= timeout * 4 )); then
      tail -n 30 "$DIR/logs/server.log" >&2 || true
      do_stop >&2 || true
      die "broker not ready after ${timeout}s (stopped it; logs in $DIR/logs)"
    fi
  done
  pid="$(running_pid)" || die "broker started but its pid file does not match it"
  local ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))
  echo "kafka-reference: started pid $pid on 127.0.0.1:$PORT (controller :$CPORT) in ${ms} ms; dir $DIR"
}

do_stop() {
  local pid
  if ! pid="$(running_pid)"; then
    rm -f "$PIDFILE"
    echo "kafka-reference: not running ($DIR)"
    return 0
  fi
  # SIGTERM runs Kafka's shutdown hook (controlled shutdown, clean log close,
  # so the next start does no log recovery). SIGKILL only if that hangs.
  kill -TERM "$pid"
  local i
  for ((i = 0; i < 120; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.25
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "broker pid $pid ignored SIGTERM for 30 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  fi
  rm -f "$PIDFILE"
  echo "kafka-reference: stopped pid $pid"
}

do_status() {
  local pid
  if pid="$(running_pid)"; then
    echo "kafka-reference: running pid $pid on 127.0.0.1:$PORT (controller :$CPORT); dir $DIR"
  else
    echo "kafka-reference: not running ($DIR)"
    return 3
  fi
}

case "$CMD" in
  start) do_start ;;
  stop) do_stop ;;
  status) do_status ;;
  -h|--help|"") usage; [[ -n "$CMD" ]] ;;
  *) echo "kafka-reference: unknown command: $CMD" >&2; usage >&2; exit 2 ;;
esac
