//! Sessions: random ids in a cookie, everything else in server memory.
//!
//! A session holds its CSRF token, whether the UI password was given, and,
//! once the user connected, the FTP credentials and the open repository.
//! None of that ever leaves the server: the cookie carries only the id.
//!
//! A new session has passed nothing: it must sign in with the UI password
//! or the sign-in token before it sees anything. The cookie is HttpOnly and
//! `SameSite=Lax` (a link to the UI from another site keeps the user signed
//! in; every POST still needs the session's CSRF token), and `Secure` when
//! the UI is served over HTTPS.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::HttpRequest;
use bk_core::Repository;
use bk_ftp::{FtpUrl, Pool};

/// The session cookie's name.
pub const COOKIE: &str = "bk_session";

/// At most this many sessions are kept; the least recently used goes first.
const MAX_SESSIONS: usize = 1000;

/// 32 random bytes as 64 hex digits.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the operating system's random source failed");
    hex(&b)
}

fn hex(b: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(D[(x >> 4) as usize] as char);
        s.push(D[(x & 15) as usize] as char);
    }
    s
}

/// Compare two secrets in time that depends only on their lengths.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut d = 0u8;
    for (x, y) in a.iter().zip(b) {
        d |= x ^ y;
    }
    // Keep the optimizer from turning the fold into an early exit.
    std::hint::black_box(d) == 0
}

/// What the user connected to.
pub struct Connection {
    /// The dataset server (pull mode), with the password; `None` when the
    /// user works with local directories only.
    pub ftp: Option<FtpUrl>,
    /// The session's connections to the dataset server, logged in once at
    /// connect and reused by browsing, backups from it and recoveries to
    /// it (build their locations with `Location::ftp_shared`); its
    /// `config()` holds the FTP settings. Idle connections are checked
    /// before reuse and replaced when the server dropped them. An FTP
    /// repository keeps a pool of its own inside `repo`.
    pub pool: Option<Arc<Pool>>,
    /// The open repository.
    pub repo: Arc<Repository>,
    /// Where the repository lives, for display (never a password).
    pub repo_shown: String,
    /// Where the repository lives, so that nothing is recovered into it.
    pub repo_at: bk_core::location::RepoLocation,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // FtpUrl's Debug hides the password; say so explicitly anyway.
        f.debug_struct("Connection")
            .field("ftp", &self.ftp)
            .field("repo", &self.repo_shown)
            .finish_non_exhaustive()
    }
}

/// One browser's session.
#[derive(Debug)]
pub struct Session {
    /// The CSRF token every form of this session carries.
    pub csrf: String,
    /// The UI password was given (or none is required).
    pub ui_ok: bool,
    /// Set after a successful connect.
    pub conn: Option<Arc<Connection>>,
    last_seen: Instant,
}

/// What a request sees of its session.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The session id.
    pub sid: String,
    /// Its CSRF token.
    pub csrf: String,
    /// The UI password was given (or none is required).
    pub ui_ok: bool,
    /// The connection, if any.
    pub conn: Option<Arc<Connection>>,
    /// The session was created by this request: send its cookie.
    pub new_cookie: bool,
    /// The browser sent a session id that is unknown or expired.
    pub expired: bool,
    /// The cookie gets `Secure` (HTTPS).
    pub secure: bool,
}

impl Ctx {
    /// Whose jobs this session sees and starts: the signed-in user, or
    /// nobody before signing in.
    pub fn owner(&self) -> Option<crate::jobs::Owner> {
        self.ui_ok.then(crate::jobs::Owner::user)
    }
}

/// All sessions, in memory.
#[derive(Debug)]
pub struct SessionStore {
    ttl: Duration,
    secure: bool,
    map: Mutex<HashMap<String, Session>>,
}

/// The session id the browser sent, if it looks like one of ours.
pub fn cookie_sid(req: &HttpRequest) -> Option<String> {
    let h = req.headers().get(actix_web::http::header::COOKIE)?;
    let h = h.to_str().ok()?;
    h.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == COOKIE && v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| v.to_string())
    })
}

/// The `Set-Cookie` value for a session id (`secure`: served over HTTPS).
pub fn set_cookie(sid: &str, secure: bool) -> String {
    let s = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={sid}; HttpOnly; SameSite=Lax; Path=/{s}")
}

/// The `Set-Cookie` value that deletes the cookie.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0")
}

impl SessionStore {
    /// Sessions idle for `ttl` are forgotten; `secure`: their cookies are
    /// sent over HTTPS only.
    pub fn new(ttl: Duration, secure: bool) -> SessionStore {
        SessionStore {
            ttl,
            secure,
            map: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sweep(&self, map: &mut HashMap<String, Session>) {
        let ttl = self.ttl;
        map.retain(|_, s| s.last_seen.elapsed() < ttl);
        while map.len() >= MAX_SESSIONS {
            // Sessions that never signed in go first: a stranger making
            // sessions cannot push out the signed-in user's.
            let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| (s.ui_ok, s.last_seen))
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            map.remove(&oldest);
        }
    }

    fn ctx(&self, sid: &str, s: &Session, new_cookie: bool, expired: bool) -> Ctx {
        Ctx {
            secure: self.secure,
            sid: sid.to_string(),
            csrf: s.csrf.clone(),
            ui_ok: s.ui_ok,
            conn: s.conn.clone(),
            new_cookie,
            expired,
        }
    }

    /// The live session of this request, touching it.
    pub fn get(&self, req: &HttpRequest) -> Option<Ctx> {
        let sid = cookie_sid(req)?;
        let mut map = self.lock();
        self.sweep(&mut map);
        let s = map.get_mut(&sid)?;
        s.last_seen = Instant::now();
        Some(self.ctx(&sid, s, false, false))
    }

    /// The live session of this request, or a new one.
    pub fn get_or_create(&self, req: &HttpRequest) -> Ctx {
        if let Some(c) = self.get(req) {
            return c;
        }
        let expired = cookie_sid(req).is_some();
        self.create(false, expired)
    }

    fn create(&self, ui_ok: bool, expired: bool) -> Ctx {
        let sid = random_token();
        let s = Session {
            csrf: random_token(),
            ui_ok,
            conn: None,
            last_seen: Instant::now(),
        };
        let c = self.ctx(&sid, &s, true, expired);
        let mut map = self.lock();
        self.sweep(&mut map);
        map.insert(sid, s);
        c
    }

    /// Replace the session `sid` by a new one (new id, new CSRF token) that
    /// keeps its state, changed by `f`: done on login and on connect, so
    /// that an id planted before cannot ride on the new privileges.
    pub fn rotate(&self, sid: &str, f: impl FnOnce(&mut Session)) -> Ctx {
        let mut map = self.lock();
        let old = map.remove(sid);
        drop(map);
        let ctx = self.create(old.as_ref().is_some_and(|s| s.ui_ok), false);
        let mut map = self.lock();
        let s = map.get_mut(&ctx.sid).expect("just created");
        if let Some(old) = old {
            s.conn = old.conn;
        }
        f(s);
        self.ctx(&ctx.sid, s, true, false)
    }

    /// Forget a session and everything it holds (FTP credentials included).
    pub fn remove(&self, sid: &str) {
        self.lock().remove(sid);
    }

    /// The dataset-server pools of the live sessions, for keep-alive.
    pub fn ftp_pools(&self) -> Vec<Arc<Pool>> {
        let mut map = self.lock();
        self.sweep(&mut map);
        map.values()
            .filter_map(|s| s.conn.as_ref()?.pool.clone())
            .collect()
    }

    /// Number of live sessions (for tests).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        let mut map = self.lock();
        self.sweep(&mut map);
        map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_hex_of_32_bytes() {
        let a = random_token();
        let b = random_token();
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn ct_eq_compares() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
        assert!(ct_eq(b"", b""));
    }

    #[test]
    fn cookie_is_http_only_and_lax() {
        let c = set_cookie(&random_token(), false);
        assert!(c.contains("HttpOnly"));
        assert!(c.contains("SameSite=Lax"));
        assert!(c.contains("Path=/"));
        assert!(!c.contains("Secure"));
        assert!(set_cookie(&random_token(), true).ends_with("; Secure"));
    }

    #[test]
    fn idle_sessions_expire() {
        let st = SessionStore::new(Duration::from_millis(50), false);
        let c = st.create(false, false);
        assert_eq!(st.len(), 1);
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(st.len(), 0);
        let req = actix_web::test::TestRequest::default()
            .insert_header(("Cookie", format!("{COOKIE}={}", c.sid)))
            .to_http_request();
        assert!(st.get(&req).is_none());
        assert!(st.get_or_create(&req).expired);
    }
}
