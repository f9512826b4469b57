"""aiokafka against a broker: create a 3-partition topic (AIOKafkaAdminClient), produce records
with explicit partitions, keys, values, timestamps and headers (a repeated key among them), read
them back in a consumer group (subscribe, auto commit off), commit explicitly, and check that every
record round-trips exactly and that the group's committed offsets (committed()) equal the end
offsets. Prints a JSON summary; on any mismatch or client error exits 1 with
`FAIL aiokafka: STEP: ...` on stderr.

Usage: aiokafka_roundtrip.py BOOTSTRAP TOPIC GROUP [--count N] [--timeout SECONDS]
"""

import argparse
import asyncio
import time

import aiokafka
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from roundtrip_common import PARTITIONS, Failure, check_offsets, check_roundtrip, expected_records, run, summary

CLIENT = "aiokafka"


async def roundtrip(args, step):
    started = time.monotonic()
    deadline = started + args.timeout
    timeout_ms = int(args.timeout * 1000)

    step("create topic")
    admin = AIOKafkaAdminClient(bootstrap_servers=args.bootstrap, client_id="interop-aiokafka")
    await admin.start()
    try:
        resp = await admin.create_topics(
            [NewTopic(args.topic, num_partitions=PARTITIONS, replication_factor=1)], timeout_ms=timeout_ms
        )
        errors = [(t[0], t[1]) for t in resp.topic_errors if t[1] != 0]
        if errors:
            raise Failure(CLIENT, "create topic", f"CreateTopics errors {errors}")
    finally:
        await admin.close()

    step("produce")
    expected = expected_records(args.count)
    producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(
                args.topic,
                key=r["key"],
                value=r["value"],
                partition=r["partition"],
                timestamp_ms=r["timestamp"],
                headers=r["headers"],
            )
            for r in expected
        ]
        mds = await asyncio.wait_for(asyncio.gather(*futures), max(1.0, deadline - time.monotonic()))
        produced = [(md.partition, md.offset) for md in mds]
    finally:
        await producer.stop()

    step("consume")
    consumer = AIOKafkaConsumer(
        args.topic,
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        consumed = []
        while len(consumed) < len(expected):
            if time.monotonic() > deadline:
                raise Failure(CLIENT, "consume", f"read {len(consumed)} of {len(expected)} records within {args.timeout}s")
            for tp, msgs in (await consumer.getmany(timeout_ms=500)).items():
                for m in msgs:
                    if m.topic != args.topic:
                        raise Failure(CLIENT, "consume", f"record from topic {m.topic!r}")
                    consumed.append((m.partition, m.offset, m.key, m.value, m.timestamp, m.timestamp_type, list(m.headers)))

        step("round-trip")
        check_roundtrip(CLIENT, expected, produced, consumed)

        step("commit")
        await consumer.commit()
        tps = [TopicPartition(args.topic, p) for p in range(PARTITIONS)]
        step("end offsets")
        end_offsets = {tp.partition: o for tp, o in (await consumer.end_offsets(tps)).items()}
        step("committed")
        committed = {tp.partition: await consumer.committed(tp) for tp in tps}
    finally:
        await consumer.stop()
    check_offsets(CLIENT, expected, end_offsets, committed)

    # A second consumer of the group: what committed() reports from a fresh client, not from the
    # committing one's cache.
    step("committed (fresh consumer)")
    fresh = AIOKafkaConsumer(bootstrap_servers=args.bootstrap, group_id=args.group, enable_auto_commit=False)
    await fresh.start()
    try:
        committed_fresh = {tp.partition: await fresh.committed(tp) for tp in tps}
    finally:
        await fresh.stop()
    if committed_fresh != committed:
        raise Failure(CLIENT, "committed (fresh consumer)", f"{committed_fresh}, the committing consumer saw {committed}")

    return summary(
        CLIENT, aiokafka.__version__, args.topic, args.group, expected, consumed, end_offsets, committed,
        time.monotonic() - started,
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bootstrap")
    ap.add_argument("topic")
    ap.add_argument("group")
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--timeout", type=float, default=60)
    args = ap.parse_args()

    def body(step):
        return asyncio.run(asyncio.wait_for(roundtrip(args, step), args.timeout + 10))

    run(CLIENT, body)


if __name__ == "__main__":
    main()
