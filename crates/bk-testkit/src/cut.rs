//! A TCP proxy in front of an FTP server that cuts connections on purpose:
//! the real fault a flaky link produces, for tests of retries.
//!
//! Control connections are relayed to the server; its passive-mode replies
//! (`227 … (h1,h2,h3,h4,p1,p2)`, `229 … (|||port|)`) are rewritten to name a
//! one-shot listener of the proxy, so that data connections go through the
//! proxy too. A [`Cuts`] plan says which connections to cut and after how
//! many bytes:
//!
//! - a control connection is shut down (both ways) once that many bytes went
//!   from the server to the client;
//! - or it is shut down when the server replies to a given command, the
//!   reply lost: the server did the command (a rename, a delete), the
//!   client cannot know;
//! - a data connection is cut the way a link that drops a transfer looks
//!   to each side: the side receiving gets only the first bytes and then
//!   an end of stream, while the sending side's bytes are all taken (and
//!   dropped). So the server completes a download with `226` although the
//!   client got a short file, and it stores a short file for an upload
//!   that the client believes sent: only a size check shows either.
//!
//! It also counts what went through: control connections, commands by verb
//! ([`CutProxy::logins`] counts `USER`), data connections; and it can drop
//! every control connection open now ([`CutProxy::drop_connections`]), as a
//! server restart or an idle timeout does. With [`Cuts::none`] it only
//! counts: the counting proxy of login tests. (Commands are read in plain
//! FTP only: after `AUTH TLS` they are encrypted, and only connections are
//! counted.)
//!
//! ```no_run
//! use bk_testkit::{Cuts, CutProxy, ServerKind, ServerOptions, TestServer};
//! let server = TestServer::start(ServerKind::Embedded, ServerOptions::default()).unwrap();
//! // The data connection of the first RETR delivers 100 bytes, then ends.
//! let proxy = CutProxy::start(&server.addr(), Cuts::data("RETR", 1, 100)).unwrap();
//! println!("connect to 127.0.0.1:{} instead of {}", proxy.port(), server.addr());
//! ```

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

/// Which connections a [`CutProxy`] cuts.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Cuts {
    /// Cut this many control connections (the first ones opened) ...
    pub control: usize,
    /// ... once this many bytes went from the server to the client.
    pub control_after: u64,
    /// Cut this many data connections used by [`Cuts::data_verb`] ...
    pub data: usize,
    /// ... after this many bytes (in the transfer's direction).
    pub data_after: u64,
    /// The command whose data connections are cut (`RETR`, `STOR`, `MLSD`
    /// …); empty for any.
    pub data_verb: String,
    /// Only when the command's argument contains this (empty: any).
    pub data_path: String,
    /// Lose the server's first reply to each of these commands (`RNTO`,
    /// `DELE` …): the control connection is cut instead of delivering it.
    pub lose_reply_to: Vec<String>,
}

impl Cuts {
    /// Cut nothing: count only.
    ///
    /// ```
    /// let c = bk_testkit::Cuts::none();
    /// assert_eq!((c.control, c.data), (0, 0));
    /// ```
    pub fn none() -> Cuts {
        Cuts::default()
    }

    /// Cut the first `n` control connections after `after` bytes from the server.
    pub fn control(n: usize, after: u64) -> Cuts {
        Cuts {
            control: n,
            control_after: after,
            ..Cuts::default()
        }
    }

    /// Cut the first `n` data connections of `verb` after `after` bytes.
    pub fn data(verb: &str, n: usize, after: u64) -> Cuts {
        Cuts {
            data: n,
            data_after: after,
            data_verb: verb.to_ascii_uppercase(),
            ..Cuts::default()
        }
    }

    /// Lose the first reply to each of `verbs`, cutting its control connection.
    ///
    /// ```
    /// let c = bk_testkit::Cuts::replies_lost(&["RNTO", "dele"]);
    /// assert_eq!(c.lose_reply_to, ["RNTO", "DELE"]);
    /// ```
    pub fn replies_lost(verbs: &[&str]) -> Cuts {
        Cuts {
            lose_reply_to: verbs.iter().map(|v| v.to_ascii_uppercase()).collect(),
            ..Cuts::default()
        }
    }

    /// Cut only data connections whose command names a path containing `s`.
    ///
    /// ```
    /// let c = bk_testkit::Cuts::data("RETR", 1, 50).path_contains("/index/");
    /// assert_eq!(c.data_path, "/index/");
    /// ```
    pub fn path_contains(mut self, s: &str) -> Cuts {
        self.data_path = s.to_string();
        self
    }
}

#[derive(Debug, Default)]
struct Shared {
    control_cuts: AtomicUsize,
    data_cuts: AtomicUsize,
    data_conns: AtomicUsize,
    replies_lost: AtomicUsize,
    control_conns: AtomicUsize,
    /// Commands the clients sent, by verb (upper case).
    verbs: Mutex<std::collections::HashMap<String, usize>>,
    /// The control connections open now (client side, server side), by
    /// their number.
    live: Mutex<std::collections::HashMap<usize, (TcpStream, TcpStream)>>,
    /// The commands of [`Cuts::lose_reply_to`] whose reply is still to lose.
    to_lose: Mutex<Vec<String>>,
}

/// The proxy; it runs until the test process ends (its threads block in
/// `accept`, which costs nothing).
#[derive(Debug)]
pub struct CutProxy {
    port: u16,
    shared: Arc<Shared>,
}

impl CutProxy {
    /// Listen on `127.0.0.1` (an ephemeral port), relaying to `upstream`.
    pub fn start(upstream: &str, cuts: Cuts) -> io::Result<CutProxy> {
        let upstream = upstream
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::other("upstream address resolves to nothing"))?;
        let l = TcpListener::bind("127.0.0.1:0")?;
        let port = l.local_addr()?.port();
        let shared = Arc::new(Shared {
            to_lose: Mutex::new(cuts.lose_reply_to.clone()),
            ..Shared::default()
        });
        let sh = shared.clone();
        let cuts = Arc::new(cuts);
        thread::spawn(move || {
            let left = Arc::new(Mutex::new(cuts.data));
            for (n, conn) in l.incoming().enumerate() {
                let Ok(client) = conn else { return };
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let cut_after = (n < cuts.control).then_some(cuts.control_after);
                sh.control_conns.fetch_add(1, Ordering::SeqCst);
                if let (Ok(c), Ok(s)) = (client.try_clone(), server.try_clone()) {
                    sh.live
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(n, (c, s));
                }
                let (sh, cuts, left) = (sh.clone(), cuts.clone(), left.clone());
                thread::spawn(move || {
                    control(client, server, cut_after, &sh, &cuts, &left);
                    sh.live.lock().unwrap_or_else(|p| p.into_inner()).remove(&n);
                });
            }
        });
        Ok(CutProxy { port, shared })
    }

    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Control connections cut so far.
    pub fn control_cuts(&self) -> usize {
        self.shared.control_cuts.load(Ordering::SeqCst)
    }

    /// Data connections cut so far (a connection chosen for a cut whose
    /// transfer ended before the cut point is not counted).
    pub fn data_cuts(&self) -> usize {
        self.shared.data_cuts.load(Ordering::SeqCst)
    }

    /// Replies lost so far ([`Cuts::replies_lost`]).
    pub fn replies_lost(&self) -> usize {
        self.shared.replies_lost.load(Ordering::SeqCst)
    }

    /// Data connections relayed so far.
    pub fn data_conns(&self) -> usize {
        self.shared.data_conns.load(Ordering::SeqCst)
    }

    /// Control connections accepted so far.
    pub fn control_conns(&self) -> usize {
        self.shared.control_conns.load(Ordering::SeqCst)
    }

    /// How many times clients sent `verb` (any case) so far.
    pub fn commands(&self, verb: &str) -> usize {
        let verb = verb.to_ascii_uppercase();
        self.shared
            .verbs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&verb)
            .copied()
            .unwrap_or(0)
    }

    /// Logins so far: the `USER` commands clients sent.
    pub fn logins(&self) -> usize {
        self.commands("USER")
    }

    /// Shut down every control connection open now, both ways, as a server
    /// that restarts or drops idle sessions does; returns how many. Later
    /// connections go through as before.
    pub fn drop_connections(&self) -> usize {
        let live: Vec<(TcpStream, TcpStream)> = self
            .shared
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, v)| v)
            .collect();
        for (c, s) in &live {
            let _ = s.shutdown(Shutdown::Both);
            let _ = c.shutdown(Shutdown::Both);
        }
        live.len()
    }
}

/// The last command the client sent on a control connection: the verb in
/// upper case, and its argument.
type Verb = Arc<Mutex<(String, String)>>;

fn control(
    client: TcpStream,
    server: TcpStream,
    cut_after: Option<u64>,
    shared: &Arc<Shared>,
    cuts: &Arc<Cuts>,
    left: &Arc<Mutex<usize>>,
) {
    let verb: Verb = Arc::default();
    let (Ok(mut c_in), Ok(mut s_out)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let v = verb.clone();
    // Set when a command whose reply is to be lost goes to the server.
    let lose = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (l, sh) = (lose.clone(), shared.clone());
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut line = Vec::new();
        while let Ok(k) = c_in.read(&mut buf) {
            if k == 0 {
                break;
            }
            // Noted before the server sees the command, so that its data
            // connection is judged by it.
            for &b in &buf[..k] {
                if b == b'\n' {
                    let text = String::from_utf8_lossy(&line);
                    let text = text.trim_end();
                    let (word, arg) = text.split_once(' ').unwrap_or((text, ""));
                    let word = word.to_ascii_uppercase();
                    *sh.verbs
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .entry(word.clone())
                        .or_default() += 1;
                    let mut to_lose = sh.to_lose.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(i) = to_lose.iter().position(|w| *w == word) {
                        to_lose.remove(i);
                        l.store(true, Ordering::SeqCst);
                    }
                    *v.lock().unwrap_or_else(|p| p.into_inner()) = (word, arg.to_string());
                    line.clear();
                } else {
                    line.push(b);
                }
            }
            if s_out.write_all(&buf[..k]).is_err() {
                break;
            }
        }
        let _ = s_out.shutdown(Shutdown::Write);
    });
    let (mut s_in, mut c_out) = (server, client);
    let mut buf = [0u8; 4096];
    let mut pending = Vec::new();
    let mut sent = 0u64;
    loop {
        let k = match s_in.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(k) => k,
        };
        pending.extend_from_slice(&buf[..k]);
        let mut out = Vec::new();
        while let Some(i) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=i).collect();
            // The reply to the command whose reply is to be lost (the
            // client waits for it, so it is the next complete reply).
            if lose.load(Ordering::SeqCst) && line.get(3) != Some(&b'-') {
                let _ = c_out.write_all(&out);
                shared.replies_lost.fetch_add(1, Ordering::SeqCst);
                let _ = c_out.shutdown(Shutdown::Both);
                let _ = s_in.shutdown(Shutdown::Both);
                return;
            }
            out.extend(rewrite(line, shared, cuts, left, &verb));
        }
        if let Some(limit) = cut_after
            && sent + out.len() as u64 >= limit
        {
            let keep = (limit - sent) as usize;
            let _ = c_out.write_all(&out[..keep]);
            shared.control_cuts.fetch_add(1, Ordering::SeqCst);
            let _ = c_out.shutdown(Shutdown::Both);
            let _ = s_in.shutdown(Shutdown::Both);
            return;
        }
        if c_out.write_all(&out).is_err() {
            break;
        }
        sent += out.len() as u64;
    }
    let _ = c_out.shutdown(Shutdown::Write);
}

/// A passive reply names a relay of the proxy instead of the server's port.
fn rewrite(
    line: Vec<u8>,
    shared: &Arc<Shared>,
    cuts: &Arc<Cuts>,
    left: &Arc<Mutex<usize>>,
    verb: &Verb,
) -> Vec<u8> {
    let text = String::from_utf8_lossy(&line).into_owned();
    let target = if text.starts_with("227 ") {
        text.find('(').zip(text.find(')')).and_then(|(a, b)| {
            let n: Vec<u16> = text[a + 1..b]
                .split(',')
                .filter_map(|x| x.trim().parse().ok())
                .collect();
            (n.len() == 6).then(|| SocketAddr::from(([127, 0, 0, 1], n[4] * 256 + n[5])))
        })
    } else if text.starts_with("229 ") {
        text.find("(|||").and_then(|a| {
            let rest = &text[a + 4..];
            rest[..rest.find('|')?]
                .parse::<u16>()
                .ok()
                .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
        })
    } else {
        None
    };
    let Some(target) = target else { return line };
    let Ok(port) = relay(
        target,
        shared.clone(),
        cuts.clone(),
        left.clone(),
        verb.clone(),
    ) else {
        return line;
    };
    if text.starts_with("227 ") {
        format!(
            "227 Entering Passive Mode (127,0,0,1,{},{}).\r\n",
            port >> 8,
            port & 0xff
        )
        .into_bytes()
    } else {
        format!("229 Entering Extended Passive Mode (|||{port}|)\r\n").into_bytes()
    }
}

fn relay(
    target: SocketAddr,
    shared: Arc<Shared>,
    cuts: Arc<Cuts>,
    left: Arc<Mutex<usize>>,
    verb: Verb,
) -> io::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let port = l.local_addr()?.port();
    thread::spawn(move || {
        let Ok((client, _)) = l.accept() else { return };
        let Ok(server) = TcpStream::connect(target) else {
            return;
        };
        shared.data_conns.fetch_add(1, Ordering::SeqCst);
        // The command is on its way before any data flows; wait for the
        // first bytes (either side) to decide on the cut.
        let decide = {
            move || {
                let (v, arg) = verb.lock().unwrap_or_else(|p| p.into_inner()).clone();
                let mut n = left.lock().unwrap_or_else(|p| p.into_inner());
                if *n > 0
                    && (cuts.data_verb.is_empty() || cuts.data_verb == v)
                    && arg.contains(&cuts.data_path)
                {
                    *n -= 1;
                    Some(cuts.data_after)
                } else {
                    None
                }
            }
        };
        let decided: Arc<Mutex<Option<Option<u64>>>> = Arc::default();
        let once = {
            let decided = decided.clone();
            move || {
                *decided
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_or_insert_with(&decide)
            }
        };
        let once = Arc::new(once);
        let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
            return;
        };
        let (o, sh) = (once.clone(), shared.clone());
        let up = thread::spawn(move || pump(c2, s2, &*o, &sh));
        pump(server, client, &*once, &shared);
        let _ = up.join();
    });
    Ok(port)
}

/// Copy `from` to `to`; past the cut point, go on reading `from` to its
/// end but drop the bytes, and end `to`'s stream.
fn pump(mut from: TcpStream, mut to: TcpStream, cut: &dyn Fn() -> Option<u64>, shared: &Shared) {
    let mut buf = [0u8; 16 * 1024];
    let mut sent = 0u64;
    let mut ended = false;
    while let Ok(k) = from.read(&mut buf) {
        if k == 0 {
            break;
        }
        if ended {
            continue;
        }
        let mut n = k;
        if let Some(limit) = cut() {
            n = n.min(limit.saturating_sub(sent) as usize);
        }
        if to.write_all(&buf[..n]).is_err() {
            ended = true;
            continue;
        }
        sent += n as u64;
        if n < k {
            shared.data_cuts.fetch_add(1, Ordering::SeqCst);
            let _ = to.shutdown(Shutdown::Write);
            ended = true;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
