#!/usr/bin/env bash
# Does the log cleaner cost appends and fetches their latency? The same fixed-rate latency
# workload (producers + consumers on a topic of its own) runs while overwrites keep coming to a
# compacted topic, once with the cleaner on and once with log.cleaner.enable=false, on a fresh
# corelog each time, alternating which goes first, RUNS times each; a table of medians follows.
#
# Usage: perf/compaction-latency.sh [--runs N] [--port P] [--out DIR] [--duration D]
#                                   [--rate R] [--overwrite-rate R] [--fill-records N]
#                                   [--key-count K] [--segment-bytes B] [--no-baseline]
#                                   [--set KEY=VALUE]...
#   --runs N            runs per mode (default 3; at least 3 for a meaningful median)
#   --port P            corelog's port (default 19420)
#   --out DIR           results (default target/compaction-latency/<UTC timestamp>)
#   --duration D        measured window of the latency workload, seconds (default 20)
#   --rate R            the latency workload's records/s, 1 KiB each (default 5000)
#   --overwrite-rate R  records/s to the compacted topic during the window (default 5000)
#   --fill-records N    records written to the compacted topic before the window (default 200000)
#   --key-count K       distinct keys of the compacted topic (default 2000: ~2 MiB live data)
#   --segment-bytes B   segment.bytes of the compacted topic (default 4194304)
#   --no-baseline       skip scripts/baseline.sh (fio, iperf3)
#   --set KEY=VALUE     an extra broker setting for both modes (repeatable), e.g.
#                       --set log.cleaner.io.max.bytes.per.second=20971520
#
# Each run and mode: start corelog (empty data dir, log.cleaner.backoff.ms=100, cleaner on or
# off); fill the compacted topic (cleanup.policy=compact, small segments, uniform keys) so the
# cleaner has work; then, while corelog-bench overwrites the same keys at --overwrite-rate,
# measure the latency workload (corelog-bench run --rate, 1 producer, 1 consumer, acks=all) and
# the broker's CPU; `du` the compacted topic's partition dirs after the fill and at the end, and
# count the cleaner's "compacted" log lines during the window.
#
# Prints (and writes to DIR/summary.md) per mode the medians over the runs: produce and
# end-to-end latency p50/p99/p99.9 (ms), broker CPU (cores), the compacted topic's bytes on disk
# after the fill and at the end, and the cleanings seen in the window. Exits 3, loudly, if the
# cleaner-on runs did not shrink the compacted topic below the cleaner-off runs: then the
# "with compaction" numbers measured nothing.
#
# Needs: cargo, python3; fio and iperf3 for the baseline (scripts/install-tools.sh).
set -euo pipefail

usage() { sed -n '/^# Usage:/,/^# Needs:/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

RUNS=3
PORT=19420
OUT=""
DURATION_SECS=20
RATE=5000
OVERWRITE_RATE=5000
FILL_RECORDS=200000
KEY_COUNT=2000
SEGMENT_BYTES=4194304
BASELINE=1
EXTRA_SETTINGS=()

num() { [[ "${2%s}" =~ ^[1-9][0-9]*$ ]] || { echo "compaction-latency: $1 needs a positive whole number, not $2" >&2; exit 2; }; echo "${2%s}"; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --runs) RUNS="$(num "$1" "${2:-}")"; shift 2 ;;
    --port) PORT="$(num "$1" "${2:-}")"; shift 2 ;;
    --out) OUT="${2:?--out needs a value}"; shift 2 ;;
    --duration) DURATION_SECS="$(num "$1" "${2:-}")"; shift 2 ;;
    --rate) RATE="$(num "$1" "${2:-}")"; shift 2 ;;
    --overwrite-rate) OVERWRITE_RATE="$(num "$1" "${2:-}")"; shift 2 ;;
    --fill-records) FILL_RECORDS="$(num "$1" "${2:-}")"; shift 2 ;;
    --key-count) KEY_COUNT="$(num "$1" "${2:-}")"; shift 2 ;;
    --segment-bytes) SEGMENT_BYTES="$(num "$1" "${2:-}")"; shift 2 ;;
    --no-baseline) BASELINE=0; shift ;;
    --set)
      [[ "${2:-}" == ?*=* ]] || { echo "compaction-latency: --set needs KEY=VALUE" >&2; exit 2; }
      EXTRA_SETTINGS+=("$2"); shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "compaction-latency: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done

log() { echo "compaction-latency: $*" >&2; }
die() { echo "compaction-latency: error: $*" >&2; exit 1; }

[[ "$PORT" -ge 1024 && "$PORT" -lt 65536 ]] || die "bad --port: $PORT"

# The cleaner looks for work this often when it found none, ms (Kafka's default is 15 s).
CLEANER_BACKOFF_MS=100
RECORD_BYTES=1024
PARTITIONS=4
WARMUP_SECS=3
# The overwrite load starts this long before the latency workload and runs this long after it.
OVERWRITE_MARGIN_SECS=2
BROKER_START_TIMEOUT_SECS=60
BROKER_STOP_TIMEOUT_SECS=30
# The cleaner-on runs must end with at most this share of the cleaner-off runs' bytes on disk.
MAX_SHRUNK_SHARE=0.8
COMPACTED_TOPIC=compacted
LATENCY_TOPIC=latency

OUT="${OUT:-$ROOT/target/compaction-latency/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
mkdir -p "$ROOT/target"
WORK="$(mktemp -d "$ROOT/target/compaction-latency-work.XXXXXX")"
BROKER_PID=""
OVERWRITE_PID=""

stop_pid() { # pid, seconds to wait after SIGTERM
  local pid="$1" i
  [[ -n "$pid" ]] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < $2 * 10; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  set +e
  stop_pid "$OVERWRITE_PID" 5
  stop_pid "$BROKER_PID" "$BROKER_STOP_TIMEOUT_SECS"
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

log "building release binaries"
cargo build --release -q -p corelog-server -p corelog-bench
BENCH="$ROOT/target/release/corelog-bench"
BOOTSTRAP="127.0.0.1:$PORT"

if [[ $BASELINE -eq 1 ]]; then
  log "machine baseline (scripts/baseline.sh --quick)"
  bash "$ROOT/scripts/baseline.sh" --quick --out "$OUT/baseline.json" | tee "$OUT/baseline.txt" >&2
fi

start_broker() { # mode (on|off), log file
  local enable=true
  [[ "$1" == off ]] && enable=false
  port_open "$PORT" && die "127.0.0.1:$PORT is already in use"
  rm -rf "$WORK/data"
  local settings=(--set "listeners=PLAINTEXT://$BOOTSTRAP" --set "log.dirs=$WORK/data"
    --set "corelog.metrics.listener=" --set "log.cleaner.enable=$enable"
    --set "log.cleaner.backoff.ms=$CLEANER_BACKOFF_MS")
  local s
  for s in "${EXTRA_SETTINGS[@]}"; do settings+=(--set "$s"); done
  "$ROOT/target/release/corelog" serve "${settings[@]}" </dev/null >"$2" 2>&1 &
  BROKER_PID=$!
  local i
  for ((i = 0; i < BROKER_START_TIMEOUT_SECS * 10; i++)); do
    kill -0 "$BROKER_PID" 2>/dev/null || { tail -n 20 "$2" >&2; die "corelog exited at start-up"; }
    port_open "$PORT" && return 0
    sleep 0.1
  done
  die "corelog did not accept connections within ${BROKER_START_TIMEOUT_SECS}s"
}

# Bytes on disk of the compacted topic's partition directories.
compacted_bytes() {
  du -sb "$WORK/data/$COMPACTED_TOPIC"-* 2>/dev/null | awk '{s += $1} END {print s + 0}'
}

# The cleaner's "compacted" lines (server/src/cleanup/compaction.rs) in a broker log so far; the
# log may be coloured.
cleanings() {
  sed 's/\x1b\[[0-9;]*m//g' "$1" 2>/dev/null | grep -c 'cleanup::compaction: compacted ' || true
}

# The bench's settings for the compacted topic (creation and every write to it).
compacted_args=(--bootstrap "$BOOTSTRAP" --topic "$COMPACTED_TOPIC" --partitions "$PARTITIONS"
  --topic-config cleanup.policy=compact --topic-config "segment.bytes=$SEGMENT_BYTES"
  --keys uniform --key-count "$KEY_COUNT" --message-bytes "$RECORD_BYTES" --acks 1
  --producers 1 --consumers 0 --no-progress)

one() { # run number, mode
  local run="$1" mode="$2" tag="run$1-$2"
  local blog="$OUT/corelog-$tag.log"
  log "run $run, cleaner $mode: fresh corelog"
  start_broker "$mode" "$blog"
  "$BENCH" run "${compacted_args[@]}" --messages "$FILL_RECORDS" --warmup 0s \
    --duration 600s >"$OUT/fill-$tag.txt" 2>&1 || { cat "$OUT/fill-$tag.txt" >&2; die "fill failed"; }
  local filled
  filled=$(compacted_bytes)
  log "run $run, cleaner $mode: filled, $filled bytes on disk; overwrites at ${OVERWRITE_RATE}/s"
  "$BENCH" run "${compacted_args[@]}" --rate "$OVERWRITE_RATE" --warmup 0s \
    --duration "$((WARMUP_SECS + DURATION_SECS + 2 * OVERWRITE_MARGIN_SECS))s" \
    >"$OUT/overwrite-$tag.txt" 2>&1 &
  OVERWRITE_PID=$!
  sleep "$OVERWRITE_MARGIN_SECS"
  local cleaned_before cleaned_after
  cleaned_before=$(cleanings "$blog")
  "$BENCH" run --bootstrap "$BOOTSTRAP" --topic "$LATENCY_TOPIC" --partitions "$PARTITIONS" \
    --message-bytes "$RECORD_BYTES" --acks all --producers 1 --consumers 1 --rate "$RATE" \
    --warmup "${WARMUP_SECS}s" --duration "${DURATION_SECS}s" --broker-pid "$BROKER_PID" \
    --no-progress --json "$OUT/latency-$tag.json" >"$OUT/latency-$tag.txt" 2>&1 ||
    { cat "$OUT/latency-$tag.txt" >&2; die "latency workload failed"; }
  cleaned_after=$(cleanings "$blog")
  wait "$OVERWRITE_PID" || { cat "$OUT/overwrite-$tag.txt" >&2; die "overwrite load failed"; }
  OVERWRITE_PID=""
  local final
  final=$(compacted_bytes)
  stop_pid "$BROKER_PID" "$BROKER_STOP_TIMEOUT_SECS"
  BROKER_PID=""
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$run" "$mode" "$filled" "$final" \
    "$((cleaned_after - cleaned_before))" "$(cleanings "$blog")" >>"$OUT/disk.tsv"
  log "run $run, cleaner $mode: $final bytes on disk at the end; $((cleaned_after - cleaned_before)) cleanings in the window"
}

printf 'run\tmode\tbytes_after_fill\tbytes_at_end\tcleanings_in_window\tcleanings_total\n' >"$OUT/disk.tsv"
for ((run = 1; run <= RUNS; run++)); do
  if ((run % 2 == 1)); then order=(on off); else order=(off on); fi
  for mode in "${order[@]}"; do one "$run" "$mode"; done
done

export OUT RUNS DURATION_SECS RATE OVERWRITE_RATE FILL_RECORDS KEY_COUNT SEGMENT_BYTES MAX_SHRUNK_SHARE
python3 - <<'PY'
import csv, json, os, statistics, sys

out = os.environ["OUT"]
runs = int(os.environ["RUNS"])
share = float(os.environ["MAX_SHRUNK_SHARE"])

def result(tag):
    r = json.load(open(os.path.join(out, f"latency-{tag}.json")))
    return r[0] if isinstance(r, list) else r

disk = {(int(row["run"]), row["mode"]): row
        for row in csv.DictReader(open(os.path.join(out, "disk.tsv")), delimiter="\t")}
metrics = [
    ("produce p50 ms", lambda r: r["produce_latency"]["p50_us"] / 1000),
    ("produce p99 ms", lambda r: r["produce_latency"]["p99_us"] / 1000),
    ("produce p99.9 ms", lambda r: r["produce_latency"]["p999_us"] / 1000),
    ("e2e p50 ms", lambda r: r["end_to_end_latency"]["p50_us"] / 1000),
    ("e2e p99 ms", lambda r: r["end_to_end_latency"]["p99_us"] / 1000),
    ("e2e p99.9 ms", lambda r: r["end_to_end_latency"]["p999_us"] / 1000),
    ("produced msgs/s", lambda r: r["produced"]["msgs_per_sec"]),
    ("broker CPU cores", lambda r: (r.get("broker_cpu") or {}).get("cores", float("nan"))),
]
disk_metrics = [
    ("compacted MiB after fill", lambda d: int(d["bytes_after_fill"]) / 2**20),
    ("compacted MiB at end", lambda d: int(d["bytes_at_end"]) / 2**20),
    ("cleanings in window", lambda d: int(d["cleanings_in_window"])),
    ("cleanings in run", lambda d: int(d["cleanings_total"])),
]
med = {}
for mode in ("on", "off"):
    rs = [result(f"run{i}-{mode}") for i in range(1, runs + 1)]
    ds = [disk[(i, mode)] for i in range(1, runs + 1)]
    med[mode] = {name: statistics.median(f(r) for r in rs) for name, f in metrics}
    med[mode].update({name: statistics.median(f(d) for d in ds) for name, f in disk_metrics})
    med[mode]["_all"] = {name: [round(f(r), 2) for r in rs] for name, f in metrics}
    med[mode]["_all"].update({name: [round(f(d), 2) for d in ds] for name, f in disk_metrics})

names = [n for n, _ in metrics] + [n for n, _ in disk_metrics]
lines = [
    f"corelog latency with and without the log cleaner: medians of {runs} runs per mode "
    f"(alternating order, fresh broker each). Latency workload: {os.environ['RATE']} records/s "
    f"of 1 KiB, acks=all, 1 producer + 1 consumer, {os.environ['DURATION_SECS']} s window; "
    f"meanwhile {os.environ['OVERWRITE_RATE']} overwrites/s to a compacted topic of "
    f"{os.environ['KEY_COUNT']} keys (filled with {os.environ['FILL_RECORDS']} records, "
    f"segment.bytes={os.environ['SEGMENT_BYTES']}).",
    "",
    "| metric | cleaner on | cleaner off | on / off | runs (on) | runs (off) |",
    "|---|---|---|---|---|---|",
]
for n in names:
    on, off = med["on"][n], med["off"][n]
    ratio = f"{on / off:.2f}" if off else "n/a"
    lines.append(f"| {n} | {on:.2f} | {off:.2f} | {ratio} | {med['on']['_all'][n]} | {med['off']['_all'][n]} |")
on_end, off_end = med["on"]["compacted MiB at end"], med["off"]["compacted MiB at end"]
ok = off_end > 0 and on_end <= share * off_end and med["on"]["cleanings in run"] > 0
lines.append("")
if ok:
    lines.append(f"The cleaner ran: the compacted topic ended at {on_end:.1f} MiB with it against "
                 f"{off_end:.1f} MiB without ({on_end / off_end:.0%}).")
else:
    lines += [
        "!" * 78,
        "!!! THE CLEANER DID NOT SHRINK THE COMPACTED TOPIC: "
        f"{on_end:.1f} MiB with it, {off_end:.1f} MiB without,",
        f"!!! {med['on']['cleanings in run']:.0f} cleanings logged per run (median). "
        "The 'cleaner on' column measured no compaction at all.",
        "!" * 78,
    ]
text = "\n".join(lines) + "\n"
open(os.path.join(out, "summary.md"), "w").write(text)
print(text)
sys.exit(0 if ok else 3)
PY
