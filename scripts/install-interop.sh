#!/usr/bin/env bash
# Installs the independent Kafka clients that corelog's interop tests use, and
# the jars of the reference Apache Kafka broker (scripts/kafka-reference.sh).
# "Real clients are the judge of compatibility" (shared/DESIGN.md), so these are
# three unrelated implementations of the Kafka protocol:
#
#   kcat          librdkafka's command-line client (Debian package kcat)
#   kafka-tools   the Apache Kafka 4.x Java client and Kafka's own command-line
#                 tools (kafka-topics, kafka-consumer-groups, kafka-configs, the
#                 console producer/consumer, ...) as jars in
#                 .cache/kafka-tools/lib, run through scripts/kafka-tool.sh
#   kafka-broker  the Apache Kafka 4.x broker jars in .cache/kafka-broker/lib
#   kafkajs       the Node client, in .cache/node (scripts/interop/install-node.sh)
#   confluent-kafka  the Python client (bundles its own librdkafka in the
#                 wheel) in the venv .cache/venv, away from the system Python
#   kafka-python, aiokafka  two pure-Python implementations of the protocol
#                 (aiokafka on asyncio), in the same venv
#
# Versions are pinned in scripts/interop/kafka-tools/pom.xml,
# scripts/interop/kafka-broker/pom.xml and the *_VERSION variables below.
#
# Idempotent; when everything is in place it touches neither apt, Maven nor
# pip and finishes in well under a second, so test scripts may call it on
# every run.
#
# Usage: scripts/install-interop.sh [--quiet]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/interop/common.sh
source "$ROOT/scripts/interop/common.sh"

# Pinned: the newest release on PyPI when this was written. Its wheel ships
# librdkafka, so no system librdkafka is needed.
CONFLUENT_KAFKA_VERSION=2.16.1
# Pinned likewise: pure-Python clients, independent of librdkafka.
KAFKA_PYTHON_VERSION=3.0.12
AIOKAFKA_VERSION=0.14.0
VENV="$CACHE/venv"

QUIET=0
case "${1:-}" in
  --quiet) QUIET=1 ;;
  "") ;;
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument: $1" ;;
esac

# --- kcat -------------------------------------------------------------------
# Debian 12 has kcat 1.7.1 (librdkafka1 2.0.x from Debian): an older librdkafka
# than the one inside confluent-kafka, which is useful in itself: two client
# generations instead of one.
if ! command -v kcat >/dev/null 2>&1; then
  log "installing kcat (apt)"
  apt_install kcat
  command -v kcat >/dev/null 2>&1 || die "package kcat installed but kcat not on PATH"
fi

# --- Java client, Kafka tools, broker jars ------------------------------------
ensure_maven_lib kafka-tools
ensure_maven_lib kafka-broker

# --- Python clients in a venv -------------------------------------------------
# The venv's own python is the probe: if it imports the pinned versions, done.
# A venv whose interpreter vanished (e.g. the Python it was made from moved)
# fails the probe and is rebuilt.
venv_ok() {
  [[ -x "$VENV/bin/python" ]] &&
    [[ "$("$VENV/bin/python" -c '
import confluent_kafka, kafka, aiokafka
print(confluent_kafka.__version__, kafka.__version__, aiokafka.__version__)' 2>/dev/null)" \
        == "$CONFLUENT_KAFKA_VERSION $KAFKA_PYTHON_VERSION $AIOKAFKA_VERSION" ]]
}
if ! venv_ok; then
  command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv
  if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c '' 2>/dev/null; then
    rm -rf "$VENV"
    log "creating venv ${VENV#"$ROOT"/}"
    python3 -m venv "$VENV" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$VENV"; }
  fi
  log "installing confluent-kafka==$CONFLUENT_KAFKA_VERSION kafka-python==$KAFKA_PYTHON_VERSION" \
    "aiokafka==$AIOKAFKA_VERSION into ${VENV#"$ROOT"/}"
  # --only-binary: the confluent-kafka wheel bundles librdkafka; building from
  # source would need librdkafka headers and a compiler, and is not what we
  # want to test. aiokafka ships wheels too (its dependencies included).
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
    --only-binary=:all: "confluent-kafka==$CONFLUENT_KAFKA_VERSION" \
    "kafka-python==$KAFKA_PYTHON_VERSION" "aiokafka==$AIOKAFKA_VERSION"
  venv_ok || die "confluent-kafka $CONFLUENT_KAFKA_VERSION, kafka-python $KAFKA_PYTHON_VERSION" \
    "and aiokafka $AIOKAFKA_VERSION did not import from $VENV"
fi

# --- kafkajs (Node) -------------------------------------------------------------
# Pinned in scripts/interop/install-node.sh, into .cache/node.
if [[ $QUIET -eq 1 ]]; then
  bash "$ROOT/scripts/interop/install-node.sh" --quiet
else
  bash "$ROOT/scripts/interop/install-node.sh"
fi

if [[ $QUIET -eq 0 ]]; then
  kcat_v="$(kcat -V 2>&1 | sed -n 's/^Version \([^ ]*\).*librdkafka \([^ ]*\).*/\1 (librdkafka \2)/p')"
  ck_v="$("$VENV/bin/python" -c 'import confluent_kafka as c; print(c.__version__, "librdkafka", c.libversion()[0])')"
  kafka_v="$(ls "$CACHE/kafka-tools/lib" | sed -n 's/^kafka-clients-\(.*\)\.jar$/\1/p')"
  broker_v="$(ls "$CACHE/kafka-broker/lib" | sed -n 's/^kafka_2\.13-\(.*\)\.jar$/\1/p')"
  echo "interop: kcat: $kcat_v"
  echo "interop: kafka-clients/kafka-tools: $kafka_v (.cache/kafka-tools/lib; run via scripts/kafka-tool.sh)"
  echo "interop: kafka broker: $broker_v (.cache/kafka-broker/lib; run via scripts/kafka-reference.sh)"
  echo "interop: confluent-kafka: $ck_v (.cache/venv/bin/python)"
  py_v="$("$VENV/bin/python" -c 'import kafka, aiokafka; print("kafka-python", kafka.__version__ + ",", "aiokafka", aiokafka.__version__)')"
  echo "interop: $py_v (.cache/venv/bin/python)"
fi
