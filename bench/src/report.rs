//! Summary table, JSON and CSV. (Being written.)

use std::path::Path;

use anyhow::Result;

use crate::result::RunResult;

pub fn print_summary(results: &[RunResult]) {
    for r in results {
        println!("{}", serde_json::to_string_pretty(r).unwrap_or_default());
    }
}

pub fn write_json(path: &Path, results: &[RunResult]) -> Result<()> {
    std::fs::write(path, serde_json::to_vec_pretty(results)?)?;
    Ok(())
}
