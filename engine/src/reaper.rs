//! The file reaper: one background thread per process that unlinks deleted segment files and
//! closes their last descriptor, so that neither happens on a shard.
//!
//! Why a thread: freeing a file's blocks and page cache happens at the unlink of a closed file
//! or at the final close of an unlinked one, and on ext4 that is slow: ~12 ms for a 16 MiB
//! segment, ~100 ms for 128 MiB and ~0.8 s for 1 GiB on the development machine (see the
//! commit that added this module). A shard that did it inline would stall every append and
//! fetch it serves for that long.
//!
//! Order: the shard renames a segment's files to `*.deleted` first (cheap, and it frees the
//! names at once), then sends their new paths here. A retired [`crate::segment::LogFile`] sends
//! its descriptor here when its last handle drops, wherever that is (the log, or a fetch that
//! still held the range). A crash before the reaper ran leaves `*.deleted` files, which opening
//! the log removes.

use std::fs::File;
use std::path::PathBuf;
use std::sync::mpsc::{self, Sender};
use std::sync::{Mutex, OnceLock};
use std::thread;

enum Job {
    /// Unlink these paths (missing ones are fine: recovery may have removed them).
    Unlink(Vec<PathBuf>),
    /// Close this descriptor (the last one of an unlinked file).
    Close(File),
    /// Remove this directory and everything in it (a deleted partition, renamed first).
    RemoveDir(PathBuf),
    /// Make this directory's entries durable (an fsync that waits for a journal commit).
    SyncDir(PathBuf),
    /// Answer once every earlier job is done.
    Barrier(mpsc::SyncSender<()>),
}

/// The reaper thread's queue; `None` if the thread could not be started (work is then done
/// inline, which is slow but correct).
fn queue() -> Option<&'static Mutex<Sender<Job>>> {
    static QUEUE: OnceLock<Option<Mutex<Sender<Job>>>> = OnceLock::new();
    QUEUE
        .get_or_init(|| {
            let (tx, rx) = mpsc::channel::<Job>();
            let spawned = thread::Builder::new()
                .name("corelog-reaper".into())
                .spawn(move || {
                    for job in rx {
                        run(job);
                    }
                });
            match spawned {
                Ok(_) => Some(Mutex::new(tx)),
                Err(e) => {
                    tracing::warn!(error = %e, "no file reaper thread: deleting files inline");
                    None
                }
            }
        })
        .as_ref()
}

fn run(job: Job) {
    match job {
        Job::Unlink(paths) => {
            for path in paths {
                if let Err(e) = std::fs::remove_file(&path) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        tracing::warn!(path = %path.display(), error = %e, "could not delete a file");
                    }
                }
            }
        }
        Job::Close(file) => drop(file),
        Job::SyncDir(dir) => {
            let synced = std::fs::File::open(&dir).and_then(|d| d.sync_all());
            if let Err(e) = synced {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(dir = %dir.display(), error = %e, "could not sync a directory");
                }
            }
        }
        Job::RemoveDir(dir) => {
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(dir = %dir.display(), error = %e, "could not delete a directory");
                }
            }
        }
        Job::Barrier(done) => {
            let _ = done.send(());
        }
    }
}

fn submit(job: Job) {
    let job = match queue() {
        Some(q) => match q.lock().unwrap_or_else(|e| e.into_inner()).send(job) {
            Ok(()) => return,
            // The thread is gone (it never exits while the process runs): do it here.
            Err(mpsc::SendError(job)) => job,
        },
        None => job,
    };
    run(job);
}

/// Unlinks `paths` off the calling thread.
pub fn unlink(paths: Vec<PathBuf>) {
    if !paths.is_empty() {
        submit(Job::Unlink(paths));
    }
}

/// Fsyncs the directory `dir` off the calling thread.
pub fn sync_dir(dir: PathBuf) {
    submit(Job::SyncDir(dir));
}

/// Removes the directory `dir` (and its contents) off the calling thread.
pub fn remove_dir(dir: PathBuf) {
    submit(Job::RemoveDir(dir));
}

/// Closes `file` off the calling thread.
pub fn close(file: File) {
    submit(Job::Close(file));
}

/// Blocks until every unlink and close submitted before this call is done (tests, shutdown).
pub fn wait_idle() {
    let (tx, rx) = mpsc::sync_channel(1);
    submit(Job::Barrier(tx));
    let _ = rx.recv();
}
