//! A fault-injecting TCP proxy for `cargo xtask e2e`: listens on
//! `127.0.0.1`, forwards every FTP control connection to one upstream
//! address, and cuts some connections after a pseudo-random number of bytes.
//!
//! Data connections go through the proxy too: the server's passive-mode
//! replies (`227 … (h1,h2,h3,h4,p1,p2)` and `229 … (|||port|)`) are
//! rewritten on their way to the client so that they name a one-shot
//! listener of the proxy, which forwards the data connection to the port the
//! server announced. So both kinds of connection can be cut: a cut data
//! connection is what a stalled or reset transfer looks like to bk (an
//! upload the server believes complete but short, a download that ends
//! early).
//!
//! The plan of each connection is drawn from a xorshift generator seeded by
//! the proxy's seed, in the order in which connections are opened: control
//! connections are cut with probability `cut_percent` once `cut_range` bytes
//! (both directions together) have been forwarded; data connections with
//! probability `data_cut_percent` after a number of bytes drawn
//! log-uniformly from `data_cut_range` (so a cut lands in small listings and
//! in 16 MiB packs alike). The bytes up to the cut point are delivered, then
//! both sockets are shut down. The same seed gives the same sequence of
//! plans; which connection gets which plan depends on the order in which the
//! client opens its connections (deterministic for one connection at a time,
//! not across bk's parallel uploads).
//!
//! Everything stops at the latest after `max_run`: the accept loops and
//! every forwarding thread poll a stop flag (reads time out every 200 ms),
//! and dropping the proxy joins all threads.

// tidy: long file: the fault proxy: relay, passive-reply rewriting and data-connection cuts work on one shared state, with their tests (about 230 lines)

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

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        // 53 random bits: exactly representable.
        #[allow(clippy::cast_precision_loss)]
        let x = (self.next_u64() >> 11) as f64;
        x / (1u64 << 53) as f64
    }
}

/// What happened to one proxied connection.
#[derive(Debug, Clone)]
pub(crate) struct ConnRecord {
    /// 0, 1, 2 … in the order the plans were drawn.
    pub(crate) index: u64,
    /// A data connection (relayed through a rewritten passive reply).
    pub(crate) data: bool,
    /// The planned cut point in bytes, if this connection was to be cut.
    pub(crate) cut_at: Option<u64>,
    /// Bytes forwarded (both directions).
    pub(crate) bytes: u64,
    /// Whether the cut actually happened (the connection reached `cut_at`).
    pub(crate) cut: bool,
    /// The upstream could not be reached.
    pub(crate) upstream_failed: bool,
    /// For a data connection: the command that used it (`RETR`, `STOR`,
    /// `MLSD` …), as the client sent it on the control connection.
    pub(crate) verb: Option<String>,
}

/// How the proxy cuts connections.
#[derive(Debug, Clone)]
pub(crate) struct FaultPlan {
    pub(crate) seed: u64,
    /// Probability (in percent) that a control connection is cut.
    pub(crate) cut_percent: u64,
    /// A control connection's cut point, uniform in this range of bytes.
    pub(crate) cut_range: Range<u64>,
    /// Probability (in percent) that a data connection is cut.
    pub(crate) data_cut_percent: u64,
    /// A data connection's cut point, log-uniform in this range of bytes.
    pub(crate) data_cut_range: Range<u64>,
    /// Once this many bytes went through the proxy (all connections
    /// together), the network "goes down": every connection is cut and new
    /// ones are closed at once.
    pub(crate) blackout_after: Option<u64>,
    /// Hard limit on the proxy's life.
    pub(crate) max_run: Duration,
}

impl FaultPlan {
    /// No faults: the proxy only relays and counts.
    pub(crate) fn counting() -> Self {
        FaultPlan {
            seed: 0,
            cut_percent: 0,
            cut_range: 0..1,
            data_cut_percent: 0,
            data_cut_range: 1..2,
            blackout_after: None,
            max_run: Duration::from_secs(3600),
        }
    }
}

/// State shared by the accept loop, the control handlers and the data relays.
struct Shared {
    plan: FaultPlan,
    upstream: SocketAddr,
    deadline: Instant,
    stop: AtomicBool,
    rng: Mutex<XorShift>,
    next_index: AtomicU64,
    records: Mutex<Vec<ConnRecord>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    /// Bytes forwarded by all connections.
    forwarded: AtomicU64,
    /// The blackout has begun.
    dark: AtomicBool,
}

impl Shared {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
            || self.dark.load(Ordering::SeqCst)
            || Instant::now() >= self.deadline
    }

    /// The next connection's index and cut point.
    fn draw(&self, data: bool) -> (u64, Option<u64>) {
        let mut rng = self
            .rng
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let index = self.next_index.fetch_add(1, Ordering::SeqCst);
        let p = &self.plan;
        let cut = if data {
            (rng.below(100) < p.data_cut_percent).then(|| {
                let (lo, hi) = (p.data_cut_range.start.max(1), p.data_cut_range.end.max(2));
                #[allow(
                    clippy::cast_precision_loss,
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss
                )]
                let at = (lo as f64 * (hi as f64 / lo as f64).powf(rng.unit())) as u64;
                at.clamp(lo, hi - 1)
            })
        } else {
            (rng.below(100) < p.cut_percent).then(|| {
                p.cut_range.start + rng.below(p.cut_range.end.saturating_sub(p.cut_range.start))
            })
        };
        (index, cut)
    }

    fn record(&self, rec: ConnRecord) {
        if let Ok(mut r) = self.records.lock() {
            r.push(rec);
        }
    }

    fn spawn(&self, name: String, f: impl FnOnce() + Send + 'static) {
        if let Ok(h) = thread::Builder::new().name(name).spawn(f)
            && let Ok(mut w) = self.workers.lock()
        {
            w.retain(|h| !h.is_finished());
            w.push(h);
        }
    }
}

/// A running proxy; dropping it stops it and joins its threads.
pub(crate) struct FaultProxy {
    port: u16,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl FaultProxy {
    /// Starts forwarding `127.0.0.1:<port()>` to `upstream`.
    pub(crate) fn start(upstream: SocketAddr, plan: FaultPlan) -> io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared {
            deadline: Instant::now() + plan.max_run,
            rng: Mutex::new(XorShift::new(plan.seed)),
            plan,
            upstream,
            stop: AtomicBool::new(false),
            next_index: AtomicU64::new(0),
            records: Mutex::new(Vec::new()),
            workers: Mutex::new(Vec::new()),
            forwarded: AtomicU64::new(0),
            dark: AtomicBool::new(false),
        });
        let thread = thread::Builder::new().name("e2e-proxy".into()).spawn({
            let shared = Arc::clone(&shared);
            move || accept_loop(&listener, &shared)
        })?;
        Ok(FaultProxy {
            port,
            shared,
            thread: Some(thread),
        })
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Stops accepting, closes every connection and joins all threads;
    /// returns the record of every connection, in plan order.
    pub(crate) fn finish(mut self) -> Vec<ConnRecord> {
        self.shutdown();
        let mut v = self
            .shared
            .records
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default();
        v.sort_by_key(|r| r.index);
        v
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // Control handlers may have spawned data relays while we joined.
        loop {
            let batch: Vec<JoinHandle<()>> = match self.shared.workers.lock() {
                Ok(mut w) => w.drain(..).collect(),
                Err(_) => break,
            };
            if batch.is_empty() {
                break;
            }
            for h in batch {
                let _ = h.join();
            }
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) && Instant::now() < shared.deadline {
        match listener.accept() {
            Ok((client, _)) if shared.dark.load(Ordering::SeqCst) => {
                let (index, _) = shared.draw(false);
                let _ = client.shutdown(Shutdown::Both);
                shared.record(ConnRecord {
                    index,
                    data: false,
                    cut_at: Some(0),
                    bytes: 0,
                    cut: true,
                    upstream_failed: false,
                    verb: None,
                });
            }
            Ok((client, _)) => {
                let (index, cut_at) = shared.draw(false);
                let sh = Arc::clone(shared);
                shared.spawn(format!("e2e-proxy-{index}"), move || {
                    let upstream = sh.upstream;
                    let rec = forward(&sh, client, upstream, index, false, cut_at, Some(()));
                    sh.record(rec);
                });
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(5));
            }
            Err(_) => thread::sleep(Duration::from_millis(20)),
        }
    }
    shared.stop.store(true, Ordering::SeqCst);
}

/// Listens once on a fresh port for the data connection that a passive
/// reply announced, and relays it to `target` (the server's data port).
/// Returns the port to announce to the client instead.
fn open_data_relay(shared: &Arc<Shared>, target: SocketAddr, verb: VerbSlot) -> io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    listener.set_nonblocking(true)?;
    let port = listener.local_addr()?.port();
    let (index, cut_at) = shared.draw(true);
    let sh = Arc::clone(shared);
    shared.spawn(format!("e2e-proxy-data-{index}"), move || {
        // The client connects right after the reply; give up after 60 s.
        let until = Instant::now() + Duration::from_secs(60);
        while !sh.stopped() && Instant::now() < until {
            match listener.accept() {
                Ok((client, _)) => {
                    let mut rec = forward(&sh, client, target, index, true, cut_at, None);
                    rec.verb = verb.lock().ok().and_then(|v| v.clone());
                    sh.record(rec);
                    return;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    thread::sleep(Duration::from_millis(2));
                }
                Err(_) => return,
            }
        }
    });
    Ok(port)
}

/// Where the command that uses a data relay is written, once the client
/// sends it on the control connection.
type VerbSlot = Arc<Mutex<Option<String>>>;

/// Forwards one connection; `control` is `Some` for a control connection
/// (its replies are rewritten and its commands watched).
fn forward(
    shared: &Arc<Shared>,
    client: TcpStream,
    upstream: SocketAddr,
    index: u64,
    data: bool,
    cut_at: Option<u64>,
    control: Option<()>,
) -> ConnRecord {
    let mut rec = ConnRecord {
        index,
        data,
        cut_at,
        bytes: 0,
        cut: false,
        upstream_failed: false,
        verb: None,
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
        shared,
    };
    // Replies on a control connection are rewritten and its commands
    // watched (to tag data relays); data flows untouched.
    let last_relay: Arc<Mutex<Option<VerbSlot>>> = Arc::default();
    let mut rewriter = control.map(|()| ReplyRewriter {
        shared: Arc::clone(shared),
        pending: Vec::new(),
        passthrough: false,
        last_relay: Arc::clone(&last_relay),
    });
    let mut watcher = control.map(|()| CommandWatcher {
        line: Vec::new(),
        last_relay: Arc::clone(&last_relay),
    });
    thread::scope(|s| {
        s.spawn(|| link.pump(&client, &server, Filter::Watch(watcher.as_mut())));
        link.pump(&server2, &client2, Filter::Rewrite(rewriter.as_mut()));
    });
    rec.bytes = total.load(Ordering::SeqCst);
    if let Some(limit) = cut_at {
        rec.bytes = rec.bytes.min(limit);
    }
    rec.cut = cut.load(Ordering::SeqCst);
    rec
}

/// Rewrites the passive-mode replies of a control connection (server →
/// client) to point at data relays of the proxy.
struct ReplyRewriter {
    shared: Arc<Shared>,
    /// The start of a line that may be a passive reply.
    pending: Vec<u8>,
    /// In the middle of a line that is not one.
    passthrough: bool,
    /// The newest data relay, for the next transfer command.
    last_relay: Arc<Mutex<Option<VerbSlot>>>,
}

/// Watches the client's commands on a control connection and tags the
/// newest data relay with the transfer command that uses it.
struct CommandWatcher {
    line: Vec<u8>,
    last_relay: Arc<Mutex<Option<VerbSlot>>>,
}

impl CommandWatcher {
    fn watch(&mut self, data: &[u8]) {
        for &b in data {
            if b != b'\n' {
                if self.line.len() < 64 {
                    self.line.push(b);
                }
                continue;
            }
            let line = std::mem::take(&mut self.line);
            let verb: String = line
                .iter()
                .take_while(|b| b.is_ascii_alphabetic())
                .map(|b| b.to_ascii_uppercase() as char)
                .collect();
            let transfer = ["RETR", "STOR", "APPE", "STOU", "LIST", "MLSD", "NLST"];
            if transfer.contains(&verb.as_str())
                && let Ok(mut last) = self.last_relay.lock()
                && let Some(slot) = last.take()
                && let Ok(mut v) = slot.lock()
            {
                *v = Some(verb);
            }
        }
    }
}

/// What a pump does with the bytes besides forwarding them.
enum Filter<'a> {
    /// Rewrite passive replies (server → client on a control connection).
    Rewrite(Option<&'a mut ReplyRewriter>),
    /// Watch commands (client → server on a control connection).
    Watch(Option<&'a mut CommandWatcher>),
}

impl ReplyRewriter {
    /// Takes bytes from the server; returns what to send on. A line that
    /// may still turn out to be a passive reply waits until it is complete;
    /// everything else passes at once.
    fn feed(&mut self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() + 16);
        for &b in data {
            if self.passthrough {
                out.push(b);
                self.passthrough = b != b'\n';
                continue;
            }
            self.pending.push(b);
            if b == b'\n' {
                let line = std::mem::take(&mut self.pending);
                out.extend_from_slice(&self.rewrite(line));
                continue;
            }
            let p = &self.pending;
            let head = &p[..p.len().min(4)];
            let maybe = p.len() <= 512 && (b"227 ".starts_with(head) || b"229 ".starts_with(head));
            if !maybe {
                out.append(&mut self.pending);
                self.passthrough = true;
            }
        }
        out
    }

    /// Whatever is left at the end of the stream.
    fn flush(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.pending)
    }

    fn relay(&self, target: SocketAddr) -> io::Result<u16> {
        let slot = VerbSlot::default();
        let port = open_data_relay(&self.shared, target, Arc::clone(&slot))?;
        if let Ok(mut last) = self.last_relay.lock() {
            *last = Some(slot);
        }
        Ok(port)
    }

    fn rewrite(&self, line: Vec<u8>) -> Vec<u8> {
        let Ok(text) = std::str::from_utf8(&line) else {
            return line;
        };
        let ip = self.shared.upstream.ip();
        if text.starts_with("229 ") {
            // 229 Entering Extended Passive Mode (|||port|)
            let Some(open) = text.find("(|||") else {
                return line;
            };
            let start = open + 4;
            let Some(len) = text[start..].find('|') else {
                return line;
            };
            let Ok(port) = text[start..start + len].parse::<u16>() else {
                return line;
            };
            let Ok(mine) = self.relay(SocketAddr::new(ip, port)) else {
                return line;
            };
            return format!("{}{mine}{}", &text[..start], &text[start + len..]).into_bytes();
        }
        if text.starts_with("227 ") {
            // 227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)
            let Some(start) = text
                .strip_prefix("227 ")
                .and_then(|rest| rest.find(|c: char| c.is_ascii_digit()))
                .map(|i| i + 4)
            else {
                return line;
            };
            let len = text[start..]
                .find(|c: char| !(c.is_ascii_digit() || c == ','))
                .unwrap_or(text.len() - start);
            let nums: Vec<u16> = text[start..start + len]
                .split(',')
                .filter_map(|s| s.parse().ok())
                .collect();
            let [_, _, _, _, p1, p2] = nums[..] else {
                return line;
            };
            let Ok(mine) = self.relay(SocketAddr::new(ip, p1 * 256 + p2)) else {
                return line;
            };
            return format!(
                "{}127,0,0,1,{},{}{}",
                &text[..start],
                mine >> 8,
                mine & 0xff,
                &text[start + len..]
            )
            .into_bytes();
        }
        line
    }
}

/// State shared by the two directions of one connection.
struct Link<'a> {
    total: &'a AtomicU64,
    cut_at: Option<u64>,
    cut: &'a AtomicBool,
    shared: &'a Shared,
}

impl Link<'_> {
    /// Copies `from` → `to` until EOF, an error, the cut, or the stop flag,
    /// passing the bytes through `rewriter` if there is one.
    fn pump(&self, mut from: &TcpStream, to: &TcpStream, mut filter: Filter<'_>) {
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
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if self.shared.stopped() || self.cut.load(Ordering::SeqCst) {
                kill();
                return;
            }
            let n = match from.read(&mut buf) {
                Ok(0) => {
                    if let Filter::Rewrite(Some(rw)) = &mut filter {
                        let rest = rw.flush();
                        if !rest.is_empty() && !self.send(to, &rest) {
                            kill();
                            return;
                        }
                    }
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
            let ok = match &mut filter {
                Filter::Rewrite(Some(rw)) => {
                    let out = rw.feed(&buf[..n]);
                    out.is_empty() || self.send(to, &out)
                }
                Filter::Watch(Some(w)) => {
                    w.watch(&buf[..n]);
                    self.send(to, &buf[..n])
                }
                _ => self.send(to, &buf[..n]),
            };
            if !ok {
                kill();
                return;
            }
        }
    }

    /// Forwards `data`, or its part up to the cut point; false when the
    /// connection is done (cut or the write failed).
    fn send(&self, mut to: &TcpStream, data: &[u8]) -> bool {
        let len = data.len() as u64;
        let before = self.total.fetch_add(len, Ordering::SeqCst);
        let all = self.shared.forwarded.fetch_add(len, Ordering::SeqCst) + len;
        if self.shared.plan.blackout_after.is_some_and(|b| all >= b) {
            self.shared.dark.store(true, Ordering::SeqCst);
        }
        let (send, cut_now) = match self.cut_at {
            Some(limit) if before + len >= limit => (limit.saturating_sub(before).min(len), true),
            _ => (len, false),
        };
        let send = usize::try_from(send).unwrap_or(data.len());
        if to.write_all(&data[..send]).is_err() {
            return false;
        }
        if cut_now {
            self.cut.store(true, Ordering::SeqCst);
            return false;
        }
        true
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
            data_cut_percent: 0,
            data_cut_range: 1..2,
            blackout_after: None,
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

    /// A fake server: a control connection that announces a passive port in
    /// the given reply format, and a data port that sends `size` bytes.
    fn passive_server(epsv: bool, size: usize) -> (SocketAddr, thread::JoinHandle<()>) {
        let ctl = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = ctl.local_addr().unwrap();
        let h = thread::spawn(move || {
            let data = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            let p = data.local_addr().unwrap().port();
            let (mut c, _) = ctl.accept().unwrap();
            let reply = if epsv {
                format!("229 Entering Extended Passive Mode (|||{p}|)\r\n")
            } else {
                format!(
                    "227 Entering Passive Mode (127,0,0,1,{},{}).\r\n",
                    p >> 8,
                    p & 0xff
                )
            };
            c.write_all(reply.as_bytes()).unwrap();
            // Like a server: the data flows after the command (RETR).
            let mut cmd = [0u8; 1];
            while c.read(&mut cmd).is_ok_and(|n| n == 1) && cmd[0] != b'\n' {}
            let (mut d, _) = data.accept().unwrap();
            let _ = d.write_all(&vec![b'd'; size]);
            drop(d);
            let _ = c.write_all(b"226 done\r\n");
            let mut sink = Vec::new();
            let _ = c.read_to_end(&mut sink);
        });
        (addr, h)
    }

    /// Reads the passive reply through the proxy, connects to the port it
    /// names, and returns (reply, bytes received on the data connection).
    fn fetch(proxy_port: u16) -> (String, usize) {
        let mut c = TcpStream::connect((Ipv4Addr::LOCALHOST, proxy_port)).unwrap();
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        while !line.ends_with(b"\n") {
            c.read_exact(&mut b).unwrap();
            line.push(b[0]);
        }
        let reply = String::from_utf8(line).unwrap();
        let port = if let Some(i) = reply.find("(|||") {
            reply[i + 4..]
                .split('|')
                .next()
                .unwrap()
                .parse::<u16>()
                .unwrap()
        } else {
            let inner = reply.split('(').nth(1).unwrap().split(')').next().unwrap();
            let n: Vec<u16> = inner.split(',').map(|s| s.parse().unwrap()).collect();
            n[4] * 256 + n[5]
        };
        c.write_all(b"RETR some file\r\n").unwrap();
        let mut d = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
        let mut got = Vec::new();
        let _ = d.read_to_end(&mut got);
        drop(c);
        (reply, got.len())
    }

    #[test]
    fn relays_and_cuts_data_connections_of_both_passive_replies() {
        for epsv in [true, false] {
            let (addr, server) = passive_server(epsv, 300_000);
            let plan = FaultPlan {
                seed: 3,
                cut_percent: 0,
                cut_range: 1..2,
                data_cut_percent: 100,
                data_cut_range: 5000..5001,
                blackout_after: None,
                max_run: Duration::from_secs(20),
            };
            let proxy = FaultProxy::start(addr, plan).unwrap();
            let (reply, got) = fetch(proxy.port());
            // The reply names the proxy's relay, not the server's data port.
            assert!(
                reply.starts_with(if epsv { "229 " } else { "227 " }),
                "{reply}"
            );
            assert_eq!(
                got, 5000,
                "the data connection is cut at the planned byte ({reply})"
            );
            let recs = proxy.finish();
            server.join().unwrap();
            let data: Vec<&ConnRecord> = recs.iter().filter(|r| r.data).collect();
            assert_eq!(data.len(), 1, "{recs:?}");
            assert!(data[0].cut && data[0].cut_at == Some(5000), "{recs:?}");
            assert_eq!(data[0].verb.as_deref(), Some("RETR"), "{recs:?}");
            assert_eq!(recs.iter().filter(|r| !r.data).count(), 1);
        }
    }

    #[test]
    fn uncut_data_connections_pass_everything() {
        let (addr, server) = passive_server(true, 1_000_000);
        let plan = FaultPlan {
            seed: 3,
            cut_percent: 0,
            cut_range: 1..2,
            data_cut_percent: 0,
            data_cut_range: 1..2,
            blackout_after: None,
            max_run: Duration::from_secs(20),
        };
        let proxy = FaultProxy::start(addr, plan).unwrap();
        let (_, got) = fetch(proxy.port());
        assert_eq!(got, 1_000_000);
        let recs = proxy.finish();
        server.join().unwrap();
        assert!(
            recs.iter()
                .any(|r| r.data && r.bytes == 1_000_000 && !r.cut),
            "{recs:?}"
        );
    }

    #[test]
    fn data_cut_points_are_log_uniform_within_the_range() {
        let plan = FaultPlan {
            seed: 9,
            cut_percent: 0,
            cut_range: 1..2,
            data_cut_percent: 100,
            data_cut_range: 100..10_000_000,
            blackout_after: None,
            max_run: Duration::from_secs(1),
        };
        let up: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let proxy = FaultProxy::start(up, plan).unwrap();
        let cuts: Vec<u64> = (0..1000)
            .map(|_| proxy.shared.draw(true).1.unwrap())
            .collect();
        assert!(cuts.iter().all(|c| (100..10_000_000).contains(c)));
        // Log-uniform: about a fifth per decade.
        let below_10k = cuts.iter().filter(|&&c| c < 10_000).count();
        assert!(
            (300..500).contains(&below_10k),
            "{below_10k} of 1000 below 10 kB"
        );
    }

    #[test]
    fn a_blackout_cuts_everything_after_the_byte_budget() {
        let (addr, server) = passive_server(true, 2_000_000);
        let plan = FaultPlan {
            seed: 3,
            cut_percent: 0,
            cut_range: 1..2,
            data_cut_percent: 0,
            data_cut_range: 1..2,
            blackout_after: Some(100_000),
            max_run: Duration::from_secs(20),
        };
        let proxy = FaultProxy::start(addr, plan).unwrap();
        let (_, got) = fetch(proxy.port());
        assert!(got < 200_000, "{got} bytes passed a 100 kB blackout");
        // A new connection is closed at once.
        let mut c = TcpStream::connect((Ipv4Addr::LOCALHOST, proxy.port())).unwrap();
        let mut rest = Vec::new();
        let _ = c.read_to_end(&mut rest);
        assert!(rest.is_empty());
        let recs = proxy.finish();
        server.join().unwrap();
        assert!(
            recs.iter().any(|r| !r.data && r.cut && r.bytes == 0),
            "{recs:?}"
        );
    }
}
