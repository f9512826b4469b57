#!/usr/bin/env python3
"""Parses the outputs of scripts/bench-compare.sh into its CSV and Markdown summaries.

Usage:
  bench-summary.py crosscheck XCDIR CSV   parse Kafka's perf-test outputs and the corelog-bench
                                          JSON in XCDIR into CSV; print our/their ratios
  bench-summary.py half-rate MATRIXDIR P  print half of the slower target's acks=1, P-partition,
                                          1 KiB produce rate (records/s) in MATRIXDIR
  bench-summary.py summary OUTDIR         print DIR/summary.md (Markdown) from what OUTDIR holds
  bench-summary.py selftest               check the parsers on fixed sample lines

Only numbers read from the files are printed; a figure that is missing is shown as "n/a".
"""

import csv
import json
import os
import platform
import re
import sys

MIB = 1024 * 1024
# The headline workload of issue 5's targets.
HEADLINE_PARTITIONS = 16
HEADLINE_MESSAGE_BYTES = 1024
# The partition count whose throughput is compared with the 16-partition one.
MANY_PARTITIONS = 1024
BROKERS = ("corelog", "kafka")

# kafka-producer-perf-test's final line (Kafka 4.x ProducerPerformance), e.g.
# "500000 records sent, 53919.98 records/sec (52.66 MB/sec), 344.05 ms avg latency,
#  855.00 ms max latency, 359 ms 50th, 764 ms 95th, 804 ms 99th, 836 ms 99.9th."
PRODUCER_FINAL = re.compile(
    r"(?P<records>\d+) records sent, (?P<rps>[\d.]+) records/sec \((?P<mbs>[\d.]+) MB/sec\), "
    r"(?P<avg>[\d.]+) ms avg latency, (?P<max>[\d.]+) ms max latency, "
    r"(?P<p50>[\d.]+) ms 50th, (?P<p95>[\d.]+) ms 95th, (?P<p99>[\d.]+) ms 99th, "
    r"(?P<p999>[\d.]+) ms 99.9th"
)

CSV_FIELDS = [
    "broker", "tool", "phase", "records", "records_per_sec", "mib_per_sec",
    "avg_latency_ms", "max_latency_ms", "p50_ms", "p95_ms", "p99_ms", "p999_ms",
    "broker_cpu_secs_per_gib",
]


def parse_producer_perf(text):
    """The last summary line of kafka-producer-perf-test, or None."""
    found = None
    for line in text.splitlines():
        m = PRODUCER_FINAL.search(line)
        if m:
            found = m
    if not found:
        return None
    g = {k: float(v) for k, v in found.groupdict().items()}
    return {
        "records": int(g["records"]), "records_per_sec": g["rps"], "mib_per_sec": g["mbs"],
        "avg_latency_ms": g["avg"], "max_latency_ms": g["max"], "p50_ms": g["p50"],
        "p95_ms": g["p95"], "p99_ms": g["p99"], "p999_ms": g["p999"],
    }


def parse_consumer_perf(text):
    """kafka-consumer-perf-test's CSV-like header and data line, as a dict of floats, or None.

    MB.sec and nMsg.sec count from start to end, the group join included; fetch.MB.sec and
    fetch.nMsg.sec leave out the join (rebalance.time.ms), which is what a consumer's steady
    throughput is, so those are the figures compared."""
    lines = [l.strip() for l in text.splitlines()]
    for i, line in enumerate(lines):
        if line.startswith("start.time") and i + 1 < len(lines):
            keys = [k.strip() for k in line.split(",")]
            values = [v.strip() for v in lines[i + 1].split(",")]
            if len(values) != len(keys):
                return None
            row = dict(zip(keys, values))
            try:
                return {k: float(v) for k, v in row.items() if k not in ("start.time", "end.time")}
            except ValueError:
                return None
    return None


def infer_phase(result):
    """The matrix phase a bare RunResult belongs to, from its spec: consumers alone read a backlog
    (consume), a fixed rate with consumers is the latency phase, anything else is produce."""
    spec = result.get("spec", {})
    if spec.get("producers") == 0:
        return "consume"
    if spec.get("target_rate") is not None and spec.get("consumers", 0) > 0:
        return "latency"
    return "produce"


def run_results(node, phase=None):
    """Every RunResult-shaped object (spec, produced, consumed) anywhere in a JSON document, with
    the phase it ran as ("phase" of the matrix row around it, else inferred from its spec), so that
    the wrappers around the results (matrix rows, cells) do not matter. A dict gets "_phase"."""
    found = []
    if isinstance(node, dict):
        if "spec" in node and "produced" in node and "consumed" in node:
            found.append(dict(node, _phase=phase or infer_phase(node)))
        else:
            here = node.get("phase") if isinstance(node.get("phase"), str) else phase
            for v in node.values():
                found.extend(run_results(v, here))
    elif isinstance(node, list):
        for v in node:
            found.extend(run_results(v, phase))
    return found


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def load_results(folder):
    """RunResults from a corelog-bench compare/matrix output folder (results.json)."""
    doc = load_json(os.path.join(folder, "results.json"))
    return run_results(doc) if doc is not None else []


def cell(results, target, acks, partitions, phase="produce", message_bytes=HEADLINE_MESSAGE_BYTES):
    for r in results:
        s = r.get("spec", {})
        if (r.get("target") == target and r.get("_phase") == phase and str(s.get("acks")) == acks
                and s.get("partitions") == partitions and s.get("message_bytes") == message_bytes):
            return r
    return None


def get(d, *path):
    for p in path:
        if not isinstance(d, dict) or p not in d or d[p] is None:
            return None
        d = d[p]
    return d


def fmt(v, digits=1):
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def bench_row(broker, phase, result):
    if result is None:
        return None
    tp = result["produced"] if phase == "produce" else result["consumed"]
    lat = result["produce_latency"] if phase == "produce" else result["end_to_end_latency"]
    us_to_ms = lambda v: None if v is None else v / 1000.0
    return {
        "broker": broker, "tool": "corelog-bench", "phase": phase,
        "records": tp.get("messages"), "records_per_sec": tp.get("msgs_per_sec"),
        "mib_per_sec": tp.get("mib_per_sec"),
        # A consume-only run has no send times, so its latency fields stay empty.
        "avg_latency_ms": us_to_ms(lat.get("mean_us")) if lat.get("count") else None,
        "max_latency_ms": us_to_ms(lat.get("max_us")) if lat.get("count") else None,
        "p50_ms": us_to_ms(lat.get("p50_us")) if lat.get("count") else None,
        "p95_ms": None,
        "p99_ms": us_to_ms(lat.get("p99_us")) if lat.get("count") else None,
        "p999_ms": us_to_ms(lat.get("p999_us")) if lat.get("count") else None,
        "broker_cpu_secs_per_gib": get(result, "broker_cpu", "cpu_secs_per_gib"),
    }


def crosscheck_rows(xcdir):
    rows = []
    for broker in BROKERS:
        text = read_text(os.path.join(xcdir, f"{broker}-producer-perf-test.txt"))
        p = parse_producer_perf(text) if text is not None else None
        if p:
            rows.append({"broker": broker, "tool": "kafka-producer-perf-test", "phase": "produce",
                         **p, "broker_cpu_secs_per_gib": None})
        doc = load_json(os.path.join(xcdir, f"{broker}-bench-produce.json"))
        found = run_results(doc) if doc is not None else []
        r = bench_row(broker, "produce", found[0] if found else None)
        if r:
            rows.append(r)
        text = read_text(os.path.join(xcdir, f"{broker}-consumer-perf-test.txt"))
        c = parse_consumer_perf(text) if text is not None else None
        if c:
            rows.append({
                "broker": broker, "tool": "kafka-consumer-perf-test", "phase": "consume",
                "records": int(c.get("data.consumed.in.nMsg", 0)),
                "records_per_sec": c.get("fetch.nMsg.sec"), "mib_per_sec": c.get("fetch.MB.sec"),
                "avg_latency_ms": None, "max_latency_ms": None, "p50_ms": None, "p95_ms": None,
                "p99_ms": None, "p999_ms": None, "broker_cpu_secs_per_gib": None,
            })
        doc = load_json(os.path.join(xcdir, f"{broker}-bench-consume.json"))
        found = run_results(doc) if doc is not None else []
        r = bench_row(broker, "consume", found[0] if found else None)
        if r:
            rows.append(r)
    return rows


def crosscheck_ratios(rows):
    """(broker, phase, ours, theirs, ratio) in records/s: corelog-bench over Kafka's tool."""
    out = []
    for broker in BROKERS:
        for phase in ("produce", "consume"):
            ours = next((r for r in rows if r["broker"] == broker and r["phase"] == phase
                         and r["tool"] == "corelog-bench"), None)
            theirs = next((r for r in rows if r["broker"] == broker and r["phase"] == phase
                           and r["tool"] != "corelog-bench"), None)
            a = ours["records_per_sec"] if ours else None
            b = theirs["records_per_sec"] if theirs else None
            out.append((broker, phase, a, b, ratio(a, b)))
    return out


def read_text(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return None


def cmd_crosscheck(xcdir, csv_path):
    rows = crosscheck_rows(xcdir)
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in CSV_FIELDS})
    print(f"cross-check ({csv_path}): corelog-bench / Kafka's perf-test tool, records/s")
    for broker, phase, a, b, q in crosscheck_ratios(rows):
        print(f"  {broker:8} {phase:8} ours {fmt(a, 0):>10}  theirs {fmt(b, 0):>10}  "
              f"ratio {fmt(q, 2)}")


def half_rate(matrix_dir, partitions):
    results = load_results(matrix_dir)
    rates = [get(cell(results, t, "1", partitions, "produce"), "produced", "msgs_per_sec")
             for t in BROKERS]
    rates = [r for r in rates if r]
    if not rates:
        return None
    return max(1, int(min(rates) / 2))


def cmd_summary(out):
    b = load_json(os.path.join(out, "baseline.json")) or {}
    iperf_gbit = b.get("iperf3_loopback_gbit_s")
    # iperf3 reports bits per second in SI units; the brokers' figures are MiB/s.
    iperf_mib = iperf_gbit * 1e9 / 8 / MIB if iperf_gbit else None
    fsync16 = b.get("fio_seq_write_fdatasync16_mib_s")
    matrix = load_results(os.path.join(out, "matrix"))
    durable = load_results(os.path.join(out, "durable"))
    latency = load_results(os.path.join(out, "latency"))
    p = []
    p.append("# corelog vs Kafka: summary\n")
    p.append(f"Results folder: `{out}`\n")
    p.append("## Machine\n")
    # The machine as scripts/baseline.sh recorded it (this host's view when there is no baseline).
    p.append(f"- CPUs: {b.get('cpus', os.cpu_count())} ({b.get('cpu_model', 'CPU model unknown')})")
    p.append(f"- kernel: {platform.release()}")
    for name, label in (("commit.txt", "corelog commit"), ("loadavg-start.txt", "load average at start"),
                        ("loadavg-end.txt", "load average at end")):
        text = read_text(os.path.join(out, name))
        if text:
            p.append(f"- {label}: {text.strip()}")
    if b:
        p.append(f"- memory: {fmt(b.get('mem_gib'))} GiB; disk: {b.get('filesystem')} on "
                 f"{b.get('block_device')} (fio {b.get('fio_version')}, {b.get('fio_ioengine')})")
    p.append("")
    p.append("## Baseline (scripts/baseline.sh)\n")
    if b:
        p.append("| figure | value |\n|---|---|")
        p.append(f"| fio sequential buffered write, 64 KiB + end fsync | "
                 f"{fmt(b.get('fio_seq_write_buffered_mib_s'))} MiB/s |")
        p.append(f"| fio sequential buffered write, 1 MiB + end fsync | "
                 f"{fmt(b.get('fio_seq_write_buffered_1m_mib_s'))} MiB/s |")
        p.append(f"| fio 4 KiB write + fdatasync latency p50 / p99 | "
                 f"{fmt(b.get('fio_fdatasync_p50_us'))} / {fmt(b.get('fio_fdatasync_p99_us'))} µs |")
        p.append(f"| fio 64 KiB writes, fdatasync every 1 MiB | {fmt(fsync16)} MiB/s |")
        p.append(f"| iperf3 loopback, 1 stream | {fmt(iperf_gbit, 2)} Gbit/s = "
                 f"{fmt(iperf_mib)} MiB/s |")
        p.append(f"\n(quick baseline: {b.get('quick')}; {b.get('timestamp')})\n")
    else:
        p.append("No baseline.json (step `baseline` not run).\n")

    p.append("## Headline figures\n")
    p.append("| figure | corelog | kafka | corelog / kafka | corelog / physical limit |")
    p.append("|---|---|---|---|---|")

    def row(label, results, acks, parts, phase, path, limit=None, limit_name="", digits=1):
        c = get(cell(results, "corelog", acks, parts, phase), *path)
        k = get(cell(results, "kafka", acks, parts, phase), *path)
        lim = "n/a"
        if limit is not None:
            q = ratio(c, limit)
            lim = f"{fmt(q, 2)} of {limit_name}" if q is not None else "n/a"
        p.append(f"| {label} | {fmt(c, digits)} | {fmt(k, digits)} | {fmt(ratio(c, k), 2)} | {lim} |")

    hp = HEADLINE_PARTITIONS
    row(f"produce MiB/s, acks=1, {hp} partitions, 1 KiB", matrix, "1", hp, "produce",
        ("produced", "mib_per_sec"), iperf_mib, "iperf3 loopback")
    row(f"produce MiB/s, acks=all, {hp} partitions (kafka: flush.messages=1)", durable, "all", hp,
        "produce", ("produced", "mib_per_sec"), fsync16, "fio fdatasync-every-1MiB")
    row(f"consume MiB/s (catch-up read), acks=1 cell, {hp} partitions", matrix, "1", hp,
        "consume", ("consumed", "mib_per_sec"), iperf_mib, "iperf3 loopback")
    row(f"broker CPU s per GiB consumed, acks=1 cell, {hp} partitions", matrix, "1", hp,
        "consume", ("broker_cpu", "cpu_secs_per_gib"), digits=2)
    row(f"broker CPU s per GiB produced, acks=1, {hp} partitions", matrix, "1", hp,
        "produce", ("broker_cpu", "cpu_secs_per_gib"), digits=2)
    row(f"produce p99 latency µs at max rate, acks=1, {hp} partitions", matrix, "1", hp,
        "produce", ("produce_latency", "p99_us"), digits=0)
    row(f"end-to-end p99.9 µs at half the slower broker's max rate, acks=1, {hp} partitions", matrix, "1",
        hp, "latency", ("end_to_end_latency", "p999_us"), digits=0)
    row(f"end-to-end p99.9 µs at the same fixed rate (latency step), acks=1, {hp} partitions",
        latency, "1", hp, "latency", ("end_to_end_latency", "p999_us"), digits=0)
    for t in BROKERS:
        many = get(cell(matrix, t, "1", MANY_PARTITIONS), "produced", "mib_per_sec")
        base = get(cell(matrix, t, "1", hp), "produced", "mib_per_sec")
        p.append(f"\n{t}: acks=1 produce at {MANY_PARTITIONS} partitions / at {hp} partitions: "
                 f"{fmt(ratio(many, base), 2)}")
    rate = read_text(os.path.join(out, "latency-rate.txt"))
    if rate:
        p.append(f"\nFixed rate of the latency step: {rate.strip()} records/s.")
    p.append("")

    p.append("## Cross-check with Kafka's tools (crosscheck.csv)\n")
    rows = crosscheck_rows(os.path.join(out, "crosscheck"))
    if rows:
        p.append("| broker | tool | phase | records/s | MiB/s | avg ms | p99 ms | p99.9 ms |")
        p.append("|---|---|---|---|---|---|---|---|")
        for r in rows:
            p.append(f"| {r['broker']} | {r['tool']} | {r['phase']} | {fmt(r['records_per_sec'], 0)} "
                     f"| {fmt(r['mib_per_sec'], 2)} | {fmt(r['avg_latency_ms'], 2)} "
                     f"| {fmt(r['p99_ms'], 2)} | {fmt(r['p999_ms'], 2)} |")
        p.append("\ncorelog-bench / Kafka's tool (records/s), per broker:\n")
        for broker, phase, a, b2, q in crosscheck_ratios(rows):
            p.append(f"- {broker} {phase}: {fmt(q, 2)}")
    else:
        p.append("No cross-check outputs (step `crosscheck` not run).")
    p.append("")
    print("\n".join(p))


SAMPLE_PRODUCER = (
    "193021 records sent, 38527.1 records/sec (37.62 MB/sec), 596.8 ms avg latency, 855.0 ms max"
    " latency.\n500000 records sent, 53919.982746 records/sec (52.66 MB/sec), 344.05 ms avg latency,"
    " 855.00 ms max latency, 359 ms 50th, 764 ms 95th, 804 ms 99th, 836 ms 99.9th.\n")
SAMPLE_CONSUMER = (
    "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec,"
    " rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec\n2026-11-25 06:28:42:211,"
    " 2026-11-25 06:28:51:793, 976.5625, 101.9164, 1000000, 104362.3461, 2366, 7216, 135.3329,"
    " 138580.9313\n")


def selftest():
    p = parse_producer_perf(SAMPLE_PRODUCER)
    assert p is not None, "producer line not parsed"
    assert p["records"] == 500000 and abs(p["records_per_sec"] - 53919.982746) < 1e-6, p
    assert p["p999_ms"] == 836.0 and p["p95_ms"] == 764.0 and p["max_latency_ms"] == 855.0, p
    assert parse_producer_perf("193021 records sent, 1.0 records/sec (1.0 MB/sec), 1 ms avg"
                               " latency, 2 ms max latency.") is None, "progress line taken as final"
    c = parse_consumer_perf(SAMPLE_CONSUMER)
    assert c is not None and c["fetch.nMsg.sec"] == 138580.9313 and c["rebalance.time.ms"] == 2366, c
    spec = {"acks": "1", "partitions": 16, "message_bytes": 1024, "producers": 1, "consumers": 1,
            "target_rate": 500}
    # Matrix rows (benchreport's MatrixRow): the row's phase wins over what the spec suggests.
    rows = [{"target": "kafka", "phase": "produce", "cell": {}, "error": None,
             "result": {"target": "kafka", "spec": spec, "produced": {"msgs_per_sec": 10.0},
                        "consumed": {}}},
            {"target": "kafka", "phase": "latency", "cell": {}, "error": None,
             "result": {"target": "kafka", "spec": spec, "produced": {"msgs_per_sec": 5.0},
                        "consumed": {}}},
            {"target": "corelog", "phase": "produce", "cell": {}, "error": "broker gone",
             "result": None}]
    rs = run_results(rows)
    assert len(rs) == 2, rs
    assert cell(rs, "kafka", "1", 16)["produced"]["msgs_per_sec"] == 10.0
    assert cell(rs, "kafka", "1", 16, "latency")["produced"]["msgs_per_sec"] == 5.0
    assert cell(rs, "kafka", "all", 16) is None and cell(rs, "corelog", "1", 16) is None
    # Bare RunResults (corelog-bench run --json): the phase comes from the spec.
    bare = run_results([{"spec": dict(spec, producers=0), "produced": {}, "consumed": {}},
                        {"spec": spec, "produced": {}, "consumed": {}},
                        {"spec": dict(spec, target_rate=None), "produced": {}, "consumed": {}}])
    assert [r["_phase"] for r in bare] == ["consume", "latency", "produce"], bare
    print("bench-summary selftest: ok")


def main(argv):
    if len(argv) >= 2 and argv[1] == "selftest":
        selftest()
    elif len(argv) == 4 and argv[1] == "crosscheck":
        cmd_crosscheck(argv[2], argv[3])
    elif len(argv) == 4 and argv[1] == "half-rate":
        r = half_rate(argv[2], int(argv[3]))
        if r is None:
            return 1
        print(r)
    elif len(argv) == 3 and argv[1] == "summary":
        cmd_summary(argv[2])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
