//! Datasets that live in a directory of an FTP server (pull mode).

use std::io::{self, Read};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use bk_ftp::{
    EntryKind as FtpKind, FtpClient, FtpConfig, FtpUrl, Pool, PooledClient, RemoteEntry, url,
};

use super::{ftp_err, rel_str};
use crate::connector::source::{EntryKind, EntryMeta, Source, SourceEntry, SourceFile};
use crate::error::{Error, Result};

fn meta_of(e: &RemoteEntry) -> EntryMeta {
    let (secs, nsec) = match e.mtime.map(|t| t.duration_since(UNIX_EPOCH)) {
        Some(Ok(d)) => (d.as_secs() as i64, d.subsec_nanos()),
        _ => (0, 0),
    };
    let kind = match e.kind {
        FtpKind::File => EntryKind::File,
        FtpKind::Dir => EntryKind::Dir,
        FtpKind::Symlink => EntryKind::Symlink,
    };
    EntryMeta {
        kind,
        mode: e
            .mode
            .unwrap_or(if kind == EntryKind::Dir { 0o755 } else { 0o644 }),
        uid: 0,
        gid: 0,
        size: Some(e.size),
        mtime: secs,
        mtime_nsec: nsec,
        ctime: 0,
        ctime_nsec: 0,
        inode: 0,
        dev: 0,
        nlink: 1,
        change_token: None,
    }
}

/// A dataset that lives in a directory of an FTP server. Change detection
/// uses the listing's size and mtime; changed files stream from the server
/// through the chunker without touching local disk.
#[derive(Debug)]
pub struct FtpSource {
    pool: Arc<Pool>,
    root: String,
}

impl FtpSource {
    /// The dataset at `url` (its path is the dataset's root directory),
    /// over connections of its own.
    pub fn new(url: FtpUrl, config: FtpConfig) -> FtpSource {
        let root = url.path.clone();
        FtpSource::with_pool(Arc::new(Pool::new(url, config)), &root)
    }

    /// The dataset in directory `root` of `pool`'s server, over the pool's
    /// connections (already logged in, say, and kept after the backup).
    pub fn with_pool(pool: Arc<Pool>, root: &str) -> FtpSource {
        FtpSource {
            pool,
            root: root.to_string(),
        }
    }

    /// The connection pool (for counters).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    fn path(&self, rel: &[u8]) -> Result<String> {
        Ok(if rel.is_empty() {
            self.root.clone()
        } else {
            url::join(&self.root, rel_str(rel)?)
        })
    }
}

struct FtpFile {
    download: Option<bk_ftp::Download>,
    client: PooledClient,
    done: bool,
}

impl Read for FtpFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(d) = self.download.as_mut() else {
            return Ok(0);
        };
        let n = d.read(buf)?;
        if n == 0 && !self.done {
            self.done = true;
            // The completion reply tells a whole file from a cut transfer.
            if let Some(d) = self.download.take() {
                d.finish().map_err(|e| io::Error::other(e.to_string()))?;
            }
        }
        Ok(n)
    }
}

impl SourceFile for FtpFile {
    fn meta_now(&self) -> Option<EntryMeta> {
        None
    }
}

impl Drop for FtpFile {
    fn drop(&mut self) {
        if self.download.is_some() {
            // Dropped mid-transfer: the session is out of step.
            self.client.mark_broken();
        }
    }
}

impl Source for FtpSource {
    fn describe(&self) -> String {
        self.pool.url().with_path(&self.root).to_string()
    }

    fn root(&self) -> Result<EntryMeta> {
        let root = self.root.clone();
        let e = self
            .pool
            .run(true, |c: &mut FtpClient| c.stat(&root))
            .map_err(|e| Error::Invalid(format!("{}: {e}", self.describe())))?;
        match e {
            Some(e) if e.kind == FtpKind::Dir => Ok(meta_of(&e)),
            Some(_) => Err(Error::Invalid(format!(
                "cannot back up {}: it is not a directory",
                self.describe()
            ))),
            None => Err(Error::Invalid(format!(
                "cannot back up {}: no such directory on the server",
                self.describe()
            ))),
        }
    }

    fn list(&self, dir: &[u8]) -> Result<Vec<SourceEntry>> {
        let p = self.path(dir)?;
        let entries = self
            .pool
            .run(true, |c: &mut FtpClient| c.list(&p))
            .map_err(ftp_err)?;
        let mut out: Vec<SourceEntry> = entries
            .iter()
            .map(|e| SourceEntry {
                name: e.name.as_bytes().to_vec(),
                meta: Ok(meta_of(e)),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn open(&self, path: &[u8]) -> Result<Box<dyn SourceFile>> {
        let p = self.path(path)?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let r = self.pool.checkout().and_then(|mut client| {
                let d = client.open_download(&p);
                match d {
                    Ok(d) => Ok(FtpFile {
                        download: Some(d),
                        client,
                        done: false,
                    }),
                    Err(e) => {
                        if e.is_transient() {
                            client.mark_broken();
                        }
                        Err(e)
                    }
                }
            });
            match r {
                Ok(f) => return Ok(Box::new(f)),
                Err(e) if e.is_transient() && attempt < self.pool.config().retries => {
                    std::thread::sleep(self.pool.config().backoff * attempt);
                }
                Err(e) => return Err(ftp_err(e)),
            }
        }
    }

    fn read_link(&self, path: &[u8]) -> Result<Vec<u8>> {
        let p = self.path(path)?;
        let parent = url::parent(&p).to_string();
        let name = url::file_name(&p).to_string();
        let entries = self
            .pool
            .run(true, |c: &mut FtpClient| c.list(&parent))
            .map_err(ftp_err)?;
        let mut target = entries
            .into_iter()
            .find(|e| e.name == name)
            .and_then(|e| e.target);
        if target.is_none() {
            // MLSD may not say (pure-ftpd); the LIST format's `name -> target` does.
            target = self
                .pool
                .run(true, |c: &mut FtpClient| c.list_with_list(&parent))
                .ok()
                .and_then(|l| l.into_iter().find(|e| e.name == name))
                .and_then(|e| e.target);
        }
        target.map(String::into_bytes).ok_or_else(|| {
            Error::Invalid(format!("the server does not tell where symlink {p} points"))
        })
    }

    fn mtime_granularity_secs(&self) -> u32 {
        // MLSD gives whole seconds at best (LIST minutes: see list.rs).
        1
    }
}
