"""Shared by kafka_python_roundtrip.py and aiokafka_roundtrip.py (server/tests/interop_python.rs).

The records each client produces, and the check that what a consumer group read back is exactly
that: partition, offset, key, value, CreateTime timestamp and headers in order, a repeated header
key included. A mismatch raises Failure naming the client and the step; main() turns it into a
message on stderr and exit status 1.
"""

import json
import sys
import time

PARTITIONS = 3


class Failure(Exception):
    """A check failed: `client: step: what`."""

    def __init__(self, client, step, what):
        super().__init__(f"{client}: {step}: {what}")


def expected_records(count):
    """`count` records as dicts: partition i % 3, explicit keys (one in ten null), values of
    varied sizes (one in ten empty), timestamps an hour in the past and 1 ms apart (inside the
    broker's accepted window, and not what a producer would stamp by itself), and headers with a
    repeated key and an empty value."""
    base_ts = (int(time.time()) - 3600) * 1000
    out = []
    for i in range(count):
        key = None if i % 10 == 7 else f"key-{i}".encode()
        value = b"" if i % 10 == 3 else (f"value-{i}-".encode() * (1 + i % 5)) + bytes([i % 256])
        headers = [
            ("seq", str(i).encode()),
            ("dup", b"first"),
            ("other", b"\x00\xff"),
            ("dup", f"second-{i}".encode()),
            ("empty", b""),
        ]
        out.append(
            {
                "i": i,
                "partition": i % PARTITIONS,
                "key": key,
                "value": value,
                "timestamp": base_ts + i,
                "headers": headers,
            }
        )
    return out


def check_roundtrip(client, expected, produced_offsets, consumed):
    """`produced_offsets[i]`: (partition, offset) the broker acknowledged for record i.
    `consumed`: (partition, offset, key, value, timestamp, timestamp_type, headers) tuples."""
    by_pos = {}
    for c in consumed:
        pos = (c[0], c[1])
        if pos in by_pos:
            raise Failure(client, "consume", f"record at partition {pos[0]} offset {pos[1]} read twice")
        by_pos[pos] = c
    if len(by_pos) != len(expected):
        raise Failure(client, "consume", f"read {len(by_pos)} records, produced {len(expected)}")
    for rec, pos in zip(expected, produced_offsets):
        if pos[0] != rec["partition"]:
            raise Failure(client, "produce", f"record {rec['i']} acknowledged on partition {pos[0]}, sent to {rec['partition']}")
        got = by_pos.get(pos)
        if got is None:
            raise Failure(client, "consume", f"record {rec['i']} (partition {pos[0]} offset {pos[1]}) never read")
        _, _, key, value, ts, ts_type, headers = got
        want = (rec["key"], rec["value"], rec["timestamp"], 0, rec["headers"])
        have = (key, value, ts, ts_type, [(k, bytes(v)) for k, v in headers])
        if have != want:
            raise Failure(
                client,
                "round-trip",
                f"record {rec['i']} at partition {pos[0]} offset {pos[1]}: "
                f"(key, value, timestamp, timestamp type, headers) read {have!r}, produced {want!r}",
            )


def per_partition_counts(expected):
    counts = {p: 0 for p in range(PARTITIONS)}
    for rec in expected:
        counts[rec["partition"]] += 1
    return counts


def check_offsets(client, expected, end_offsets, committed):
    """Fresh topic: each partition's end offset is its record count, and the group's committed
    offset equals it."""
    counts = per_partition_counts(expected)
    for p in range(PARTITIONS):
        if end_offsets.get(p) != counts[p]:
            raise Failure(client, "end offsets", f"partition {p}: end offset {end_offsets.get(p)}, produced {counts[p]} records")
        if committed.get(p) != end_offsets[p]:
            raise Failure(client, "committed", f"partition {p}: committed {committed.get(p)}, end offset {end_offsets[p]}")


def summary(client, version, topic, group, expected, consumed, end_offsets, committed, seconds):
    per_partition = {str(p): 0 for p in range(PARTITIONS)}
    for c in consumed:
        per_partition[str(c[0])] += 1
    return json.dumps(
        {
            "client": client,
            "version": version,
            "topic": topic,
            "group": group,
            "produced": len(expected),
            "consumed": len(consumed),
            "per_partition": per_partition,
            "end_offsets": {str(p): o for p, o in sorted(end_offsets.items())},
            "committed": {str(p): o for p, o in sorted(committed.items())},
            "seconds": round(seconds, 3),
        },
        sort_keys=True,
    )


def run(client, body):
    """Runs `body(step)`, which returns the summary line and calls `step(name)` as it goes; a
    Failure or any client exception exits 1 with a message naming the client and the step."""
    current = ["start"]

    def step(name):
        current[0] = name

    try:
        line = body(step)
    except Failure as e:
        print(f"FAIL {e}", file=sys.stderr)
        sys.exit(1)
    except BaseException as e:  # any client error (or timeout) is a failure of this step
        import traceback

        traceback.print_exc()
        print(f"FAIL {client}: {current[0]}: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
    print(line)
