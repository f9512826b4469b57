//! The matrix and compare modes: sweep message size × acks × partitions ("cells") over one or
//! more brokers ("targets"), with three phases per cell and target:
//!
//! - produce: as fast as possible, no consumers: the broker's produce throughput;
//! - consume: consumers alone read back, from the earliest offset, what the produce phase wrote:
//!   catch-up read throughput;
//! - latency: producers and consumers together, every target at the same rate: half the msgs/s
//!   of the slowest target's produce phase in the cell (produce-ack and end-to-end latency below
//!   saturation, under equal load).
//!
//! Within a cell the targets run one after the other, and the target that goes first rotates from
//! cell to cell, so that slow drift of a noisy machine (page cache filling, thermal throttling,
//! another tenant) hits every target alike. Each (cell, target) gets a fresh topic, deleted after
//! its phases. Results are written after every run, so a crash keeps what ran.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::report;
use crate::result::{LatencySummary, RunResult};
use crate::spec::{Acks, ConsumeFrom, StopAfter, WorkloadSpec};
use crate::svg::{self, Chart, Series, XScale};

/// A phase of a cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Produce,
    Consume,
    Latency,
}

pub const ALL_PHASES: [Phase; 3] = [Phase::Produce, Phase::Consume, Phase::Latency];

impl FromStr for Phase {
    type Err = String;
    fn from_str(s: &str) -> Result<Phase, String> {
        match s {
            "produce" => Ok(Phase::Produce),
            "consume" => Ok(Phase::Consume),
            "latency" => Ok(Phase::Latency),
            _ => Err(format!(
                "phase must be produce, consume or latency, not {s:?}"
            )),
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Produce => "produce",
            Phase::Consume => "consume",
            Phase::Latency => "latency",
        })
    }
}

/// The axes a matrix sweeps, and the phases run in each cell.
#[derive(Clone, Debug)]
pub struct MatrixAxes {
    pub acks: Vec<Acks>,
    pub partitions: Vec<u32>,
    pub message_bytes: Vec<usize>,
    pub phases: Vec<Phase>,
}

/// A broker to measure.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub name: String,
    pub bootstrap: String,
    pub broker_pid: Option<u32>,
    /// Topic configs for this target only (e.g. Kafka's flush.messages=1).
    pub topic_configs: Vec<(String, String)>,
}

impl Target {
    /// Parses NAME=HOST:PORT[@PID].
    pub fn parse(s: &str) -> Result<Target, String> {
        let (name, rest) = s
            .split_once('=')
            .ok_or_else(|| format!("expected NAME=HOST:PORT[@PID], not {s:?}"))?;
        let (bootstrap, pid) = match rest.split_once('@') {
            Some((b, p)) => (b, Some(p.parse().map_err(|_| format!("bad pid in {s:?}"))?)),
            None => (rest, None),
        };
        if name.is_empty() || bootstrap.is_empty() {
            return Err(format!("expected NAME=HOST:PORT[@PID], not {s:?}"));
        }
        Ok(Target {
            name: name.to_string(),
            bootstrap: bootstrap.to_string(),
            broker_pid: pid,
            topic_configs: Vec::new(),
        })
    }
}

/// One point of the sweep.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cell {
    pub message_bytes: usize,
    pub acks: Acks,
    pub partitions: u32,
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} B acks={} partitions={}",
            self.message_bytes, self.acks, self.partitions
        )
    }
}

/// One run of the matrix: what ran, and its result or why it has none.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MatrixRow {
    pub target: String,
    pub phase: Phase,
    pub cell: Cell,
    pub topic: String,
    /// How the run was parameterised where that is derived (the latency phase's rate).
    pub note: String,
    pub result: Option<RunResult>,
    pub error: Option<String>,
}

/// Kafka topic names allow only these characters.
fn topic_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A suffix no earlier matrix used (process id and clock), shared by the topics of one matrix.
fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}-{}", std::process::id(), nanos % 1_000_000_000)
}

pub fn topic_name(cell: &Cell, target: &Target, unique: &str) -> String {
    format!(
        "corelog-bench-m-{}-{}-{}-{}-{}",
        cell.acks,
        cell.partitions,
        cell.message_bytes,
        topic_safe(&target.name),
        unique
    )
}

/// The spec of a cell on a target, before the phase's own settings.
fn cell_spec(base: &WorkloadSpec, cell: &Cell, target: &Target, topic: &str) -> WorkloadSpec {
    let mut spec = base.clone();
    spec.topic = topic.to_string();
    spec.bootstrap = target.bootstrap.clone();
    spec.broker_pid = target.broker_pid;
    spec.topic_configs = base.topic_configs.clone();
    spec.topic_configs
        .extend(target.topic_configs.iter().cloned());
    spec.acks = cell.acks;
    spec.partitions = cell.partitions;
    spec.message_bytes = cell.message_bytes;
    spec
}

/// The latency phase's rate: half of what the produce phase reached, at least 1 record/s.
pub fn half_rate(produce_msgs_per_sec: f64) -> u64 {
    ((produce_msgs_per_sec / 2.0).round() as u64).max(1)
}

/// Sets up one phase, or says why it cannot run. `produced` is this target's produce-phase result
/// in this cell, if it ran and succeeded.
fn phase_spec(
    cell_spec: &WorkloadSpec,
    base: &WorkloadSpec,
    phase: Phase,
    produced: Option<&RunResult>,
    slowest_produce_msgs_per_sec: Option<f64>,
) -> Result<(WorkloadSpec, String), String> {
    let mut spec = cell_spec.clone();
    let mut note = String::new();
    match phase {
        Phase::Produce => {
            spec.producers = base.producers.max(1);
            spec.consumers = 0;
            spec.target_rate = None;
            spec.stop_after = base.stop_after;
        }
        Phase::Consume => {
            // The whole topic: the warm-up's and the drain's records as well as the window's.
            let records = produced.map(|r| r.total_acked_messages.max(r.produced.messages));
            let records =
                match records {
                    Some(n) if n > 0 => n,
                    Some(_) => return Err("skipped: the produce phase produced nothing".into()),
                    None => return Err(
                        "skipped: the consume phase reads what this cell's produce phase wrote, \
                         and that did not run or failed"
                            .into(),
                    ),
                };
            spec.producers = 0;
            spec.consumers = base.consumers.max(1);
            spec.consume_from = ConsumeFrom::Earliest;
            spec.target_rate = None;
            spec.stop_after = StopAfter::Messages(records);
            // A warm-up would read part of the backlog unmeasured, and the backlog is finite.
            spec.warmup = Duration::ZERO;
            note = format!("reads {records} records from the earliest offset");
        }
        Phase::Latency => {
            spec.producers = base.producers.max(1);
            spec.consumers = base.consumers.max(1);
            spec.consume_from = ConsumeFrom::Latest;
            spec.stop_after = base.stop_after;
            match (produced, base.target_rate) {
                (Some(r), _) if r.produced.msgs_per_sec > 0.0 => {
                    let slowest = slowest_produce_msgs_per_sec.unwrap_or(r.produced.msgs_per_sec);
                    let rate = half_rate(slowest);
                    spec.target_rate = Some(rate);
                    note = format!(
                        "rate {rate} msgs/s = half the {slowest:.0} msgs/s of the slowest \
                         target's produce phase in this cell (this one: {:.0})",
                        r.produced.msgs_per_sec
                    );
                }
                (_, Some(rate)) => {
                    spec.target_rate = Some(rate);
                    note = format!(
                        "rate {rate} msgs/s from --rate (no produce-phase throughput to halve)"
                    );
                }
                (Some(_), None) => {
                    return Err(
                        "skipped: the produce phase acknowledged nothing within its \
                                window, so there is no rate to halve (give --rate, or a longer \
                                --duration)"
                            .into(),
                    )
                }
                (None, None) => {
                    return Err(
                        "skipped: the latency phase runs at half the produce phase's \
                                msgs/s, and that did not run or failed (or give --rate)"
                            .into(),
                    )
                }
            }
        }
    }
    spec.validate()?;
    Ok((spec, note))
}

/// The cells in sweep order: message size, then acks, then partitions.
pub fn cells(axes: &MatrixAxes) -> Vec<Cell> {
    let mut out = Vec::new();
    for &message_bytes in &axes.message_bytes {
        for &acks in &axes.acks {
            for &partitions in &axes.partitions {
                out.push(Cell {
                    message_bytes,
                    acks,
                    partitions,
                });
            }
        }
    }
    out
}

/// Runs the matrix against real brokers with the load generator.
pub fn run_matrix(
    base: &WorkloadSpec,
    axes: &MatrixAxes,
    targets: &[Target],
    out: &Path,
    progress: bool,
) -> Result<()> {
    run_matrix_with(base, axes, targets, out, |spec, target, _phase| {
        // Every run starts with a clean page cache: otherwise an fsync-bound run pays for the
        // writeback of what the previous run (maybe another broker's) left dirty.
        // SAFETY: sync(2) takes no arguments and cannot fail.
        unsafe { libc::sync() };
        crate::workload::run_with_progress(spec, &target.name, progress)
    })?;
    Ok(())
}

/// [`run_matrix`] with any runner (tests pass one that computes results from the spec).
pub fn run_matrix_with(
    base: &WorkloadSpec,
    axes: &MatrixAxes,
    targets: &[Target],
    out: &Path,
    runner: impl FnMut(&WorkloadSpec, &Target, Phase) -> Result<RunResult>,
) -> Result<Vec<MatrixRow>> {
    run_matrix_inner(base, axes, targets, out, runner, |target, topic| {
        crate::workload::delete_topic(&target.bootstrap, topic)
    })
}

fn run_matrix_inner(
    base: &WorkloadSpec,
    axes: &MatrixAxes,
    targets: &[Target],
    out: &Path,
    mut runner: impl FnMut(&WorkloadSpec, &Target, Phase) -> Result<RunResult>,
    mut delete_topic: impl FnMut(&Target, &str) -> Result<()>,
) -> Result<Vec<MatrixRow>> {
    if targets.is_empty() {
        bail!("no targets");
    }
    let phases: Vec<Phase> = ALL_PHASES
        .into_iter()
        .filter(|p| axes.phases.contains(p))
        .collect();
    let cells = cells(axes);
    if cells.is_empty() || phases.is_empty() {
        bail!("empty matrix: every axis and --phases needs at least one value");
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let unique = unique_suffix();
    let total_runs = cells.len() * targets.len() * phases.len();
    let mut rows: Vec<MatrixRow> = Vec::with_capacity(total_runs);
    for (cell_index, cell) in cells.iter().enumerate() {
        // Rotate which target goes first, cell by cell.
        let order: Vec<&Target> = (0..targets.len())
            .map(|k| &targets[(cell_index + k) % targets.len()])
            .collect();
        let specs: Vec<WorkloadSpec> = order
            .iter()
            .map(|t| cell_spec(base, cell, t, &topic_name(cell, t, &unique)))
            .collect();
        // Pass 1: produce and consume, target after target.
        let mut produced: Vec<Option<RunResult>> = vec![None; order.len()];
        for (i, target) in order.iter().enumerate() {
            for &phase in phases.iter().filter(|&&p| p != Phase::Latency) {
                let setup = phase_spec(&specs[i], base, phase, produced[i].as_ref(), None);
                let row = run_phase(
                    &mut runner,
                    setup,
                    target,
                    phase,
                    cell,
                    &specs[i],
                    &rows,
                    total_runs,
                );
                if phase == Phase::Produce {
                    produced[i] = row.result.clone();
                }
                rows.push(row);
                write_rows(out, &rows)?;
            }
        }
        // Pass 2: latency, every target at the same rate (half of the slowest target's produce
        // throughput in this cell), so that each broker carries the same load; at half of its
        // own maximum a faster broker would be measured under a heavier load.
        if phases.contains(&Phase::Latency) {
            let slowest = produced
                .iter()
                .flatten()
                .map(|r| r.produced.msgs_per_sec)
                .filter(|&m| m > 0.0)
                .reduce(f64::min);
            for (i, target) in order.iter().enumerate() {
                let setup = phase_spec(
                    &specs[i],
                    base,
                    Phase::Latency,
                    produced[i].as_ref(),
                    slowest,
                );
                let row = run_phase(
                    &mut runner,
                    setup,
                    target,
                    Phase::Latency,
                    cell,
                    &specs[i],
                    &rows,
                    total_runs,
                );
                rows.push(row);
                write_rows(out, &rows)?;
            }
        }
        for (i, target) in order.iter().enumerate() {
            if let Err(e) = delete_topic(target, &specs[i].topic) {
                eprintln!(
                    "warning: deleting topic {} on {}: {e:#}",
                    specs[i].topic, target.name
                );
            }
        }
    }
    write_outputs(out, &rows, targets, axes)?;
    print_outputs(&rows, targets);
    Ok(rows)
}

/// Runs one phase of one target in one cell (or records why it could not run).
#[allow(clippy::too_many_arguments)]
fn run_phase(
    runner: &mut impl FnMut(&WorkloadSpec, &Target, Phase) -> Result<RunResult>,
    setup: Result<(WorkloadSpec, String), String>,
    target: &Target,
    phase: Phase,
    cell: &Cell,
    spec: &WorkloadSpec,
    rows_so_far: &[MatrixRow],
    total_runs: usize,
) -> MatrixRow {
    eprintln!(
        "[{}/{total_runs}] {} {phase}: {cell}",
        rows_so_far.len() + 1,
        target.name
    );
    let mut row = MatrixRow {
        target: target.name.clone(),
        phase,
        cell: *cell,
        topic: spec.topic.clone(),
        note: String::new(),
        result: None,
        error: None,
    };
    match setup {
        Err(why) => row.error = Some(why),
        Ok((phase_spec, note)) => {
            if !note.is_empty() {
                eprintln!("  {note}");
            }
            row.note = note;
            match runner(&phase_spec, target, phase) {
                Ok(mut r) => {
                    if r.target.is_empty() {
                        r.target = target.name.clone();
                    }
                    row.result = Some(r);
                }
                Err(e) => row.error = Some(format!("{e:#}")),
            }
        }
    }
    if let Some(e) = &row.error {
        eprintln!("  {} {phase} {cell} failed: {e}", target.name);
    }
    row
}

/// results.json and results.csv, rewritten after every run.
fn write_rows(out: &Path, rows: &[MatrixRow]) -> Result<()> {
    let json = out.join("results.json");
    std::fs::write(&json, serde_json::to_vec_pretty(rows)?)
        .with_context(|| format!("writing {}", json.display()))?;
    let csv = out.join("results.csv");
    std::fs::write(&csv, rows_csv(rows)).with_context(|| format!("writing {}", csv.display()))?;
    Ok(())
}

/// The CSV of the matrix: the row's own columns, then a result's columns (empty for a failure,
/// except the ones that say what ran).
pub fn rows_csv(rows: &[MatrixRow]) -> String {
    let result_header = report::csv_header();
    let mut header: Vec<String> = ["phase", "status", "error", "note"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    header.extend(result_header.iter().cloned());
    let mut text = report::csv_line(&header);
    for row in rows {
        let mut fields = vec![
            row.phase.to_string(),
            if row.result.is_some() { "ok" } else { "failed" }.to_string(),
            row.error.clone().unwrap_or_default(),
            row.note.clone(),
        ];
        match &row.result {
            Some(r) => fields.extend(report::csv_fields(r)),
            None => {
                let mut empty = vec![String::new(); result_header.len()];
                let mut set = |name: &str, value: String| {
                    if let Some(i) = result_header.iter().position(|h| h == name) {
                        empty[i] = value;
                    }
                };
                set("target", row.target.clone());
                set("topic", row.topic.clone());
                set("acks", row.cell.acks.to_string());
                set("partitions", row.cell.partitions.to_string());
                set("message_bytes", row.cell.message_bytes.to_string());
                fields.extend(empty);
            }
        }
        text.push_str(&report::csv_line(&fields));
    }
    text
}

/// A figure compared between targets.
struct Figure {
    name: &'static str,
    higher_is_better: bool,
    value: fn(&RunResult) -> Option<f64>,
}

fn latency_ms(l: &LatencySummary, us: u64) -> Option<f64> {
    (l.count > 0 && us > 0).then_some(us as f64 / 1000.0)
}

fn broker_cpu(r: &RunResult) -> Option<f64> {
    r.broker_cpu
        .as_ref()
        .map(|c| c.cpu_secs_per_gib)
        .filter(|v| *v > 0.0)
}

fn positive(v: f64) -> Option<f64> {
    (v > 0.0).then_some(v)
}

fn figures(phase: Phase) -> Vec<Figure> {
    let produce_mib = Figure {
        name: "produce MiB/s",
        higher_is_better: true,
        value: |r| positive(r.produced.mib_per_sec),
    };
    let produce_msgs = Figure {
        name: "produce msgs/s",
        higher_is_better: true,
        value: |r| positive(r.produced.msgs_per_sec),
    };
    let ack = [
        Figure {
            name: "produce p50 ms",
            higher_is_better: false,
            value: |r| latency_ms(&r.produce_latency, r.produce_latency.p50_us),
        },
        Figure {
            name: "produce p99 ms",
            higher_is_better: false,
            value: |r| latency_ms(&r.produce_latency, r.produce_latency.p99_us),
        },
        Figure {
            name: "produce p99.9 ms",
            higher_is_better: false,
            value: |r| latency_ms(&r.produce_latency, r.produce_latency.p999_us),
        },
    ];
    let cpu = Figure {
        name: "broker CPU s/GiB",
        higher_is_better: false,
        value: broker_cpu,
    };
    match phase {
        Phase::Produce => {
            let mut f = vec![produce_mib, produce_msgs];
            f.extend(ack);
            f.push(cpu);
            f
        }
        Phase::Consume => vec![
            Figure {
                name: "consume MiB/s",
                higher_is_better: true,
                value: |r| positive(r.consumed.mib_per_sec),
            },
            Figure {
                name: "consume msgs/s",
                higher_is_better: true,
                value: |r| positive(r.consumed.msgs_per_sec),
            },
            cpu,
        ],
        Phase::Latency => {
            let mut f: Vec<Figure> = ack.into_iter().collect();
            f.extend([
                Figure {
                    name: "e2e p50 ms",
                    higher_is_better: false,
                    value: |r| latency_ms(&r.end_to_end_latency, r.end_to_end_latency.p50_us),
                },
                Figure {
                    name: "e2e p99 ms",
                    higher_is_better: false,
                    value: |r| latency_ms(&r.end_to_end_latency, r.end_to_end_latency.p99_us),
                },
                Figure {
                    name: "e2e p99.9 ms",
                    higher_is_better: false,
                    value: |r| latency_ms(&r.end_to_end_latency, r.end_to_end_latency.p999_us),
                },
                cpu,
            ]);
            f
        }
    }
}

/// One figure of one target against the first target, in one cell and phase.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Ratio {
    pub cell: Cell,
    pub phase: Phase,
    pub figure: String,
    pub higher_is_better: bool,
    pub baseline: String,
    pub baseline_value: f64,
    pub other: String,
    pub other_value: f64,
    /// baseline_value / other_value.
    pub ratio: f64,
    /// The target with the better figure.
    pub winner: String,
    /// How many times better the winner is (≥ 1).
    pub advantage: f64,
}

/// Every figure of every target after the first, against the first, where both measured it.
pub fn ratios(rows: &[MatrixRow], targets: &[Target]) -> Vec<Ratio> {
    let Some(baseline) = targets.first() else {
        return Vec::new();
    };
    let find = |target: &str, cell: &Cell, phase: Phase| {
        rows.iter()
            .find(|r| r.target == target && r.cell == *cell && r.phase == phase)
            .and_then(|r| r.result.as_ref())
    };
    let mut out = Vec::new();
    let mut seen: Vec<(Cell, Phase)> = Vec::new();
    for row in rows {
        if seen.contains(&(row.cell, row.phase)) {
            continue;
        }
        seen.push((row.cell, row.phase));
        let Some(base) = find(&baseline.name, &row.cell, row.phase) else {
            continue;
        };
        for other in &targets[1..] {
            let Some(o) = find(&other.name, &row.cell, row.phase) else {
                continue;
            };
            for fig in figures(row.phase) {
                let (Some(bv), Some(ov)) = ((fig.value)(base), (fig.value)(o)) else {
                    continue;
                };
                let ratio = bv / ov;
                let baseline_wins = if fig.higher_is_better {
                    bv >= ov
                } else {
                    bv <= ov
                };
                out.push(Ratio {
                    cell: row.cell,
                    phase: row.phase,
                    figure: fig.name.to_string(),
                    higher_is_better: fig.higher_is_better,
                    baseline: baseline.name.clone(),
                    baseline_value: bv,
                    other: other.name.clone(),
                    other_value: ov,
                    ratio,
                    winner: if baseline_wins {
                        baseline.name.clone()
                    } else {
                        other.name.clone()
                    },
                    advantage: if ratio >= 1.0 { ratio } else { 1.0 / ratio },
                });
            }
        }
    }
    out
}

pub fn ratios_csv(ratios: &[Ratio]) -> String {
    let header: Vec<String> = [
        "message_bytes",
        "acks",
        "partitions",
        "phase",
        "figure",
        "higher_is_better",
        "baseline",
        "baseline_value",
        "other",
        "other_value",
        "ratio_baseline_over_other",
        "winner",
        "winner_advantage_x",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut text = report::csv_line(&header);
    for r in ratios {
        text.push_str(&report::csv_line(&[
            r.cell.message_bytes.to_string(),
            r.cell.acks.to_string(),
            r.cell.partitions.to_string(),
            r.phase.to_string(),
            r.figure.clone(),
            r.higher_is_better.to_string(),
            r.baseline.clone(),
            format!("{:.4}", r.baseline_value),
            r.other.clone(),
            format!("{:.4}", r.other_value),
            format!("{:.4}", r.ratio),
            r.winner.clone(),
            format!("{:.3}", r.advantage),
        ]));
    }
    text
}

/// In the printed table, a figure within this factor of the other target's is called a tie
/// (the CSV keeps the exact ratio and the nominal winner).
const TIE_ADVANTAGE_FACTOR: f64 = 1.02;

/// The ratio table as printed: `corelog/kafka produce MiB/s 2.31× (corelog 2.31× better)`.
pub fn ratios_table(ratios: &[Ratio]) -> String {
    let headers = [
        "cell", "phase", "figure", "targets", "values", "ratio", "who wins",
    ];
    let rows: Vec<Vec<String>> = ratios
        .iter()
        .map(|r| {
            vec![
                r.cell.to_string(),
                r.phase.to_string(),
                r.figure.clone(),
                format!("{}/{}", r.baseline, r.other),
                format!(
                    "{} / {}",
                    svg::format_number(r.baseline_value),
                    svg::format_number(r.other_value)
                ),
                format!("{:.2}×", r.ratio),
                if r.advantage < TIE_ADVANTAGE_FACTOR {
                    "tie (within 2%)".to_string()
                } else {
                    format!(
                        "{} {:.2}× {}",
                        r.winner,
                        r.advantage,
                        if r.higher_is_better {
                            "higher"
                        } else {
                            "lower"
                        }
                    )
                },
            ]
        })
        .collect();
    report::align(&headers, &rows, 4)
}

/// Series per (target, acks), in target order then acks order, with the acks' index (the line's
/// dash pattern: one pattern per acks across targets).
fn series_keys(
    rows: &[MatrixRow],
    targets: &[Target],
    axes: &MatrixAxes,
) -> Vec<(String, Acks, usize)> {
    let mut keys = Vec::new();
    for t in targets {
        for (i, &a) in axes.acks.iter().enumerate() {
            if rows.iter().any(|r| r.target == t.name && r.cell.acks == a) {
                keys.push((t.name.clone(), a, i));
            }
        }
    }
    keys
}

/// What the charts are drawn from.
struct Data<'a> {
    rows: &'a [MatrixRow],
    targets: &'a [Target],
    axes: &'a MatrixAxes,
}

/// `value` against partitions for every (target, acks), one chart per message size.
fn vs_partitions(
    data: &Data,
    phase: Phase,
    title: &str,
    y_label: &str,
    y_log: bool,
    value: &dyn Fn(&RunResult) -> Option<f64>,
) -> Vec<Chart> {
    let Data {
        rows,
        targets,
        axes,
    } = *data;
    axes.message_bytes
        .iter()
        .map(|&bytes| Chart {
            title: format!("{title}, {bytes}-byte records"),
            x_label: "partitions".into(),
            y_label: y_label.into(),
            x_scale: XScale::Log2,
            y_log,
            series: series_keys(rows, targets, axes)
                .into_iter()
                .map(|(target, acks, dash)| Series {
                    name: format!("{target} acks={acks}"),
                    dash,
                    points: rows
                        .iter()
                        .filter(|r| {
                            r.phase == phase
                                && r.target == target
                                && r.cell.acks == acks
                                && r.cell.message_bytes == bytes
                        })
                        .filter_map(|r| {
                            let v = value(r.result.as_ref()?)?;
                            Some((r.cell.partitions as f64, v))
                        })
                        .collect(),
                })
                .filter(|s| !s.points.is_empty())
                .collect(),
        })
        .collect()
}

const PERCENTILE_NAMES: [&str; 6] = ["p50", "p90", "p99", "p99.9", "p99.99", "max"];

fn percentiles_ms(l: &LatencySummary) -> Vec<(f64, f64)> {
    if l.count == 0 {
        return Vec::new();
    }
    [
        l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.p9999_us, l.max_us,
    ]
    .iter()
    .enumerate()
    .map(|(i, &us)| (i as f64, us as f64 / 1000.0))
    .collect()
}

/// Latency charts from the latency phase: per message size, the percentile profile at the largest
/// partition count measured, then p99 and p99.9 against partitions.
fn latency_charts(data: &Data, what: &str, pick: fn(&RunResult) -> &LatencySummary) -> Vec<Chart> {
    let Data {
        rows,
        targets,
        axes,
    } = *data;
    let mut charts = Vec::new();
    for &bytes in &axes.message_bytes {
        let measured = |r: &&MatrixRow| {
            r.phase == Phase::Latency
                && r.cell.message_bytes == bytes
                && r.result.as_ref().is_some_and(|x| pick(x).count > 0)
        };
        let Some(partitions) = rows
            .iter()
            .filter(measured)
            .map(|r| r.cell.partitions)
            .max()
        else {
            charts.push(Chart {
                title: format!("{what} latency, {bytes}-byte records (latency phase)"),
                x_label: "percentile".into(),
                y_label: "ms".into(),
                x_scale: XScale::Categories(
                    PERCENTILE_NAMES.iter().map(|s| s.to_string()).collect(),
                ),
                y_log: true,
                series: Vec::new(),
            });
            continue;
        };
        charts.push(Chart {
            title: format!(
                "{what} latency percentiles at {partitions} partitions, {bytes}-byte records, half of max rate"
            ),
            x_label: "percentile".into(),
            y_label: "ms (log)".into(),
            x_scale: XScale::Categories(PERCENTILE_NAMES.iter().map(|s| s.to_string()).collect()),
            y_log: true,
            series: series_keys(rows, targets, axes)
                .into_iter()
                .filter_map(|(target, acks, dash)| {
                    let r = rows.iter().filter(measured).find(|r| {
                        r.target == target && r.cell.acks == acks && r.cell.partitions == partitions
                    })?;
                    Some(Series {
                        name: format!("{target} acks={acks}"),
                        dash,
                        points: percentiles_ms(pick(r.result.as_ref()?)),
                    })
                })
                .collect(),
        });
    }
    for (label, us) in [
        (
            "p99",
            (|l: &LatencySummary| l.p99_us) as fn(&LatencySummary) -> u64,
        ),
        ("p99.9", |l: &LatencySummary| l.p999_us),
    ] {
        charts.extend(vs_partitions(
            data,
            Phase::Latency,
            &format!("{what} latency {label} vs partitions (half of max rate)"),
            "ms (log)",
            true,
            &|r| {
                let l = pick(r);
                (l.count > 0).then_some(us(l) as f64 / 1000.0)
            },
        ));
    }
    charts
}

fn write_outputs(
    out: &Path,
    rows: &[MatrixRow],
    targets: &[Target],
    axes: &MatrixAxes,
) -> Result<()> {
    write_rows(out, rows)?;
    let data = Data {
        rows,
        targets,
        axes,
    };
    let charts: [(&str, Vec<Chart>); 4] = [
        (
            "throughput-produce.svg",
            vs_partitions(
                &data,
                Phase::Produce,
                "Produce throughput (as fast as possible)",
                "MiB/s",
                false,
                &|r| Some(r.produced.mib_per_sec),
            ),
        ),
        (
            "throughput-consume.svg",
            vs_partitions(
                &data,
                Phase::Consume,
                "Consume throughput (catch-up read from earliest)",
                "MiB/s",
                false,
                &|r| Some(r.consumed.mib_per_sec),
            ),
        ),
        (
            "latency-e2e.svg",
            latency_charts(&data, "End-to-end", |r| &r.end_to_end_latency),
        ),
        (
            "latency-produce.svg",
            latency_charts(&data, "Produce (ack)", |r| &r.produce_latency),
        ),
    ];
    for (name, c) in charts {
        let path = out.join(name);
        std::fs::write(&path, svg::render(&c))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if targets.len() >= 2 {
        let path = out.join("ratios.csv");
        std::fs::write(&path, ratios_csv(&ratios(rows, targets)))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn print_outputs(rows: &[MatrixRow], targets: &[Target]) {
    // Grouped by cell and phase, targets side by side in --target order, for reading across.
    let cell_index = |c: &Cell| rows.iter().position(|r| r.cell == *c).unwrap_or(0);
    let target_index = |t: &str| targets.iter().position(|x| x.name == t).unwrap_or(0);
    let mut sorted: Vec<&MatrixRow> = rows.iter().collect();
    sorted.sort_by_key(|r| (cell_index(&r.cell), r.phase as u8, target_index(&r.target)));
    let ok: Vec<(String, &RunResult)> = sorted
        .iter()
        .filter_map(|r| Some((r.phase.to_string(), r.result.as_ref()?)))
        .collect();
    println!();
    print!("{}", report::summary_table_labelled("phase", &ok));
    for r in rows.iter().filter(|r| r.result.is_none()) {
        println!(
            "FAILED {} {} {}: {}",
            r.target,
            r.phase,
            r.cell,
            r.error.as_deref().unwrap_or("")
        );
    }
    for r in rows
        .iter()
        .filter(|r| !r.note.is_empty() && r.phase == Phase::Latency)
    {
        println!("{} latency {}: {}", r.target, r.cell, r.note);
    }
    let failed = rows.iter().filter(|r| r.result.is_none()).count();
    if failed > 0 {
        println!(
            "{failed} of {} runs failed or were skipped (results.json has every row)",
            rows.len()
        );
    }
    if targets.len() >= 2 {
        println!();
        let ratios = ratios(rows, targets);
        if ratios.is_empty() {
            println!(
                "no ratios: no cell and phase where {} and another target both have results",
                targets[0].name
            );
        } else {
            print!("{}", ratios_table(&ratios));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testing::{latency, parse_csv};
    use crate::result::{CpuUse, Throughput};
    use crate::svg::testing::{check_xml, polylines};

    const WINDOW_SECS: f64 = 2.0;
    const WARMUP_EXTRA_MESSAGES: u64 = 100;

    fn targets() -> Vec<Target> {
        let mut kafka = Target::parse("kafka=127.0.0.1:29502@77").unwrap();
        kafka
            .topic_configs
            .push(("flush.messages".into(), "1".into()));
        vec![Target::parse("corelog=127.0.0.1:29501").unwrap(), kafka]
    }

    fn axes(phases: &[Phase]) -> MatrixAxes {
        MatrixAxes {
            acks: vec![Acks::Leader, Acks::All],
            partitions: vec![1, 4, 16],
            message_bytes: vec![1024],
            phases: phases.to_vec(),
        }
    }

    fn base() -> WorkloadSpec {
        let mut spec = WorkloadSpec::new("ignored:1", "ignored");
        spec.producers = 2;
        spec.consumers = 3;
        spec.stop_after = StopAfter::Duration(Duration::from_secs(2));
        spec.topic_configs = vec![("segment.bytes".into(), "1073741824".into())];
        spec
    }

    /// corelog is twice as fast as kafka; throughput grows with partitions; latency halves for
    /// corelog; broker CPU per GiB is lower on corelog.
    fn speed(target: &str) -> f64 {
        if target == "corelog" {
            2.0
        } else {
            1.0
        }
    }

    fn fake_result(spec: &WorkloadSpec, target: &Target, phase: Phase) -> RunResult {
        let s = speed(&target.name);
        let mib = 10.0 * spec.partitions as f64 * s;
        let bytes = (mib * WINDOW_SECS * 1024.0 * 1024.0) as u64;
        let msgs = bytes / spec.message_bytes as u64;
        let none = Throughput::new(0, 0, WINDOW_SECS);
        let (produced, consumed) = match phase {
            Phase::Produce => (Throughput::new(msgs, bytes, WINDOW_SECS), none),
            Phase::Consume => {
                let StopAfter::Messages(n) = spec.stop_after else {
                    panic!("consume phase without a record count")
                };
                let b = n * spec.message_bytes as u64;
                (none, Throughput::new(n, b, WINDOW_SECS / s))
            }
            Phase::Latency => {
                let n = spec.target_rate.unwrap() * WINDOW_SECS as u64;
                let b = n * spec.message_bytes as u64;
                (
                    Throughput::new(n, b, WINDOW_SECS),
                    Throughput::new(n, b, WINDOW_SECS),
                )
            }
        };
        let total_acked_messages = produced.messages + WARMUP_EXTRA_MESSAGES;
        let total_consumed_messages = consumed.messages;
        RunResult {
            target: String::new(),
            spec: spec.clone(),
            window_secs: WINDOW_SECS,
            produced,
            consumed,
            produce_latency: latency((1000.0 / s) as u64),
            end_to_end_latency: if phase == Phase::Latency {
                latency((3000.0 / s) as u64)
            } else {
                LatencySummary::default()
            },
            broker_cpu: Some(CpuUse {
                pid: 1,
                cpu_secs: 1.0,
                cores: 0.5,
                cpu_secs_per_gib: 4.0 / s,
            }),
            generator_cpu: CpuUse::default(),
            // Warm-up and drain add records beyond the window's.
            total_acked_messages,
            total_consumed_messages,
            errors: Vec::new(),
        }
    }

    struct Call {
        spec: WorkloadSpec,
        target: String,
        phase: Phase,
    }

    fn run(
        phases: &[Phase],
        dir: &Path,
        mut fail: impl FnMut(&Call) -> bool,
    ) -> (Vec<Call>, Vec<MatrixRow>, Vec<(String, String)>) {
        let mut calls: Vec<Call> = Vec::new();
        let mut deleted = Vec::new();
        let rows = run_matrix_inner(
            &base(),
            &axes(phases),
            &targets(),
            dir,
            |spec, target, phase| {
                // Every earlier run is already on disk when the next one starts.
                if !calls.is_empty() {
                    let on_disk: Vec<MatrixRow> =
                        serde_json::from_slice(&std::fs::read(dir.join("results.json")).unwrap())
                            .unwrap();
                    assert!(on_disk.len() >= calls.len());
                }
                let call = Call {
                    spec: spec.clone(),
                    target: target.name.clone(),
                    phase,
                };
                let failed = fail(&call);
                calls.push(call);
                if failed {
                    anyhow::bail!("broker said no")
                }
                Ok(fake_result(spec, target, phase))
            },
            |target, topic| {
                deleted.push((target.name.clone(), topic.to_string()));
                Ok(())
            },
        )
        .unwrap();
        (calls, rows, deleted)
    }

    #[test]
    fn runs_alternate_targets_cell_by_cell_with_the_phases_set_up() {
        let dir = tempfile::tempdir().unwrap();
        let (calls, rows, deleted) = run(&ALL_PHASES, dir.path(), |_| false);
        let cells = cells(&axes(&ALL_PHASES));
        assert_eq!(cells.len(), 6);
        assert_eq!(calls.len(), 6 * 2 * 3);
        assert_eq!(rows.len(), calls.len());
        for (i, cell) in cells.iter().enumerate() {
            let block = &calls[i * 6..(i + 1) * 6];
            let first = if i % 2 == 0 { "corelog" } else { "kafka" };
            let second = if i % 2 == 0 { "kafka" } else { "corelog" };
            // Produce and consume target after target, then latency target after target.
            let expected = [
                (first, Phase::Produce),
                (first, Phase::Consume),
                (second, Phase::Produce),
                (second, Phase::Consume),
                (first, Phase::Latency),
                (second, Phase::Latency),
            ];
            for (j, call) in block.iter().enumerate() {
                assert_eq!((call.target.as_str(), call.phase), expected[j], "cell {i}");
                assert_eq!(call.spec.partitions, cell.partitions);
                assert_eq!(call.spec.acks, cell.acks);
                assert_eq!(call.spec.message_bytes, cell.message_bytes);
            }
            for t in [first, second] {
                let of_t: Vec<&Call> = block.iter().filter(|c| c.target == t).collect();
                let (p, c, l) = (&of_t[0].spec, &of_t[1].spec, &of_t[2].spec);
                // One topic per (cell, target), named after both.
                assert!(p.topic == c.topic && c.topic == l.topic);
                let prefix = format!(
                    "corelog-bench-m-{}-{}-{}-{t}-",
                    cell.acks, cell.partitions, cell.message_bytes
                );
                assert!(p.topic.starts_with(&prefix), "{} vs {prefix}", p.topic);
                assert!(deleted.contains(&(t.to_string(), p.topic.clone())));
                // Produce: as fast as possible, no consumers.
                assert_eq!((p.producers, p.consumers, p.target_rate), (2, 0, None));
                // Consume: the whole topic the produce phase wrote (warm-up included), from the
                // start.
                let produced =
                    fake_result(p, &targets()[usize::from(t == "kafka")], Phase::Produce).produced;
                assert_eq!(
                    c.stop_after,
                    StopAfter::Messages(produced.messages + WARMUP_EXTRA_MESSAGES)
                );
                assert_eq!((c.producers, c.consumers), (0, 3));
                assert_eq!(c.consume_from, ConsumeFrom::Earliest);
                // Latency: both sides, from latest, at half the slower target's produce msgs/s
                // (the fake kafka is the slower one), the same rate for both.
                assert_eq!((l.producers, l.consumers), (2, 3));
                assert_eq!(l.consume_from, ConsumeFrom::Latest);
                let kafka_produced = fake_result(p, &targets()[1], Phase::Produce).produced;
                assert!(kafka_produced.msgs_per_sec <= produced.msgs_per_sec);
                assert_eq!(l.target_rate, Some(half_rate(kafka_produced.msgs_per_sec)));
                assert_eq!(l.stop_after, base().stop_after);
                // Configs: the base's, then the target's own.
                let mut configs = base().topic_configs;
                if t == "kafka" {
                    configs.push(("flush.messages".into(), "1".into()));
                    assert_eq!(p.broker_pid, Some(77));
                    assert_eq!(p.bootstrap, "127.0.0.1:29502");
                } else {
                    assert_eq!(p.broker_pid, None);
                    assert_eq!(p.bootstrap, "127.0.0.1:29501");
                }
                assert_eq!(p.topic_configs, configs);
            }
        }
        // Both targets carry the same load in the latency phase.
        let rate = |t: &str| {
            calls
                .iter()
                .find(|c| c.target == t && c.phase == Phase::Latency)
                .and_then(|c| c.spec.target_rate)
                .unwrap()
        };
        assert_eq!(rate("corelog"), rate("kafka"));
        assert_eq!(deleted.len(), 12);
        let mut topics: Vec<&String> = deleted.iter().map(|d| &d.1).collect();
        topics.sort();
        topics.dedup();
        assert_eq!(topics.len(), 12, "a fresh topic per (cell, target)");
    }

    #[test]
    fn files_hold_every_row_and_the_ratios_are_right() {
        let dir = tempfile::tempdir().unwrap();
        let (_, rows, _) = run(&ALL_PHASES, dir.path(), |_| false);
        let on_disk: Vec<MatrixRow> =
            serde_json::from_slice(&std::fs::read(dir.path().join("results.json")).unwrap())
                .unwrap();
        assert_eq!(on_disk.len(), 36);
        assert!(on_disk
            .iter()
            .all(|r| r.result.is_some() && r.error.is_none()));
        assert!(on_disk
            .iter()
            .filter(|r| r.phase == Phase::Latency)
            .all(|r| r.note.starts_with("rate ")));
        let csv = parse_csv(&std::fs::read_to_string(dir.path().join("results.csv")).unwrap());
        assert_eq!(csv.len(), 37);
        assert!(csv.iter().all(|r| r.len() == csv[0].len()));
        let col = |n: &str| csv[0].iter().position(|h| h == n).unwrap();
        assert_eq!(csv[1][col("phase")], "produce");
        assert_eq!(csv[1][col("status")], "ok");
        assert_eq!(csv[1][col("target")], "corelog");
        assert_eq!(csv[1][col("produce_mib_per_sec")], "20.000");

        for (name, series) in [
            ("throughput-produce.svg", 4),
            ("throughput-consume.svg", 4),
            // Percentiles at 16 partitions, p99 and p99.9 against partitions: 3 charts × 4.
            ("latency-e2e.svg", 12),
            ("latency-produce.svg", 12),
        ] {
            let svg = std::fs::read_to_string(dir.path().join(name)).unwrap();
            check_xml(&svg).unwrap_or_else(|e| panic!("{name}: {e}"));
            let lines = polylines(&svg);
            assert_eq!(lines.len(), series, "{name}");
            assert!(!svg.contains("no data"), "{name}");
            assert!(svg.contains("corelog acks=all") && svg.contains("kafka acks=1"));
        }
        let produce_svg =
            std::fs::read_to_string(dir.path().join("throughput-produce.svg")).unwrap();
        for line in polylines(&produce_svg) {
            assert_eq!(line.len(), 3);
            // Throughput grows with partitions: each point is higher (smaller y) than the last.
            assert!(line.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 > w[1].1));
        }

        let ratios = ratios(&rows, &targets());
        let find = |phase: Phase, figure: &str, partitions: u32| {
            ratios
                .iter()
                .find(|r| {
                    r.phase == phase
                        && r.figure == figure
                        && r.cell.partitions == partitions
                        && r.cell.acks == Acks::All
                })
                .unwrap_or_else(|| panic!("no {figure}"))
        };
        let r = find(Phase::Produce, "produce MiB/s", 4);
        assert_eq!(
            (r.baseline.as_str(), r.other.as_str()),
            ("corelog", "kafka")
        );
        assert!((r.ratio - 2.0).abs() < 1e-3, "{r:?}");
        assert_eq!((r.winner.as_str(), r.advantage), ("corelog", r.ratio));
        // corelog's backlog is twice kafka's and it reads it in half the time.
        let r = find(Phase::Consume, "consume MiB/s", 16);
        assert!((r.ratio - 4.0).abs() < 1e-3, "{r:?}");
        // Lower is better for latency and CPU: corelog's half is a 2× win, ratio 0.5.
        let r = find(Phase::Latency, "e2e p99.9 ms", 1);
        assert!((r.ratio - 0.5).abs() < 1e-3, "{r:?}");
        assert_eq!(r.winner, "corelog");
        assert!((r.advantage - 2.0).abs() < 1e-3);
        let r = find(Phase::Consume, "broker CPU s/GiB", 1);
        assert!((r.ratio - 0.5).abs() < 1e-3 && r.winner == "corelog");
        // 6 cells: produce 6 figures, consume 3, latency 7.
        assert_eq!(ratios.len(), 6 * (6 + 3 + 7));
        let ratio_csv = parse_csv(&std::fs::read_to_string(dir.path().join("ratios.csv")).unwrap());
        assert_eq!(ratio_csv.len(), ratios.len() + 1);
        let table = ratios_table(&ratios);
        assert!(table.contains("corelog/kafka"));
        assert!(table.contains("2.00×") && table.contains("corelog 2.00× higher"));
        assert!(table.contains("corelog 2.00× lower"));
        assert!(!table.contains("tie"));
        let mut even = ratios[0].clone();
        even.advantage = 1.01;
        assert!(ratios_table(&[even]).contains("tie (within 2%)"));
    }

    #[test]
    fn a_failed_run_is_a_row_and_the_matrix_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        // kafka's produce phase fails in the 4-partition acks=1 cell.
        let (calls, rows, deleted) = run(&ALL_PHASES, dir.path(), |c| {
            c.target == "kafka" && c.phase == Phase::Produce && c.spec.partitions == 4
        });
        assert_eq!(rows.len(), 36);
        // Its consume and latency phases are recorded as skipped, without being run.
        assert_eq!(calls.len(), 36 - 2 * 2);
        let failed: Vec<&MatrixRow> = rows.iter().filter(|r| r.result.is_none()).collect();
        assert_eq!(failed.len(), 2 * 3);
        assert!(failed
            .iter()
            .all(|r| r.target == "kafka" && r.cell.partitions == 4));
        let produce_fail = failed.iter().find(|r| r.phase == Phase::Produce).unwrap();
        assert_eq!(produce_fail.error.as_deref(), Some("broker said no"));
        assert!(failed
            .iter()
            .filter(|r| r.phase != Phase::Produce)
            .all(|r| r.error.as_deref().unwrap().starts_with("skipped")));
        // The topics are still deleted, and the next cells ran.
        assert_eq!(deleted.len(), 12);
        assert!(rows.last().unwrap().result.is_some());
        let csv = parse_csv(&std::fs::read_to_string(dir.path().join("results.csv")).unwrap());
        let col = |n: &str| csv[0].iter().position(|h| h == n).unwrap();
        let failed_csv: Vec<&Vec<String>> = csv
            .iter()
            .filter(|r| r[col("status")] == "failed")
            .collect();
        assert_eq!(failed_csv.len(), 6);
        assert!(failed_csv.iter().all(|r| r[col("partitions")] == "4"));
        // No ratio where one side failed.
        let ratios = ratios(&rows, &targets());
        assert!(ratios.iter().all(|r| r.cell.partitions != 4));
    }

    #[test]
    fn a_produce_window_with_no_acks_skips_only_the_latency_phase() {
        let dir = tempfile::tempdir().unwrap();
        let mut calls = Vec::new();
        let rows = run_matrix_inner(
            &base(),
            &axes(&ALL_PHASES),
            &targets()[..1],
            dir.path(),
            |spec, target, phase| {
                calls.push(phase);
                let mut r = fake_result(spec, target, phase);
                if phase == Phase::Produce {
                    // A stalled broker: every ack came after the window, in the drain.
                    r.total_acked_messages = r.produced.messages;
                    r.produced = Throughput::new(0, 0, WINDOW_SECS);
                }
                Ok(r)
            },
            |_, _| Ok(()),
        )
        .unwrap();
        assert!(calls.iter().all(|p| *p != Phase::Latency));
        let consume = rows.iter().find(|r| r.phase == Phase::Consume).unwrap();
        assert!(consume.result.is_some(), "the backlog is still read");
        let latency = rows.iter().find(|r| r.phase == Phase::Latency).unwrap();
        assert!(latency
            .error
            .as_deref()
            .unwrap()
            .contains("acknowledged nothing within its window"));
    }

    #[test]
    fn phases_select_what_runs() {
        let dir = tempfile::tempdir().unwrap();
        let (calls, rows, _) = run(&[Phase::Produce], dir.path(), |_| false);
        assert!(calls.iter().all(|c| c.phase == Phase::Produce));
        assert_eq!(rows.len(), 12);
        let e2e = std::fs::read_to_string(dir.path().join("latency-e2e.svg")).unwrap();
        check_xml(&e2e).unwrap();
        assert!(e2e.contains("no data"));
        // Latency alone needs a rate: without a produce phase or --rate, every run is skipped.
        let dir = tempfile::tempdir().unwrap();
        let (calls, rows, _) = run(&[Phase::Latency], dir.path(), |_| false);
        assert!(calls.is_empty());
        assert!(rows
            .iter()
            .all(|r| r.error.as_deref().unwrap().contains("--rate")));
        assert_eq!("consume".parse(), Ok(Phase::Consume));
        assert!("warmup".parse::<Phase>().is_err());
    }

    #[test]
    fn target_parsing_and_topic_names() {
        let t = Target::parse("red panda=10.0.0.1:9092@123").unwrap();
        assert_eq!(t.broker_pid, Some(123));
        let cell = Cell {
            message_bytes: 100,
            acks: Acks::None,
            partitions: 8,
        };
        assert_eq!(
            topic_name(&cell, &t, "u1"),
            "corelog-bench-m-0-8-100-red_panda-u1"
        );
        assert!(Target::parse("nameless").is_err());
        assert!(Target::parse("x=h:1@pid").is_err());
    }
}
