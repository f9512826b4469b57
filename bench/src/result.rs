//! What one run measured. Serialised as-is into the JSON results; the CSV and the charts are
//! derived from it.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::spec::WorkloadSpec;

/// Latency percentiles in microseconds, from an HDR histogram of microsecond values.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub p9999_us: u64,
    pub max_us: u64,
}

impl LatencySummary {
    pub fn from_histogram(h: &Histogram<u64>) -> LatencySummary {
        if h.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: h.len(),
            mean_us: h.mean(),
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            p9999_us: h.value_at_quantile(0.9999),
            max_us: h.max(),
        }
    }
}

/// Throughput over the measured window. MiB = 2^20 bytes, as Kafka's perf-test tools count
/// ("MB/sec" there is bytes / 1024 / 1024).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    pub messages: u64,
    /// Record value bytes (keys and protocol overhead not counted, as in Kafka's tools).
    pub bytes: u64,
    pub msgs_per_sec: f64,
    pub mib_per_sec: f64,
}

impl Throughput {
    pub fn new(messages: u64, bytes: u64, seconds: f64) -> Throughput {
        let secs = seconds.max(f64::MIN_POSITIVE);
        Throughput {
            messages,
            bytes,
            msgs_per_sec: messages as f64 / secs,
            mib_per_sec: bytes as f64 / (1024.0 * 1024.0) / secs,
        }
    }
}

/// CPU time of one process over the measured window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuUse {
    pub pid: u32,
    /// user + system seconds.
    pub cpu_secs: f64,
    /// cpu_secs / window seconds: 1.0 = one core fully busy.
    pub cores: f64,
    /// CPU seconds per GiB of record bytes moved (produced + consumed).
    pub cpu_secs_per_gib: f64,
}

/// The result of one workload run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunResult {
    /// Which broker this was (e.g. "corelog", "kafka"); empty for a plain `run`.
    pub target: String,
    pub spec: WorkloadSpec,
    /// Length of the measured window (after warm-up).
    pub window_secs: f64,
    pub produced: Throughput,
    pub consumed: Throughput,
    /// From a record's intended send time to its acknowledgement (acks=0: to the send completing).
    pub produce_latency: LatencySummary,
    /// From a record's intended send time to its arrival at a consumer.
    pub end_to_end_latency: LatencySummary,
    /// The broker process, where it could be found (local brokers only).
    pub broker_cpu: Option<CpuUse>,
    /// The generator itself: shows whether it, rather than the broker, was the limit.
    pub generator_cpu: CpuUse,
    /// Every record acknowledged (acks=0: sent) in the whole run, warm-up and drain included:
    /// what the topic must hold afterwards.
    pub total_acked_messages: u64,
    /// Every record consumed in the whole run.
    pub total_consumed_messages: u64,
    /// Produce errors returned by the broker (a Kafka error code per partition), by name.
    pub errors: Vec<(String, u64)>,
}
