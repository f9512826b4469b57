//! A background thread for a shard's blocking work: jobs that read and write whole files with
//! plain syscalls (the log cleaner) and would stall every partition of the shard if they ran on
//! it. Jobs run one at a time, in order; a shard task awaits each job's output like any other
//! future (the completion wakes it through the shard's eventfd).
//!
//! The thread runs under `SCHED_IDLE` when asked: it then gets a core only when the shards leave
//! it idle, which is what "budgeted so appends and fetches keep their latency" needs on a
//! machine where every core has a shard.

use std::io;
use std::thread;

use crossbeam_channel::{Receiver, Sender};

use super::shard::{remote_pair, RemoteHandle};

type Job = Box<dyn FnOnce() + Send>;

/// A named OS thread that runs blocking jobs. Dropping it lets the thread finish the job in hand
/// and exit; it is not joined (a shard that stops does not wait for a long cleaning).
pub struct BackgroundThread {
    jobs: Sender<Job>,
}

/// How the thread is scheduled against the shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// Like any thread.
    Normal,
    /// `SCHED_IDLE`: runs only on otherwise idle CPU time.
    Idle,
}

impl BackgroundThread {
    pub fn spawn(name: &str, priority: Priority) -> io::Result<BackgroundThread> {
        let (jobs, rx) = crossbeam_channel::unbounded::<Job>();
        thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                if priority == Priority::Idle {
                    if let Err(e) = set_idle_priority() {
                        tracing::warn!(error = %e, "could not lower the background thread's priority");
                    }
                }
                run_jobs(rx)
            })?;
        Ok(BackgroundThread { jobs })
    }

    /// Runs `f` on the thread after the jobs before it; the handle yields its output. If the
    /// thread is gone, awaiting the handle panics (as for a dropped remote task).
    pub fn run<F, T>(&self, f: F) -> RemoteHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (completer, handle) = remote_pair();
        // A send fails only when the thread has exited; the job (and its completer) is then
        // dropped and the handle reports it.
        let _ = self.jobs.send(Box::new(move || completer.complete(f())));
        handle
    }
}

fn run_jobs(rx: Receiver<Job>) {
    while let Ok(job) = rx.recv() {
        job();
    }
}

fn set_idle_priority() -> io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 is the calling thread; `param` is a valid sched_param for SCHED_IDLE
    // (whose only allowed priority is 0) and outlives the call.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::block_on;

    #[test]
    fn jobs_run_in_order_off_the_calling_thread_and_report_back() {
        let bg = BackgroundThread::spawn("bg-test", Priority::Idle).unwrap();
        let caller = thread::current().id();
        block_on(async {
            let first = bg.run(move || (thread::current().id() != caller, 1));
            let second = bg.run(|| 2);
            assert_eq!(first.await, (true, 1));
            assert_eq!(second.await, 2);
        });
    }
}
