//! A counting proxy on the FTP control connection, for `cargo xtask bench
//! --ftp` and `cargo xtask bench-ftp`: counts logins, commands, replies and
//! data connections. Control connections only; data connections go to the
//! server directly, since pure-ftpd announces 127.0.0.1 in PASV and EPSV
//! reuses the control address.

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, BufRead, BufReader, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Result;

/// Commands that open a data connection.
const DATA_VERBS: [&str; 7] = ["STOR", "RETR", "APPE", "STOU", "LIST", "NLST", "MLSD"];

/// What went over the control connections since the last [`CountingProxy::take`].
#[derive(Debug, Default, Clone)]
pub(crate) struct Counts {
    pub(crate) connections: u64,
    pub(crate) verbs: BTreeMap<String, u64>,
    /// Final replies by the command they answer (`(greeting)` for the
    /// server's first line) and code.
    pub(crate) replies: BTreeMap<(String, u16), u64>,
    /// The arguments (paths) of the data commands, counted.
    pub(crate) paths: BTreeMap<String, BTreeMap<String, u64>>,
    /// Sum of the sizes pure-ftpd announces for downloads
    /// (`150 N kbytes to download`; a resumed RETR announces what is left).
    pub(crate) retr_kbytes: f64,
}

impl Counts {
    pub(crate) fn get(&self, verb: &str) -> u64 {
        self.verbs.get(verb).copied().unwrap_or(0)
    }

    pub(crate) fn logins(&self) -> u64 {
        self.get("PASS")
    }

    pub(crate) fn data_connections(&self) -> u64 {
        DATA_VERBS.iter().map(|v| self.get(v)).sum()
    }

    pub(crate) fn commands(&self) -> u64 {
        self.verbs.values().sum()
    }

    /// `SIZE 4000, STOR 2000, …`, most frequent first.
    pub(crate) fn verbs_text(&self) -> String {
        let mut v: Vec<(&String, &u64)> = self.verbs.iter().collect();
        v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        v.iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `RETR 312 on 84 paths, MLSD 149 on 75 paths`: data commands and the
    /// distinct paths they named.
    pub(crate) fn repeats_text(&self) -> String {
        let v: Vec<String> = self
            .paths
            .iter()
            .map(|(verb, p)| format!("{verb} {} on {} paths", p.values().sum::<u64>(), p.len()))
            .collect();
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    }

    /// `MKD 550 ×20, EPSV 425 ×1` for the 4xx and 5xx replies, or `none`.
    pub(crate) fn errors_text(&self) -> String {
        let v: Vec<String> = self
            .replies
            .iter()
            .filter(|((_, code), _)| *code >= 400)
            .map(|((verb, code), n)| format!("{verb} {code} ×{n}"))
            .collect();
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    }
}

#[derive(Debug, Default)]
struct ProxyState {
    active: AtomicU64,
    counts: Mutex<Counts>,
}

impl ProxyState {
    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A TCP relay in front of the server's control port that counts
/// connections and command verbs (never arguments: PASS carries the password).
#[derive(Debug)]
pub(crate) struct CountingProxy {
    port: u16,
    state: Arc<ProxyState>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl CountingProxy {
    pub(crate) fn start(target: SocketAddr) -> Result<CountingProxy> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = listener.local_addr()?.port();
        let state = Arc::new(ProxyState::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (Arc::clone(&state), Arc::clone(&stop));
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = conn else { continue };
                st.active.fetch_add(1, Ordering::SeqCst);
                st.counts().connections += 1;
                let st = Arc::clone(&st);
                std::thread::spawn(move || {
                    if let Err(e) = relay(client, target, &st) {
                        eprintln!("counting proxy: {e}");
                    }
                    st.active.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Ok(CountingProxy {
            port,
            state,
            stop,
            accept: Some(accept),
        })
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The counts so far, open connections included, without starting over.
    pub(crate) fn peek(&self) -> Counts {
        self.state.counts().clone()
    }

    /// The counts so far (after the open connections are closed, or 5 s),
    /// starting over from zero.
    pub(crate) fn take(&self) -> Counts {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.state.active.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        std::mem::take(&mut *self.state.counts())
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// Relays one control connection, counting the client's command verbs.
fn relay(client: TcpStream, target: SocketAddr, st: &Arc<ProxyState>) -> io::Result<()> {
    let server = TcpStream::connect(target)?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let from_server = server.try_clone()?;
    let mut to_client = client.try_clone()?;
    let st_down = Arc::clone(st);
    // The verbs sent and not yet answered: FTP answers in order.
    let pending = Arc::new(Mutex::new(VecDeque::<String>::new()));
    let pending_down = Arc::clone(&pending);
    let down = std::thread::spawn(move || {
        let mut reader = BufReader::new(from_server);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            // The final line of a reply: three digits and a space.
            if line.len() >= 4 && line[..3].iter().all(u8::is_ascii_digit) && line[3] == b' ' {
                let code = line[..3]
                    .iter()
                    .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
                // 1xx replies are preliminary: the command's final reply follows.
                let verb = if code >= 200 {
                    pending_down
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .pop_front()
                } else {
                    None
                };
                if code == 150 {
                    // pure-ftpd: "150 17408.3 kbytes to download".
                    let text = String::from_utf8_lossy(&line);
                    if let Some(k) = text
                        .strip_prefix("150 ")
                        .and_then(|t| t.split_once(" kbytes to download"))
                        .and_then(|(n, _)| n.trim().parse::<f64>().ok())
                    {
                        st_down.counts().retr_kbytes += k;
                    }
                }
                if code >= 200 {
                    let verb = verb.unwrap_or_else(|| "(greeting)".to_string());
                    *st_down.counts().replies.entry((verb, code)).or_default() += 1;
                }
            }
            if to_client.write_all(&line).is_err() {
                break;
            }
        }
        let _ = to_client.shutdown(Shutdown::Write);
    });
    let mut to_server = server;
    let mut reader = BufReader::new(client);
    let mut line = Vec::new();
    let result = loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => break Ok(()),
            Ok(_) => {}
            Err(e) => break Err(e),
        }
        let verb = line
            .split(|b| b.is_ascii_whitespace())
            .next()
            .map(|v| String::from_utf8_lossy(v).to_ascii_uppercase())
            .unwrap_or_default();
        if !verb.is_empty() {
            let mut counts = st.counts();
            *counts.verbs.entry(verb.clone()).or_default() += 1;
            // Data commands name paths, never secrets: keep them.
            if DATA_VERBS.contains(&verb.as_str()) {
                let arg = String::from_utf8_lossy(&line[verb.len().min(line.len())..])
                    .trim()
                    .to_string();
                *counts
                    .paths
                    .entry(verb.clone())
                    .or_default()
                    .entry(arg)
                    .or_default() += 1;
            }
            drop(counts);
            pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push_back(verb);
        }
        if let Err(e) = to_server.write_all(&line) {
            break Err(e);
        }
    };
    let _ = to_server.shutdown(Shutdown::Write);
    let _ = down.join();
    result
}
