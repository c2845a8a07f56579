//! bk-web: the web UI of bk, for people who never open a terminal.
//!
//! It runs on the backup machine (`bk web`). The user connects with the
//! address, user name and password of the FTP server that holds the datasets,
//! browses its directories (and the local folders the server was started
//! with, `--allow-root DIR`), backs a directory up into the repository, and
//! recovers a backup, or the state of a dataset before a date, to a folder
//! on the FTP server or on this machine. Backups and recoveries run as jobs
//! whose progress the browser follows live (server-sent events) or, without
//! JavaScript, by refreshing, and that a Cancel button stops.
//!
//! The main items:
//!
//! - [`WebOptions`]: the repository, the listen address, the allowed local
//!   roots, the UI password, the session lifetime;
//! - [`run`]: serve until stopped (blocking);
//! - [`AppState`] and [`configure`]: the same application for tests with
//!   `actix_web::test`.
//!
//! # Example
//!
//! ```no_run
//! let opts = bk_web::WebOptions::new()
//!     .repo(bk_core::location::RepoLocation::Local("/srv/backups".into()))
//!     .allow_root("/srv/data");
//! bk_web::run(opts)?;
//! # Ok::<(), anyhow::Error>(())
//! ```
//!
//! In a test:
//!
//! ```no_run
//! # async fn t() -> anyhow::Result<()> {
//! use actix_web::{App, test};
//! let state = bk_web::AppState::new(bk_web::WebOptions::new().token("0".repeat(64)))?;
//! let app = test::init_service(App::new().configure(bk_web::configure(state))).await;
//! let login = test::TestRequest::get()
//!     .uri(&format!("/login?token={}", "0".repeat(64)))
//!     .insert_header(("host", "127.0.0.1:8080"))
//!     .to_request();
//! let resp = test::call_service(&app, login).await;
//! assert_eq!(resp.status(), 303); // with the session cookie
//! # Ok(()) }
//! ```
//!
//! Security model (see `docs/WEB.md`): nothing is shown before the user
//! signs in, with the UI password or with the secret sign-in address `bk
//! web` prints at start (a random token, exchanged for the session cookie);
//! attempts are rate-limited; only requests naming this server (Host,
//! Origin) are answered; sessions are 32 random bytes in an HttpOnly,
//! SameSite=Lax cookie (Secure under HTTPS); FTP credentials stay in server
//! memory and are forgotten on logout or expiry; every POST carries a
//! per-session CSRF token; every path is confined; templates auto-escape; a
//! strict Content-Security-Policy is sent with every response; off loopback
//! the UI is served over HTTPS unless `--insecure-http` says otherwise.
#![deny(missing_docs)]

mod access;
mod jobs;
mod names;
mod paths;
mod render;
mod routes;
mod session;
mod state;
mod tls;
mod units;
mod words;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use bk_core::location::RepoLocation;
use bk_ftp::FtpConfig;
use bk_ftp::url::Secret;

pub use access::{Log, LogWriter};
pub use jobs::{Job, JobError, JobKind, JobStore, JobView, Owner, Summary, Tracker};
pub use routes::configure;
pub use session::Ctx;
pub use state::default_dir as default_state_dir;

/// When the UI is served over HTTPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TlsMode {
    /// Off loopback, on loopback not (the default).
    #[default]
    Auto,
    /// Always (`--tls`), loopback included.
    On,
    /// Never; off loopback only together with
    /// [`WebOptions::insecure_http`].
    Off,
}

/// The shortest UI password accepted.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// The Content-Security-Policy sent with every response.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

/// How `bk web` runs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WebOptions {
    /// The repository to use. `None`: the user names a folder on the FTP
    /// server when connecting.
    pub repo: Option<RepoLocation>,
    /// Where to listen (default `127.0.0.1:8080`).
    pub listen: SocketAddr,
    /// Local directories that may be backed up and restored into.
    pub allow_roots: Vec<PathBuf>,
    /// The password of the UI itself (at least [`MIN_PASSWORD_CHARS`]
    /// characters). Without one, a random sign-in token is made at start
    /// and [`AppState::login_url`] carries it.
    pub ui_password: Option<Secret>,
    /// The sign-in token to use instead of a random one (64 lowercase hex
    /// digits; for tests and tools).
    pub token: Option<Secret>,
    /// More names the UI answers for (`--public-name NAME[:PORT]`), next
    /// to 127.0.0.1, localhost and `[::1]`.
    pub public_names: Vec<String>,
    /// When to serve HTTPS.
    pub tls: TlsMode,
    /// The certificate and key files (PEM) for HTTPS; without them a
    /// self-signed certificate is made and kept in the state directory.
    pub tls_files: Option<(PathBuf, PathBuf)>,
    /// Plain HTTP off loopback is allowed (`--insecure-http`).
    pub insecure_http: bool,
    /// Where the job history and the generated certificate are kept
    /// (`None`: nothing is kept; `bk web` passes [`default_state_dir`]).
    pub state_dir: Option<PathBuf>,
    /// The access and job log (`None`: none; [`run`] logs to stderr).
    pub log: Option<Log>,
    /// Sessions idle for this long are forgotten (default 30 minutes).
    pub session_ttl: Duration,
    /// FTP settings for the dataset server and FTP repositories (TLS trust,
    /// timeouts, parallel connections).
    pub ftp_config: FtpConfig,
    /// HTTP worker threads (default 2); jobs run on threads of their own.
    pub workers: usize,
}

impl Default for WebOptions {
    fn default() -> Self {
        WebOptions {
            repo: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            allow_roots: Vec::new(),
            ui_password: None,
            token: None,
            public_names: Vec::new(),
            tls: TlsMode::Auto,
            tls_files: None,
            insecure_http: false,
            state_dir: None,
            log: None,
            session_ttl: Duration::from_secs(30 * 60),
            ftp_config: FtpConfig::default()
                .timeouts(Duration::from_secs(10), Duration::from_secs(60)),
            workers: 2,
        }
    }
}

impl WebOptions {
    /// The defaults.
    pub fn new() -> WebOptions {
        WebOptions::default()
    }
    /// Use this repository.
    pub fn repo(mut self, r: RepoLocation) -> Self {
        self.repo = Some(r);
        self
    }
    /// Listen here.
    pub fn listen(mut self, a: SocketAddr) -> Self {
        self.listen = a;
        self
    }
    /// Allow this local directory (repeatable).
    pub fn allow_root(mut self, p: impl Into<PathBuf>) -> Self {
        self.allow_roots.push(p.into());
        self
    }
    /// Require this password for the UI.
    pub fn ui_password(mut self, p: impl Into<String>) -> Self {
        self.ui_password = Some(Secret::new(p));
        self
    }
    /// Use this sign-in token (64 lowercase hex digits) instead of a random
    /// one.
    pub fn token(mut self, t: impl Into<String>) -> Self {
        self.token = Some(Secret::new(t));
        self
    }
    /// Answer for this name too (`NAME` or `NAME:PORT`; repeatable).
    pub fn public_name(mut self, n: impl Into<String>) -> Self {
        self.public_names.push(n.into());
        self
    }
    /// When to serve HTTPS.
    pub fn tls(mut self, m: TlsMode) -> Self {
        self.tls = m;
        self
    }
    /// Serve HTTPS with this certificate chain and key (PEM files).
    pub fn tls_files(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.tls_files = Some((cert.into(), key.into()));
        self
    }
    /// Allow plain HTTP off loopback.
    pub fn insecure_http(mut self, yes: bool) -> Self {
        self.insecure_http = yes;
        self
    }
    /// Keep the job history and the generated certificate here.
    pub fn state_dir(mut self, d: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(d.into());
        self
    }
    /// Write the access and job log to `w`.
    pub fn log(mut self, w: LogWriter) -> Self {
        self.log = Some(Log::to(w));
        self
    }
    /// Forget sessions idle for this long.
    pub fn session_ttl(mut self, d: Duration) -> Self {
        self.session_ttl = d;
        self
    }
    /// FTP settings, as the CLI's flags give them.
    pub fn ftp_options(mut self, o: &bk_core::location::FtpOptions) -> Self {
        self.ftp_config = o.config();
        self
    }
    /// FTP settings.
    pub fn ftp_config(mut self, c: FtpConfig) -> Self {
        self.ftp_config = c;
        self
    }

    /// Whether the UI is served over HTTPS.
    pub fn tls_on(&self) -> bool {
        match self.tls {
            TlsMode::On => true,
            TlsMode::Off => false,
            TlsMode::Auto => {
                self.tls_files.is_some() || (!self.listen.ip().is_loopback() && !self.insecure_http)
            }
        }
    }

    /// Refuse settings that would expose the UI: plain HTTP off loopback
    /// without [`WebOptions::insecure_http`], a short UI password, a
    /// malformed token or public name.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !self.listen.ip().is_loopback() && !self.tls_on() && !self.insecure_http {
            bail!(
                "refusing to serve plain HTTP on {}: passwords and files would cross the network readable by anyone on the way; serve HTTPS (the default off loopback, or --tls-cert FILE --tls-key FILE), or pass --insecure-http if the network is trusted",
                self.listen
            );
        }
        if self.tls == TlsMode::Off && self.tls_files.is_some() {
            bail!("a TLS certificate was given, but TLS is turned off");
        }
        if let Some(p) = &self.ui_password {
            let n = p.expose().chars().count();
            if n < MIN_PASSWORD_CHARS {
                bail!(
                    "the UI password is too short ({n} characters): use at least {MIN_PASSWORD_CHARS}"
                );
            }
        }
        if let Some(t) = &self.token {
            let t = t.expose();
            if t.len() != 64 || !t.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                bail!("the sign-in token must be 64 lowercase hex digits");
            }
        }
        access::Hosts::new(&self.public_names)?;
        Ok(())
    }
}

/// Everything the handlers share: options, sessions, jobs, templates.
#[derive(Debug)]
pub struct AppState {
    opts: WebOptions,
    roots: Vec<PathBuf>,
    sessions: session::SessionStore,
    jobs: jobs::JobStore,
    /// The sign-in token, when there is no UI password.
    token: Option<Secret>,
    hosts: access::Hosts,
    limiter: access::Limiter,
    log: Log,
    tls: Option<tls::Tls>,
    /// The port actually listened on (the listen port until bound).
    port: std::sync::atomic::AtomicU16,
    templates: render::Templates,
    /// One backup at a time per repository (by its shown location): a
    /// second one waits instead of failing on the repository lock.
    backup_turns: std::sync::Mutex<std::collections::HashMap<String, Arc<std::sync::Mutex<()>>>>,
}

impl AppState {
    /// Check the options, resolve the allowed roots, load the templates.
    pub fn new(opts: WebOptions) -> anyhow::Result<Arc<AppState>> {
        opts.validate()?;
        let mut roots = Vec::new();
        for r in &opts.allow_roots {
            let c = r
                .canonicalize()
                .with_context(|| format!("allowed root {}", r.display()))?;
            if !c.is_dir() {
                bail!("allowed root {} is not a directory", r.display());
            }
            roots.push(c);
        }
        if let Some(d) = &opts.state_dir {
            state::prepare(d)?;
        }
        let log = opts.log.clone().unwrap_or_default();
        let (history, stored) = match &opts.state_dir {
            Some(d) => {
                let (h, s) = state::History::open(d)?;
                (Some(h), s)
            }
            None => (None, Vec::new()),
        };
        let tls = if opts.tls_on() {
            Some(match &opts.tls_files {
                Some((c, k)) => tls::load(c, k)?,
                None => tls::self_signed(opts.state_dir.as_deref(), &opts.public_names)?,
            })
        } else {
            None
        };
        let token = match (&opts.ui_password, &opts.token) {
            (Some(_), _) => None,
            (None, Some(t)) => Some(t.clone()),
            (None, None) => Some(Secret::new(session::random_token())),
        };
        let mut names = opts.public_names.clone();
        if !opts.listen.ip().is_unspecified() && !opts.listen.ip().is_loopback() {
            // An address typed as digits cannot be re-pointed by DNS.
            names.push(match opts.listen.ip() {
                std::net::IpAddr::V6(a) => format!("[{a}]"),
                a => a.to_string(),
            });
        }
        let state = Arc::new(AppState {
            sessions: session::SessionStore::new(opts.session_ttl, tls.is_some()),
            roots,
            jobs: jobs::JobStore::new(history, stored, log.clone()),
            token,
            hosts: access::Hosts::new(&names)?,
            limiter: access::Limiter::default(),
            log,
            tls,
            port: std::sync::atomic::AtomicU16::new(opts.listen.port()),
            templates: render::Templates::new()?,
            backup_turns: Default::default(),
            opts,
        });
        // Expired sessions (and the FTP passwords they hold) are dropped by
        // the next request; this sweeps them when no request comes.
        let weak = Arc::downgrade(&state);
        let every =
            (state.opts.session_ttl / 2).clamp(Duration::from_millis(100), Duration::from_secs(60));
        std::thread::Builder::new()
            .name("bk-web-sessions".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(every);
                    match weak.upgrade() {
                        Some(st) => {
                            st.sessions.len();
                            // NOOP idle FTP logins so that servers keep them
                            // (off this thread: a dead link waits a timeout).
                            let pools = st.sessions.ftp_pools();
                            if !pools.is_empty() {
                                std::thread::spawn(move || {
                                    pools.iter().for_each(|p| p.keep_alive())
                                });
                            }
                        }
                        None => return,
                    }
                }
            })
            .context("starting the session sweeper")?;
        Ok(state)
    }

    fn backup_turn(&self, repo: &str) -> Arc<std::sync::Mutex<()>> {
        self.backup_turns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(repo.to_string())
            .or_default()
            .clone()
    }

    /// The secret sign-in address (`None` with a UI password):
    /// `http(s)://127.0.0.1:PORT/login?token=…`, or with the listen address
    /// or the first public name when the UI listens off loopback.
    pub fn login_url(&self) -> Option<String> {
        let t = self.token.as_ref()?;
        Some(format!("{}/login?token={}", self.base_url(), t.expose()))
    }

    /// `http(s)://HOST:PORT` of this server.
    pub fn base_url(&self) -> String {
        let scheme = if self.tls_on() { "https" } else { "http" };
        let ip = self.opts.listen.ip();
        let host = if ip.is_loopback() || (ip.is_unspecified() && self.opts.public_names.is_empty())
        {
            "127.0.0.1".to_string()
        } else if ip.is_unspecified() {
            self.opts.public_names[0].clone()
        } else if let std::net::IpAddr::V6(a) = ip {
            format!("[{a}]")
        } else {
            ip.to_string()
        };
        if host.contains(':') && !host.ends_with(']') {
            format!("{scheme}://{host}")
        } else {
            format!("{scheme}://{host}:{}", self.port())
        }
    }

    /// The served certificate's SHA-256 fingerprint (`AA:BB:…`), under HTTPS.
    pub fn tls_fingerprint(&self) -> Option<&str> {
        self.tls.as_ref().map(|t| t.fingerprint.as_str())
    }

    /// Whether the UI is served over HTTPS.
    pub fn tls_on(&self) -> bool {
        self.tls.is_some()
    }

    /// The port listened on.
    pub fn port(&self) -> u16 {
        self.port.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The jobs this request's session may see, newest first: the
    /// signed-in user's, none before signing in. Pages list jobs only
    /// through this (or [`AppState::visible_job`]).
    pub fn visible_jobs(&self, ctx: &Ctx) -> Vec<Arc<Job>> {
        match ctx.owner() {
            Some(o) => self.jobs.list_for(&o),
            None => Vec::new(),
        }
    }

    /// Job `id` if this request's session may see it.
    pub fn visible_job(&self, ctx: &Ctx, id: u64) -> Option<Arc<Job>> {
        self.jobs.get_for(id, &ctx.owner()?)
    }

    /// Number of live sessions.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// A job's current state (for tests and tools).
    pub fn job(&self, id: u64) -> Option<JobView> {
        self.jobs.get(id).map(|j| j.view())
    }

    /// The jobs, to run an operation as a job next to those the pages
    /// start (for tests and tools).
    pub fn jobs(&self) -> &JobStore {
        &self.jobs
    }
}

/// Bind the listen address and return the server (to be awaited inside an
/// actix system) and the address bound; the port of a `:0` address is the
/// one the system chose.
pub fn serve(state: Arc<AppState>) -> anyhow::Result<(actix_web::dev::Server, SocketAddr)> {
    let listen = state.opts.listen;
    let workers = state.opts.workers.max(1);
    let st = state.clone();
    let server =
        actix_web::HttpServer::new(move || actix_web::App::new().configure(configure(st.clone())))
            .workers(workers);
    let server = match &state.tls {
        Some(t) => server.bind_rustls_0_23(listen, t.config.clone()),
        None => server.bind(listen),
    }
    .with_context(|| format!("listening on {listen}"))?;
    let addr = *server
        .addrs()
        .first()
        .with_context(|| format!("listening on {listen}"))?;
    state
        .port
        .store(addr.port(), std::sync::atomic::Ordering::Relaxed);
    Ok((server.run(), addr))
}

/// Serve the UI until the process is stopped, logging to stderr unless
/// another log was set. Prints the sign-in address (the one place the
/// token is shown) and, under HTTPS, the certificate's fingerprint.
pub fn run(mut opts: WebOptions) -> anyhow::Result<()> {
    if opts.log.is_none() {
        opts.log = Some(Log::stderr());
    }
    let state = AppState::new(opts)?;
    actix_web::rt::System::new().block_on(async move {
        let (server, _) = serve(state.clone())?;
        if let Some(t) = &state.tls {
            eprintln!("bk web: certificate SHA-256 fingerprint {}", t.fingerprint);
            if let (true, Some(p)) = (t.generated, &t.cert_path) {
                eprintln!("bk web: made a self-signed certificate, kept in {}", p.display());
            }
        }
        if !state.tls_on() && !state.opts.listen.ip().is_loopback() {
            eprintln!(
                "bk web: warning: serving plain HTTP on {} (--insecure-http): anyone on the network can read the passwords and files sent",
                state.opts.listen
            );
        }
        match state.login_url() {
            Some(u) => eprintln!("bk web: open {u} in a browser (Ctrl-C stops it)"),
            None => eprintln!(
                "bk web: open {}/ in a browser and sign in with the UI password (Ctrl-C stops it)",
                state.base_url()
            ),
        }
        server.await.context("serving")
    })
}
