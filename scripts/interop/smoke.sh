#!/usr/bin/env bash
# The interop smoke test: the three independent clients against one broker.
# Written against the reference Apache Kafka first (so the test itself is known
# right), then pointed at corelog with --bootstrap.
#
#   (a) Kafka's own kafka-topics: the seed's command (create with
#       --config unclean.leader.election.enable=false), describe shows the
#       config, alter to 3 partitions, delete;
#   (b) kcat (librdkafka): keyed produce, consume back exactly, metadata;
#   (c) confluent-kafka (Python): acks=all exact round trip (roundtrip.py).
#
# Usage: scripts/interop/smoke.sh [--bootstrap HOST:PORT]
#   Without --bootstrap it starts the reference broker on a private port and
#   data dir (scripts/kafka-reference.sh) and stops it again on exit.
# Prints one line per check and "N passed, N failed"; exits non-zero if any failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BOOTSTRAP=""
case "${1:-}" in
  --bootstrap) BOOTSTRAP="${2:?--bootstrap needs HOST:PORT}" ;;
  "") ;;
  *) sed -n '/^# Usage:/,/^# Prints/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac

"$ROOT/scripts/install-interop.sh" --quiet

REF_DIR=""
cleanup() {
  if [[ -n "$REF_DIR" ]]; then
    "$ROOT/scripts/kafka-reference.sh" stop --port "$REF_PORT" --dir "$REF_DIR" >/dev/null || true
    rm -rf "$REF_DIR"
  fi
}
trap cleanup EXIT
if [[ -z "$BOOTSTRAP" ]]; then
  # Its own port and a throwaway dir: never collides with a reference broker
  # someone left running on the default port, and always starts empty.
  REF_PORT=19192
  REF_DIR="$(mktemp -d "${TMPDIR:-/tmp}/corelog-smoke.XXXXXX")"
  "$ROOT/scripts/kafka-reference.sh" start --port "$REF_PORT" --dir "$REF_DIR"
  BOOTSTRAP="127.0.0.1:$REF_PORT"
fi

# A broker that is not there fails every check, each only after its client's
# timeout; say so at once instead.
host="${BOOTSTRAP%:*}"; port="${BOOTSTRAP##*:}"
if ! (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
  echo "smoke: nothing listens on $BOOTSTRAP" >&2
  echo "0 passed, 1 failed"
  exit 1
fi

# Unique names per run, so re-runs against a long-lived broker do not see
# each other's data.
RUN="$(date +%s)-$$"
TOOL="$ROOT/scripts/kafka-tool.sh"
PY="$ROOT/.cache/venv/bin/python"
passed=0; failed=0
check() {  # check NAME COMMAND... : runs it, output to a temp file, shown on failure
  local name="$1"; shift
  local out; out="$(mktemp)"
  if "$@" >"$out" 2>&1; then
    echo "ok   $name"; passed=$((passed + 1))
  else
    echo "FAIL $name"; sed 's/^/     | /' "$out" | tail -n 12; failed=$((failed + 1))
  fi
  rm -f "$out"
}

T="smoke-topic-$RUN"
# Every client call is bounded: against a broker that is down or wedged, a
# client would otherwise retry for minutes (kcat's default message timeout
# is 300 s) and the smoke test would hang instead of failing.
LIMIT=(timeout 60)
topics() { "${LIMIT[@]}" "$TOOL" TopicCommand --bootstrap-server "$BOOTSTRAP" "$@"; }
describe_has() { topics --describe --topic "$T" | grep -q "$1"; }
check "kafka-topics create --config unclean.leader.election.enable=false" \
  topics --create --topic "$T" --config unclean.leader.election.enable=false
check "kafka-topics describe shows the config" describe_has "unclean.leader.election.enable=false"
check "kafka-topics alter --partitions 3" topics --alter --topic "$T" --partitions 3
check "kafka-topics describe shows 3 partitions" describe_has "PartitionCount: 3"
check "kafka-topics delete" topics --delete --topic "$T"
gone() {  # deletion completes asynchronously; allow it a few seconds
  local _ list
  for _ in $(seq 1 20); do
    list="$(topics --list)" || return 1   # a failed --list proves nothing
    grep -qx "$T" <<<"$list" || return 0
    sleep 0.5
  done
  return 1
}
check "deleted topic is gone from --list" gone

K="smoke-kcat-$RUN"
EXPECT=$'k1:v1\nk2:v2\nk3:hello world\nk1:v4'
kcat_produce() { printf '%s\n' "$EXPECT" | "${LIMIT[@]}" kcat -P -b "$BOOTSTRAP" -t "$K" -K: -X acks=all -X message.timeout.ms=30000; }
kcat_consume() { [[ "$("${LIMIT[@]}" kcat -C -b "$BOOTSTRAP" -t "$K" -e -q -f '%k:%s\n')" == "$EXPECT" ]]; }
check "kcat keyed produce" kcat_produce
check "kcat consume back exactly" kcat_consume
check "kcat -L lists the topic" bash -c "timeout 60 kcat -L -b '$BOOTSTRAP' -t '$K' | grep -q 'topic \"$K\"'"

check "confluent-kafka acks=all round trip" "${LIMIT[@]}" "$PY" "$ROOT/scripts/interop/python/roundtrip.py" \
  "$BOOTSTRAP" "smoke-py-$RUN"

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
