//! CPU time of processes, from /proc. (Being written.)

/// user+system CPU seconds consumed so far by process `pid`.
pub fn process_cpu_secs(_pid: u32) -> Option<f64> {
    None
}

/// The pid of the local process listening on this TCP port, if it can be found.
pub fn find_listener_pid(_port: u16) -> Option<u32> {
    None
}
