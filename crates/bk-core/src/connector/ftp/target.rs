//! Restores pushed to a directory of an FTP server.

use std::io::{self, Write};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bk_ftp::{FtpClient, FtpConfig, FtpUrl, Pool, url};

use super::ftp_err;
use crate::connector::target::{ChunkFeed, Target};
use crate::error::{Error, Result};
use crate::tree::{Node, NodeKind};

/// A restore into a directory of an FTP server: directories created, files
/// uploaded under a temporary name and renamed into place, mtimes set where
/// the server allows (MFMT).
#[derive(Debug)]
pub struct FtpTarget {
    pool: Arc<Pool>,
    root: String,
}

impl FtpTarget {
    /// Prepare `url`'s directory: absent or empty unless `overwrite`;
    /// over connections of its own.
    pub fn new(url: FtpUrl, config: FtpConfig, overwrite: bool) -> Result<FtpTarget> {
        let root = url.path.clone();
        FtpTarget::with_pool(Arc::new(Pool::new(url, config)), &root, overwrite)
    }

    /// Prepare directory `root` of `pool`'s server, as [`FtpTarget::new`]
    /// does, over the pool's connections.
    pub fn with_pool(pool: Arc<Pool>, root: &str, overwrite: bool) -> Result<FtpTarget> {
        let root = root.to_string();
        let shown = pool.url().with_path(&root).to_string();
        let existing = match pool.run(true, |c: &mut FtpClient| c.list(&root)) {
            Ok(e) => e,
            Err(e) if e.kind() == bk_ftp::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::Invalid(format!("{shown}: {e}"))),
        };
        if !existing.is_empty() && !overwrite {
            return Err(Error::Invalid(format!(
                "output directory {shown} is not empty (pass --overwrite to restore into it)"
            )));
        }
        pool.run(true, |c: &mut FtpClient| c.mkdir_all(&root))
            .map_err(|e| Error::Invalid(format!("{shown}: {e}")))?;
        Ok(FtpTarget { pool, root })
    }

    /// One upload attempt; the flag says whether retrying may help.
    fn try_write(
        &self,
        p: &str,
        tmp: &str,
        node: &Node,
        chunks: &mut ChunkFeed<'_>,
    ) -> std::result::Result<(), (Error, bool)> {
        let ftp = |e: bk_ftp::Error| {
            let t = e.is_transient();
            (ftp_err(e), t)
        };
        let mut client = self.pool.checkout().map_err(ftp)?;
        let mut up = match client.open_upload(tmp) {
            Ok(u) => u,
            Err(e) => {
                if e.is_transient() {
                    client.mark_broken();
                }
                return Err(ftp(e));
            }
        };
        let mut sent = 0u64;
        let mut network_failed = false;
        let fed = chunks(&mut |b: &[u8]| {
            sent += b.len() as u64;
            up.write_all(b).inspect_err(|_| network_failed = true)
        });
        if let Err(e) = fed {
            // Drop the partial upload; the session is out of step.
            drop(up);
            client.mark_broken();
            return Err((e, network_failed));
        }
        if let Err(e) = up.finish() {
            client.mark_broken();
            return Err(ftp(e));
        }
        let size = client.size(tmp).map_err(ftp)?;
        if size != sent {
            return Err((
                Error::Invalid(format!(
                    "uploading {p}: the server has {size} bytes, {sent} were sent"
                )),
                true,
            ));
        }
        client.rename(tmp, p).map_err(ftp)?;
        let _ = client.set_mtime(p, mtime_of(node));
        match apply_mode(&mut client, p, node) {
            // The content is in place; retrying would not help.
            Some(msg) => Err((Error::Invalid(msg), false)),
            None => Ok(()),
        }
    }

    fn path(&self, rel: &[u8]) -> io::Result<String> {
        let r = std::str::from_utf8(rel).map_err(|_| {
            io::Error::other("the name is not valid UTF-8 and cannot be sent over FTP")
        })?;
        Ok(if r.is_empty() {
            self.root.clone()
        } else {
            url::join(&self.root, r)
        })
    }
}

/// Set `node`'s mode on the uploaded `p` with `SITE CHMOD`. Where the
/// server cannot, a message (the restore error) when the file is now
/// readable or writable by more users than it was.
fn apply_mode(client: &mut FtpClient, p: &str, node: &Node) -> Option<String> {
    let why = match client.chmod(p, node.mode) {
        Ok(true) => return None,
        Ok(false) => "the server does not support SITE CHMOD".to_string(),
        Err(e) => e.to_string(),
    };
    // What the server gave it, if its listing says; else the usual default.
    let listed = client.stat(p).ok().flatten().and_then(|e| e.mode);
    let default = if node.kind == NodeKind::Dir {
        0o755
    } else {
        0o644
    };
    let now = listed.unwrap_or(default);
    let was = node.mode & 0o7777;
    if now & !node.mode & 0o077 == 0 {
        return None;
    }
    let is = match listed {
        Some(m) => format!("is mode {m:o} on the server"),
        None => format!("has the server's default mode (usually {default:o})"),
    };
    Some(format!(
        "{p} {is}, more open than its {was:o} ({why}); set its mode on the server"
    ))
}

fn mtime_of(n: &Node) -> SystemTime {
    if n.mtime >= 0 {
        UNIX_EPOCH + std::time::Duration::new(n.mtime as u64, n.mtime_nsec)
    } else {
        UNIX_EPOCH
    }
}

impl Target for FtpTarget {
    fn create_dir(&self, path: &[u8]) -> io::Result<()> {
        let p = self.path(path)?;
        self.pool
            .run(true, |c: &mut FtpClient| c.mkdir_all(&p))
            .map_err(|e| io::Error::other(e.to_string()))
    }

    fn write_file(&self, path: &[u8], node: &Node, chunks: &mut ChunkFeed<'_>) -> Result<()> {
        let p = self.path(path).map_err(|e| Error::Invalid(e.to_string()))?;
        // The upload goes to a temporary name, so a transient failure
        // (425, a dropped connection) is retried from the start; each
        // attempt has a name of its own, as the repository's uploads do, so
        // that a server still writing a cut attempt never reaches the file
        // renamed into place.
        let cfg = self.pool.config();
        let mut delay = cfg.backoff;
        let mut attempt = 1;
        let mut failed: Vec<String> = Vec::new();
        loop {
            let tmp = bk_ftp::attempt_temp_name(&p);
            match self.try_write(&p, &tmp, node, chunks) {
                Ok(()) => {
                    for t in &failed {
                        let _ = self.pool.run(true, |c| c.remove_file(t));
                    }
                    return Ok(());
                }
                Err((_, true)) if attempt < cfg.retries => {
                    failed.push(tmp);
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(std::time::Duration::from_secs(5));
                    attempt += 1;
                }
                Err((e, _)) => {
                    // Best effort, one attempt each: a restore that failed
                    // here (damaged data, a cancel, a dead network) leaves
                    // no partial upload behind, and a dead network does not
                    // hold it up.
                    for t in failed.iter().chain(std::iter::once(&tmp)) {
                        let _ = self.pool.run(false, |c| c.remove_file(t));
                    }
                    return Err(e);
                }
            }
        }
    }

    fn supports_links(&self) -> bool {
        false
    }

    fn hard_link(&self, _existing: &[u8], _path: &[u8]) -> io::Result<()> {
        Err(io::Error::other("FTP cannot create hard links"))
    }

    fn create_special(&self, _path: &[u8], node: &Node) -> io::Result<()> {
        Err(io::Error::other(match node.kind {
            NodeKind::Symlink => "not restored: FTP cannot create symlinks",
            _ => "not restored: FTP cannot create named pipes",
        }))
    }

    fn set_meta(&self, path: &[u8], node: &Node) -> io::Result<()> {
        if node.kind == NodeKind::Dir {
            let p = self.path(path)?;
            let wider = self
                .pool
                .run(true, |c: &mut FtpClient| Ok(apply_mode(c, &p, node)))
                .map_err(|e| io::Error::other(e.to_string()))?;
            // Best effort: few servers set directory mtimes.
            let _ = self
                .pool
                .run(true, |c: &mut FtpClient| c.set_mtime(&p, mtime_of(node)));
            if let Some(msg) = wider {
                return Err(io::Error::other(msg));
            }
        }
        Ok(())
    }
}
