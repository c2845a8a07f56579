//! A fault-injecting TCP proxy for `cargo xtask e2e`: listens on
//! `127.0.0.1`, forwards every connection to one upstream address, and cuts
//! some connections after a pseudo-random number of bytes.
//!
//! The plan of each connection is drawn, in accept order, from a xorshift
//! generator seeded by the proxy's seed: with probability `cut_percent` the
//! connection is cut once `cut_range` bytes (both directions together) have
//! been forwarded: the bytes up to the cut point are delivered, then both
//! sockets are shut down (FIN to both peers). The same seed gives the same
//! sequence of plans; which connection gets which plan depends on the order
//! in which the client opens its connections (deterministic for a client
//! with one connection at a time).
//!
//! Everything stops at the latest after `max_run`: the accept loop and
//! every forwarding thread poll a stop flag (reads time out every 200 ms),
//! and dropping the proxy joins all threads.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// A small xorshift64 generator (reproducible, no dependencies).
#[derive(Debug, Clone)]
pub(crate) struct XorShift(u64);

impl XorShift {
    pub(crate) fn new(seed: u64) -> Self {
        // splitmix64 of the seed, so that small seeds give unrelated streams.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        XorShift(if z == 0 { 1 } else { z })
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `0..n` (n > 0; the modulo bias is irrelevant here).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// What happened to one proxied connection.
#[derive(Debug, Clone)]
pub(crate) struct ConnRecord {
    /// 0, 1, 2 … in accept order.
    pub(crate) index: u64,
    /// The planned cut point in bytes, if this connection was to be cut.
    pub(crate) cut_at: Option<u64>,
    /// Bytes forwarded (both directions).
    pub(crate) bytes: u64,
    /// Whether the cut actually happened (the connection reached `cut_at`).
    pub(crate) cut: bool,
    /// The upstream could not be reached.
    pub(crate) upstream_failed: bool,
}

/// How the proxy cuts connections.
#[derive(Debug, Clone)]
pub(crate) struct FaultPlan {
    pub(crate) seed: u64,
    /// Probability (in percent) that a connection is cut.
    pub(crate) cut_percent: u64,
    /// The cut point, uniform in this range of bytes.
    pub(crate) cut_range: Range<u64>,
    /// Hard limit on the proxy's life.
    pub(crate) max_run: Duration,
}

/// A running proxy; dropping it stops it and joins its threads.
#[derive(Debug)]
pub(crate) struct FaultProxy {
    port: u16,
    stop: Arc<AtomicBool>,
    records: Arc<Mutex<Vec<ConnRecord>>>,
    thread: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts forwarding `127.0.0.1:<port()>` to `upstream`.
    pub(crate) fn start(upstream: SocketAddr, plan: FaultPlan) -> io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let records = Arc::new(Mutex::new(Vec::new()));
        let thread = thread::Builder::new().name("e2e-proxy".into()).spawn({
            let stop = Arc::clone(&stop);
            let records = Arc::clone(&records);
            move || accept_loop(&listener, upstream, &plan, &stop, &records)
        })?;
        Ok(FaultProxy {
            port,
            stop,
            records,
            thread: Some(thread),
        })
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Stops accepting, closes every connection and joins all threads;
    /// returns the record of every connection, in accept order.
    pub(crate) fn finish(mut self) -> Vec<ConnRecord> {
        self.shutdown();
        let mut v = self.records.lock().map(|r| r.clone()).unwrap_or_default();
        v.sort_by_key(|r| r.index);
        v
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn accept_loop(
    listener: &TcpListener,
    upstream: SocketAddr,
    plan: &FaultPlan,
    stop: &Arc<AtomicBool>,
    records: &Arc<Mutex<Vec<ConnRecord>>>,
) {
    let deadline = Instant::now() + plan.max_run;
    let mut rng = XorShift::new(plan.seed);
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    let mut index = 0u64;
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        match listener.accept() {
            Ok((client, _)) => {
                let cut_at = (rng.below(100) < plan.cut_percent).then(|| {
                    plan.cut_range.start
                        + rng.below(plan.cut_range.end.saturating_sub(plan.cut_range.start))
                });
                let (stop, records) = (Arc::clone(stop), Arc::clone(records));
                let i = index;
                index += 1;
                let spawned =
                    thread::Builder::new()
                        .name(format!("e2e-proxy-{i}"))
                        .spawn(move || {
                            let rec = handle(client, upstream, i, cut_at, &stop, deadline);
                            if let Ok(mut r) = records.lock() {
                                r.push(rec);
                            }
                        });
                if let Ok(h) = spawned {
                    workers.push(h);
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(5));
            }
            Err(_) => thread::sleep(Duration::from_millis(20)),
        }
        workers.retain(|h| !h.is_finished());
    }
    stop.store(true, Ordering::SeqCst);
    for h in workers {
        let _ = h.join();
    }
}

fn handle(
    client: TcpStream,
    upstream: SocketAddr,
    index: u64,
    cut_at: Option<u64>,
    stop: &AtomicBool,
    deadline: Instant,
) -> ConnRecord {
    let mut rec = ConnRecord {
        index,
        cut_at,
        bytes: 0,
        cut: false,
        upstream_failed: false,
    };
    let server = match TcpStream::connect_timeout(&upstream, Duration::from_secs(5)) {
        Ok(s) => s,
        Err(_) => {
            rec.upstream_failed = true;
            let _ = client.shutdown(Shutdown::Both);
            return rec;
        }
    };
    let _ = client.set_nonblocking(false);
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let total = AtomicU64::new(0);
    let cut = AtomicBool::new(false);
    let pair = (client.try_clone(), server.try_clone());
    let (Ok(client2), Ok(server2)) = pair else {
        let _ = client.shutdown(Shutdown::Both);
        let _ = server.shutdown(Shutdown::Both);
        return rec;
    };
    let link = Link {
        total: &total,
        cut_at,
        cut: &cut,
        stop,
        deadline,
    };
    thread::scope(|s| {
        s.spawn(|| link.pump(&client, &server));
        link.pump(&server2, &client2);
    });
    rec.bytes = total.load(Ordering::SeqCst);
    rec.cut = cut.load(Ordering::SeqCst);
    rec
}

/// State shared by the two directions of one connection.
struct Link<'a> {
    total: &'a AtomicU64,
    cut_at: Option<u64>,
    cut: &'a AtomicBool,
    stop: &'a AtomicBool,
    deadline: Instant,
}

impl Link<'_> {
    /// Copies `from` → `to` until EOF, an error, the cut, or the stop flag.
    fn pump(&self, mut from: &TcpStream, mut to: &TcpStream) {
        let kill = || {
            let _ = from.shutdown(Shutdown::Both);
            let _ = to.shutdown(Shutdown::Both);
        };
        if from
            .set_read_timeout(Some(Duration::from_millis(200)))
            .is_err()
        {
            kill();
            return;
        }
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            if self.stop.load(Ordering::SeqCst)
                || self.cut.load(Ordering::SeqCst)
                || Instant::now() >= self.deadline
            {
                kill();
                return;
            }
            let n = match from.read(&mut buf) {
                Ok(0) => {
                    let _ = to.shutdown(Shutdown::Write);
                    return;
                }
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) =>
                {
                    continue;
                }
                Err(_) => {
                    kill();
                    return;
                }
            };
            let len = n as u64;
            let before = self.total.fetch_add(len, Ordering::SeqCst);
            let (send, cut_now) = match self.cut_at {
                Some(limit) if before + len >= limit => {
                    (limit.saturating_sub(before).min(len), true)
                }
                _ => (len, false),
            };
            let send = usize::try_from(send).unwrap_or(n);
            if to.write_all(&buf[..send]).is_err() {
                kill();
                return;
            }
            if cut_now {
                self.cut.store(true, Ordering::SeqCst);
                kill();
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xorshift_is_reproducible() {
        let a: Vec<u64> = {
            let mut r = XorShift::new(7);
            (0..5).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = XorShift::new(7);
            (0..5).map(|_| r.next_u64()).collect()
        };
        assert_eq!(a, b);
        assert_ne!(a, {
            let mut r = XorShift::new(8);
            (0..5).map(|_| r.next_u64()).collect::<Vec<_>>()
        });
    }

    #[test]
    fn cuts_after_the_planned_bytes() {
        // An echo-less upstream that sends 100 kB and then waits.
        let up = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = up.local_addr().unwrap();
        let server = thread::spawn(move || {
            let (mut s, _) = up.accept().unwrap();
            let _ = s.write_all(&vec![b'x'; 100_000]);
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink);
        });
        let plan = FaultPlan {
            seed: 1,
            cut_percent: 100,
            cut_range: 1000..1001,
            max_run: Duration::from_secs(20),
        };
        let proxy = FaultProxy::start(addr, plan).unwrap();
        let mut c = TcpStream::connect((Ipv4Addr::LOCALHOST, proxy.port())).unwrap();
        let mut got = Vec::new();
        let _ = c.read_to_end(&mut got);
        assert_eq!(got.len(), 1000);
        drop(c);
        let recs = proxy.finish();
        server.join().unwrap();
        assert_eq!(recs.len(), 1);
        assert!(recs[0].cut);
        assert_eq!(recs[0].cut_at, Some(1000));
    }
}
