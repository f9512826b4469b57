//! CPU time of processes, from /proc, and finding a local broker's process from its port.
//!
//! The broker's CPU per GiB is the figure that shows efficiency independently of how fast the
//! machine is; the generator's own CPU shows whether it, rather than the broker, was the limit.

use std::fs;

/// TCP state LISTEN as /proc/net/tcp writes it (include/net/tcp_states.h: TCP_LISTEN = 10).
const TCP_STATE_LISTEN_HEX: &str = "0A";

/// Clock ticks per second, the unit of utime/stime in /proc/PID/stat.
fn clock_ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions; it only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        // The value every Linux architecture has used for USER_HZ.
        100.0
    }
}

/// utime + stime in clock ticks from the text of /proc/PID/stat.
fn parse_stat_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may itself contain spaces and ')', so
    // the fields are counted from the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, so utime (field 14) and stime (field 15) are at 11, 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// user+system CPU seconds consumed so far by process `pid` (all its threads), or None if the
/// process does not exist or cannot be read.
pub fn process_cpu_secs(pid: u32) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(parse_stat_ticks(&stat)? as f64 / clock_ticks_per_sec())
}

/// user+system CPU seconds consumed so far by this process (microsecond resolution, unlike the
/// clock ticks of /proc).
pub fn self_cpu_secs() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we pass and has no other effect.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    if rc != 0 {
        return process_cpu_secs(std::process::id()).unwrap_or(0.0);
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Socket inodes of LISTEN sockets on `port` in the text of /proc/net/tcp or /proc/net/tcp6.
fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    let mut inodes = Vec::new();
    // Columns: sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
    for line in table.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 10 || cols[3] != TCP_STATE_LISTEN_HEX {
            continue;
        }
        let Some((_, port_hex)) = cols[1].rsplit_once(':') else {
            continue;
        };
        if u16::from_str_radix(port_hex, 16).ok() != Some(port) {
            continue;
        }
        if let Ok(inode) = cols[9].parse::<u64>() {
            if inode != 0 {
                inodes.push(inode);
            }
        }
    }
    inodes
}

/// The pid of the local process listening on this TCP port, if it can be found (a process of
/// another user is invisible unless we run as root; then None).
pub fn find_listener_pid(port: u16) -> Option<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = fs::read_to_string(table) {
            inodes.extend(listening_inodes(&text, port));
        }
    }
    if inodes.is_empty() {
        return None;
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // Processes of other users, or ones that exit while we look, are skipped.
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(link) = fs::read_link(fd.path()) {
                if wanted.iter().any(|w| link.as_os_str() == w.as_str()) {
                    return Some(pid);
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// Long enough for a busy loop to accumulate CPU on a loaded 2-core machine.
    const BUSY_LIMIT_WALL: Duration = Duration::from_secs(20);
    const BUSY_CPU_SECS: f64 = 0.3;

    #[test]
    fn finds_the_pid_of_a_listener_in_this_process() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(find_listener_pid(port), Some(std::process::id()));
        drop(listener);
        // Once closed, the port has no listener (nothing else binds an ephemeral port we just
        // released this quickly).
        assert_eq!(find_listener_pid(port), None);
    }

    #[test]
    fn listening_inodes_reads_only_listen_rows_of_the_port() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 111 1 0 100 0 0 10 0\n\
   1: 0100007F:1F90 0100007F:C000 01 00000000:00000000 00:00000000 00000000  1000        0 222 1 0 20 4 30 10 -1\n\
   2: 0100007F:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 333 1 0 100 0 0 10 0\n";
        assert_eq!(listening_inodes(table, 0x1F90), vec![111]);
        assert_eq!(listening_inodes(table, 0x1F91), vec![333]);
        assert!(listening_inodes(table, 1).is_empty());
    }

    #[test]
    fn stat_parsing_survives_odd_command_names() {
        // Fields 3..=15 after a name with a space and a parenthesis; utime=7, stime=5.
        let stat = "42 (we ir)d) S 1 42 42 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 1 0";
        assert_eq!(parse_stat_ticks(stat), Some(12));
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn cpu_time_of_a_busy_loop_grows() {
        let pid = std::process::id();
        let proc_before = process_cpu_secs(pid).expect("our own /proc/PID/stat");
        let self_before = self_cpu_secs();
        let started = Instant::now();
        let mut x: u64 = 1;
        while self_cpu_secs() - self_before < BUSY_CPU_SECS && started.elapsed() < BUSY_LIMIT_WALL {
            for i in 0..10_000u64 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
            }
            std::hint::black_box(x);
        }
        let self_grew = self_cpu_secs() - self_before;
        let proc_grew = process_cpu_secs(pid).unwrap() - proc_before;
        assert!(self_grew >= BUSY_CPU_SECS, "getrusage grew by {self_grew}");
        // /proc counts in clock ticks (10 ms), and other test threads only add to it.
        assert!(
            proc_grew >= BUSY_CPU_SECS - 0.05,
            "/proc/PID/stat grew by {proc_grew}"
        );
        assert_eq!(process_cpu_secs(u32::MAX), None);
    }
}
