#!/usr/bin/env bash
# Installs what perf/partition-scaling.sh needs to turn `perf record` samples into flame graphs:
# inferno (inferno-collapse-perf, inferno-flamegraph), a Rust port of Brendan Gregg's FlameGraph
# scripts, installed with cargo into the user's cargo bin; and checks that `perf` itself is there.
#
# Usage: scripts/install-perf-tools.sh [--check]
#   --check   install nothing; exit 1 if a tool is missing
#
# perf comes from the distribution (Debian: linux-perf); it is installed with apt-get only when
# missing and this runs as root, otherwise the script says what to install. Idempotent: a tool
# already on PATH (or in ~/.cargo/bin) is left alone.
set -euo pipefail

usage() { sed -n '/^# Usage:/,/^# perf comes/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

CHECK_ONLY=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --check) CHECK_ONLY=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install-perf-tools: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done

CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
export PATH="$CARGO_BIN:$PATH"
missing=0

if command -v inferno-flamegraph >/dev/null 2>&1 && command -v inferno-collapse-perf >/dev/null 2>&1; then
  echo "install-perf-tools: inferno present ($(command -v inferno-flamegraph))"
elif [[ $CHECK_ONLY -eq 1 ]]; then
  echo "install-perf-tools: inferno missing" >&2; missing=1
else
  command -v cargo >/dev/null 2>&1 || { echo "install-perf-tools: cargo not found" >&2; exit 1; }
  echo "install-perf-tools: cargo install inferno --locked (into $CARGO_BIN)"
  cargo install inferno --locked --quiet
fi

if command -v perf >/dev/null 2>&1; then
  echo "install-perf-tools: perf present ($(command -v perf))"
elif [[ $CHECK_ONLY -eq 1 ]]; then
  echo "install-perf-tools: perf missing" >&2; missing=1
elif [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo "install-perf-tools: apt-get install linux-perf"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q linux-perf >/dev/null ||
    { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q linux-perf >/dev/null; }
else
  echo "install-perf-tools: perf missing: install linux-perf (Debian) or linux-tools-\$(uname -r) (Ubuntu) as root" >&2
  exit 1
fi

# perf attaching to another process (-p PID) needs ptrace rights over it and, as non-root, a
# perf_event_paranoid of at most 1.
if [[ $(id -u) -ne 0 ]]; then
  paranoid="$(cat /proc/sys/kernel/perf_event_paranoid 2>/dev/null || echo '?')"
  if [[ "$paranoid" != "?" && "$paranoid" -gt 1 ]]; then
    echo "install-perf-tools: kernel.perf_event_paranoid=$paranoid: perf -p needs <= 1 (sysctl -w kernel.perf_event_paranoid=1 as root)" >&2
  fi
fi
exit "$missing"
