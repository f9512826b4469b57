"""kafka-python against a broker: create a 3-partition topic (KafkaAdminClient), produce records
with explicit partitions, keys, values, timestamps and headers (a repeated key among them), read
them back in a consumer group (subscribe, auto commit off), commit explicitly, and check that every
record round-trips exactly and that the group's committed offsets (committed()) equal the end
offsets. Prints a JSON summary; on any mismatch or client error exits 1 with
`FAIL kafka-python: STEP: ...` on stderr.

Usage: kafka_python_roundtrip.py BOOTSTRAP TOPIC GROUP [--count N] [--timeout SECONDS]
"""

import argparse
import time

import kafka
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from roundtrip_common import PARTITIONS, Failure, check_offsets, check_roundtrip, expected_records, run, summary

CLIENT = "kafka-python"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bootstrap")
    ap.add_argument("topic")
    ap.add_argument("group")
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--timeout", type=float, default=60)
    args = ap.parse_args()
    timeout_ms = int(args.timeout * 1000)

    def body(step):
        started = time.monotonic()
        deadline = started + args.timeout
        step("create topic")
        admin = KafkaAdminClient(bootstrap_servers=args.bootstrap, client_id="interop-kafka-python")
        admin.create_topics(
            [NewTopic(args.topic, num_partitions=PARTITIONS, replication_factor=1)],
            timeout_ms=timeout_ms,
        )
        admin.close()

        step("produce")
        expected = expected_records(args.count)
        producer = KafkaProducer(bootstrap_servers=args.bootstrap, acks="all", linger_ms=5)
        futures = [
            producer.send(
                args.topic,
                key=r["key"],
                value=r["value"],
                partition=r["partition"],
                timestamp_ms=r["timestamp"],
                headers=r["headers"],
            )
            for r in expected
        ]
        producer.flush(timeout=args.timeout)
        produced = []
        for r, f in zip(expected, futures):
            md = f.get(timeout=max(1.0, deadline - time.monotonic()))
            produced.append((md.partition, md.offset))
        producer.close()

        step("consume")
        consumer = KafkaConsumer(
            bootstrap_servers=args.bootstrap,
            group_id=args.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        consumer.subscribe([args.topic])
        consumed = []
        while len(consumed) < len(expected):
            if time.monotonic() > deadline:
                raise Failure(CLIENT, "consume", f"read {len(consumed)} of {len(expected)} records within {args.timeout}s")
            for tp, msgs in consumer.poll(timeout_ms=500).items():
                for m in msgs:
                    if m.topic != args.topic:
                        raise Failure(CLIENT, "consume", f"record from topic {m.topic!r}")
                    consumed.append((m.partition, m.offset, m.key, m.value, m.timestamp, m.timestamp_type, list(m.headers)))

        step("round-trip")
        check_roundtrip(CLIENT, expected, produced, consumed)

        step("commit")
        consumer.commit()
        tps = [TopicPartition(args.topic, p) for p in range(PARTITIONS)]
        step("end offsets")
        end_offsets = {tp.partition: o for tp, o in consumer.end_offsets(tps).items()}
        step("committed")
        committed = {tp.partition: consumer.committed(tp) for tp in tps}
        consumer.close()
        check_offsets(CLIENT, expected, end_offsets, committed)

        # A second consumer of the group: what committed() reports from a fresh client, not
        # from the committing one's cache.
        step("committed (fresh consumer)")
        fresh = KafkaConsumer(bootstrap_servers=args.bootstrap, group_id=args.group, enable_auto_commit=False)
        committed_fresh = {tp.partition: fresh.committed(tp) for tp in tps}
        fresh.close()
        if committed_fresh != committed:
            raise Failure(CLIENT, "committed (fresh consumer)", f"{committed_fresh}, the committing consumer saw {committed}")

        return summary(
            CLIENT, kafka.__version__, args.topic, args.group, expected, consumed, end_offsets, committed,
            time.monotonic() - started,
        )

    run(CLIENT, body)


if __name__ == "__main__":
    main()
