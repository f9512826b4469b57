//! `corelog-bench`: the command line of the load generator and benchmark harness.
//!
//! - `run`: one workload against one broker; a progress bar, then a summary table (and JSON).
//! - `matrix`: sweeps acks × partitions × message sizes against one broker; JSON, CSV, SVG charts.
//! - `compare`: the same matrix against several brokers, alternating cell by cell, with ratios.
//! - `null-sink`: a Kafka-protocol endpoint that acknowledges every produce and stores nothing, to
//!   show what the generator alone can push.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};

use corelog_bench::matrix::{self, MatrixAxes, Phase, Target};
use corelog_bench::spec::{
    parse_duration, Acks, Compression, ConsumeFrom, KeyDistribution, StopAfter, WorkloadSpec,
};
use corelog_bench::{null_sink, report, workload};

#[derive(Parser)]
#[command(
    name = "corelog-bench",
    version,
    about = "Kafka-protocol load generator and benchmark harness"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one workload against one broker.
    Run {
        #[command(flatten)]
        workload: WorkloadArgs,
        /// Also write the result as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
        /// No progress bar (for logs and CI).
        #[arg(long)]
        no_progress: bool,
    },
    /// Sweep acks × partitions × message sizes against one broker.
    Matrix {
        #[command(flatten)]
        workload: WorkloadArgs,
        #[command(flatten)]
        axes: AxesArgs,
        /// Folder for results.json, results.csv and the SVG charts.
        #[arg(long, default_value = "bench-results")]
        out: PathBuf,
        #[arg(long)]
        no_progress: bool,
    },
    /// Run the matrix against several brokers, alternating, and report every figure as a ratio
    /// to the first target.
    Compare {
        #[command(flatten)]
        workload: WorkloadArgs,
        #[command(flatten)]
        axes: AxesArgs,
        /// NAME=HOST:PORT[@PID], e.g. corelog=127.0.0.1:9092 kafka=127.0.0.1:19092. The first is
        /// the numerator of every ratio. Repeat for each broker.
        #[arg(long = "target", required = true, value_parser = parse_target)]
        targets: Vec<Target>,
        /// NAME:KEY=VALUE: a topic config for one target only, e.g. kafka:flush.messages=1 (the
        /// durability-equal case against corelog's fsync-before-ack).
        #[arg(long = "target-config", value_parser = parse_target_config)]
        target_configs: Vec<(String, String, String)>,
        #[arg(long, default_value = "bench-results")]
        out: PathBuf,
        #[arg(long)]
        no_progress: bool,
    },
    /// Accept Kafka produce requests on ADDR and acknowledge them without storing anything.
    NullSink {
        #[arg(long, default_value = "127.0.0.1:9099")]
        listen: String,
    },
}

/// One workload, in Kafka's producer/consumer terms.
#[derive(Args, Clone)]
struct WorkloadArgs {
    /// bootstrap.servers: HOST:PORT of a broker.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// Topic name; created if missing. Default: a fresh `corelog-bench-…` topic per run.
    #[arg(long)]
    topic: Option<String>,
    #[arg(long, default_value_t = 16)]
    partitions: u32,
    #[arg(long, default_value_t = 1)]
    replication_factor: i16,
    /// Topic config at creation, KEY=VALUE (repeatable), e.g. flush.messages=1.
    #[arg(long = "topic-config", value_parser = parse_key_value)]
    topic_configs: Vec<(String, String)>,
    /// 0, 1 or all.
    #[arg(long, default_value = "all")]
    acks: Acks,
    /// enable.idempotence.
    #[arg(long)]
    idempotence: bool,
    /// Record value size in bytes.
    #[arg(long, default_value_t = 1024)]
    message_bytes: usize,
    /// none, uniform or skewed (Zipf).
    #[arg(long, default_value = "none")]
    keys: String,
    /// Distinct keys for uniform and skewed keys.
    #[arg(long, default_value_t = 10_000)]
    key_count: u64,
    /// Zipf exponent for skewed keys.
    #[arg(long, default_value_t = 1.0)]
    zipf_exponent: f64,
    /// batch.size in bytes.
    #[arg(long, default_value_t = 16384)]
    batch_bytes: usize,
    /// linger.ms.
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
    /// none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none")]
    compression: Compression,
    /// max.in.flight.requests.per.connection.
    #[arg(long, default_value_t = 5)]
    max_in_flight: usize,
    #[arg(long, default_value_t = 1)]
    producers: usize,
    #[arg(long, default_value_t = 1)]
    consumers: usize,
    /// earliest (read a backlog) or latest (read what the run produces).
    #[arg(long, default_value = "latest", value_parser = parse_consume_from)]
    consume_from: ConsumeFrom,
    /// Fixed rate in records per second over all producers; latency is then measured from each
    /// record's intended send time. Default: as fast as possible.
    #[arg(long)]
    rate: Option<u64>,
    /// Measured time, e.g. 30s.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Stop after this many records instead of after --duration.
    #[arg(long)]
    messages: Option<u64>,
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// The broker's process id for CPU accounting (default: found from the port, if local).
    #[arg(long)]
    broker_pid: Option<u32>,
    /// Generator threads (one io_uring shard each); 0 = one per core.
    #[arg(long, default_value_t = 0)]
    shards: usize,
}

/// The axes a matrix sweeps; each is a comma-separated list.
#[derive(Args, Clone)]
struct AxesArgs {
    #[arg(long, value_delimiter = ',', default_value = "0,1,all")]
    acks_list: Vec<Acks>,
    #[arg(long, value_delimiter = ',', default_value = "1,4,16,64,256,1024")]
    partitions_list: Vec<u32>,
    #[arg(long, value_delimiter = ',', default_value = "1024")]
    message_bytes_list: Vec<usize>,
    /// Phases per cell: produce (max throughput), consume (catch-up read of what was produced),
    /// latency (producers and consumers at half the produce phase's msgs/s).
    #[arg(long, value_delimiter = ',', default_value = "produce,consume,latency")]
    phases: Vec<Phase>,
}

impl WorkloadArgs {
    fn to_spec(&self) -> Result<WorkloadSpec> {
        let topic = match &self.topic {
            Some(t) => t.clone(),
            None => fresh_topic_name(),
        };
        let mut spec = WorkloadSpec::new(&self.bootstrap, &topic);
        spec.partitions = self.partitions;
        spec.replication_factor = self.replication_factor;
        spec.topic_configs = self.topic_configs.clone();
        spec.acks = self.acks;
        spec.idempotence = self.idempotence;
        spec.message_bytes = self.message_bytes;
        spec.keys = match self.keys.as_str() {
            "none" => KeyDistribution::None,
            "uniform" => KeyDistribution::Uniform {
                count: self.key_count,
            },
            "skewed" => KeyDistribution::Skewed {
                count: self.key_count,
                exponent: self.zipf_exponent,
            },
            other => bail!("--keys must be none, uniform or skewed, not {other:?}"),
        };
        spec.batch_bytes = self.batch_bytes;
        spec.linger = Duration::from_millis(self.linger_ms);
        spec.compression = self.compression;
        spec.max_in_flight = self.max_in_flight;
        spec.producers = self.producers;
        spec.consumers = self.consumers;
        spec.consume_from = self.consume_from;
        spec.target_rate = self.rate;
        spec.stop_after = match self.messages {
            Some(n) => StopAfter::Messages(n),
            None => StopAfter::Duration(self.duration),
        };
        spec.warmup = self.warmup;
        spec.broker_pid = self.broker_pid;
        spec.shards = self.shards;
        spec.validate()
            .map_err(|e| anyhow::anyhow!("invalid workload: {e}"))?;
        Ok(spec)
    }
}

impl AxesArgs {
    fn to_axes(&self) -> MatrixAxes {
        MatrixAxes {
            acks: self.acks_list.clone(),
            partitions: self.partitions_list.clone(),
            message_bytes: self.message_bytes_list.clone(),
            phases: self.phases.clone(),
        }
    }
}

/// A topic name no earlier run used.
fn fresh_topic_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "corelog-bench-{}-{}",
        std::process::id(),
        nanos % 1_000_000_000
    )
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, not {s:?}")),
    }
}

fn parse_consume_from(s: &str) -> Result<ConsumeFrom, String> {
    match s {
        "earliest" => Ok(ConsumeFrom::Earliest),
        "latest" => Ok(ConsumeFrom::Latest),
        _ => Err(format!("expected earliest or latest, not {s:?}")),
    }
}

fn parse_target(s: &str) -> Result<Target, String> {
    Target::parse(s)
}

fn parse_target_config(s: &str) -> Result<(String, String, String), String> {
    let (name, kv) = s
        .split_once(':')
        .ok_or_else(|| format!("expected NAME:KEY=VALUE, not {s:?}"))?;
    let (k, v) = parse_key_value(kv)?;
    Ok((name.to_string(), k, v))
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            workload: args,
            json,
            no_progress,
        } => {
            let spec = args.to_spec()?;
            let result = workload::run_with_progress(&spec, "", !no_progress)?;
            report::print_summary(std::slice::from_ref(&result));
            if let Some(path) = json {
                report::write_json(&path, std::slice::from_ref(&result))?;
            }
            Ok(())
        }
        Command::Matrix {
            workload: args,
            axes,
            out,
            no_progress,
        } => {
            let spec = args.to_spec()?;
            let mut target =
                Target::parse(&format!("broker={}", spec.bootstrap)).map_err(anyhow::Error::msg)?;
            target.broker_pid = spec.broker_pid;
            matrix::run_matrix(&spec, &axes.to_axes(), &[target], &out, !no_progress)
        }
        Command::Compare {
            workload: args,
            axes,
            mut targets,
            target_configs,
            out,
            no_progress,
        } => {
            let spec = args.to_spec()?;
            for (name, key, value) in target_configs {
                let Some(target) = targets.iter_mut().find(|t| t.name == name) else {
                    bail!("--target-config names {name:?}, which is not a --target");
                };
                target.topic_configs.push((key, value));
            }
            matrix::run_matrix(&spec, &axes.to_axes(), &targets, &out, !no_progress)
        }
        Command::NullSink { listen } => null_sink::serve(&listen),
    }
}
