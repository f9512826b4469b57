#!/usr/bin/env bash
# Measures this machine's own disk and loopback-network baselines.
#
# Every corelog benchmark note quotes these numbers beside its own, so a reader
# can tell "corelog is slow" from "this disk is slow": a durable append path can
# never beat fdatasync latency or the fdatasync-every-1MiB throughput measured
# here, and a produce/fetch path over TCP can never beat loopback iperf3.
#
# Usage: scripts/baseline.sh [--dir DIR] [--out FILE] [--quick]
#   --dir DIR   where fio writes its test files (a fresh temp dir is made inside
#               DIR and removed afterwards). Default: target/baseline/ in the
#               repo, i.e. the same filesystem a corelog data dir there would use.
#   --out FILE  JSON result file. Default: target/baseline/baseline.json.
#   --quick     ~10 s instead of ~20-60 s (disk dependent): smaller files,
#               shorter runs.
#
# Needs fio, iperf3 and python3 (scripts/install-tools.sh installs them).
set -euo pipefail

usage() {
  sed -n '/^# Usage:/,/^# Needs/p' "$0" | sed 's/^# \{0,1\}//'
}

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BASE_DIR="$ROOT/target/baseline"
OUT="$BASE_DIR/baseline.json"
QUICK=0
MODE=full

while [[ $# -gt 0 ]]; do
  case "$1" in
    --dir) BASE_DIR="${2:?--dir needs a value}"; shift 2 ;;
    --out) OUT="${2:?--out needs a value}"; shift 2 ;;
    --quick) QUICK=1; MODE=quick; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "baseline: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done

for cmd in fio iperf3 python3; do
  if ! command -v "$cmd" >/dev/null 2>&1; then
    echo "baseline: '$cmd' not found; run scripts/install-tools.sh" >&2
    exit 1
  fi
done

# Sizes and durations. Every fio job is bounded by both size and runtime, so a
# very slow disk cannot make the script run for minutes.
if [[ $QUICK -eq 1 ]]; then
  SEQ_SIZE=256m; SEQ_RUNTIME=5
  SYNC_RUNTIME=2
  GC_SIZE=256m; GC_RUNTIME=2
  IPERF_SECS=2
else
  SEQ_SIZE=1g; SEQ_RUNTIME=15
  SYNC_RUNTIME=8
  GC_SIZE=1g; GC_RUNTIME=10
  IPERF_SECS=5
fi

mkdir -p "$BASE_DIR" "$(dirname "$OUT")"
# A private temp dir inside BASE_DIR: we only ever delete what we created,
# even if --dir points at a directory holding other data.
WORK="$(mktemp -d "$BASE_DIR/run.XXXXXX")"
RESULTS="$(mktemp -d)"   # fio/iperf3 JSON outputs; not on the disk under test
IPERF_PID=""

cleanup() {
  if [[ -n "$IPERF_PID" ]]; then
    kill "$IPERF_PID" 2>/dev/null || true
    wait "$IPERF_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK" "$RESULTS"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# io_uring is what corelog's I/O path targets, but some sandboxes disable it
# (kernel.io_uring_disabled, seccomp). Probe with a tiny job and fall back to
# psync so the script still produces numbers; the engine used is recorded.
ENGINE=io_uring
if ! fio --name=probe --directory="$WORK" --ioengine=io_uring --rw=write \
     --bs=4k --size=64k --unlink=1 --output=/dev/null >/dev/null 2>&1; then
  ENGINE=psync
  echo "baseline: io_uring unavailable, falling back to ioengine=psync" >&2
fi

# run_fio NAME [fio options...]: runs one job in $WORK, JSON to $RESULTS/NAME.json.
# Common choices, and why:
#   direct=0          buffered, like corelog's write path (page cache + fdatasync)
#   fallocate=none    the file grows by appends, as a log segment does, so each
#                     fdatasync also has to persist the new file size
#   unlink=1          delete the test file as soon as the job ends (disk space)
run_fio() {
  local name="$1"; shift
  if ! fio --name="$name" --directory="$WORK" --direct=0 --fallocate=none \
       --unlink=1 --output-format=json --output="$RESULTS/$name.json" "$@" \
       2>"$RESULTS/$name.err"; then
    echo "baseline: fio job '$name' failed:" >&2
    cat "$RESULTS/$name.err" >&2
    exit 1
  fi
}

echo "baseline: fio in $WORK (engine $ENGINE, $MODE)" >&2

# 1. Sequential buffered write. end_fsync=1 makes fio fsync before it stops the
#    clock, so the number is "bytes on disk per second", not "bytes copied into
#    the page cache per second".
echo "baseline: [1/5] sequential buffered write, bs=64k" >&2
run_fio seq64k --ioengine="$ENGINE" --rw=write --bs=64k --size="$SEQ_SIZE" \
  --runtime="$SEQ_RUNTIME" --end_fsync=1
echo "baseline: [2/5] sequential buffered write, bs=1M" >&2
run_fio seq1m --ioengine="$ENGINE" --rw=write --bs=1M --size="$SEQ_SIZE" \
  --runtime="$SEQ_RUNTIME" --end_fsync=1

# 2. fdatasync after every 4 KiB write: the cost of one durable commit, i.e.
#    the floor for a per-request acks=all/fsync latency. ioengine=sync so the
#    fdatasync is a plain syscall fio can time on its own (JSON "sync" section).
#    Bounded by size (16k ios) and runtime, whichever comes first.
echo "baseline: [3/5] 4k write + fdatasync latency" >&2
run_fio fdatasync --ioengine=sync --rw=write --bs=4k --size=64m \
  --fdatasync=1 --runtime="$SYNC_RUNTIME"

# 3. Group-commit-like pattern: 64 KiB writes, fdatasync every 16 writes
#    (1 MiB). The fair throughput ceiling for a durable append path.
echo "baseline: [4/5] 64k writes + fdatasync every 16 (1 MiB)" >&2
run_fio fdatasync16 --ioengine="$ENGINE" --rw=write --bs=64k --size="$GC_SIZE" \
  --fdatasync=16 --end_fsync=1 --runtime="$GC_RUNTIME"

# 4. iperf3 over loopback only (127.0.0.1): the ceiling for the TCP path on
#    this machine. The server is one-off (-1) so it exits after our client.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

echo "baseline: [5/5] iperf3 loopback, ${IPERF_SECS}s" >&2
iperf_ok=0
# A free port can be taken between probing and binding; try a few ports.
for _attempt in 1 2 3; do
  PORT="$(free_port)"
  iperf3 -s -1 -B 127.0.0.1 -p "$PORT" >"$RESULTS/iperf3-server.log" 2>&1 &
  IPERF_PID=$!
  # Poll the client until the server accepts: a refused connect returns at
  # once and does not consume the one-off server. Stop if the server died.
  for _try in $(seq 1 50); do
    if iperf3 -c 127.0.0.1 -p "$PORT" -t "$IPERF_SECS" -J \
         >"$RESULTS/iperf3.json" 2>"$RESULTS/iperf3.err"; then
      iperf_ok=1
      break
    fi
    kill -0 "$IPERF_PID" 2>/dev/null || break
    sleep 0.1
  done
  wait "$IPERF_PID" 2>/dev/null || true
  IPERF_PID=""
  if [[ $iperf_ok -eq 1 ]]; then
    break
  fi
done
if [[ $iperf_ok -ne 1 ]]; then
  echo "baseline: iperf3 loopback failed:" >&2
  cat "$RESULTS/iperf3.err" "$RESULTS/iperf3-server.log" >&2 || true
  exit 1
fi

# Parse everything in python3 (no jq dependency), write the JSON, print the
# summary. Values are passed via the environment to avoid quoting trouble.
# df -T names ext4 as "ext4" (stat -f only knows "ext2/ext3").
FS_TYPE="$(df -PT "$WORK" 2>/dev/null | awk 'NR==2 {print $2}')"
FS_SOURCE="$(df -PT "$WORK" 2>/dev/null | awk 'NR==2 {print $1}')"
export RESULTS OUT ENGINE QUICK FS_TYPE FS_SOURCE BASE_DIR
export SEQ_SIZE GC_SIZE SYNC_RUNTIME IPERF_SECS
python3 - <<'PY'
import datetime, json, os, platform

res = os.environ["RESULTS"]

def job(name):
    with open(os.path.join(res, name + ".json")) as f:
        return json.load(f)["jobs"][0]

def mib_s(name):
    # fio's bw_bytes is io_bytes / runtime, and runtime includes end_fsync.
    return round(job(name)["write"]["bw_bytes"] / 2**20, 1)

sync_job = job("fdatasync")
lat = sync_job["sync"]["lat_ns"]            # fio >= 3.x: per-fdatasync latency
pct = lat.get("percentile", {})
def pct_us(p):
    v = pct.get("%.6f" % p)
    return round(v / 1000, 1) if v is not None else None
w = sync_job["write"]
# writes/s including the fdatasync time: completed writes over job runtime.
sync_iops = round(w["total_ios"] / (w["runtime"] / 1000), 1) if w["runtime"] else None

with open(os.path.join(res, "iperf3.json")) as f:
    ip = json.load(f)
end = ip["end"]
bps = end.get("sum_received", end.get("sum_sent"))["bits_per_second"]

def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None

def mem_gib():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None

out = {
    "fio_seq_write_buffered_mib_s": mib_s("seq64k"),
    "fio_seq_write_buffered_1m_mib_s": mib_s("seq1m"),
    "fio_seq_write_fdatasync16_mib_s": mib_s("fdatasync16"),
    "fio_fdatasync_p50_us": pct_us(50),
    "fio_fdatasync_p99_us": pct_us(99),
    "fio_fdatasync_mean_us": round(lat["mean"] / 1000, 1),
    "fio_fdatasync_count": lat.get("N"),
    "fio_fdatasync_iops": sync_iops,
    "iperf3_loopback_gbit_s": round(bps / 1e9, 2),
    "fio_ioengine": os.environ["ENGINE"],
    "fio_version": json.load(open(os.path.join(res, "seq64k.json")))["fio version"],
    "iperf3_version": ip.get("start", {}).get("version"),
    "filesystem": os.environ["FS_TYPE"] or None,
    "block_device": os.environ["FS_SOURCE"] or None,
    "dir": os.path.abspath(os.environ["BASE_DIR"]),
    "quick": os.environ["QUICK"] == "1",
    "kernel": platform.release(),
    "cpus": os.cpu_count(),
    "cpu_model": cpu_model(),
    "mem_gib": mem_gib(),
    "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
}
with open(os.environ["OUT"], "w") as f:
    json.dump(out, f, indent=2)
    f.write("\n")

o = out
print(f"""== machine baseline ({'quick' if o['quick'] else 'full'}, {o['timestamp']}) ==
host:      kernel {o['kernel']}, {o['cpus']} cpus ({o['cpu_model']}), {o['mem_gib']} GiB RAM
disk:      {o['filesystem']} on {o['block_device']}, fio {o['fio_version']} ({o['fio_ioengine']})
seq write (buffered + end fsync):  64k {o['fio_seq_write_buffered_mib_s']} MiB/s, 1M {o['fio_seq_write_buffered_1m_mib_s']} MiB/s
seq write 64k, fdatasync every 1 MiB: {o['fio_seq_write_fdatasync16_mib_s']} MiB/s
4k write + fdatasync: p50 {o['fio_fdatasync_p50_us']} us, p99 {o['fio_fdatasync_p99_us']} us, {o['fio_fdatasync_iops']} writes/s (n={o['fio_fdatasync_count']})
iperf3 loopback (1 stream):        {o['iperf3_loopback_gbit_s']} Gbit/s
json:      {os.environ['OUT']}""")
PY
