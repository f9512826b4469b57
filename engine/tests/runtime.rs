//! Integration tests of the per-core runtime: file ops, timers, tasks, sockets, splice, shards.

use std::cell::RefCell;
use std::future::Future;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use corelog_engine::runtime::ops::{
    fdatasync, read_at, write_all_at, write_at, write_at_then_fdatasync,
};
use corelog_engine::runtime::{block_on, sleep, sleep_until, spawn, yield_now};

fn tmpfile() -> std::fs::File {
    tempfile::tempfile().expect("tempfile")
}

/// A pattern that differs at every offset, so misplaced bytes are caught.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
        .collect()
}

#[test]
fn read_write_round_trip() {
    let file = tmpfile();
    let fd = file.as_raw_fd();
    block_on(async move {
        let data = pattern(10_000, 7);
        let (res, data) = write_at(fd, data, 100).await;
        assert_eq!(res.unwrap(), 10_000);
        let (res, buf) = read_at(fd, vec![0u8; 10_100], 0).await;
        assert_eq!(res.unwrap(), 10_100);
        assert!(buf[..100].iter().all(|&b| b == 0));
        assert_eq!(&buf[100..], &data[..]);
        // Reading past EOF returns 0.
        let (res, _) = read_at(fd, vec![0u8; 16], 20_000).await;
        assert_eq!(res.unwrap(), 0);
        // write_all_at of a larger buffer.
        let big = pattern(3 << 20, 3);
        let (res, big) = write_all_at(fd, big, 0).await;
        res.unwrap();
        let (res, back) = read_at(fd, vec![0u8; 3 << 20], 0).await;
        assert_eq!(res.unwrap(), 3 << 20);
        assert!(back == big);
    });
}

#[test]
fn read_into_vec_fills_len_not_capacity() {
    let mut file = tmpfile();
    file.write_all(b"hello world").unwrap();
    let fd = file.as_raw_fd();
    block_on(async move {
        let mut buf = Vec::with_capacity(64);
        buf.resize(5, 0);
        let (res, buf) = read_at(fd, buf, 6).await;
        assert_eq!(res.unwrap(), 5);
        assert_eq!(buf, b"world");
    });
}

#[test]
fn fdatasync_succeeds_and_reports_errors() {
    let file = tmpfile();
    let fd = file.as_raw_fd();
    block_on(async move {
        let (res, _) = write_at(fd, b"durable".to_vec(), 0).await;
        res.unwrap();
        fdatasync(fd).await.unwrap();
        // A bad descriptor must surface as an error, not as success.
        let err = fdatasync(-1).await.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF));
    });
    let mut s = String::new();
    let mut f = file;
    f.read_to_string(&mut s).unwrap();
    assert_eq!(s, "durable");
}

#[test]
fn linked_write_then_fdatasync() {
    let file = tmpfile();
    let fd = file.as_raw_fd();
    block_on(async move {
        let data = pattern(64 * 1024, 1);
        let (res, data) = write_at_then_fdatasync(fd, data, 4096).await;
        assert_eq!(res.unwrap(), 64 * 1024);
        let (res, back) = read_at(fd, vec![0u8; 64 * 1024], 4096).await;
        assert_eq!(res.unwrap(), 64 * 1024);
        assert!(back == data);
        // A failing write (bad fd) is reported.
        let (res, _) = write_at_then_fdatasync(-1, vec![1u8; 8], 0).await;
        assert!(res.is_err());
    });
}

/// A short write breaks the link: the sync is cancelled and the call must not report success.
/// A non-blocking pipe with a small capacity accepts only part of a large write.
#[test]
fn linked_write_short_write_is_an_error() {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    assert_eq!(
        unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) },
        0
    );
    // SAFETY: fresh descriptors owned here.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let wfd = w.as_raw_fd();
    block_on(async move {
        let (res, _) = write_at_then_fdatasync(wfd, vec![7u8; 1 << 20], 0).await;
        let err = res.expect_err("a short write must not be reported as durable");
        assert_eq!(err.kind(), std::io::ErrorKind::WriteZero, "{err}");
    });
    drop(r);
}

#[test]
fn many_concurrent_writes_at_distinct_offsets() {
    const WRITES: usize = 512;
    const CHUNK: usize = 4096;
    let file = tmpfile();
    let fd = file.as_raw_fd();
    block_on(async move {
        let mut handles = Vec::new();
        for i in 0..WRITES {
            handles.push(spawn(async move {
                let (res, _) = write_at(fd, pattern(CHUNK, i as u8), (i * CHUNK) as u64).await;
                assert_eq!(res.unwrap(), CHUNK);
                i
            }));
        }
        let mut seen = 0;
        for (i, h) in handles.into_iter().enumerate() {
            assert_eq!(h.await, i);
            seen += 1;
        }
        assert_eq!(seen, WRITES);
        let (res, all) = read_at(fd, vec![0u8; WRITES * CHUNK], 0).await;
        assert_eq!(res.unwrap(), WRITES * CHUNK);
        for i in 0..WRITES {
            assert!(
                all[i * CHUNK..(i + 1) * CHUNK] == pattern(CHUNK, i as u8)[..],
                "chunk {i} misplaced"
            );
        }
    });
}

#[test]
fn sleep_lasts_at_least_its_duration() {
    block_on(async {
        let start = Instant::now();
        sleep(Duration::from_millis(30)).await;
        assert!(start.elapsed() >= Duration::from_millis(30));
        let deadline = Instant::now() + Duration::from_millis(20);
        sleep_until(deadline).await;
        assert!(Instant::now() >= deadline);
        // Concurrent sleeps finish in deadline order.
        let order = Rc::new(RefCell::new(Vec::new()));
        let mut hs = Vec::new();
        for (i, ms) in [(0, 60u64), (1, 20), (2, 40)] {
            let order = order.clone();
            hs.push(spawn(async move {
                sleep(Duration::from_millis(ms)).await;
                order.borrow_mut().push(i);
            }));
        }
        for h in hs {
            h.await;
        }
        assert_eq!(*order.borrow(), vec![1, 2, 0]);
    });
}

#[test]
fn spawn_and_join() {
    let out = block_on(async {
        let a = spawn(async { 40 });
        let b = spawn(async {
            yield_now().await;
            2
        });
        // A detached task still runs.
        let flag = Rc::new(RefCell::new(false));
        let f = flag.clone();
        drop(spawn(async move {
            *f.borrow_mut() = true;
        }));
        let sum = a.await + b.await;
        yield_now().await;
        assert!(*flag.borrow());
        sum
    });
    assert_eq!(out, 42);
    // block_on works again on the same thread.
    assert_eq!(block_on(async { spawn(async { 7 }).await }), 7);
}

/// Polls `fut` once and drops it.
async fn poll_once_then_drop<F: Future>(fut: F) {
    let mut fut = Box::pin(fut);
    std::future::poll_fn(|cx: &mut Context<'_>| {
        assert!(Pin::new(&mut fut).as_mut().poll(cx).is_pending());
        Poll::Ready(())
    })
    .await;
    drop(fut);
}

#[test]
fn dropping_an_in_flight_read_is_safe() {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: fresh descriptors owned here.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let (rfd, wfd) = (r.as_raw_fd(), w.as_raw_fd());
    block_on(async move {
        // Reads on an empty pipe stay in flight; drop them with their buffers.
        for _ in 0..8 {
            poll_once_then_drop(read_at(rfd, vec![0u8; 64], 0)).await;
        }
        poll_once_then_drop(sleep(Duration::from_secs(3600))).await;
        // Let the cancellations complete, then check the runtime still works and that no
        // cancelled read consumed the data meant for the live one.
        sleep(Duration::from_millis(10)).await;
        let (res, _) = write_at(wfd, b"after".to_vec(), 0).await;
        assert_eq!(res.unwrap(), 5);
        let (res, buf) = read_at(rfd, vec![0u8; 64], 0).await;
        assert_eq!(&buf[..res.unwrap()], b"after");
    });
}
