#!/usr/bin/env bash
# What a partition costs the broker: corelog under the same load at growing partition counts, with
# its CPU, context switches and page faults counted by `perf stat` and sampled by `perf record`
# over the measured window, and a flame graph per partition count.
#
# Usage: perf/partition-scaling.sh [--partitions LIST] [--duration D] [--acks A] [--out DIR]
#                                  [--warmup D] [--port P] [--call-graph fp|dwarf]
#                                  [--driver corelog-bench|kafka-perf]
#   --partitions LIST  partition counts (default 1,16,64,256,1024)
#   --duration D       measured window per count, seconds (default 10; a trailing "s" is allowed)
#   --acks A           0, 1 or all (default 1)
#   --out DIR          results (default target/partition-scaling/<UTC timestamp>)
#   --warmup D         load before perf attaches, seconds (default 3)
#   --port P           corelog's port (default 19793)
#   --call-graph M     perf's unwinder: fp (perf record -g: frame pointers, cheap, but the release
#                      build keeps none, so stacks stop early) or dwarf (full stacks, larger
#                      perf.data, slower perf script). Default fp
#   --driver D         the load: corelog-bench run (default; 1 producer + 1 consumer, MiB/s over
#                      the measured window) or kafka-perf (Kafka's kafka-producer-perf-test, 1
#                      producer, no consumer; its MiB/s covers its whole run, JVM warm-up included)
#
# Per partition count P, in DIR: run-P.json (the corelog-bench result), perf-stat-P.csv,
# flame-P.svg (inferno), folded-P.txt; over all of them scaling.csv and scaling.md:
#   partitions, MiB/s (produced), broker CPU seconds in the window (perf task-clock, and from
#   /proc/PID/stat), CPU ms per MiB produced, CPU µs per partition per second (both from /proc,
#   which counts every thread; perf stat -p misses threads started after it attaches, such as
#   io_uring workers), context switches per MiB (perf stat, same caveat).
# The broker starts fresh (empty data dir) once, each count gets its own topic, and everything
# started here is stopped on exit.
#
# Needs: perf, inferno (scripts/install-perf-tools.sh), cargo, python3; Java for --driver
# kafka-perf. Only software events (task-clock, context-switches, ...): hardware counters are often
# missing on VMs. Attaching to a process needs root or kernel.perf_event_paranoid <= 1.
set -euo pipefail

usage() { sed -n '/^# Usage:/,/^# Needs:/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PARTITIONS="1,16,64,256,1024"
DURATION_SECS=10
ACKS=1
OUT=""
WARMUP_SECS=3
PORT=19793
CALL_GRAPH=fp
DRIVER=corelog-bench

secs() { local v="${1%s}"; [[ "$v" =~ ^[1-9][0-9]*$ ]] || { echo "partition-scaling: not a whole number of seconds: $1" >&2; exit 2; }; echo "$v"; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --partitions) PARTITIONS="${2:?--partitions needs a value}"; shift 2 ;;
    --duration) DURATION_SECS="$(secs "${2:?--duration needs a value}")"; shift 2 ;;
    --acks) ACKS="${2:?--acks needs a value}"; shift 2 ;;
    --out) OUT="${2:?--out needs a value}"; shift 2 ;;
    --warmup) WARMUP_SECS="$(secs "${2:?--warmup needs a value}")"; shift 2 ;;
    --port) PORT="${2:?--port needs a value}"; shift 2 ;;
    --call-graph) CALL_GRAPH="${2:?--call-graph needs a value}"; shift 2 ;;
    --driver) DRIVER="${2:?--driver needs a value}"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "partition-scaling: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done

log() { echo "partition-scaling: $*" >&2; }
die() { echo "partition-scaling: error: $*" >&2; exit 1; }

[[ "$ACKS" =~ ^(0|1|all)$ ]] || die "--acks must be 0, 1 or all"
[[ "$PARTITIONS" =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || die "bad --partitions: $PARTITIONS"
[[ "$PORT" =~ ^[0-9]+$ && "$PORT" -ge 1024 && "$PORT" -lt 65536 ]] || die "bad --port: $PORT"
case "$CALL_GRAPH" in fp) CG_ARGS=(-g) ;; dwarf) CG_ARGS=(--call-graph dwarf) ;; *) die "--call-graph must be fp or dwarf" ;; esac
case "$DRIVER" in corelog-bench|kafka-perf) ;; *) die "--driver must be corelog-bench or kafka-perf" ;; esac

# perf record's sampling frequency, Hz: odd, so it does not beat with the broker's own timers.
PERF_FREQ_HZ=499
# The load runs this much longer than warm-up + perf window, so perf never sees its wind-down.
LOAD_TAIL_SECS=2
# How long topic creation may take before the load is declared stuck, in seconds.
TOPIC_READY_TIMEOUT_SECS=120
BROKER_START_TIMEOUT_SECS=60
BROKER_STOP_TIMEOUT_SECS=30
# Records per kafka-perf run: far more than it can send in the window; it is stopped afterwards.
KAFKA_PERF_RECORDS=1000000000

export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
command -v perf >/dev/null || die "perf not found: scripts/install-perf-tools.sh"
for tool in inferno-collapse-perf inferno-flamegraph; do
  command -v "$tool" >/dev/null || die "$tool not found: scripts/install-perf-tools.sh"
done

OUT="${OUT:-$ROOT/target/partition-scaling/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
mkdir -p "$ROOT/target"
WORK="$(mktemp -d "$ROOT/target/partition-scaling-work.XXXXXX")"
BROKER_PID=""
LOAD_PID=""

stop_pid() { # pid, seconds to wait after SIGTERM
  local pid="$1" i
  [[ -n "$pid" ]] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < $2 * 4; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  set +e
  stop_pid "$LOAD_PID" 5
  stop_pid "$BROKER_PID" "$BROKER_STOP_TIMEOUT_SECS"
  cp "$WORK/corelog.log" "$OUT/corelog.log" 2>/dev/null
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

log "building release binaries"
cargo build --release -q -p corelog-server -p corelog-bench

port_open "$PORT" && die "127.0.0.1:$PORT is already in use"
DATA="$WORK/data"
"$ROOT/target/release/corelog" serve --set "listeners=PLAINTEXT://127.0.0.1:$PORT" \
  --set "log.dirs=$DATA" --set "corelog.metrics.listener=" \
  </dev/null >"$WORK/corelog.log" 2>&1 &
BROKER_PID=$!
for ((i = 0; i < BROKER_START_TIMEOUT_SECS * 10; i++)); do
  kill -0 "$BROKER_PID" 2>/dev/null || { tail -n 20 "$WORK/corelog.log" >&2; die "corelog exited at start-up"; }
  port_open "$PORT" && break
  sleep 0.1
done
port_open "$PORT" || die "corelog did not accept connections within ${BROKER_START_TIMEOUT_SECS}s"
BOOTSTRAP="127.0.0.1:$PORT"
# perf record -p follows the threads that exist when it attaches (and their children), not the
# io_uring workers the kernel starts for the broker later. As root, sample the whole machine and
# keep the broker's samples (perf script --pid), so those threads are in the flame graphs too.
if [[ $(id -u) -eq 0 ]]; then RECORD_SCOPE=(-a); else RECORD_SCOPE=(-p "$BROKER_PID"); fi
log "corelog pid $BROKER_PID on $BOOTSTRAP; results in $OUT"

# All partition directories of a topic exist in the data dir: the topic is created and the load can
# start (for 1024 partitions creation takes a while, and it must not eat into the warm-up).
topic_ready() { # topic, partitions
  local n
  n=$(find "$DATA" -maxdepth 1 -type d -name "$1-*" 2>/dev/null | wc -l)
  [[ "$n" -ge "$2" ]]
}

printf 'partitions\tmib_per_sec\n' >"$WORK/rates.tsv"
IFS=',' read -r -a COUNTS <<<"$PARTITIONS"
for P in "${COUNTS[@]}"; do
  topic="scaling-$P-$(date +%s)"
  if [[ $DRIVER == corelog-bench ]]; then
    # corelog-bench creates the topic, then warms up for --warmup and measures --duration; perf
    # attaches once the topic exists plus the warm-up, so its window lies inside the measured one.
    "$ROOT/target/release/corelog-bench" run --bootstrap "$BOOTSTRAP" --topic "$topic" \
      --partitions "$P" --acks "$ACKS" --producers 1 --consumers 1 --no-progress \
      --warmup "${WARMUP_SECS}s" --duration "$((DURATION_SECS + LOAD_TAIL_SECS))s" \
      --broker-pid "$BROKER_PID" --json "$OUT/run-$P.json" >"$OUT/run-$P.txt" 2>&1 &
  else
    bash "$ROOT/scripts/kafka-tool.sh" TopicCommand --bootstrap-server "$BOOTSTRAP" --create \
      --topic "$topic" --partitions "$P" --replication-factor 1 >/dev/null
    bash "$ROOT/scripts/kafka-tool.sh" ProducerPerformance --topic "$topic" \
      --num-records "$KAFKA_PERF_RECORDS" --record-size 1024 --throughput -1 \
      --command-property "bootstrap.servers=$BOOTSTRAP" "acks=$ACKS" >"$OUT/run-$P.txt" 2>&1 &
  fi
  LOAD_PID=$!
  for ((i = 0; i < TOPIC_READY_TIMEOUT_SECS * 10; i++)); do
    topic_ready "$topic" "$P" && break
    kill -0 "$LOAD_PID" 2>/dev/null || { cat "$OUT/run-$P.txt" >&2; die "load for $P partitions exited early"; }
    sleep 0.1
  done
  topic_ready "$topic" "$P" || die "topic $topic not created within ${TOPIC_READY_TIMEOUT_SECS}s"
  sleep "$WARMUP_SECS"
  log "$P partitions: perf over ${DURATION_SECS}s"
  # The process's own user+system clock ticks (all threads, exited ones included) around the
  # window, beside perf's task-clock: perf counts the threads it attached to (and their children),
  # which can miss threads the kernel creates later, such as io_uring workers.
  awk '{print $14 + $15}' "/proc/$BROKER_PID/stat" >"$WORK/ticks-before-$P"
  perf stat -x, -e task-clock,context-switches,cpu-migrations,page-faults -p "$BROKER_PID" \
    -o "$OUT/perf-stat-$P.csv" -- sleep "$DURATION_SECS" &
  stat_pid=$!
  perf record -q -F "$PERF_FREQ_HZ" "${CG_ARGS[@]}" "${RECORD_SCOPE[@]}" -o "$WORK/perf-$P.data" \
    -- sleep "$DURATION_SECS" 2>"$WORK/perf-record-$P.err" ||
    { cat "$WORK/perf-record-$P.err" >&2; die "perf record failed"; }
  wait "$stat_pid" || die "perf stat failed"
  echo "$(($(awk '{print $14 + $15}' "/proc/$BROKER_PID/stat") - $(cat "$WORK/ticks-before-$P")))" \
    >"$OUT/proc-ticks-$P.txt"
  if [[ $DRIVER == corelog-bench ]]; then
    wait "$LOAD_PID" || { cat "$OUT/run-$P.txt" >&2; die "corelog-bench run failed"; }
    LOAD_PID=""
  else
    # It has far more records to send than the window needs, so it is stopped; its rate comes
    # from the progress lines it printed (one per 5 s).
    stop_pid "$LOAD_PID" 10
    LOAD_PID=""
  fi
  perf script -i "$WORK/perf-$P.data" --pid "$BROKER_PID" 2>/dev/null |
    inferno-collapse-perf >"$OUT/folded-$P.txt"
  inferno-flamegraph --title "corelog, $P partitions, acks=$ACKS ($DRIVER)" \
    <"$OUT/folded-$P.txt" >"$OUT/flame-$P.svg"
  rm -f "$WORK/perf-$P.data"
  log "$P partitions: $OUT/flame-$P.svg"
done

CLK_TCK="$(getconf CLK_TCK)"
export OUT DURATION_SECS DRIVER PARTITIONS CLK_TCK
python3 - <<'PY'
import json, os, re

out, driver = os.environ["OUT"], os.environ["DRIVER"]
window = float(os.environ["DURATION_SECS"])
counts = [int(p) for p in os.environ["PARTITIONS"].split(",")]

def perf_stat(path):
    # perf stat -x, lines: value,unit,event,run time,percentage[,...]; comments start with '#'.
    ev = {}
    for line in open(path):
        f = line.strip().split(",")
        if len(f) < 3 or line.startswith("#"):
            continue
        try:
            ev[f[2].split(":")[0]] = float(f[0])
        except ValueError:
            ev[f[2].split(":")[0]] = None  # "<not counted>" / "<not supported>"
    return ev

def mib_per_sec(p):
    if driver == "corelog-bench":
        runs = json.load(open(os.path.join(out, f"run-{p}.json")))
        run = runs[0] if isinstance(runs, list) else runs
        return run["produced"]["mib_per_sec"]
    # kafka-producer-perf-test progress lines: "... records/sec (X MB/sec) ..." every 5 s; the
    # first one includes the JVM's warm-up, so it is left out when there are others.
    rates = [float(m.group(1)) for m in
             re.finditer(r"records/sec \(([\d.]+) MB/sec\)", open(os.path.join(out, f"run-{p}.txt")).read())]
    if len(rates) > 1:
        rates = rates[1:]
    return sum(rates) / len(rates) if rates else None

rows = []
for p in counts:
    ev = perf_stat(os.path.join(out, f"perf-stat-{p}.csv"))
    mibs = mib_per_sec(p)
    cpu_s = ev.get("task-clock") / 1000.0 if ev.get("task-clock") is not None else None
    mib = mibs * window if mibs else None
    cs = ev.get("context-switches")
    ticks = int(open(os.path.join(out, f"proc-ticks-{p}.txt")).read().strip())
    proc_cpu_s = ticks / int(os.environ["CLK_TCK"])
    rows.append({
        "partitions": p,
        "mib_per_sec": mibs,
        "broker_cpu_secs": cpu_s,
        "broker_cpu_secs_proc": proc_cpu_s,
        "cpu_ms_per_mib": proc_cpu_s * 1000 / mib if mib else None,
        "cpu_us_per_partition_per_sec": proc_cpu_s * 1e6 / p / window,
        "context_switches_per_mib": cs / mib if cs is not None and mib else None,
        "cpu_migrations": ev.get("cpu-migrations"),
        "page_faults": ev.get("page-faults"),
    })

cols = list(rows[0].keys())
with open(os.path.join(out, "scaling.csv"), "w") as f:
    f.write(",".join(cols) + "\n")
    for r in rows:
        f.write(",".join("" if r[c] is None else (f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c])) for c in cols) + "\n")

def cellfmt(v, d):
    return "n/a" if v is None else (f"{v:.{d}f}" if isinstance(v, float) else str(v))
heads = ["partitions", "MiB/s", "broker CPU s (perf)", "broker CPU s (/proc)", "CPU ms / MiB",
         "CPU µs / partition / s", "ctx switches / MiB", "migrations", "page faults"]
digits = [0, 1, 2, 2, 2, 1, 1, 0, 0]
md = [f"corelog partition scaling: {window:.0f} s window per count, driver {driver}, "
      "MiB = record bytes produced, CPU per MiB / per partition from /proc/PID/stat\n",
      "| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
for r in rows:
    md.append("| " + " | ".join(cellfmt(r[c], d) for c, d in zip(cols, digits)) + " |")
open(os.path.join(out, "scaling.md"), "w").write("\n".join(md) + "\n")
print("\n".join(md))
PY
log "done: $OUT/scaling.md"
