//! Integration tests of the per-core runtime: file ops, timers, tasks, sockets, splice, shards.

use std::cell::RefCell;
use std::future::Future;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use corelog_engine::runtime::ops::{
    accept_multishot, connect, fdatasync, poll, read_at, read_fixed_at, recv, send_all,
    send_file_range, splice, write_all_at, write_at, write_at_then_fdatasync, write_fixed_at,
    FixedBufPool, Pipe, SEND_FILE_POLL_WAITS, SPLICED_BYTES,
};
use corelog_engine::runtime::{
    block_on, current_shard, sleep, sleep_until, spawn, yield_now, ShardConfig, ShardSet,
};

/// Runs `f` on its own thread and fails the test if it does not finish within `limit` (a lost
/// wake-up would otherwise hang the test instead of failing it).
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(v)) => v,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("did not finish within {limit:?}"),
    }
}

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
    // If a dropped read were not cancelled it would steal the data and the live read would hang.
    within(Duration::from_secs(10), move || {
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
        })
    });
    drop((r, w));
}

// ---------------------------------------------------------------------------------------------
// Fixed buffers

#[test]
fn fixed_buffer_read_write() {
    let file = tmpfile();
    let fd = file.as_raw_fd();
    block_on(async move {
        let pool = FixedBufPool::register(4, 8192).unwrap();
        assert_eq!(pool.available(), 4);
        let mut bufs: Vec<_> = (0..4).map(|_| pool.checkout().unwrap()).collect();
        assert!(pool.checkout().is_none());
        for (i, b) in bufs.iter_mut().enumerate() {
            b.copy_from_slice(&pattern(8192, i as u8));
        }
        let mut back = Vec::new();
        for (i, b) in bufs.into_iter().enumerate() {
            let (res, b) = write_fixed_at(fd, b, (i * 8192) as u64).await;
            assert_eq!(res.unwrap(), 8192);
            back.push(b);
        }
        drop(back);
        assert_eq!(pool.available(), 4);
        for i in 0..4 {
            let mut b = pool.checkout().unwrap();
            b.fill(0);
            b.set_len(4096);
            let (res, b) = read_fixed_at(fd, b, (i * 8192 + 4096) as u64).await;
            assert_eq!(res.unwrap(), 4096);
            assert_eq!(&b[..], &pattern(8192, i as u8)[4096..]);
        }
        // Plain ops accept fixed buffers too (as ordinary memory).
        let b = pool.checkout().unwrap();
        let (res, b) = read_at(fd, b, 0).await;
        assert_eq!(res.unwrap(), 8192);
        assert_eq!(&b[..], &pattern(8192, 0)[..]);
        // One table per ring: a second registration is refused while the first lives.
        assert!(FixedBufPool::register(1, 4096).is_err());
        drop(b);
        drop(pool);
        // Once the pool is gone its buffers are unregistered and a new pool can register.
        let again = FixedBufPool::register(2, 4096).unwrap();
        assert_eq!(again.buf_size(), 4096);
    });
}

// ---------------------------------------------------------------------------------------------
// Sockets

fn loopback_listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").unwrap()
}

#[test]
fn accept_multishot_accepts_several_connections() {
    const CONNS: usize = 16;
    let listener = loopback_listener();
    let addr = listener.local_addr().unwrap();
    let lfd = listener.as_raw_fd();
    let clients = std::thread::spawn(move || {
        (0..CONNS)
            .map(|i| {
                let mut s = TcpStream::connect(addr).unwrap();
                s.write_all(&[i as u8]).unwrap();
                s
            })
            .collect::<Vec<_>>()
    });
    let seen = block_on(async move {
        let mut stream = accept_multishot(lfd);
        let mut seen = Vec::new();
        for _ in 0..CONNS {
            let conn = stream.next().await.unwrap().unwrap();
            let (res, buf) = recv(conn.as_raw_fd(), vec![0u8; 1]).await;
            assert_eq!(res.unwrap(), 1);
            seen.push(buf[0]);
        }
        seen
    });
    let _clients = clients.join().unwrap();
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(sorted, (0..CONNS as u8).collect::<Vec<_>>());
}

#[test]
fn recv_send_echo() {
    let listener = loopback_listener();
    let addr = listener.local_addr().unwrap();
    let lfd = listener.as_raw_fd();
    block_on(async move {
        // Server task: echo until the peer closes.
        let server = spawn(async move {
            let mut accepts = accept_multishot(lfd);
            let conn = accepts.next().await.unwrap().unwrap();
            let mut total = 0;
            loop {
                let (res, buf) = recv(conn.as_raw_fd(), vec![0u8; 4096]).await;
                let n = res.unwrap();
                if n == 0 {
                    break total;
                }
                total += n;
                let (res, _) = send_all(conn.as_raw_fd(), buf[..n].to_vec()).await;
                res.unwrap();
            }
        });
        let client = connect(addr).await.unwrap();
        let cfd = client.as_raw_fd();
        let msg = pattern(100_000, 9);
        let reader = spawn(async move {
            let mut got = Vec::new();
            while got.len() < 100_000 {
                let (res, buf) = recv(cfd, vec![0u8; 8192]).await;
                let n = res.unwrap();
                assert!(n > 0, "echo ended early");
                got.extend_from_slice(&buf[..n]);
            }
            got
        });
        let (res, msg) = send_all(cfd, msg).await;
        res.unwrap();
        let got = reader.await;
        assert!(got == msg, "echoed bytes differ");
        // SAFETY: shutting down the write side of a socket we own.
        unsafe { libc::shutdown(cfd, libc::SHUT_WR) };
        assert_eq!(server.await, 100_000);
        // poll reports readiness: the server closed, so the socket is readable (EOF).
        let ev = poll(cfd, libc::POLLIN as u32).await.unwrap();
        assert!(ev & libc::POLLIN as u32 != 0);
        drop(client);
    });
}

#[test]
fn dropping_accept_stream_cancels_it() {
    let listener = loopback_listener();
    let addr = listener.local_addr().unwrap();
    let lfd = listener.as_raw_fd();
    block_on(async move {
        let mut s = accept_multishot(lfd);
        poll_once_then_drop(s.next()).await;
        drop(s);
        sleep(Duration::from_millis(10)).await;
        // A new connection goes to a new stream, not to the cancelled one.
        let t = std::thread::spawn(move || TcpStream::connect(addr).unwrap());
        let mut s = accept_multishot(lfd);
        let conn = s.next().await.unwrap();
        assert!(conn.is_ok());
        t.join().unwrap();
    });
}

// ---------------------------------------------------------------------------------------------
// Splice

fn file_with(data: &[u8]) -> std::fs::File {
    let mut f = tmpfile();
    f.write_all(data).unwrap();
    f.flush().unwrap();
    f
}

#[test]
fn splice_file_range_to_tcp_peer() {
    let data = pattern(300_000, 5);
    let file = file_with(&data);
    let ffd = file.as_raw_fd();
    let listener = loopback_listener();
    let addr = listener.local_addr().unwrap();
    let (pos, len) = (12_345usize, 200_000usize);
    let reader = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        got
    });
    let before = SPLICED_BYTES.load(Ordering::Relaxed);
    block_on(async move {
        let sock = connect(addr).await.unwrap();
        let pipe = Pipe::new().unwrap();
        // Raw splice legs: file → pipe, then pipe → socket.
        let mut moved = 0;
        while moved < 1000 {
            let n = splice(ffd, Some(pos as u64), pipe.write_fd(), None, 1000, 0)
                .await
                .unwrap();
            assert_eq!(n, 1000);
            let m = splice(pipe.read_fd(), None, sock.as_raw_fd(), None, n as u32, 0)
                .await
                .unwrap();
            moved += m;
        }
        // The rest through send_file_range.
        let sent = send_file_range(
            sock.as_raw_fd(),
            ffd,
            (pos + 1000) as u64,
            len - 1000,
            &pipe,
        )
        .await
        .unwrap();
        assert_eq!(sent, len - 1000);
    });
    let got = reader.join().unwrap();
    assert_eq!(got.len(), len);
    assert!(got[..] == data[pos..pos + len], "spliced bytes differ");
    // Both legs of every byte are counted.
    assert!(SPLICED_BYTES.load(Ordering::Relaxed) - before >= 2 * len as u64);
}

#[test]
fn send_file_range_past_eof_returns_short_count() {
    let data = pattern(10_000, 2);
    let file = file_with(&data);
    let ffd = file.as_raw_fd();
    let listener = loopback_listener();
    let addr = listener.local_addr().unwrap();
    let reader = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        got
    });
    block_on(async move {
        let sock = connect(addr).await.unwrap();
        let pipe = Pipe::new().unwrap();
        let sent = send_file_range(sock.as_raw_fd(), ffd, 9_000, 5_000, &pipe)
            .await
            .unwrap();
        assert_eq!(sent, 1_000);
    });
    assert_eq!(reader.join().unwrap(), data[9_000..]);
}

#[test]
fn send_file_range_to_slow_reader_waits_on_poll() {
    const LEN: usize = 8 << 20;
    let data = pattern(LEN + 4096, 11);
    let file = file_with(&data);
    let ffd = file.as_raw_fd();
    let listener = loopback_listener();
    let addr = listener.local_addr().unwrap();
    let reader = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut got = Vec::with_capacity(LEN);
        let mut buf = vec![0u8; 64 * 1024];
        let mut reads = 0u64;
        loop {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            reads += 1;
            // Slow: the sender must find the socket full again and again.
            if reads % 8 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        got
    });
    let waits_before = SEND_FILE_POLL_WAITS.load(Ordering::Relaxed);
    let spliced_before = SPLICED_BYTES.load(Ordering::Relaxed);
    block_on(async move {
        let sock = connect(addr).await.unwrap();
        let small: libc::c_int = 64 * 1024;
        // SAFETY: setsockopt reads an int from `small`.
        unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_SNDBUF,
                (&small as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        let pipe = Pipe::new().unwrap();
        let sent = send_file_range(sock.as_raw_fd(), ffd, 4096, LEN, &pipe)
            .await
            .unwrap();
        assert_eq!(sent, LEN);
    });
    let got = reader.join().unwrap();
    assert_eq!(got.len(), LEN);
    assert!(got[..] == data[4096..], "spliced bytes differ");
    assert!(
        SEND_FILE_POLL_WAITS.load(Ordering::Relaxed) > waits_before,
        "the socket never filled up: the EAGAIN → poll path was not exercised"
    );
    assert!(SPLICED_BYTES.load(Ordering::Relaxed) - spliced_before >= 2 * LEN as u64);
}

// ---------------------------------------------------------------------------------------------
// Shards

fn two_shards() -> ShardSet {
    ShardSet::new(ShardConfig {
        count: 2,
        pin_to_cores: true,
    })
    .unwrap()
}

#[test]
fn spawn_on_runs_on_the_named_shard() {
    within(Duration::from_secs(20), || {
        let shards = two_shards();
        assert_eq!(shards.len(), 2);
        assert_eq!(current_shard(), None);
        for i in 0..shards.len() {
            let got = shards.spawn_on(i, || async { current_shard() }).wait();
            assert_eq!(got, Some(i));
        }
        // Non-Send futures are fine: they are built on the shard.
        let got = shards
            .spawn_on(1, || async {
                let rc = Rc::new(5);
                yield_now().await;
                *rc + current_shard().unwrap()
            })
            .wait();
        assert_eq!(got, 6);
        shards.shutdown();
    });
}

#[test]
fn job_sent_to_a_sleeping_shard_runs_promptly() {
    within(Duration::from_secs(20), || {
        let shards = two_shards();
        // Let both shards go idle and sleep in io_uring_enter (no timers to wake them).
        std::thread::sleep(Duration::from_millis(200));
        for round in 0..5 {
            let (tx, rx) = std::sync::mpsc::channel();
            let sent = Instant::now();
            drop(shards.spawn_on(round % 2, move || async move {
                tx.send(Instant::now()).unwrap();
            }));
            let ran = rx
                .recv_timeout(Duration::from_secs(2))
                .expect("a sleeping shard did not wake up for a job");
            assert!(
                ran - sent < Duration::from_millis(500),
                "job took {:?} to start",
                ran - sent
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        shards.shutdown();
    });
}

#[test]
fn cross_shard_await() {
    let shards = Arc::new(two_shards());
    let s2 = shards.clone();
    let out = within(Duration::from_secs(10), move || {
        s2.spawn_on(0, {
            let s3 = s2.clone();
            move || async move {
                // On shard 0, await a task running on shard 1 (which sleeps first, so shard 0
                // sleeps in its ring and must be woken by the completion).
                let h = s3.spawn_on(1, || async {
                    sleep(Duration::from_millis(20)).await;
                    (current_shard(), 41)
                });
                let (shard, v) = h.await;
                (current_shard(), shard, v + 1)
            }
        })
        .wait()
    });
    assert_eq!(out, (Some(0), Some(1), 42));
    // A plain block_on thread can await a RemoteHandle too.
    let s4 = shards.clone();
    let v = within(Duration::from_secs(10), move || {
        block_on(s4.spawn_on(1, || async {
            sleep(Duration::from_millis(20)).await;
            7
        }))
    });
    assert_eq!(v, 7);
}
