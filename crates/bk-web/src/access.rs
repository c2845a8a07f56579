//! Who may talk to the UI: the Host and Origin checks, the limit on sign-in
//! attempts, and the access log.
//!
//! - **Host.** A request is answered only when its `Host` names this server:
//!   `127.0.0.1`, `localhost` or `[::1]` with the listen port, or a name
//!   given with `--public-name`. A page whose name was made to resolve to
//!   127.0.0.1 (DNS rebinding) sends its own name and gets 421.
//! - **Origin.** A POST that says where it comes from (`Origin`,
//!   `Sec-Fetch-Site`) must come from one of those names; CSRF tokens guard
//!   every POST as well.
//! - **Attempts.** Every password or token attempt takes a turn: one every
//!   200 ms for the whole server, however many arrive at once, and after a
//!   few failures from one client address that address waits longer and
//!   longer (up to 8 s). An attempt whose turn would be more than 3 s away
//!   is answered "too many attempts" without being checked.
//! - **Log.** One line per request (method, path without its query,
//!   status, client address) and per job start and end; never a query
//!   string, a password or the sign-in token.

use std::collections::HashMap;
use std::io::Write;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::HttpResponse;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode, header};
use actix_web::middleware::Next;

use crate::AppState;
use crate::render::plain_page;

/// Where the access and job log goes.
pub type LogWriter = Arc<Mutex<dyn Write + Send>>;

/// The access and job log: one line per event, or nothing.
#[derive(Clone, Default)]
pub struct Log(Option<LogWriter>);

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Log(on)"
        } else {
            "Log(off)"
        })
    }
}

impl Log {
    /// Lines go to `w`.
    pub fn to(w: LogWriter) -> Log {
        Log(Some(w))
    }

    /// Lines go to standard error.
    pub fn stderr() -> Log {
        Log(Some(Arc::new(Mutex::new(std::io::stderr()))))
    }

    /// Write one line (a time stamp is put first).
    pub fn line(&self, msg: &str) {
        if let Some(w) = &self.0 {
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let mut w = w.lock().unwrap_or_else(|p| p.into_inner());
            // A log that cannot be written must not stop the server.
            let _ = writeln!(w, "bk web: {now} {msg}");
        }
    }
}

/// The names this server answers for.
#[derive(Debug, Clone)]
pub struct Hosts {
    /// Lowercase names given with `--public-name`, each with the port it
    /// must carry (`None`: the listen port).
    public: Vec<(String, Option<u16>)>,
}

impl Hosts {
    /// Parse `--public-name` values: `NAME` or `NAME:PORT` (`[v6]:PORT`).
    pub fn new(public: &[String]) -> anyhow::Result<Hosts> {
        let mut v = Vec::new();
        for n in public {
            let Some((name, port)) = split_host(n.trim()) else {
                anyhow::bail!("the public name {n:?} is not a host name or host:port");
            };
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
            {
                anyhow::bail!("the public name {n:?} is not a host name or host:port");
            }
            v.push((name.to_ascii_lowercase(), port));
        }
        Ok(Hosts { public: v })
    }

    /// Whether `host` (a Host header or an Origin's host part) names this
    /// server listening on `port` (0: any port), with `tls` deciding the
    /// default port.
    pub fn accepts(&self, host: &str, port: u16, tls: bool) -> bool {
        let Some((name, p)) = split_host(host) else {
            return false;
        };
        let name = name.to_ascii_lowercase();
        let default = if tls { 443 } else { 80 };
        let given = p.unwrap_or(default);
        let port_ok = |want: u16| want == 0 || given == want;
        if matches!(name.as_str(), "127.0.0.1" | "localhost" | "[::1]") {
            return port_ok(port);
        }
        self.public
            .iter()
            .any(|(n, want)| *n == name && port_ok(want.unwrap_or(port)))
    }
}

/// `name[:port]` or `[v6][:port]` → (name with brackets, port).
fn split_host(h: &str) -> Option<(&str, Option<u16>)> {
    let (name, port) = if h.starts_with('[') {
        let end = h.find(']')?;
        let rest = &h[end + 1..];
        let port = match rest.strip_prefix(':') {
            Some(p) => Some(p),
            None if rest.is_empty() => None,
            None => return None,
        };
        (&h[..=end], port)
    } else {
        match h.rsplit_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (h, None),
        }
    };
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok()?),
        None => None,
    };
    Some((name, port))
}

/// Why a request was refused before any handler saw it.
fn refuse(req: &ServiceRequest, st: &AppState) -> Option<HttpResponse> {
    let tls = st.tls_on();
    let port = st.port();
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()));
    if !host
        .as_deref()
        .is_some_and(|h| st.hosts.accepts(h, port, tls))
    {
        return Some(plain_page(
            StatusCode::MISDIRECTED_REQUEST,
            "Wrong address",
            "This backup server does not answer for that name. Open it with the address it printed when it started (start it with --public-name NAME to allow another name).",
        ));
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let cross = req
            .headers()
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("cross-site"));
        let origin_bad = req.headers().get(header::ORIGIN).is_some_and(|o| {
            let o = o.to_str().unwrap_or("");
            let want = if tls { "https://" } else { "http://" };
            match o.strip_prefix(want) {
                Some(h) => !st.hosts.accepts(h, port, tls),
                None => true,
            }
        });
        if cross || origin_bad {
            return Some(plain_page(
                StatusCode::FORBIDDEN,
                "Not allowed",
                "This form was sent from another web site, so it was not accepted. Open the backup server's own page and try again.",
            ));
        }
    }
    None
}

/// The middleware: the Host and Origin checks, then the access log line.
pub async fn middleware(
    st: Arc<AppState>,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let method = req.method().to_string();
    let path = req.path().to_string();
    let ip = client_ip(req.request());
    let resp = match refuse(&req, &st) {
        Some(r) => req.into_response(r),
        None => next.call(req).await?.map_into_boxed_body(),
    };
    // The path only: queries carry file names, and /login's the token.
    st.log.line(&format!(
        "{ip} {method} {} {}",
        path.escape_debug(),
        resp.status().as_u16()
    ));
    Ok(resp)
}

/// The client's address as the socket saw it (never a forwarded header).
pub fn client_ip(req: &actix_web::HttpRequest) -> IpAddr {
    req.peer_addr()
        .map(|a| a.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

/// Spacing of attempts over the whole server.
const EVERY: Duration = Duration::from_millis(200);
/// An attempt whose turn is further away than this is not queued.
const MAX_WAIT: Duration = Duration::from_secs(3);
/// Failures from one address before it is slowed down further.
const FREE_FAILURES: u32 = 3;
/// The longest extra wait of one address.
const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// Addresses remembered at most (the oldest are forgotten first).
const MAX_CLIENTS: usize = 10_000;

#[derive(Debug)]
struct Client {
    failures: u32,
    not_before: Instant,
}

#[derive(Debug)]
struct Turns {
    next: Instant,
    clients: HashMap<IpAddr, Client>,
}

/// The sign-in attempt limiter (see the module doc).
#[derive(Debug)]
pub struct Limiter {
    turns: Mutex<Turns>,
}

impl Default for Limiter {
    fn default() -> Self {
        Limiter {
            turns: Mutex::new(Turns {
                next: Instant::now(),
                clients: HashMap::new(),
            }),
        }
    }
}

/// An attempt may go ahead, after waiting for its turn.
#[derive(Debug)]
pub struct Turn {
    at: Instant,
}

impl Limiter {
    /// Take a turn for an attempt from `ip`: `Ok` with the moment it may be
    /// checked, or `Err(wait)` when the queue is too long (the attempt must
    /// be refused unchecked).
    pub fn take(&self, ip: IpAddr) -> Result<Turn, Duration> {
        let now = Instant::now();
        let mut t = self.turns.lock().unwrap_or_else(|p| p.into_inner());
        let ip_ready = t.clients.get(&ip).map_or(now, |c| c.not_before);
        let at = now.max(t.next).max(ip_ready);
        if at > now + MAX_WAIT {
            return Err(at - now);
        }
        t.next = at + EVERY;
        if let Some(c) = t.clients.get_mut(&ip) {
            c.not_before = at + EVERY;
        }
        Ok(Turn { at })
    }

    /// Wait for the turn.
    pub async fn wait(turn: Turn) {
        actix_web::rt::time::sleep_until(turn.at.into()).await;
    }

    /// The attempt from `ip` was wrong: slow that address down.
    pub fn failed(&self, ip: IpAddr) {
        let now = Instant::now();
        let mut t = self.turns.lock().unwrap_or_else(|p| p.into_inner());
        if t.clients.len() >= MAX_CLIENTS && !t.clients.contains_key(&ip) {
            let oldest = t
                .clients
                .iter()
                .min_by_key(|(_, c)| c.not_before)
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                t.clients.remove(&k);
            }
        }
        let c = t.clients.entry(ip).or_insert(Client {
            failures: 0,
            not_before: now,
        });
        c.failures = c.failures.saturating_add(1);
        if c.failures > FREE_FAILURES {
            let n = (c.failures - FREE_FAILURES).min(16);
            let back = (Duration::from_millis(250) * 2u32.pow(n - 1)).min(MAX_BACKOFF);
            c.not_before = c.not_before.max(now + back);
        }
    }

    /// The attempt from `ip` was right: forget its failures.
    pub fn succeeded(&self, ip: IpAddr) {
        self.turns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clients
            .remove(&ip);
    }
}

/// The "too many attempts" answer's words.
pub fn too_many(wait: Duration) -> String {
    format!(
        "Too many sign-in attempts. Wait {} seconds and try again.",
        wait.as_secs().max(1)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        let h = Hosts::new(&["backup.example".into(), "nas:9000".into()]).unwrap();
        for ok in [
            "127.0.0.1:8080",
            "localhost:8080",
            "LOCALHOST:8080",
            "[::1]:8080",
            "backup.example:8080",
            "nas:9000",
        ] {
            assert!(h.accepts(ok, 8080, false), "{ok}");
        }
        for bad in [
            "evil.example:8080",
            "127.0.0.1:8081",
            "127.0.0.1",
            "nas:8080",
            "backup.example",
            "",
            "[::1",
            "localhost:x",
            "127.0.0.2:8080",
        ] {
            assert!(!h.accepts(bad, 8080, false), "{bad}");
        }
        assert!(Hosts::new(&[]).unwrap().accepts("localhost", 443, true));
        assert!(Hosts::new(&["a b".into()]).is_err());
    }

    #[test]
    fn attempts_take_turns() {
        let l = Limiter::default();
        let ip = IpAddr::from([10, 0, 0, 1]);
        let t0 = Instant::now();
        let a = l.take(ip).unwrap();
        let b = l.take(IpAddr::from([10, 0, 0, 2])).unwrap();
        assert!(a.at <= t0 + Duration::from_millis(5));
        assert!(b.at >= a.at + EVERY, "another address waits its turn too");
        // A long queue is refused, not grown.
        let mut refused = 0;
        for _ in 0..100 {
            if l.take(ip).is_err() {
                refused += 1;
            }
        }
        assert!(refused >= 80, "{refused}");
        // Failures slow one address down.
        let l = Limiter::default();
        for _ in 0..7 {
            l.failed(ip);
        }
        let t = l.take(ip).unwrap();
        assert!(t.at >= Instant::now() + Duration::from_millis(1500));
        // Past the longest queue, the address is refused unchecked.
        l.failed(ip);
        assert!(l.take(ip).unwrap_err() > Duration::from_secs(3));
        // A right attempt forgets the address's failures.
        l.succeeded(ip);
        assert!(l.turns.lock().unwrap().clients.is_empty());
    }
}
