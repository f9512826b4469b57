//! What a benchmark run does: the workload, in the terms of Kafka's producer and consumer configs.
//!
//! Defaults follow the Java producer 4.x (`batch.size` 16384, `linger.ms` 5,
//! `max.in.flight.requests.per.connection` 5, `acks=all`) so that a run is comparable with
//! `kafka-producer-perf-test` out of the box.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Kafka's `acks`: 0 (no response), 1 (leader wrote it), all (every in-sync replica has it; on
/// corelog with `corelog.acks.all.durable=true` this means fsynced).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Acks {
    #[serde(rename = "0")]
    None,
    #[serde(rename = "1")]
    Leader,
    #[serde(rename = "all")]
    All,
}

impl Acks {
    /// The value of ProduceRequest.acks on the wire.
    pub fn wire(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

impl FromStr for Acks {
    type Err = String;
    fn from_str(s: &str) -> Result<Acks, String> {
        match s {
            "0" => Ok(Acks::None),
            "1" => Ok(Acks::Leader),
            "all" | "-1" => Ok(Acks::All),
            _ => Err(format!("acks must be 0, 1 or all, not {s:?}")),
        }
    }
}

impl fmt::Display for Acks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Acks::None => "0",
            Acks::Leader => "1",
            Acks::All => "all",
        })
    }
}

/// The record batch codec (Kafka's `compression.type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl FromStr for Compression {
    type Err = String;
    fn from_str(s: &str) -> Result<Compression, String> {
        match s {
            "none" => Ok(Compression::None),
            "gzip" => Ok(Compression::Gzip),
            "snappy" => Ok(Compression::Snappy),
            "lz4" => Ok(Compression::Lz4),
            "zstd" => Ok(Compression::Zstd),
            _ => Err(format!(
                "compression must be none, gzip, snappy, lz4 or zstd, not {s:?}"
            )),
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        })
    }
}

/// How records are keyed, which decides how they spread over partitions.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum KeyDistribution {
    /// Null keys: the producer fills one partition's batch, then moves to the next (Kafka's
    /// sticky partitioner, KIP-480).
    None,
    /// Keys drawn uniformly from `count` distinct keys; partition = murmur2(key) % partitions, as
    /// Kafka's default partitioner does.
    Uniform { count: u64 },
    /// Keys drawn from `count` keys by a Zipf law with this exponent (1.0 is the classic skew:
    /// a few hot keys, hence hot partitions).
    Skewed { count: u64, exponent: f64 },
}

/// When the measured part of a run ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StopAfter {
    Duration(#[serde(with = "duration_secs")] Duration),
    /// Total records produced by all producers (or consumed, in a consume-only run).
    Messages(u64),
}

/// Where consumers start reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsumeFrom {
    /// Read the backlog from the log start: measures catch-up throughput.
    Earliest,
    /// Read only what producers write during the run: measures end-to-end latency.
    Latest,
}

/// One workload against one broker.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkloadSpec {
    /// `host:port` of any broker of the cluster (bootstrap.servers).
    pub bootstrap: String,
    /// The topic. It is created if missing (with `partitions`, `replication_factor`,
    /// `topic_configs`); an existing topic is used as it is.
    pub topic: String,
    pub partitions: u32,
    pub replication_factor: i16,
    /// Topic configs given at creation, e.g. `flush.messages=1` for a durability-equal Kafka.
    pub topic_configs: Vec<(String, String)>,
    pub acks: Acks,
    /// enable.idempotence: producer id + per-partition sequence numbers in every batch.
    pub idempotence: bool,
    /// Size of every record value in bytes (keys are extra).
    pub message_bytes: usize,
    pub keys: KeyDistribution,
    /// batch.size: a partition's batch is sent once it holds this many bytes.
    pub batch_bytes: usize,
    /// linger.ms: a batch that is not full is sent this long after its first record.
    #[serde(with = "duration_secs")]
    pub linger: Duration,
    pub compression: Compression,
    /// max.in.flight.requests.per.connection.
    pub max_in_flight: usize,
    /// Producer connections (each a Kafka producer: all partitions, its own batches).
    pub producers: usize,
    /// Consumers; the partitions are divided among them.
    pub consumers: usize,
    pub consume_from: ConsumeFrom,
    /// Total records per second over all producers. `None`: as fast as the broker takes them.
    /// With a rate, latency is measured from each record's intended send time, so a stall is
    /// charged to every record that should have gone out during it (no coordinated omission).
    pub target_rate: Option<u64>,
    pub stop_after: StopAfter,
    /// Run this long before measuring; nothing measured during warm-up is reported.
    #[serde(with = "duration_secs")]
    pub warmup: Duration,
    /// The broker process whose CPU time is measured (found from the bootstrap port when absent
    /// and the broker is local).
    pub broker_pid: Option<u32>,
    /// Shards (threads, one per core) of the generator itself; 0 = one per available core.
    pub shards: usize,
}

impl WorkloadSpec {
    /// The defaults of Kafka's Java producer, 1 KiB values, 1 producer, 1 consumer, 10 s after 2 s
    /// of warm-up.
    pub fn new(bootstrap: &str, topic: &str) -> WorkloadSpec {
        WorkloadSpec {
            bootstrap: bootstrap.to_string(),
            topic: topic.to_string(),
            partitions: 1,
            replication_factor: 1,
            topic_configs: Vec::new(),
            acks: Acks::All,
            idempotence: false,
            message_bytes: 1024,
            keys: KeyDistribution::None,
            batch_bytes: 16384,
            linger: Duration::from_millis(5),
            compression: Compression::None,
            max_in_flight: 5,
            producers: 1,
            consumers: 1,
            consume_from: ConsumeFrom::Latest,
            target_rate: None,
            stop_after: StopAfter::Duration(Duration::from_secs(10)),
            warmup: Duration::from_secs(2),
            broker_pid: None,
            shards: 0,
        }
    }
}

/// Largest record value the generator builds (Kafka's default `message.max.bytes` is ~1 MiB).
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// The generator writes a send timestamp into the first bytes of every value.
pub const MIN_MESSAGE_BYTES: usize = 8;
/// More than this many requests in flight per connection is never useful and only hides latency.
pub const MAX_IN_FLIGHT_LIMIT: usize = 64;

impl WorkloadSpec {
    /// Rejects workloads the generator cannot run faithfully.
    pub fn validate(&self) -> Result<(), String> {
        if self.partitions == 0 {
            return Err("partitions must be at least 1".into());
        }
        if !(MIN_MESSAGE_BYTES..=MAX_MESSAGE_BYTES).contains(&self.message_bytes) {
            return Err(format!(
                "message size must be {MIN_MESSAGE_BYTES}..={MAX_MESSAGE_BYTES} bytes (the first \
                 {MIN_MESSAGE_BYTES} carry the send time)"
            ));
        }
        if self.batch_bytes == 0 || self.batch_bytes > MAX_MESSAGE_BYTES {
            return Err(format!("batch size must be 1..={MAX_MESSAGE_BYTES} bytes"));
        }
        if !(1..=MAX_IN_FLIGHT_LIMIT).contains(&self.max_in_flight) {
            return Err(format!("max in flight must be 1..={MAX_IN_FLIGHT_LIMIT}"));
        }
        if self.producers == 0 && self.consumers == 0 {
            return Err("nothing to run: no producers and no consumers".into());
        }
        if self.producers == 0 && self.consume_from == ConsumeFrom::Latest {
            return Err(
                "consumers alone must read from earliest (there is nothing to wait for)".into(),
            );
        }
        if self.target_rate == Some(0) {
            return Err("rate must be at least 1 record per second".into());
        }
        if let KeyDistribution::Uniform { count } | KeyDistribution::Skewed { count, .. } =
            self.keys
        {
            if count == 0 {
                return Err("key count must be at least 1".into());
            }
        }
        Ok(())
    }
}

/// Parses `500ms`, `10s`, `2m` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit_secs) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("not a duration: {s:?} (use e.g. 500ms, 10s, 2m)"))?;
    if !(value.is_finite() && value >= 0.0) {
        return Err(format!("not a duration: {s:?}"));
    }
    Ok(Duration::from_secs_f64(value * unit_secs))
}

/// Durations are written as (fractional) seconds in JSON.
mod duration_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn acks_parse_as_kafka_spells_them() {
        assert_eq!("all".parse(), Ok(Acks::All));
        assert_eq!("-1".parse(), Ok(Acks::All));
        assert_eq!("0".parse::<Acks>().map(Acks::wire), Ok(0));
        assert!("2".parse::<Acks>().is_err());
    }

    #[test]
    fn spec_round_trips_through_json() {
        let mut spec = WorkloadSpec::new("127.0.0.1:9092", "t");
        spec.keys = KeyDistribution::Skewed {
            count: 1000,
            exponent: 1.0,
        };
        spec.stop_after = StopAfter::Messages(5);
        let json = serde_json::to_string(&spec).unwrap();
        let back: WorkloadSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(back.keys, spec.keys);
        assert_eq!(back.stop_after, spec.stop_after);
        assert_eq!(back.linger, spec.linger);
    }
}
