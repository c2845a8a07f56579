//! A small pool of logged-in connections, with retry and backoff.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::client::{FtpClient, FtpConfig};
use crate::error::{ErrorKind, Result};
use crate::url::FtpUrl;

/// Up to `config.connections` connections to one server, shared by threads.
/// When the server refuses a connection with `421 Too many connections`, the
/// pool shrinks to what it has and goes on instead of failing.
#[derive(Debug)]
pub struct Pool {
    url: FtpUrl,
    config: FtpConfig,
    idle: Mutex<Vec<FtpClient>>,
    limit: AtomicUsize,
    open: AtomicUsize,
    connects: AtomicUsize,
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

    fn take(&self) -> Result<FtpClient> {
        loop {
            if let Some(c) = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop() {
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
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).push(c);
    }

    fn discard(&self, c: FtpClient) {
        drop(c);
        self.open.fetch_sub(1, Ordering::SeqCst);
    }

    /// Run `f` on a pooled connection. A transient failure (4xx reply,
    /// dropped connection, timeout) drops that connection and, when
    /// `idempotent`, retries on a fresh one after a growing pause; a
    /// permanent failure (530, 550, 552 …) is returned at once.
    pub fn run<T>(
        &self,
        idempotent: bool,
        mut f: impl FnMut(&mut FtpClient) -> Result<T>,
    ) -> Result<T> {
        let mut delay = self.config.backoff;
        let mut attempt = 1;
        loop {
            let r = self.take().and_then(|mut c| match f(&mut c) {
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
            });
            match r {
                Err(e) if e.is_transient() && idempotent && attempt < self.config.retries => {
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(5));
                    attempt += 1;
                }
                r => return r,
            }
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
            c.quit();
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
