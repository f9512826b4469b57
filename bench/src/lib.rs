//! corelog-bench: a Kafka-protocol load generator and benchmark harness.
//!
//! Its own producers and consumers run on corelog's per-core io_uring runtime and speak the Kafka
//! wire protocol to any broker address (corelog, Apache Kafka, Redpanda). A run measures produce and
//! consume throughput, produce-ack and end-to-end latency (HDR histograms) and the broker's CPU per
//! GiB; the matrix mode sweeps acks × partitions × message size, the compare mode runs the same
//! matrix against several brokers side by side and reports ratios.
//!
//! Modules:
//! - [`spec`]: what to run (the workload); [`result`]: what a run measured;
//! - [`live`]: counters shared with the progress bar while a run is under way;
//! - [`client`], [`producer`], [`consumer`], [`workload`], [`control`], [`keys`]: the load
//!   generator itself; [`null_sink`]: a broker that stores nothing, to measure the generator alone;
//! - [`cpu`], [`report`], [`progress`], [`matrix`]: measuring and presenting.

pub mod client;
pub mod consumer;
pub mod control;
pub mod cpu;
pub mod keys;
pub mod live;
pub mod matrix;
pub mod null_sink;
pub mod producer;
pub mod progress;
pub mod report;
pub mod result;
pub mod spec;
pub mod workload;
