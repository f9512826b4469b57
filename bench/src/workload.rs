//! Runs one workload. (Being written.)

use anyhow::Result;

use crate::result::RunResult;
use crate::spec::WorkloadSpec;

/// Runs `spec` against its broker, showing a progress bar if `progress`; `target` names the broker
/// in the result.
pub fn run_with_progress(
    _spec: &WorkloadSpec,
    _target: &str,
    _progress: bool,
) -> Result<RunResult> {
    anyhow::bail!("not built yet")
}

/// Placeholder until the load generator lands: deletes `topic` on the broker at `bootstrap`.
pub fn delete_topic(_bootstrap: &str, _topic: &str) -> Result<()> {
    Ok(())
}
