#!/usr/bin/env bash
# Runs one of Apache Kafka's own command-line tools (the Java classes behind
# kafka-topics.sh, kafka-consumer-groups.sh, ...) from the jars that
# scripts/install-interop.sh put in .cache/kafka-tools/lib. There is no Kafka
# tarball here, so this replaces bin/kafka-*.sh: same tools, same arguments.
#
# Usage: scripts/kafka-tool.sh TOOL [args...]
#   TOOL is a short name (TopicCommand, or the script name kafka-topics /
#   kafka-topics.sh), or a fully qualified main class (anything with a dot).
#   scripts/kafka-tool.sh --list   prints the short names and their classes.
# Example:
#   scripts/kafka-tool.sh TopicCommand --bootstrap-server 127.0.0.1:9092 --list
#
# Env: KAFKA_TOOL_JAVA_OPTS replaces the JVM options below (heap, GC, logging).
# Exit status is the tool's.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LIB="$ROOT/.cache/kafka-tools/lib"

# short name | kafka-*.sh name | main class (Kafka 4.x, org.apache.kafka.tools)
TOOLS="\
TopicCommand                kafka-topics                 org.apache.kafka.tools.TopicCommand
ConsumerGroupCommand        kafka-consumer-groups        org.apache.kafka.tools.consumer.group.ConsumerGroupCommand
ShareGroupCommand           kafka-share-groups           org.apache.kafka.tools.consumer.group.ShareGroupCommand
StreamsGroupCommand         kafka-streams-groups         org.apache.kafka.tools.streams.StreamsGroupCommand
GroupsCommand               kafka-groups                 org.apache.kafka.tools.GroupsCommand
ConfigCommand               kafka-configs                org.apache.kafka.tools.ConfigCommand
ConsoleProducer             kafka-console-producer       org.apache.kafka.tools.ConsoleProducer
ConsoleConsumer             kafka-console-consumer       org.apache.kafka.tools.consumer.ConsoleConsumer
ConsoleShareConsumer        kafka-console-share-consumer org.apache.kafka.tools.consumer.ConsoleShareConsumer
GetOffsetShell              kafka-get-offsets            org.apache.kafka.tools.GetOffsetShell
DeleteRecordsCommand        kafka-delete-records         org.apache.kafka.tools.DeleteRecordsCommand
TransactionsCommand         kafka-transactions           org.apache.kafka.tools.TransactionsCommand
AclCommand                  kafka-acls                   org.apache.kafka.tools.AclCommand
BrokerApiVersionsCommand    kafka-broker-api-versions    org.apache.kafka.tools.BrokerApiVersionsCommand
LogDirsCommand              kafka-log-dirs               org.apache.kafka.tools.LogDirsCommand
LeaderElectionCommand       kafka-leader-election        org.apache.kafka.tools.LeaderElectionCommand
ReassignPartitionsCommand   kafka-reassign-partitions    org.apache.kafka.tools.reassign.ReassignPartitionsCommand
FeatureCommand              kafka-features               org.apache.kafka.tools.FeatureCommand
MetadataQuorumCommand       kafka-metadata-quorum        org.apache.kafka.tools.MetadataQuorumCommand
ClusterTool                 kafka-cluster                org.apache.kafka.tools.ClusterTool
ClientMetricsCommand        kafka-client-metrics         org.apache.kafka.tools.ClientMetricsCommand
DelegationTokenCommand      kafka-delegation-tokens      org.apache.kafka.tools.DelegationTokenCommand
ProducerPerformance         kafka-producer-perf-test     org.apache.kafka.tools.ProducerPerformance
ConsumerPerformance         kafka-consumer-perf-test     org.apache.kafka.tools.ConsumerPerformance
ShareConsumerPerformance    kafka-share-consumer-perf-test org.apache.kafka.tools.ShareConsumerPerformance
EndToEndLatency             kafka-e2e-latency            org.apache.kafka.tools.EndToEndLatency
VerifiableProducer          kafka-verifiable-producer    org.apache.kafka.tools.VerifiableProducer
VerifiableConsumer          kafka-verifiable-consumer    org.apache.kafka.tools.VerifiableConsumer
DumpLogSegments             kafka-dump-log               org.apache.kafka.tools.DumpLogSegments
"

usage() { sed -n '/^# Usage:/,/^# Exit status/p' "$0" | sed 's/^# \{0,1\}//'; }

[[ $# -ge 1 ]] || { usage >&2; exit 2; }
name="$1"; shift
case "$name" in
  -h|--help) usage; exit 0 ;;
  --list) printf '%s' "$TOOLS" | awk '{printf "%-26s %-30s %s\n", $1, $2, $3}'; exit 0 ;;
esac

if [[ "$name" == *.* && "$name" != *.sh ]]; then
  class="$name"
else
  short="${name%.sh}"
  class="$(printf '%s' "$TOOLS" | awk -v n="$short" '$1 == n || $2 == n { print $3; exit }')"
  [[ -n "$class" ]] || { echo "kafka-tool: unknown tool '$name' (see --list)" >&2; exit 2; }
fi

if ! compgen -G "$LIB/*.jar" >/dev/null; then
  echo "kafka-tool: no jars in ${LIB#"$ROOT"/}; run scripts/install-interop.sh" >&2
  exit 1
fi

# Like Kafka's kafka-run-class.sh for tools: a small heap. SerialGC and C1-only
# JIT because these are short-lived processes on a 2-core machine, where start-up
# time dominates. slf4j-simple at WARN keeps the client's INFO config dumps
# out of the output that tests compare.
if [[ -n "${KAFKA_TOOL_JAVA_OPTS:-}" ]]; then
  read -r -a JOPTS <<<"$KAFKA_TOOL_JAVA_OPTS"
else
  JOPTS=(-Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true
         -Dorg.slf4j.simpleLogger.defaultLogLevel=warn)
fi
exec java "${JOPTS[@]}" -cp "$LIB/*" "$class" "$@"
