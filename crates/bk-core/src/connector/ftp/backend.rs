//! Repositories on FTP/FTPS servers, through bk-ftp.

use std::collections::HashSet;
use std::io;
use std::sync::{Arc, Mutex};

use bk_ftp::{EntryKind, ErrorKind, FtpClient, FtpConfig, FtpUrl, Pool, url};

use crate::connector::backend::{Backend, ObjectInfo, is_temp_name};
use crate::error::{Error, Result, backend_err};
use crate::repo::layout::is_repository_dir;

/// A repository under a directory of an FTP or FTPS server. Writes go to a
/// temporary name, are confirmed with SIZE and renamed into place; several
/// connections upload packs at once.
#[derive(Debug)]
pub struct FtpBackend {
    pool: Arc<Pool>,
    root: String,
    made_dirs: Mutex<HashSet<String>>,
    /// The whole repository's listing from `remove_temp_files` (the start
    /// of a backup, under the lock), serving `list` until this backend
    /// writes or removes anything: one walk instead of one per listing.
    walked: Mutex<Option<bk_ftp::Tree>>,
}

fn to_io(e: bk_ftp::Error) -> io::Error {
    let kind = match e.kind() {
        ErrorKind::NotFound => io::ErrorKind::NotFound,
        ErrorKind::AlreadyExists => io::ErrorKind::AlreadyExists,
        ErrorKind::PermissionDenied | ErrorKind::Auth => io::ErrorKind::PermissionDenied,
        ErrorKind::Quota => io::ErrorKind::StorageFull,
        ErrorKind::Transient | ErrorKind::TooManyConnections => io::ErrorKind::ConnectionAborted,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, e.to_string())
}

impl FtpBackend {
    /// A backend for `url` (its path is the repository root; the password,
    /// if any, is in the URL value, never shown).
    pub fn new(url: FtpUrl, config: FtpConfig) -> FtpBackend {
        let root = url.path.clone();
        FtpBackend::with_pool(Arc::new(Pool::new(url, config)), &root)
    }

    /// A backend for directory `root` of `pool`'s server, over the pool's
    /// connections. Give it a pool of its own: a backup that reads an FTP
    /// dataset holds the dataset's connections while it writes packs, so
    /// the two sharing one pool could wait on each other.
    pub fn with_pool(pool: Arc<Pool>, root: &str) -> FtpBackend {
        FtpBackend {
            pool,
            root: root.to_string(),
            made_dirs: Mutex::new(HashSet::new()),
            walked: Mutex::new(None),
        }
    }

    /// Log in now, so that a wrong password or an unreachable server is
    /// reported before anything else happens.
    pub fn connect(&self) -> Result<()> {
        self.pool
            .run(true, |c: &mut FtpClient| c.noop())
            .map_err(|e| Error::Invalid(format!("{}: {e}", self.location())))
    }

    /// The connection pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Forget the cached listing (after a write or a removal).
    fn changed(&self) {
        *self.walked.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn path(&self, name: &str) -> String {
        if name.is_empty() {
            self.root.clone()
        } else {
            url::join(&self.root, name)
        }
    }

    fn ensure_parent(&self, path: &str) -> Result<()> {
        let parent = url::parent(path).to_string();
        if self
            .made_dirs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&parent)
        {
            return Ok(());
        }
        self.pool
            .run(true, |c: &mut FtpClient| c.mkdir_all(&parent))
            .map_err(|e| backend_err("creating directory", &parent, to_io(e)))?;
        self.made_dirs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(parent);
        Ok(())
    }
}

impl Backend for FtpBackend {
    fn location(&self) -> String {
        self.pool.url().with_path(&self.root).to_string()
    }

    fn root_exists(&self) -> Result<bool> {
        let root = self.root.clone();
        match self.pool.run(true, |c: &mut FtpClient| c.stat(&root)) {
            Ok(Some(e)) if e.kind == EntryKind::Dir => Ok(true),
            Ok(Some(_)) => Err(Error::NotARepository(
                self.location(),
                "it is not a directory".into(),
            )),
            Ok(None) => Ok(false),
            Err(e) => Err(Error::Invalid(format!("{}: {e}", self.location()))),
        }
    }

    fn create_dirs(&self, dirs: &[&str]) -> Result<()> {
        for d in std::iter::once(&"").chain(dirs) {
            let p = self.path(d);
            self.pool
                .run(true, |c: &mut FtpClient| c.mkdir_all(&p))
                .map_err(|e| backend_err("creating directory", d, to_io(e)))?;
            self.made_dirs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(p);
        }
        Ok(())
    }

    fn read(&self, name: &str) -> Result<Vec<u8>> {
        let p = self.path(name);
        // Checked against SIZE: a download cut on the way is a transfer
        // error and is retried, never bytes that fail to parse and make an
        // intact file look corrupt.
        self.pool
            .run_as(true, &format!("reading {name}"), |c: &mut FtpClient| {
                c.get_bytes(&p)
            })
            .map_err(|e| backend_err("reading", name, to_io(e)))
    }

    fn read_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let p = self.path(name);
        self.pool
            .run_as(true, &format!("reading {name}"), |c: &mut FtpClient| {
                c.read_range(&p, offset, len)
            })
            .map_err(|e| backend_err("reading", name, to_io(e)))
    }

    fn write(&self, name: &str, data: &[u8], exclusive: bool) -> Result<()> {
        self.changed();
        let p = self.path(name);
        self.ensure_parent(&p)?;
        // Each attempt has a temporary name of its own; those of failed
        // attempts are removed once the write succeeded (the server may have
        // gone on writing them after the cut).
        let mut failed = Vec::new();
        let r = self
            .pool
            .run_as(true, &format!("writing {name}"), |c: &mut FtpClient| {
                let tmp = bk_ftp::attempt_temp_name(&p);
                let r = c.put_bytes_via(data, &p, &tmp, exclusive);
                match r {
                    // An earlier attempt may have renamed its file into
                    // place and lost only the reply: when the file there
                    // holds our bytes, this write is done.
                    Err(e) if e.kind() == ErrorKind::AlreadyExists && !failed.is_empty() => {
                        match c.get_bytes(&p) {
                            Ok(got) if got == data => Ok(()),
                            // Not known yet: this attempt failed, the next
                            // one looks again.
                            Err(read) if read.is_transient() => Err(read),
                            _ => Err(e),
                        }
                    }
                    Err(e) => {
                        failed.push(tmp);
                        Err(e)
                    }
                    Ok(()) => Ok(()),
                }
            })
            .map_err(|e| backend_err("writing", name, to_io(e)));
        // After a failure the network is likely down: the next writer's
        // recovery removes what is left, and giving up is not held up.
        if r.is_ok() {
            for tmp in &failed {
                let _ = self.pool.run(true, |c: &mut FtpClient| c.remove_file(tmp));
            }
        }
        r
    }

    fn list(&self, dir: &str) -> Result<Vec<ObjectInfo>> {
        let prefix = dir.trim_end_matches('/');
        let cached = self
            .walked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|all| {
                let under = format!("{prefix}/");
                all.iter()
                    .filter_map(|(p, e)| {
                        let rel = if prefix.is_empty() {
                            Some(p.as_str())
                        } else {
                            p.strip_prefix(&under)
                        };
                        rel.map(|r| (r.to_string(), e.clone()))
                    })
                    .collect::<bk_ftp::Tree>()
            });
        let tree = match cached {
            Some(t) => t,
            None => match bk_ftp::walk_remote(&self.pool, &self.path(prefix), false) {
                Ok(t) => t,
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(backend_err("listing", dir, to_io(e))),
            },
        };
        let mut out: Vec<ObjectInfo> = tree
            .into_iter()
            .filter(|(p, e)| {
                let leaf = url::file_name(p);
                e.kind == EntryKind::File && !is_temp_name(leaf)
            })
            .map(|(p, e)| ObjectInfo {
                name: if prefix.is_empty() {
                    p
                } else {
                    format!("{prefix}/{p}")
                },
                size: e.size,
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn replace(&self, name: &str, data: &[u8]) -> Result<()> {
        // put_bytes uploads to a temporary name and renames it over the
        // old one (RNTO replaces an existing file on the servers we test).
        self.write(name, data, false)
    }

    fn root_is_empty(&self) -> Result<bool> {
        let root = self.root.clone();
        match self.pool.run(true, |c: &mut FtpClient| c.list(&root)) {
            Ok(entries) => Ok(entries.is_empty()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(true),
            Err(e) => Err(backend_err("listing", "/", to_io(e))),
        }
    }

    fn remove(&self, name: &str) -> Result<()> {
        self.changed();
        let p = self.path(name);
        let mut tried = false;
        self.pool
            .run_as(true, &format!("removing {name}"), |c: &mut FtpClient| {
                let again = std::mem::replace(&mut tried, true);
                match c.remove_file(&p) {
                    // An earlier attempt may have removed it and lost only
                    // the reply.
                    Err(e) if again && e.kind() == ErrorKind::NotFound => Ok(()),
                    r => r,
                }
            })
            .map_err(|e| backend_err("removing", name, to_io(e)))
    }

    fn remove_temp_files(&self) -> Result<usize> {
        let tree = match bk_ftp::walk_remote(&self.pool, &self.root, false) {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(backend_err("listing", "/", to_io(e))),
        };
        let mut n = 0;
        for (p, e) in &tree {
            let leaf = url::file_name(p);
            let dir = p.rfind('/').map_or("", |i| &p[..i]);
            if e.kind == EntryKind::File && is_temp_name(leaf) && is_repository_dir(dir) {
                let full = self.path(p);
                if self
                    .pool
                    .run(true, |c: &mut FtpClient| c.remove_file(&full))
                    .is_ok()
                {
                    n += 1;
                }
            }
        }
        // `list` filters temporary names, so the walk stays valid.
        *self.walked.lock().unwrap_or_else(|p| p.into_inner()) = Some(tree);
        Ok(n)
    }

    fn write_parallelism(&self) -> usize {
        self.pool.config().connections
    }

    fn prefers_whole_reads(&self) -> bool {
        true
    }

    fn take_retries(&self) -> Vec<String> {
        self.pool
            .take_retried()
            .iter()
            .map(ToString::to_string)
            .collect()
    }
}
