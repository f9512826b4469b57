//! Presenting results: an aligned summary table on stdout, JSON, and CSV with one flat row per
//! result (stable column names that carry their units, for spreadsheets and scripts).

use std::path::Path;

use anyhow::{Context, Result};

use crate::result::{LatencySummary, RunResult};
use crate::spec::StopAfter;

const US_PER_MS: f64 = 1000.0;

/// Latency in microseconds as milliseconds with 2 decimals.
fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / US_PER_MS)
}

/// A latency percentile, or "-" when nothing was measured (e.g. no consumer: no e2e latency).
fn lat(l: &LatencySummary, us: u64) -> String {
    if l.count == 0 {
        "-".into()
    } else {
        ms(us)
    }
}

fn errors_total(r: &RunResult) -> u64 {
    r.errors.iter().map(|(_, n)| n).sum()
}

/// Lays out rows under headers: text columns left-aligned, the rest right-aligned.
pub fn align(headers: &[&str], rows: &[Vec<String>], left_aligned_columns: usize) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            let w = widths.get(i).copied().unwrap_or(0);
            if i < left_aligned_columns {
                s.push_str(&format!("{cell:<w$}"));
            } else {
                s.push_str(&format!("{cell:>w$}"));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = line(headers.to_vec());
    out.push('\n');
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

const TABLE_HEADERS: [&str; 20] = [
    "target",
    "acks",
    "parts",
    "msg B",
    "prod/cons",
    "rate msg/s",
    "prod MiB/s",
    "prod msg/s",
    "cons MiB/s",
    "ack p50 ms",
    "ack p99",
    "ack p99.9",
    "ack max",
    "e2e p50 ms",
    "e2e p99",
    "e2e p99.9",
    "e2e max",
    "broker s/GiB",
    "gen cores",
    "errors",
];

fn table_cells(r: &RunResult) -> Vec<String> {
    let s = &r.spec;
    vec![
        if r.target.is_empty() {
            s.bootstrap.clone()
        } else {
            r.target.clone()
        },
        s.acks.to_string(),
        s.partitions.to_string(),
        s.message_bytes.to_string(),
        format!("{}/{}", s.producers, s.consumers),
        s.target_rate
            .map(|n| n.to_string())
            .unwrap_or_else(|| "max".into()),
        format!("{:.1}", r.produced.mib_per_sec),
        format!("{:.0}", r.produced.msgs_per_sec),
        format!("{:.1}", r.consumed.mib_per_sec),
        lat(&r.produce_latency, r.produce_latency.p50_us),
        lat(&r.produce_latency, r.produce_latency.p99_us),
        lat(&r.produce_latency, r.produce_latency.p999_us),
        lat(&r.produce_latency, r.produce_latency.max_us),
        lat(&r.end_to_end_latency, r.end_to_end_latency.p50_us),
        lat(&r.end_to_end_latency, r.end_to_end_latency.p99_us),
        lat(&r.end_to_end_latency, r.end_to_end_latency.p999_us),
        lat(&r.end_to_end_latency, r.end_to_end_latency.max_us),
        r.broker_cpu
            .as_ref()
            .map(|c| format!("{:.2}", c.cpu_secs_per_gib))
            .unwrap_or_else(|| "-".into()),
        format!("{:.2}", r.generator_cpu.cores),
        errors_total(r).to_string(),
    ]
}

/// The summary table, one row per result.
pub fn summary_table(results: &[RunResult]) -> String {
    let rows: Vec<Vec<String>> = results.iter().map(table_cells).collect();
    align(&TABLE_HEADERS, &rows, 1)
}

/// The summary table with a leading label column (e.g. the matrix's phase) named `label_header`.
pub fn summary_table_labelled(label_header: &str, rows: &[(String, &RunResult)]) -> String {
    let mut headers: Vec<&str> = vec![TABLE_HEADERS[0], label_header];
    headers.extend_from_slice(&TABLE_HEADERS[1..]);
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|(label, r)| {
            let mut c = table_cells(r);
            c.insert(1, label.clone());
            c
        })
        .collect();
    align(&headers, &cells, 2)
}

pub fn print_summary(results: &[RunResult]) {
    print!("{}", summary_table(results));
}

pub fn write_json(path: &Path, results: &[RunResult]) -> Result<()> {
    std::fs::write(path, serde_json::to_vec_pretty(results)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// One CSV field, quoted when it holds a separator, a quote or a line break (RFC 4180).
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub fn csv_line(fields: &[String]) -> String {
    let mut s = fields
        .iter()
        .map(|f| csv_field(f))
        .collect::<Vec<_>>()
        .join(",");
    s.push('\n');
    s
}

const LATENCY_COLUMNS: [&str; 8] = [
    "count", "mean_us", "p50_us", "p90_us", "p99_us", "p999_us", "p9999_us", "max_us",
];

fn latency_fields(l: &LatencySummary) -> Vec<String> {
    vec![
        l.count.to_string(),
        format!("{:.1}", l.mean_us),
        l.p50_us.to_string(),
        l.p90_us.to_string(),
        l.p99_us.to_string(),
        l.p999_us.to_string(),
        l.p9999_us.to_string(),
        l.max_us.to_string(),
    ]
}

/// The CSV columns of a result, in order; names carry units.
pub fn csv_header() -> Vec<String> {
    let mut h: Vec<String> = [
        "target",
        "bootstrap",
        "topic",
        "acks",
        "partitions",
        "message_bytes",
        "producers",
        "consumers",
        "consume_from",
        "target_rate_msgs_per_sec",
        "stop_after",
        "warmup_secs",
        "batch_bytes",
        "linger_ms",
        "compression",
        "max_in_flight",
        "idempotence",
        "window_secs",
        "produced_messages",
        "produced_bytes",
        "produce_msgs_per_sec",
        "produce_mib_per_sec",
        "consumed_messages",
        "consumed_bytes",
        "consume_msgs_per_sec",
        "consume_mib_per_sec",
        "total_acked_messages",
        "total_consumed_messages",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for prefix in ["produce", "e2e"] {
        for col in LATENCY_COLUMNS {
            h.push(format!("{prefix}_{col}"));
        }
    }
    h.extend(
        [
            "broker_pid",
            "broker_cpu_secs",
            "broker_cpu_cores",
            "broker_cpu_secs_per_gib",
            "generator_cpu_secs",
            "generator_cpu_cores",
            "generator_cpu_secs_per_gib",
            "errors_total",
            "errors",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    h
}

/// The CSV fields of a result, matching [`csv_header`].
pub fn csv_fields(r: &RunResult) -> Vec<String> {
    let s = &r.spec;
    let mut f = vec![
        r.target.clone(),
        s.bootstrap.clone(),
        s.topic.clone(),
        s.acks.to_string(),
        s.partitions.to_string(),
        s.message_bytes.to_string(),
        s.producers.to_string(),
        s.consumers.to_string(),
        format!("{:?}", s.consume_from).to_lowercase(),
        s.target_rate.map(|n| n.to_string()).unwrap_or_default(),
        match s.stop_after {
            StopAfter::Duration(d) => format!("{}s", d.as_secs_f64()),
            StopAfter::Messages(n) => format!("{n} msgs"),
        },
        format!("{}", s.warmup.as_secs_f64()),
        s.batch_bytes.to_string(),
        format!("{}", s.linger.as_secs_f64() * 1000.0),
        s.compression.to_string(),
        s.max_in_flight.to_string(),
        s.idempotence.to_string(),
        format!("{:.3}", r.window_secs),
        r.produced.messages.to_string(),
        r.produced.bytes.to_string(),
        format!("{:.1}", r.produced.msgs_per_sec),
        format!("{:.3}", r.produced.mib_per_sec),
        r.consumed.messages.to_string(),
        r.consumed.bytes.to_string(),
        format!("{:.1}", r.consumed.msgs_per_sec),
        format!("{:.3}", r.consumed.mib_per_sec),
        r.total_acked_messages.to_string(),
        r.total_consumed_messages.to_string(),
    ];
    f.extend(latency_fields(&r.produce_latency));
    f.extend(latency_fields(&r.end_to_end_latency));
    match &r.broker_cpu {
        Some(c) => f.extend([
            c.pid.to_string(),
            format!("{:.3}", c.cpu_secs),
            format!("{:.3}", c.cores),
            format!("{:.3}", c.cpu_secs_per_gib),
        ]),
        None => f.extend(std::iter::repeat_n(String::new(), 4)),
    }
    f.extend([
        format!("{:.3}", r.generator_cpu.cpu_secs),
        format!("{:.3}", r.generator_cpu.cores),
        format!("{:.3}", r.generator_cpu.cpu_secs_per_gib),
        errors_total(r).to_string(),
        r.errors
            .iter()
            .map(|(name, n)| format!("{name}={n}"))
            .collect::<Vec<_>>()
            .join(";"),
    ]);
    f
}

/// The whole CSV text: header and one row per result.
pub fn csv_text(results: &[RunResult]) -> String {
    let mut out = csv_line(&csv_header());
    for r in results {
        out.push_str(&csv_line(&csv_fields(r)));
    }
    out
}

pub fn write_csv(path: &Path, results: &[RunResult]) -> Result<()> {
    std::fs::write(path, csv_text(results))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Test helpers shared with the matrix's tests.
#[cfg(test)]
pub(crate) mod testing {
    use crate::result::{CpuUse, LatencySummary, RunResult, Throughput};
    use crate::spec::WorkloadSpec;

    /// A splitter for RFC 4180 CSV (quoted fields with doubled quotes and embedded commas or
    /// line breaks), written here so the tests do not trust the writer's own idea of quoting.
    pub fn parse_csv(text: &str) -> Vec<Vec<String>> {
        let mut rows = Vec::new();
        let mut row = Vec::new();
        let mut field = String::new();
        let mut quoted = false;
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match (quoted, c) {
                (true, '"') if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                (true, '"') => quoted = false,
                (true, c) => field.push(c),
                (false, '"') => quoted = true,
                (false, ',') => row.push(std::mem::take(&mut field)),
                (false, '\n') => {
                    row.push(std::mem::take(&mut field));
                    rows.push(std::mem::take(&mut row));
                }
                (false, c) => field.push(c),
            }
        }
        assert!(!quoted, "unterminated quote");
        if !field.is_empty() || !row.is_empty() {
            row.push(field);
            rows.push(row);
        }
        rows
    }

    pub fn latency(base_us: u64) -> LatencySummary {
        LatencySummary {
            count: 1000,
            mean_us: base_us as f64 * 1.2,
            p50_us: base_us,
            p90_us: base_us * 2,
            p99_us: base_us * 4,
            p999_us: base_us * 8,
            p9999_us: base_us * 16,
            max_us: base_us * 32,
        }
    }

    pub fn result(target: &str, partitions: u32, mib_per_sec: f64) -> RunResult {
        let mut spec = WorkloadSpec::new("127.0.0.1:9092", "t");
        spec.partitions = partitions;
        let window = 10.0;
        let bytes = (mib_per_sec * window * 1024.0 * 1024.0) as u64;
        let messages = bytes / spec.message_bytes as u64;
        RunResult {
            target: target.to_string(),
            spec,
            window_secs: window,
            produced: Throughput::new(messages, bytes, window),
            consumed: Throughput::new(messages, bytes, window),
            produce_latency: latency(1500),
            end_to_end_latency: latency(2500),
            broker_cpu: Some(CpuUse {
                pid: 42,
                cpu_secs: 3.0,
                cores: 0.3,
                cpu_secs_per_gib: 1.25,
            }),
            generator_cpu: CpuUse {
                pid: 7,
                cpu_secs: 5.0,
                cores: 0.5,
                cpu_secs_per_gib: 2.0,
            },
            total_acked_messages: messages,
            total_consumed_messages: messages,
            errors: vec![("NOT_LEADER_OR_FOLLOWER".into(), 2), ("a,\"b\"".into(), 1)],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn csv_parses_back_with_a_full_row_per_result() {
        let mut a = result("corelog", 4, 100.0);
        a.spec.topic = "odd,topic \"name\"\nwith a line break".into();
        let b = result("kafka", 16, 50.0);
        let text = csv_text(&[a.clone(), b.clone()]);
        let rows = parse_csv(&text);
        assert_eq!(rows.len(), 3, "{text}");
        let header = &rows[0];
        assert!(rows.iter().all(|r| r.len() == header.len()), "{rows:?}");
        let col = |name: &str| header.iter().position(|h| h == name).unwrap();
        assert_eq!(rows[1][col("topic")], a.spec.topic);
        assert_eq!(rows[1][col("produce_mib_per_sec")], "100.000");
        assert_eq!(rows[2][col("partitions")], "16");
        assert_eq!(rows[2][col("e2e_p999_us")], "20000");
        assert_eq!(rows[1][col("errors_total")], "3");
        assert_eq!(
            rows[2][col("total_acked_messages")],
            b.total_acked_messages.to_string()
        );
        assert_eq!(rows[1][col("errors")], "NOT_LEADER_OR_FOLLOWER=2;a,\"b\"=1");
        assert_eq!(rows[1][col("broker_cpu_secs_per_gib")], "1.250");
        // Column names are unique, so a script can address them by name.
        let mut names = header.clone();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), header.len());
    }

    #[test]
    fn json_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        let rs = vec![result("corelog", 4, 100.0), result("kafka", 1, 7.5)];
        write_json(&path, &rs).unwrap();
        let back: Vec<RunResult> = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[1].target, "kafka");
        assert_eq!(back[0].produced, rs[0].produced);
        assert_eq!(back[1].end_to_end_latency, rs[1].end_to_end_latency);
        assert_eq!(back[0].broker_cpu, rs[0].broker_cpu);
        assert_eq!(back[0].errors, rs[0].errors);
        write_csv(&dir.path().join("r.csv"), &rs).unwrap();
        assert_eq!(
            parse_csv(&std::fs::read_to_string(dir.path().join("r.csv")).unwrap()).len(),
            3
        );
    }

    #[test]
    fn table_is_aligned_and_holds_the_values() {
        let mut b = result("kafka", 16, 50.0);
        b.spec.target_rate = Some(12345);
        b.broker_cpu = None;
        b.end_to_end_latency = LatencySummary::default();
        let table = summary_table(&[result("corelog", 4, 100.0), b.clone()]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        assert!(lines[0].starts_with("target"));
        // p50 1500 us, p99.9 12000 us, max 48000 us, MiB/s 100.0, msgs/s 102400.
        for v in [
            "corelog", "100.0", "102400", "1.50", "12.00", "48.00", "1.25", "0.50",
        ] {
            assert!(lines[1].contains(v), "{v} missing in {}", lines[1]);
        }
        assert!(lines[1].contains(" max "), "{}", lines[1]);
        assert!(lines[2].contains("12345"), "{}", lines[2]);
        // Right-aligned numbers: every row's "prod MiB/s" value ends where the header does.
        let end = lines[0].find("prod MiB/s").unwrap() + "prod MiB/s".len();
        assert_eq!(&lines[1][end - 5..end], "100.0", "{table}");
        assert_eq!(&lines[2][end - 4..end], "50.0", "{table}");
        let labelled = summary_table_labelled("phase", &[("produce".into(), &b)]);
        assert!(labelled
            .lines()
            .next()
            .unwrap()
            .starts_with("target  phase"));
        assert!(labelled
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("kafka   produce"));
    }
}
