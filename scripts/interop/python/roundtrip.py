#!/usr/bin/env python3
"""Produce with acks=all, consume back, and assert an exact round trip.

Usage: roundtrip.py BOOTSTRAP TOPIC [--count N] [--partitions P] [--timeout S]

Uses confluent-kafka (librdkafka), i.e. an independent client: run it with the
venv's python, .cache/venv/bin/python (scripts/install-interop.sh makes it).

What it checks, each a thing a broker can get subtly wrong:
  * the topic is created with P partitions if it does not exist (CreateTopics);
  * every produce is acknowledged with acks=all and idempotence on, and the
    delivery report gives a partition and an offset;
  * reading each partition back from the first offset this run wrote (so a
    re-run on the same topic checks only its own messages) returns exactly the
    records sent, in order, with the same key, value, headers and offsets;
  * messages with the same key land in the same partition.
Exit status 0 on an exact round trip, 1 on any mismatch or error (with a
message saying what differed), 2 on bad usage.
"""
import argparse
import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def fail(msg):
    print(f"roundtrip: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def ensure_topic(bootstrap, topic, partitions, timeout):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    md = admin.list_topics(timeout=timeout)
    if topic in md.topics and md.topics[topic].error is None:
        return len(md.topics[topic].partitions)
    fut = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)],
                              operation_timeout=timeout)[topic]
    try:
        fut.result(timeout)
    except KafkaException as e:
        if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            fail(f"create topic {topic}: {e}")
    # Metadata for a new topic reaches the broker's cache shortly after the
    # controller commits it; wait until all partitions have a leader.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        t = admin.list_topics(topic, timeout=timeout).topics.get(topic)
        if t is not None and t.error is None and t.partitions and all(
                p.leader >= 0 and p.error is None for p in t.partitions.values()):
            return len(t.partitions)
        time.sleep(0.1)
    fail(f"topic {topic} has no leader for every partition after {timeout}s")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bootstrap")
    ap.add_argument("topic")
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=30.0)
    args = ap.parse_args()

    nparts = ensure_topic(args.bootstrap, args.topic, args.partitions, args.timeout)

    run = uuid.uuid4().hex[:8]
    # A handful of keys, each used several times, plus one keyless record and
    # one empty value: null key and empty-but-present value must not be mixed up.
    sent = []
    for i in range(args.count):
        key = None if i == 0 else f"key-{i % 7}".encode()
        value = b"" if i == 1 else f"run={run} seq={i} ".encode() + bytes(range(256))[: i % 256]
        headers = [("run", run.encode()), ("seq", str(i).encode())]
        sent.append({"key": key, "value": value, "headers": headers})

    acked = {}  # seq -> (partition, offset)
    errors = []

    # The delivery report does not carry the headers back, so each callback
    # is bound to its own sequence number.
    def on_delivery(seq, err, msg):
        if err is not None:
            errors.append(f"seq {seq}: {err}")
        else:
            acked[seq] = (msg.partition(), msg.offset())

    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        "message.timeout.ms": int(args.timeout * 1000),
    })
    for i, m in enumerate(sent):
        producer.produce(args.topic, key=m["key"], value=m["value"], headers=m["headers"],
                         on_delivery=lambda err, msg, seq=i: on_delivery(seq, err, msg))
        producer.poll(0)
    left = producer.flush(args.timeout)
    if left:
        fail(f"{left} messages still unacknowledged after {args.timeout}s")
    if errors:
        fail(f"{len(errors)} delivery errors, first: {errors[0]}")
    if len(acked) != len(sent):
        fail(f"acked {len(acked)} of {len(sent)}")

    # Same key -> same partition (the default partitioner hashes the key).
    key_part = {}
    for seq, (p, _) in acked.items():
        k = sent[seq]["key"]
        if k is not None and key_part.setdefault(k, p) != p:
            fail(f"key {k!r} went to partitions {key_part[k]} and {p}")

    # Expected per partition, in offset order; offsets must be dense and
    # increasing in send order (one producer, idempotent, so no reordering).
    expected = {}
    for seq in range(len(sent)):
        p, off = acked[seq]
        expected.setdefault(p, []).append((off, seq))
    for p, lst in expected.items():
        offs = [o for o, _ in lst]
        if offs != sorted(offs) or len(set(offs)) != len(offs):
            fail(f"partition {p}: offsets not increasing in send order: {offs[:10]}...")

    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": f"roundtrip-{run}",
        "enable.auto.commit": False,
        "auto.offset.reset": "error",  # we always assign an explicit offset
        "isolation.level": "read_committed",
    })
    consumer.assign([TopicPartition(args.topic, p, lst[0][0]) for p, lst in expected.items()])
    want = sum(len(lst) for lst in expected.values())
    got = {p: [] for p in expected}
    deadline = time.monotonic() + args.timeout
    n = 0
    while n < want and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            fail(f"consume error: {msg.error()}")
        p = msg.partition()
        if p in got and len(got[p]) < len(expected[p]):
            got[p].append(msg)
            n += 1
    consumer.close()
    if n < want:
        fail(f"consumed {n} of {want} within {args.timeout}s")

    for p, lst in expected.items():
        for (off, seq), msg in zip(lst, got[p]):
            exp = sent[seq]
            where = f"partition {p} offset {off} (seq {seq})"
            if msg.offset() != off:
                fail(f"{where}: read offset {msg.offset()}")
            if msg.key() != exp["key"]:
                fail(f"{where}: key {msg.key()!r} != {exp['key']!r}")
            if (msg.value() or b"") != exp["value"] or msg.value() is None:
                fail(f"{where}: value {msg.value()!r} != {exp['value']!r}")
            if list(msg.headers() or []) != exp["headers"]:
                fail(f"{where}: headers {msg.headers()!r} != {exp['headers']!r}")

    print(f"roundtrip: OK {len(sent)} messages, acks=all, {len(expected)} of {nparts} partitions "
          f"used, topic {args.topic}, run {run}")


if __name__ == "__main__":
    main()
