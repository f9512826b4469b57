//! The matrix and compare modes. (Being written: run_matrix sweeps the axes over the targets.)

use std::path::Path;

use anyhow::Result;

use crate::spec::{Acks, WorkloadSpec};

/// The axes a matrix sweeps.
#[derive(Clone, Debug)]
pub struct MatrixAxes {
    pub acks: Vec<Acks>,
    pub partitions: Vec<u32>,
    pub message_bytes: Vec<usize>,
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

pub fn run_matrix(
    _base: &WorkloadSpec,
    _axes: &MatrixAxes,
    _targets: &[Target],
    _out: &Path,
    _progress: bool,
) -> Result<()> {
    anyhow::bail!("matrix mode is not built yet")
}
