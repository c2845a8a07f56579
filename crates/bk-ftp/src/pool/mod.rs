//! A small pool of logged-in connections, with retry and backoff.

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::client::{FtpClient, FtpConfig};
use crate::error::{Error, ErrorKind, Result};
use crate::url::FtpUrl;

/// The longest pause between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Records of retried failures a pool keeps until they are taken; beyond
/// this many, retries are only counted.
const RETRIED_KEPT: usize = 10_000;

/// One transient failure that a [`Pool`] retried: what was being done,
/// which attempt failed, and why. The pool keeps one record per retried
/// failure for its caller to show ([`Pool::take_retried`]); it never prints.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Retried {
    /// What was being done: the caller's words ([`Pool::run_as`]), else the
    /// failed operation and its path ("uploading /backup/a.bin").
    pub what: String,
    /// The attempt that failed (1 for the first).
    pub attempt: u32,
    /// Why it failed (the server's reply or the connection's error; never
    /// a password).
    pub error: String,
    /// Whether the failed attempt had moved data (bytes got through before
    /// the cut): such failures are retried up to
    /// [`FtpConfig::attempts_with_progress`], the others up to
    /// [`FtpConfig::retries`].
    pub progress: bool,
}

impl fmt::Display for Retried {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: attempt {} failed: {}",
            self.what, self.attempt, self.error
        )
    }
}

/// Up to `config.connections` connections to one server, shared by threads.
/// When the server refuses a connection with `421 Too many connections`, the
/// pool shrinks to what it has and goes on instead of failing.
///
/// Connections are opened when needed (the first by [`Pool::log_in`] or the
/// first operation, more only while all open ones are busy) and kept for
/// reuse, so a long-lived pool (a web session's) logs in once per parallel
/// connection. A connection that sat idle for [`FtpConfig::idle_check`] is
/// checked with `NOOP` before it is used again; one the server dropped is
/// replaced by a fresh login without counting as a failure
/// ([`Pool::replaced`]). [`Pool::keep_alive`] does the same check for every
/// idle connection, for a caller that wants them kept warm.
#[derive(Debug)]
pub struct Pool {
    url: FtpUrl,
    config: FtpConfig,
    /// Idle connections with the time each was given back.
    idle: Mutex<Vec<(FtpClient, Instant)>>,
    limit: AtomicUsize,
    open: AtomicUsize,
    connects: AtomicUsize,
    replaced: AtomicUsize,
    retried: Mutex<Vec<Retried>>,
    retried_total: AtomicUsize,
}

impl Pool {
    /// A pool for `url` (which carries the password).
    pub fn new(url: FtpUrl, config: FtpConfig) -> Pool {
        let limit = config.connections.max(1);
        Pool {
            url,
            config,
            idle: Mutex::new(Vec::new()),
            limit: AtomicUsize::new(limit),
            open: AtomicUsize::new(0),
            connects: AtomicUsize::new(0),
            replaced: AtomicUsize::new(0),
            retried: Mutex::new(Vec::new()),
            retried_total: AtomicUsize::new(0),
        }
    }

    /// The server URL (password hidden when shown).
    pub fn url(&self) -> &FtpUrl {
        &self.url
    }

    /// The configuration.
    pub fn config(&self) -> &FtpConfig {
        &self.config
    }

    /// How many connections may be open at once now.
    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::SeqCst)
    }

    /// Connections opened so far (logins).
    pub fn connects(&self) -> usize {
        self.connects.load(Ordering::SeqCst)
    }

    /// Connections open now (busy or idle).
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Idle connections found dead (dropped by the server or the network)
    /// when checked, and closed; the next use logs in afresh.
    pub fn replaced(&self) -> usize {
        self.replaced.load(Ordering::SeqCst)
    }

    /// Log in now, once and without retrying, and keep the connection for
    /// the next operation: the check a frontend makes when the user types
    /// the server's address and password, after which browsing and jobs
    /// reuse that login. Nothing is done when a live connection is idle or
    /// all the pool's connections are busy.
    ///
    /// ```no_run
    /// # fn main() -> bk_ftp::Result<()> {
    /// use bk_ftp::{FtpConfig, FtpUrl, Pool};
    /// let pool = Pool::new(FtpUrl::parse("ftp://bob:pw@127.0.0.1:2121/").unwrap(), FtpConfig::default());
    /// pool.log_in()?; // a wrong password is reported here
    /// let entries = pool.run(true, |c| c.list("/"))?; // no second login
    /// assert_eq!(pool.connects(), 1);
    /// # let _ = entries; Ok(()) }
    /// ```
    pub fn log_in(&self) -> Result<()> {
        if let Some(c) = self.take_idle() {
            self.give_back(c);
            return Ok(());
        }
        let open = self.open.load(Ordering::SeqCst);
        if open >= self.limit()
            || self
                .open
                .compare_exchange(open, open + 1, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
        {
            // Every connection is busy (so logged in), or another thread
            // is logging in right now.
            return Ok(());
        }
        self.connects.fetch_add(1, Ordering::SeqCst);
        match FtpClient::connect(&self.url, &self.config) {
            Ok(c) => {
                self.give_back(c);
                Ok(())
            }
            Err(e) => {
                self.open.fetch_sub(1, Ordering::SeqCst);
                Err(e)
            }
        }
    }

    /// Check every connection idle for [`FtpConfig::idle_check`] or longer
    /// with `NOOP` (which also keeps the server from closing it for
    /// idleness) and close those that no longer answer.
    pub fn keep_alive(&self) {
        let due: Vec<FtpClient> = {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            let (due, fresh): (Vec<_>, Vec<_>) = idle
                .drain(..)
                .partition(|(_, t)| t.elapsed() >= self.config.idle_check);
            *idle = fresh;
            due.into_iter().map(|(c, _)| c).collect()
        };
        for mut c in due {
            if c.noop().is_ok() {
                self.give_back(c);
            } else {
                self.replaced.fetch_add(1, Ordering::SeqCst);
                self.discard(c);
            }
        }
    }

    /// Failures retried so far, in all (taking the records does not reset it).
    pub fn retried(&self) -> usize {
        self.retried_total.load(Ordering::SeqCst)
    }

    /// The records of the failures retried since the last call, in order,
    /// one per failure (the first 10,000; [`Pool::retried`] counts all).
    pub fn take_retried(&self) -> Vec<Retried> {
        std::mem::take(&mut *self.retried.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn record(&self, what: &str, attempt: u32, e: &Error, progress: bool) {
        self.retried_total.fetch_add(1, Ordering::SeqCst);
        let (what, error) = if what.is_empty() {
            let what = match e.path_str() {
                Some(p) => format!("{} {p}", e.op()),
                None => e.op().to_string(),
            };
            let error = match e.code() {
                Some(c) => format!("{c} {}", e.text()),
                None => e.text().to_string(),
            };
            (what, error)
        } else {
            (what.to_string(), e.to_string())
        };
        let mut kept = self.retried.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() < RETRIED_KEPT {
            kept.push(Retried {
                what,
                attempt,
                error,
                progress,
            });
        }
    }

    /// An idle connection that is alive: one idle for less than
    /// `idle_check`, or one that answered `NOOP`. Dead ones are closed.
    fn take_idle(&self) -> Option<FtpClient> {
        loop {
            let (mut c, since) = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()?;
            if since.elapsed() < self.config.idle_check || c.noop().is_ok() {
                return Some(c);
            }
            self.replaced.fetch_add(1, Ordering::SeqCst);
            self.discard(c);
        }
    }

    fn take(&self) -> Result<FtpClient> {
        loop {
            if let Some(c) = self.take_idle() {
                return Ok(c);
            }
            let open = self.open.load(Ordering::SeqCst);
            if open < self.limit() {
                if self
                    .open
                    .compare_exchange(open, open + 1, Ordering::SeqCst, Ordering::SeqCst)
                    .is_err()
                {
                    continue;
                }
                self.connects.fetch_add(1, Ordering::SeqCst);
                match FtpClient::connect(&self.url, &self.config) {
                    Ok(c) => return Ok(c),
                    Err(e) => {
                        self.open.fetch_sub(1, Ordering::SeqCst);
                        if e.kind() == ErrorKind::TooManyConnections && open > 0 {
                            // The server caps us below our limit: use what we have.
                            self.limit.store(open, Ordering::SeqCst);
                            continue;
                        }
                        return Err(e);
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn give_back(&self, c: FtpClient) {
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((c, Instant::now()));
    }

    fn discard(&self, c: FtpClient) {
        drop(c);
        self.open.fetch_sub(1, Ordering::SeqCst);
    }

    /// Run `f` on a pooled connection. A transient failure (4xx reply,
    /// dropped connection, timeout, a transfer that arrived short) drops
    /// that connection and, when `idempotent`, retries on a fresh one; a
    /// permanent failure (530, 550, 552 …) is returned at once.
    ///
    /// Retries are bounded two ways. Failures that moved no data (the
    /// server unreachable, every connection refused or cut at once) give up
    /// after [`FtpConfig::retries`] attempts, with a pause that doubles from
    /// [`FtpConfig::backoff`] up to 5 s: a dead network is reported within
    /// seconds. Failures after data got through (a link that cuts a
    /// connection now and then) wait only the first pause and give up after
    /// [`FtpConfig::attempts_with_progress`] attempts in all. Each retried
    /// failure is recorded ([`Pool::take_retried`]).
    pub fn run<T>(
        &self,
        idempotent: bool,
        f: impl FnMut(&mut FtpClient) -> Result<T>,
    ) -> Result<T> {
        self.run_as(idempotent, "", f)
    }

    /// [`Pool::run`], naming what `f` does ("writing packs/ab/ab12….pack")
    /// in the records of retried failures.
    pub fn run_as<T>(
        &self,
        idempotent: bool,
        what: &str,
        mut f: impl FnMut(&mut FtpClient) -> Result<T>,
    ) -> Result<T> {
        let retries = self.config.retries.max(1);
        let attempts = self.config.attempts_with_progress.max(retries);
        let mut delay = self.config.backoff;
        let mut idle_failures = 0;
        let mut attempt = 1;
        loop {
            let mut progress = false;
            let r = self.take().and_then(|mut c| {
                let before = c.data_bytes();
                let r = f(&mut c);
                progress = c.data_bytes() > before;
                match r {
                    Ok(v) => {
                        self.give_back(c);
                        Ok(v)
                    }
                    Err(e) if e.is_transient() => {
                        self.discard(c);
                        Err(e)
                    }
                    Err(e) => {
                        self.give_back(c);
                        Err(e)
                    }
                }
            });
            let e = match r {
                Err(e) if e.is_transient() && idempotent => e,
                r => return r,
            };
            if !progress {
                idle_failures += 1;
            }
            if idle_failures >= retries || attempt >= attempts {
                return Err(e);
            }
            self.record(what, attempt, &e, progress);
            if progress {
                std::thread::sleep(self.config.backoff);
            } else {
                std::thread::sleep(delay);
                delay = (delay * 2).min(MAX_BACKOFF);
            }
            attempt += 1;
        }
    }

    /// Take a connection for as long as the returned guard lives (a
    /// streaming transfer, say). It goes back to the pool on drop, unless
    /// marked broken.
    pub fn checkout(self: &std::sync::Arc<Self>) -> Result<PooledClient> {
        let c = self.take()?;
        Ok(PooledClient {
            pool: self.clone(),
            client: Some(c),
            broken: false,
        })
    }

    /// Log out of every idle connection.
    pub fn close(&self) {
        for c in self
            .idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            c.0.quit();
            self.open.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.close();
    }
}

/// A connection checked out of a [`Pool`]; derefs to [`FtpClient`].
#[derive(Debug)]
pub struct PooledClient {
    pool: std::sync::Arc<Pool>,
    client: Option<FtpClient>,
    broken: bool,
}

impl PooledClient {
    /// Do not return this connection to the pool (its session is in an
    /// unknown state, e.g. after an interrupted transfer).
    pub fn mark_broken(&mut self) {
        self.broken = true;
    }
}

impl std::ops::Deref for PooledClient {
    type Target = FtpClient;
    fn deref(&self) -> &FtpClient {
        self.client.as_ref().expect("present until drop")
    }
}

impl std::ops::DerefMut for PooledClient {
    fn deref_mut(&mut self) -> &mut FtpClient {
        self.client.as_mut().expect("present until drop")
    }
}

impl Drop for PooledClient {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            if self.broken {
                self.pool.discard(c);
            } else {
                self.pool.give_back(c);
            }
        }
    }
}

#[cfg(test)]
mod tests;
