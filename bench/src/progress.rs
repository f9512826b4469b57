//! The terminal progress bar. (Being written.)

use std::sync::Arc;

use crate::live::LiveCounters;
use crate::spec::WorkloadSpec;

pub struct ProgressBar;

impl ProgressBar {
    pub fn start(_live: Arc<LiveCounters>, _spec: &WorkloadSpec) -> ProgressBar {
        ProgressBar
    }

    pub fn finish(self) {}
}
