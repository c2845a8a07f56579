//! Tree transfers over several connections: copy up, copy down, mirror.

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::client::FtpClient;
use crate::error::{Error, ErrorKind, Result};
use crate::list::EntryKind;
use crate::pool::Pool;
use crate::tree::{Tree, TreeDiff, TreeEntry, compare, walk_local, walk_remote};
use crate::url;

/// Which way a transfer goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Local → server.
    Upload,
    /// Server → local.
    Download,
}

/// Progress of a tree transfer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Files finished.
    pub files_done: u64,
    /// Files to transfer.
    pub files_total: u64,
    /// Bytes finished.
    pub bytes_done: u64,
    /// Bytes to transfer.
    pub bytes_total: u64,
}

/// Callback receiving progress after each file.
pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// Options of a tree transfer.
#[derive(Clone)]
#[non_exhaustive]
pub struct TransferOptions {
    /// Mirror: also delete what exists only on the destination.
    pub delete: bool,
    /// Allowed mtime difference when comparing (default 2 s).
    pub tolerance: Option<Duration>,
    /// Ask MDTM for exact mtimes when the server only has LIST (whose times
    /// have minute precision, in the server's time zone). On by default: a
    /// same-size edit within the minute would otherwise go unnoticed.
    pub precise_mtimes: bool,
    /// Progress callback.
    pub progress: Option<ProgressFn>,
}

impl Default for TransferOptions {
    fn default() -> Self {
        TransferOptions {
            delete: false,
            tolerance: None,
            precise_mtimes: true,
            progress: None,
        }
    }
}

impl std::fmt::Debug for TransferOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransferOptions")
            .field("delete", &self.delete)
            .field("tolerance", &self.tolerance)
            .field("precise_mtimes", &self.precise_mtimes)
            .finish()
    }
}

impl TransferOptions {
    /// Delete extras on the destination (mirror).
    pub fn delete(mut self, yes: bool) -> Self {
        self.delete = yes;
        self
    }
    /// Progress callback.
    pub fn progress(mut self, f: impl Fn(Progress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }
    /// Exact mtimes via MDTM on LIST-only servers.
    pub fn precise_mtimes(mut self, yes: bool) -> Self {
        self.precise_mtimes = yes;
        self
    }
}

/// What a transfer did.
#[derive(Debug, Clone, Default)]
pub struct TransferReport {
    /// Files transferred.
    pub files: u64,
    /// Bytes transferred.
    pub bytes: u64,
    /// Directories created.
    pub dirs: u64,
    /// Entries deleted on the destination.
    pub deleted: u64,
    /// Symlinks not transferred (FTP cannot create them).
    pub skipped: Vec<String>,
    /// The comparison the transfer acted on.
    pub diff: TreeDiff,
}

/// Copy a local directory tree to `remote` (created with its parents).
pub fn upload_tree(
    pool: &Pool,
    local: &Path,
    remote: &str,
    opts: &TransferOptions,
) -> Result<TransferReport> {
    let src = walk_local(local)?;
    let diff = compare(&src, &Tree::new(), Duration::ZERO);
    execute(pool, Direction::Upload, local, remote, &src, diff, opts)
}

/// Copy a remote directory tree into `local` (created if absent).
pub fn download_tree(
    pool: &Pool,
    remote: &str,
    local: &Path,
    opts: &TransferOptions,
) -> Result<TransferReport> {
    let src = walk_remote(pool, remote, opts.precise_mtimes)?;
    let diff = compare(&src, &Tree::new(), Duration::ZERO);
    execute(pool, Direction::Download, local, remote, &src, diff, opts)
}

/// One-way mirror: transfer only what the comparison says was added or
/// modified, and with `opts.delete` remove what exists only on the
/// destination.
pub fn mirror(
    pool: &Pool,
    direction: Direction,
    local: &Path,
    remote: &str,
    opts: &TransferOptions,
) -> Result<TransferReport> {
    let tol = opts.tolerance.unwrap_or(Duration::from_secs(2));
    let remote_tree = match walk_remote(pool, remote, opts.precise_mtimes) {
        Ok(t) => t,
        Err(e) if e.code() == Some(550) && direction == Direction::Upload => Tree::new(),
        Err(e) => return Err(e),
    };
    let local_tree = match walk_local(local) {
        Ok(t) => t,
        Err(e) if direction == Direction::Download && !local.exists() => {
            let _ = e;
            Tree::new()
        }
        Err(e) => return Err(e),
    };
    let (src, dst) = match direction {
        Direction::Upload => (&local_tree, &remote_tree),
        Direction::Download => (&remote_tree, &local_tree),
    };
    let diff = compare(src, dst, tol);
    execute(pool, direction, local, remote, src, diff, opts)
}

fn execute(
    pool: &Pool,
    direction: Direction,
    local: &Path,
    remote: &str,
    src: &Tree,
    diff: TreeDiff,
    opts: &TransferOptions,
) -> Result<TransferReport> {
    let remote = url::normalize(remote);
    let mut report = TransferReport::default();
    let changed: Vec<&String> = diff.added.iter().chain(&diff.modified).collect();
    // Directories first, parents before children.
    let mut dirs: Vec<&String> = changed
        .iter()
        .copied()
        .filter(|p| src[*p].kind == EntryKind::Dir)
        .collect();
    dirs.sort();
    match direction {
        Direction::Upload => {
            pool.run(true, |c: &mut FtpClient| c.mkdir_all(&remote))?;
            for d in &dirs {
                let p = url::join(&remote, d);
                pool.run(true, |c: &mut FtpClient| c.mkdir_all(&p))?;
                report.dirs += 1;
            }
        }
        Direction::Download => {
            fs::create_dir_all(local).map_err(|e| Error::local("creating directory", local, e))?;
            for d in &dirs {
                let p = local.join(d);
                fs::create_dir_all(&p).map_err(|e| Error::local("creating directory", &p, e))?;
                report.dirs += 1;
            }
        }
    }
    let mut files: Vec<(&String, &TreeEntry)> = Vec::new();
    for p in &changed {
        let e = &src[*p];
        match e.kind {
            EntryKind::File => files.push((p, e)),
            EntryKind::Symlink => report.skipped.push((*p).clone()),
            EntryKind::Dir => {}
        }
    }
    // Big files first, so one does not finish alone at the end.
    files.sort_by_key(|(_, e)| std::cmp::Reverse(e.size));
    let total = Progress {
        files_total: files.len() as u64,
        bytes_total: files.iter().map(|(_, e)| e.size).sum(),
        ..Progress::default()
    };
    let next = AtomicUsize::new(0);
    let done_files = AtomicU64::new(0);
    let done_bytes = AtomicU64::new(0);
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    let threads = pool.config().connections.min(files.len()).max(1);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    if first_error
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .is_some()
                    {
                        return;
                    }
                    let Some(&(rel, e)) = files.get(next.fetch_add(1, Ordering::SeqCst)) else {
                        return;
                    };
                    let rpath = url::join(&remote, rel);
                    let lpath = local.join(rel);
                    let r = match direction {
                        Direction::Upload => {
                            pool.run(true, |c: &mut FtpClient| c.put_file(&lpath, &rpath))
                        }
                        Direction::Download => {
                            let expect = crate::list::RemoteEntry {
                                name: url::file_name(&rpath).to_string(),
                                kind: e.kind,
                                size: e.size,
                                mtime: e.mtime,
                                precision: e.precision,
                                mode: None,
                                target: None,
                            };
                            pool.run(true, |c: &mut FtpClient| {
                                c.get_file(&rpath, &lpath, Some(&expect))
                            })
                        }
                    };
                    match r {
                        Ok(n) => {
                            let p = Progress {
                                files_done: done_files.fetch_add(1, Ordering::SeqCst) + 1,
                                bytes_done: done_bytes.fetch_add(n, Ordering::SeqCst) + n,
                                ..total
                            };
                            if let Some(f) = &opts.progress {
                                f(p);
                            }
                        }
                        Err(err) => {
                            first_error
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .get_or_insert(err);
                            return;
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    report.files = done_files.into_inner();
    report.bytes = done_bytes.into_inner();
    if opts.delete {
        // Deepest first, so directories are empty when their turn comes.
        let mut dels = diff.deleted.clone();
        dels.sort_by_key(|p| std::cmp::Reverse(p.matches('/').count()));
        let dst_kinds: Vec<(String, bool)> = dels
            .iter()
            .map(|p| (p.clone(), is_dir_on_dest(direction, local, p)))
            .collect();
        for (p, _) in dst_kinds {
            match direction {
                Direction::Upload => {
                    let rp = url::join(&remote, &p);
                    match pool.run(true, |c: &mut FtpClient| c.remove_all(&rp)) {
                        Ok(()) => report.deleted += 1,
                        Err(e) if e.kind() == ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
                Direction::Download => {
                    let lp = local.join(&p);
                    let r = match fs::symlink_metadata(&lp) {
                        Ok(m) if m.is_dir() => fs::remove_dir_all(&lp),
                        Ok(_) => fs::remove_file(&lp),
                        Err(_) => Ok(()),
                    };
                    r.map_err(|e| Error::local("deleting", &lp, e))?;
                    report.deleted += 1;
                }
            }
        }
    }
    report.diff = diff;
    Ok(report)
}

fn is_dir_on_dest(direction: Direction, local: &Path, p: &str) -> bool {
    direction == Direction::Download && local.join(p).is_dir()
}
