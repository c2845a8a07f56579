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
//! let state = bk_web::AppState::new(bk_web::WebOptions::new())?;
//! let app = test::init_service(App::new().configure(bk_web::configure(state))).await;
//! let resp = test::call_service(&app, test::TestRequest::get().uri("/").to_request()).await;
//! assert!(resp.status().is_success());
//! # Ok(()) }
//! ```
//!
//! Security model (see `docs/WEB.md`): sessions are 32 random bytes in an
//! HttpOnly, SameSite=Strict cookie; FTP credentials stay in server memory
//! and are forgotten on logout or expiry; every POST carries a per-session
//! CSRF token; every path is confined; templates auto-escape; a strict
//! Content-Security-Policy is sent with every response; listening on a
//! non-loopback address requires a UI password.
#![deny(missing_docs)]

mod jobs;
mod names;
mod paths;
mod render;
mod routes;
mod session;
mod words;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use bk_core::location::RepoLocation;
use bk_ftp::FtpConfig;
use bk_ftp::url::Secret;

pub use jobs::{Job, JobError, JobKind, JobStore, JobView, Summary, Tracker};
pub use routes::configure;

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
    /// The password of the UI itself; required to listen on a non-loopback
    /// address.
    pub ui_password: Option<Secret>,
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

    /// Refuse settings that would expose the UI: a non-loopback listen
    /// address needs a UI password.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !self.listen.ip().is_loopback() && self.ui_password.is_none() {
            bail!(
                "refusing to listen on {} without a UI password: anyone who can reach it could read and overwrite your backups; pass --ui-password-file FILE, or listen on 127.0.0.1",
                self.listen
            );
        }
        if self
            .ui_password
            .as_ref()
            .is_some_and(|p| p.expose().is_empty())
        {
            bail!("the UI password is empty");
        }
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
        let state = Arc::new(AppState {
            sessions: session::SessionStore::new(opts.session_ttl, opts.ui_password.is_some()),
            roots,
            jobs: jobs::JobStore::default(),
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

/// Serve the UI until the process is stopped.
pub fn run(opts: WebOptions) -> anyhow::Result<()> {
    let listen = opts.listen;
    let workers = opts.workers.max(1);
    let state = AppState::new(opts)?;
    actix_web::rt::System::new().block_on(async move {
        let server = actix_web::HttpServer::new(move || {
            actix_web::App::new().configure(configure(state.clone()))
        })
        .workers(workers)
        .bind(listen)
        .with_context(|| format!("listening on {listen}"))?;
        eprintln!("bk web: open http://{listen}/ in a browser (Ctrl-C stops it)");
        server.run().await.context("serving")
    })
}
