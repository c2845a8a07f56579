//! Restore: plan what to write, then write it through a [`Target`].

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use filetime::FileTime;

use crate::error::{Error, IoContext, Result};
use crate::id::Id;
use crate::index::Index;
use crate::repo::{PackFeed, Repository};
use crate::snapshot::{Select, Snapshot, Warning, select};
use crate::tree::{Node, NodeKind, Tree, check_name, display_path, join};

/// Receives the progress of a restore, from the writer threads (so it must
/// be cheap and thread-safe). Every method has a no-op default.
pub trait RestoreProgress: Send + Sync {
    /// The plan is made: this many files and bytes of content will be written.
    fn planned(&self, _files: u64, _bytes: u64) {}
    /// `bytes` more bytes of `path` were written.
    fn bytes_written(&self, _path: &[u8], _bytes: u64) {}
    /// A file was written (or failed: the restore's errors say which).
    fn file_done(&self, _path: &[u8]) {}
}

/// The progress receiver that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl RestoreProgress for NoProgress {}

/// Options of a restore.
#[derive(Clone)]
#[non_exhaustive]
pub struct RestoreOptions {
    /// Which snapshot.
    pub select: Select,
    /// Only this path (`/`-separated, relative to the dataset root).
    pub path: Option<Vec<u8>>,
    /// Allow a non-empty output directory; existing entries are replaced,
    /// entries the snapshot does not have are kept (and reported), and a
    /// directory where the snapshot has another kind of entry is refused.
    pub overwrite: bool,
    /// Make the output an exact copy: like `overwrite`, and remove every
    /// entry the snapshot does not have (reported in [`Changes::removed`]).
    /// A target that cannot remove entries refuses it.
    pub delete: bool,
    /// Parallel file writers (0 = default).
    pub threads: usize,
    /// Progress receiver.
    pub progress: Option<Arc<dyn RestoreProgress>>,
}

impl std::fmt::Debug for RestoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestoreOptions")
            .field("select", &self.select)
            .field("path", &self.path)
            .field("overwrite", &self.overwrite)
            .field("delete", &self.delete)
            .field("threads", &self.threads)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            select: Select::Latest,
            path: None,
            overwrite: false,
            delete: false,
            threads: 0,
            progress: None,
        }
    }
}

impl RestoreOptions {
    /// Restore this snapshot.
    pub fn new(select: Select) -> Self {
        RestoreOptions {
            select,
            ..Default::default()
        }
    }
    /// Only this path.
    pub fn path(mut self, p: impl Into<Vec<u8>>) -> Self {
        self.path = Some(p.into());
        self
    }
    /// Allow a non-empty output directory.
    pub fn overwrite(mut self, yes: bool) -> Self {
        self.overwrite = yes;
        self
    }
    /// Make the output an exact copy of the snapshot (implies `overwrite`).
    pub fn delete(mut self, yes: bool) -> Self {
        self.delete = yes;
        self
    }
    /// Report progress to `p`.
    pub fn progress(mut self, p: Arc<dyn RestoreProgress>) -> Self {
        self.progress = Some(p);
        self
    }
}

/// A file or entry that could not be restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreError {
    /// Path (display form).
    pub path: String,
    /// Why.
    pub message: String,
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct RestoreReport {
    /// The snapshot restored.
    pub snapshot: Snapshot,
    /// What was written.
    pub outcome: Outcome,
    /// The snapshot's warnings about what was restored (all of them, or
    /// those at, under or above the restored path): entries the backup could
    /// not read, so the restore lacks them although nothing failed now.
    pub not_backed_up: Vec<Warning>,
    /// What happened to entries that were in the output before.
    pub changes: Changes,
}

impl RestoreReport {
    /// Everything the snapshot has was restored, and the snapshot lacks
    /// nothing that the backup met.
    pub fn is_complete(&self) -> bool {
        self.outcome.errors.is_empty() && self.not_backed_up.is_empty()
    }
}

/// What a restore did to entries that were in the output before it
/// (display paths relative to the output; directories end in `/`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Existing entries replaced by the snapshot's.
    pub replaced: Vec<String>,
    /// Entries the snapshot does not have, left in place (`overwrite`).
    pub kept: Vec<String>,
    /// Entries removed (`delete`): not in the snapshot, or a directory where
    /// the snapshot has a file, symlink or FIFO.
    pub removed: Vec<String>,
    /// Temporary files of an interrupted restore (`.bk-restore-PID-N`)
    /// that were removed.
    pub leftovers: Vec<String>,
}

/// What executing a plan did.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Files written.
    pub files: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Directories, symlinks, FIFOs and hard links created.
    pub others: u64,
    /// What failed. Non-empty means the restore is incomplete.
    pub errors: Vec<RestoreError>,
}

/// One step of a restore plan.
#[derive(Debug, Clone)]
pub struct PlanEntry {
    /// Path relative to the output directory (bytes).
    pub path: Vec<u8>,
    /// The node.
    pub node: Node,
}

/// What a restore will do, computed before anything is written.
#[derive(Debug, Clone, Default)]
pub struct RestorePlan {
    /// Directories, parents before children.
    pub dirs: Vec<PlanEntry>,
    /// Regular files, in pack order.
    pub files: Vec<PlanEntry>,
    /// Symlinks and FIFOs.
    pub specials: Vec<PlanEntry>,
    /// Total bytes of file content.
    pub bytes: u64,
    /// Directories whose tree could not be read: they are created (empty,
    /// with their metadata) and the restore reports them as errors.
    pub unreadable: Vec<UnreadableDir>,
    /// Directories created only as parents of the selected path (the root,
    /// `""`, among them): the restore does not write all their entries.
    pub partial_dirs: Vec<Vec<u8>>,
}

/// A directory of the snapshot whose entries could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableDir {
    /// Path relative to the output directory (bytes; `""` is the root).
    pub path: Vec<u8>,
    /// Why (the repository error).
    pub reason: String,
}

/// A path for messages; the root is ".".
fn shown(path: &[u8]) -> String {
    if path.is_empty() {
        ".".into()
    } else {
        display_path(path)
    }
}

/// Add the entries of directory `prefix` (tree `tree`). A tree that cannot
/// be read or is malformed costs only that directory's contents: it is
/// recorded in `plan.unreadable` and the walk goes on. A name that would
/// escape the output is no damage but a hostile repository: that refuses
/// the whole restore.
fn collect(
    repo: &Repository,
    idx: &Index,
    tree: &Id,
    prefix: &[u8],
    plan: &mut RestorePlan,
) -> Result<()> {
    let t = match read_checked_tree(repo, idx, tree) {
        Ok(t) => t,
        Err(e @ Error::UnsafeName { .. }) => return Err(e),
        Err(e) => {
            plan.unreadable.push(UnreadableDir {
                path: prefix.to_vec(),
                reason: e.to_string(),
            });
            return Ok(());
        }
    };
    for n in t.nodes {
        add_node(repo, idx, prefix, n, plan)?;
    }
    Ok(())
}

fn read_checked_tree(repo: &Repository, idx: &Index, tree: &Id) -> Result<Tree> {
    let t = repo.read_tree(idx, tree)?;
    check_tree(&t)?;
    Ok(t)
}

fn check_tree(t: &Tree) -> Result<()> {
    for (i, n) in t.nodes.iter().enumerate() {
        check_name(&n.name)?;
        if i > 0 && t.nodes[i - 1].name >= n.name {
            return Err(Error::Corrupt {
                name: "tree".into(),
                reason: format!(
                    "entries not sorted or duplicated at {:?}",
                    display_path(&n.name)
                ),
            });
        }
    }
    Ok(())
}

fn add_node(
    repo: &Repository,
    idx: &Index,
    prefix: &[u8],
    n: Node,
    plan: &mut RestorePlan,
) -> Result<()> {
    let path = join(prefix, &n.name);
    match n.kind {
        NodeKind::Dir => {
            let sub = n.subtree;
            plan.dirs.push(PlanEntry {
                path: path.clone(),
                node: n,
            });
            if let Some(sub) = sub {
                collect(repo, idx, &sub, &path, plan)?;
            }
        }
        NodeKind::File => {
            plan.bytes += n.size;
            plan.files.push(PlanEntry { path, node: n });
        }
        NodeKind::Symlink | NodeKind::Fifo => plan.specials.push(PlanEntry { path, node: n }),
    }
    Ok(())
}

/// Plan the restore of `snap` (optionally one path of it). Directories
/// whose tree cannot be read are listed in the plan's `unreadable`; only a
/// directory on the way to `path` that cannot be read is an error.
pub fn plan(
    repo: &Repository,
    idx: &Index,
    snap: &Snapshot,
    path: Option<&[u8]>,
) -> Result<RestorePlan> {
    let mut plan = RestorePlan::default();
    let comps: Vec<&[u8]> = path
        .unwrap_or(b"")
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect();
    // The path is the user's, not the repository's: say so when it is bad.
    if comps.iter().any(|c| *c == b".." || c.contains(&0)) {
        return Err(Error::Invalid(format!(
            "path {:?} is not inside the dataset: give a path relative to the dataset root, without '..'",
            display_path(path.unwrap_or(b""))
        )));
    }
    if comps.is_empty() {
        collect(repo, idx, &snap.tree, b"", &mut plan)?;
    } else {
        let unreadable = |dir: &[u8], e: Error| match e {
            Error::UnsafeName { .. } => e,
            e => Error::UnreadableDir {
                path: shown(dir),
                reason: e.to_string(),
            },
        };
        let not_found = || Error::PathNotFound {
            dataset: snap.dataset.clone(),
            id: snap.id,
            path: display_path(path.unwrap_or(b"")),
        };
        let mut tree = read_checked_tree(repo, idx, &snap.tree).map_err(|e| unreadable(b"", e))?;
        let mut prefix = Vec::new();
        plan.partial_dirs.push(Vec::new());
        for (i, c) in comps.iter().enumerate() {
            check_name(c)?;
            let node = tree.find(c).cloned().ok_or_else(not_found)?;
            if i + 1 == comps.len() {
                add_node(repo, idx, &prefix, node, &mut plan)?;
                break;
            }
            if node.kind != NodeKind::Dir {
                return Err(not_found());
            }
            // Parents of the selected path are created with their metadata.
            let sub = node.subtree.ok_or_else(not_found)?;
            prefix = join(&prefix, c);
            plan.dirs.push(PlanEntry {
                path: prefix.clone(),
                node,
            });
            plan.partial_dirs.push(prefix.clone());
            tree = read_checked_tree(repo, idx, &sub).map_err(|e| unreadable(&prefix, e))?;
        }
    }
    // Read packs in order: files whose first blob sits early in a pack go first.
    plan.files.sort_by_key(|e| {
        e.node
            .content
            .first()
            .and_then(|id| idx.get(id))
            .map(|l| (l.pack, l.entry.offset))
    });
    Ok(plan)
}

/// Receives a file's content, piece by piece.
pub type WriteChunk<'a> = dyn FnMut(&[u8]) -> io::Result<()> + 'a;
/// Feeds a file's content, in order, to a [`WriteChunk`].
pub type ChunkFeed<'a> = dyn FnMut(&mut WriteChunk<'_>) -> Result<()> + 'a;

/// Where a restore writes. A local directory now; FTP later.
pub trait Target: Sync {
    /// Create a directory (parents exist). Existing directories are fine.
    fn create_dir(&self, path: &[u8]) -> io::Result<()>;
    /// Write a file from its chunks, atomically (temporary name, rename).
    fn write_file(&self, path: &[u8], node: &Node, chunks: &mut ChunkFeed<'_>) -> Result<()>;
    /// Whether [`Target::hard_link`] works; if not, every name of a hard-link
    /// group is written as its own copy.
    fn supports_links(&self) -> bool {
        true
    }
    /// Create a hard link `path` to the already restored `existing`.
    fn hard_link(&self, existing: &[u8], path: &[u8]) -> io::Result<()>;
    /// Create a symlink or FIFO.
    fn create_special(&self, path: &[u8], node: &Node) -> io::Result<()>;
    /// Set mode, owner and mtime of an entry.
    fn set_meta(&self, path: &[u8], node: &Node) -> io::Result<()>;
    /// Deal with the entries of the (already created) directory `dir` whose
    /// names are not in `names`, the snapshot's entries there: keep them or,
    /// when mirroring, remove them; either way record them for
    /// [`Target::take_changes`]. Called before anything is written into
    /// `dir`. The default does nothing.
    fn sweep(&self, _dir: &[u8], _names: &HashSet<&[u8]>) -> io::Result<()> {
        Ok(())
    }
    /// Whether [`Target::sweep`] removes what the snapshot does not have
    /// ([`RestoreOptions::delete`] is refused for a target that does not).
    fn mirrors(&self) -> bool {
        false
    }
    /// What the target did to entries that were there before (drained).
    fn take_changes(&self) -> Changes {
        Changes::default()
    }
}

/// Whether `name` is a temporary name of this restorer:
/// `.bk-restore-<pid>-<n>`, both numbers digits only. Returns the pid.
fn restore_temp_pid(name: &[u8]) -> Option<u64> {
    let rest = name.strip_prefix(b".bk-restore-")?;
    let dash = rest.iter().position(|&b| b == b'-')?;
    let (pid, n) = (&rest[..dash], &rest[dash + 1..]);
    let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    if !digits(pid) || !digits(n) {
        return None;
    }
    std::str::from_utf8(pid).ok()?.parse().ok()
}

/// Whether process `pid` exists here (its temporary files are in use).
fn pid_alive(pid: u64) -> bool {
    let Ok(p) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if p <= 0 {
        return true; // not a process id: leave the file alone
    }
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(p, 0) == 0 || *libc::__errno_location() == libc::EPERM }
}

/// A local output directory.
#[derive(Debug)]
pub struct LocalTarget {
    root: PathBuf,
    overwrite: bool,
    delete: bool,
    counter: AtomicU64,
    is_root: bool,
    changes: Mutex<Changes>,
}

impl LocalTarget {
    /// Prepare `root`: it must be absent or empty unless `overwrite`.
    /// Temporary files an interrupted restore left there do not count, and
    /// are removed (also from every existing directory the restore writes).
    pub fn new(root: &Path, overwrite: bool) -> Result<LocalTarget> {
        match fs::symlink_metadata(root) {
            Ok(m) if m.is_dir() => {
                let mut nonempty = false;
                for e in fs::read_dir(root).ctx("reading", root)? {
                    let e = e.ctx("reading", root)?;
                    if restore_temp_pid(e.file_name().as_bytes()).is_none() {
                        nonempty = true;
                        break;
                    }
                }
                if nonempty && !overwrite {
                    return Err(Error::OutputNotEmpty(root.to_path_buf()));
                }
            }
            Ok(_) => {
                return Err(Error::Invalid(format!(
                    "output path {} exists and is not a directory",
                    root.display()
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(root).ctx("creating directory", root)?;
            }
            Err(e) => return Err(e).ctx("inspecting", root),
        }
        let t = LocalTarget {
            root: root.to_path_buf(),
            overwrite,
            delete: false,
            counter: AtomicU64::new(0),
            // SAFETY: geteuid has no preconditions.
            is_root: unsafe { libc::geteuid() } == 0,
            changes: Mutex::default(),
        };
        t.remove_leftovers(root);
        Ok(t)
    }

    /// Mirror: remove what the snapshot does not have, and directories
    /// where it has another kind of entry (implies overwriting).
    pub fn delete(mut self, yes: bool) -> Self {
        self.delete = yes;
        self.overwrite |= yes;
        self
    }

    fn changes(&self) -> std::sync::MutexGuard<'_, Changes> {
        self.changes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `p` relative to the root, for reports.
    fn rel(&self, p: &Path, dir: bool) -> String {
        let mut s = shown(
            p.strip_prefix(&self.root)
                .unwrap_or(p)
                .as_os_str()
                .as_bytes(),
        );
        if dir {
            s.push('/');
        }
        s
    }

    /// Remove the temporary files of interrupted restores from `dir`: only
    /// names that match this restorer's pattern exactly, of processes that
    /// are gone, and never a directory.
    fn remove_leftovers(&self, dir: &Path) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let Some(pid) = restore_temp_pid(e.file_name().as_bytes()) else {
                continue;
            };
            if pid == u64::from(std::process::id()) || pid_alive(pid) {
                continue;
            }
            if e.file_type().is_ok_and(|t| !t.is_dir()) && fs::remove_file(e.path()).is_ok() {
                let r = self.rel(&e.path(), false);
                self.changes().leftovers.push(r);
            }
        }
    }

    fn path(&self, rel: &[u8]) -> PathBuf {
        self.root.join(OsStr::from_bytes(rel))
    }

    fn temp_path(&self, rel: &[u8]) -> PathBuf {
        let p = self.path(rel);
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        p.with_file_name(format!(".bk-restore-{}-{n}", std::process::id()))
    }

    /// Make room for a new entry at `p` when overwriting (a symlink is
    /// never followed). A directory is kept for a directory; for another
    /// kind of entry an empty one is replaced, and one with entries is
    /// removed only when mirroring (and named), else refused. What is
    /// replaced or removed is recorded.
    fn clear(&self, p: &Path, keep_dir: bool) -> io::Result<()> {
        if !self.overwrite {
            return Ok(());
        }
        match fs::symlink_metadata(p) {
            Ok(m) if m.is_dir() && keep_dir => Ok(()),
            Ok(m) if m.is_dir() => match fs::remove_dir(p) {
                Ok(()) => {
                    let r = self.rel(p, true);
                    self.changes().replaced.push(r);
                    Ok(())
                }
                Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty && self.delete => {
                    fs::remove_dir_all(p)?;
                    let r = self.rel(p, true);
                    self.changes().removed.push(r);
                    Ok(())
                }
                Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty => Err(io::Error::new(
                    io::ErrorKind::DirectoryNotEmpty,
                    "the output has a directory with entries where the snapshot has none; \
                     kept it (pass --delete to replace it and everything in it)",
                )),
                Err(e) => Err(e),
            },
            Ok(_) => {
                if keep_dir {
                    fs::remove_file(p)?;
                } // else rename() replaces it atomically
                let r = self.rel(p, false);
                self.changes().replaced.push(r);
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl Target for LocalTarget {
    fn create_dir(&self, path: &[u8]) -> io::Result<()> {
        let p = self.path(path);
        self.clear(&p, true)?;
        match fs::create_dir(&p) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                if fs::symlink_metadata(&p)?.is_dir() {
                    self.remove_leftovers(&p);
                    Ok(())
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        "exists and is not a directory",
                    ))
                }
            }
            r => r,
        }
    }

    fn write_file(&self, path: &[u8], node: &Node, chunks: &mut ChunkFeed<'_>) -> Result<()> {
        let dest = self.path(path);
        let tmp = self.temp_path(path);
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o600)
            .open(&tmp)
            .ctx("creating", &tmp)?;
        let res = (|| -> Result<()> {
            let mut w = SparseWriter { f: &f, pos: 0 };
            chunks(&mut |b: &[u8]| w.write(b))?;
            // The length, for a file that ends in a hole.
            f.set_len(w.pos).ctx("writing", &tmp)?;
            if self.is_root {
                std::os::unix::fs::fchown(&f, Some(node.uid), Some(node.gid))
                    .ctx("setting owner of", &dest)?;
            }
            // After the owner (chown drops security.capability), before the
            // mode: chmod then sets an ACL's mask from the mode's group bits,
            // which is what the mask was.
            let xattr_errors = set_xattrs(XattrTarget::Fd(&f), &node.xattrs);
            f.set_permissions(fs::Permissions::from_mode(node.mode))
                .ctx("setting mode of", &dest)?;
            filetime::set_file_handle_times(&f, None, Some(mtime_of(node)))
                .ctx("setting mtime of", &dest)?;
            drop(f);
            if self.overwrite {
                self.clear(&dest, false).ctx("replacing", &dest)?;
            }
            fs::rename(&tmp, &dest).ctx("renaming into place", &dest)?;
            // The content is in place; what is missing is named.
            match xattr_errors {
                None => Ok(()),
                Some(e) => Err(e).ctx("restoring metadata of", &dest),
            }
        })();
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res
    }

    fn hard_link(&self, existing: &[u8], path: &[u8]) -> io::Result<()> {
        let dest = self.path(path);
        let tmp = self.temp_path(path);
        fs::hard_link(self.path(existing), &tmp)?;
        self.clear(&dest, false)?;
        fs::rename(&tmp, &dest).inspect_err(|_| {
            let _ = fs::remove_file(&tmp);
        })
    }

    fn create_special(&self, path: &[u8], node: &Node) -> io::Result<()> {
        let dest = self.path(path);
        let tmp = self.temp_path(path);
        match node.kind {
            NodeKind::Symlink => std::os::unix::fs::symlink(OsStr::from_bytes(&node.target), &tmp)?,
            NodeKind::Fifo => {
                let c = std::ffi::CString::new(tmp.as_os_str().as_bytes())
                    .map_err(|_| io::Error::other("NUL in path"))?;
                // SAFETY: c is a valid NUL-terminated path.
                if unsafe { libc::mkfifo(c.as_ptr(), (node.mode & 0o7777) as libc::mode_t) } != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            _ => return Err(io::Error::other("not a special file")),
        }
        self.clear(&dest, false)?;
        fs::rename(&tmp, &dest).inspect_err(|_| {
            let _ = fs::remove_file(&tmp);
        })?;
        self.set_meta(path, node)
    }

    fn set_meta(&self, path: &[u8], node: &Node) -> io::Result<()> {
        let p = self.path(path);
        let symlink = node.kind == NodeKind::Symlink;
        if self.is_root {
            std::os::unix::fs::lchown(&p, Some(node.uid), Some(node.gid))?;
        }
        let xattr_errors = set_xattrs(XattrTarget::Path(&p), &node.xattrs);
        if !symlink {
            fs::set_permissions(&p, fs::Permissions::from_mode(node.mode))?;
        }
        filetime::set_symlink_file_times(&p, mtime_of(node), mtime_of(node))?;
        xattr_errors.map_or(Ok(()), Err)
    }

    fn sweep(&self, dir: &[u8], names: &HashSet<&[u8]>) -> io::Result<()> {
        if !self.overwrite {
            return Ok(());
        }
        let d = self.path(dir);
        // Only a real directory (its creation replaced a symlink).
        if !fs::symlink_metadata(&d)?.is_dir() {
            return Ok(());
        }
        let mut extra = Vec::new();
        for e in fs::read_dir(&d)? {
            let e = e?;
            let name = e.file_name();
            // Another live restore's temporary files are none of ours.
            if names.contains(name.as_bytes()) || restore_temp_pid(name.as_bytes()).is_some() {
                continue;
            }
            extra.push((e.path(), e.file_type()?.is_dir()));
        }
        extra.sort();
        for (p, is_dir) in extra {
            let r = self.rel(&p, is_dir);
            if !self.delete {
                self.changes().kept.push(r);
                continue;
            }
            if is_dir {
                fs::remove_dir_all(&p)?;
            } else {
                fs::remove_file(&p)?;
            }
            self.changes().removed.push(r);
        }
        Ok(())
    }

    fn mirrors(&self) -> bool {
        self.delete
    }

    fn take_changes(&self) -> Changes {
        let mut c = std::mem::take(&mut *self.changes());
        for v in [
            &mut c.replaced,
            &mut c.kept,
            &mut c.removed,
            &mut c.leftovers,
        ] {
            v.sort();
        }
        c
    }
}

/// Writes a restored file, leaving holes where a whole aligned block is
/// zeros: a sparse file comes back sparse. The scan stops at the first
/// non-zero byte, so ordinary data costs about nothing extra.
struct SparseWriter<'f> {
    f: &'f fs::File,
    /// Bytes of the file written or skipped so far.
    pos: u64,
}

/// Holes are made in units of this (file system blocks are 4 KiB or less
/// on the file systems that have holes).
const HOLE_BLOCK: u64 = 4096;

impl SparseWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let start = self.pos;
        // [run, i) is data not yet written: written in one call per run.
        let (mut run, mut i) = (0usize, 0usize);
        while i < data.len() {
            let off = start + i as u64;
            let n = ((HOLE_BLOCK - off % HOLE_BLOCK) as usize).min(data.len() - i);
            if n as u64 == HOLE_BLOCK && is_zero(&data[i..i + n]) {
                if run < i {
                    self.f.write_all_at(&data[run..i], start + run as u64)?;
                }
                run = i + n;
            }
            i += n;
        }
        if run < data.len() {
            self.f.write_all_at(&data[run..], start + run as u64)?;
        }
        self.pos += data.len() as u64;
        Ok(())
    }
}

fn is_zero(b: &[u8]) -> bool {
    // Whole words first: the compiler turns this into wide compares.
    let (words, rest) = b.split_at(b.len() / 16 * 16);
    words
        .chunks_exact(16)
        .all(|w| u128::from_ne_bytes(w.try_into().expect("16 bytes")) == 0)
        && rest.iter().all(|&x| x == 0)
}

enum XattrTarget<'a> {
    Fd(&'a fs::File),
    /// Not following a symlink.
    Path(&'a Path),
}

/// Set extended attributes; `None` if all were set, else an error naming
/// each one that was not.
fn set_xattrs(t: XattrTarget<'_>, attrs: &[crate::tree::Xattr]) -> Option<io::Error> {
    use std::os::fd::AsRawFd;
    if attrs.is_empty() {
        return None;
    }
    let cpath = match t {
        XattrTarget::Path(p) => match std::ffi::CString::new(p.as_os_str().as_bytes()) {
            Ok(c) => Some(c),
            Err(_) => return Some(io::Error::other("NUL in path")),
        },
        XattrTarget::Fd(_) => None,
    };
    let mut failed = Vec::new();
    for a in attrs {
        let shown = String::from_utf8_lossy(&a.name).into_owned();
        let Ok(name) = std::ffi::CString::new(a.name.as_slice()) else {
            failed.push(format!("{shown} (NUL in its name)"));
            continue;
        };
        let value = a.value.as_ptr().cast();
        // SAFETY: name and the path are NUL-terminated; value is valid for
        // its length; the descriptor is open for the call's duration.
        let r = unsafe {
            match (&t, &cpath) {
                (XattrTarget::Fd(f), _) => {
                    libc::fsetxattr(f.as_raw_fd(), name.as_ptr(), value, a.value.len(), 0)
                }
                (_, Some(c)) => libc::lsetxattr(c.as_ptr(), name.as_ptr(), value, a.value.len(), 0),
                _ => unreachable!("a path target has its C string"),
            }
        };
        if r != 0 {
            failed.push(format!("{shown} ({})", io::Error::last_os_error()));
        }
    }
    (!failed.is_empty()).then(|| {
        io::Error::other(format!(
            "extended attribute(s) not restored: {}",
            failed.join(", ")
        ))
    })
}

fn mtime_of(n: &Node) -> FileTime {
    FileTime::from_unix_time(n.mtime, n.mtime_nsec)
}

/// Restore a snapshot of `dataset` into the local directory `out`.
pub fn restore(
    repo: &Repository,
    dataset: &str,
    out: &Path,
    opts: &RestoreOptions,
) -> Result<RestoreReport> {
    restore_with(repo, dataset, opts, || {
        LocalTarget::new(out, opts.overwrite || opts.delete)
            .map(|t| Box::new(t.delete(opts.delete)) as Box<dyn Target>)
    })
}

/// Restore a snapshot of `dataset` through a target made by `make_target`
/// (called once the snapshot is selected and planned, so that a bad
/// selection creates nothing).
pub fn restore_with(
    repo: &Repository,
    dataset: &str,
    opts: &RestoreOptions,
    make_target: impl FnOnce() -> Result<Box<dyn Target>>,
) -> Result<RestoreReport> {
    let snaps = repo.snapshots(Some(dataset))?;
    let snap = select(dataset, &snaps, opts.select)?.clone();
    let idx = repo.load_index()?;
    let plan = plan(repo, &idx, &snap, opts.path.as_deref())?;
    let progress: &dyn RestoreProgress = match &opts.progress {
        Some(p) => &**p,
        None => &NoProgress,
    };
    progress.planned(plan.files.len() as u64, plan.bytes);
    let target = make_target()?;
    let target = &*target;
    if opts.delete && !target.mirrors() {
        return Err(Error::Invalid(
            "this output cannot remove entries, so it cannot be made an exact copy; \
             restore without delete"
                .into(),
        ));
    }
    let mut outcome = execute_with(repo, &idx, &plan, target, opts.threads, progress)?;
    if opts.path.is_none() {
        let root = Node {
            name: Vec::new(),
            kind: NodeKind::Dir,
            mode: snap.root.mode,
            uid: snap.root.uid,
            gid: snap.root.gid,
            mtime: snap.root.mtime,
            mtime_nsec: snap.root.mtime_nsec,
            size: 0,
            inode: 0,
            ctime: 0,
            ctime_nsec: 0,
            xattrs: Vec::new(),
            hardlink: None,
            content: Vec::new(),
            subtree: None,
            target: Vec::new(),
        };
        if let Err(e) = target.set_meta(b"", &root) {
            outcome.errors.push(RestoreError {
                path: ".".into(),
                message: format!("setting metadata: {e}"),
            });
        }
    }
    let not_backed_up = warnings_about(&snap.warnings, opts.path.as_deref());
    Ok(RestoreReport {
        snapshot: snap,
        outcome,
        not_backed_up,
        changes: target.take_changes(),
    })
}

/// The warnings that concern a restore of `path` (all without one): those
/// at or under it, and those of a directory above it.
fn warnings_about(warnings: &[Warning], path: Option<&[u8]>) -> Vec<Warning> {
    // A file that changed while it was read was stored all the same.
    let warnings: Vec<Warning> = warnings
        .iter()
        .filter(|w| w.message != crate::archiver::CHANGED_WHILE_READ)
        .cloned()
        .collect();
    let warnings = &warnings[..];
    let sel: Vec<&[u8]> = path
        .unwrap_or(b"")
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect();
    if sel.is_empty() {
        return warnings.to_vec();
    }
    let sel = display_path(&sel.join(&b'/'));
    warnings
        .iter()
        .filter(|w| {
            let w = w.path.trim_end_matches('/');
            let under = |a: &str, b: &str| a == b || a.starts_with(&format!("{b}/"));
            w.is_empty() || under(w, &sel) || under(&sel, w)
        })
        .cloned()
        .collect()
}

/// Carry out a plan.
pub fn execute(
    repo: &Repository,
    idx: &Index,
    plan: &RestorePlan,
    target: &dyn Target,
    threads: usize,
) -> Result<Outcome> {
    execute_with(repo, idx, plan, target, threads, &NoProgress)
}

/// Carry out a plan, reporting progress.
pub fn execute_with(
    repo: &Repository,
    idx: &Index,
    plan: &RestorePlan,
    target: &dyn Target,
    threads: usize,
    progress: &dyn RestoreProgress,
) -> Result<Outcome> {
    let errors = Mutex::new(Vec::new());
    let fail = |path: &[u8], message: String| {
        errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(RestoreError {
                path: shown(path),
                message,
            });
    };
    for u in &plan.unreadable {
        fail(
            &u.path,
            format!("directory contents not restored: {}", u.reason),
        );
    }
    let mut others = 0u64;
    let mut created: HashSet<&[u8]> = HashSet::new();
    created.insert(b"");
    for d in &plan.dirs {
        match target.create_dir(&d.path) {
            Ok(()) => {
                others += 1;
                created.insert(&d.path);
            }
            Err(e) => fail(&d.path, format!("creating directory: {e}")),
        }
    }
    // Entries of the output the snapshot does not have, in every directory
    // whose contents the restore writes in full, before anything is written.
    let mut names: HashMap<&[u8], HashSet<&[u8]>> = HashMap::new();
    for e in plan.dirs.iter().chain(&plan.files).chain(&plan.specials) {
        let (dir, name) = match e.path.iter().rposition(|&b| b == b'/') {
            Some(i) => (&e.path[..i], &e.path[i + 1..]),
            None => (&b""[..], &e.path[..]),
        };
        names.entry(dir).or_default().insert(name);
    }
    let skip: HashSet<&[u8]> = plan
        .partial_dirs
        .iter()
        .map(Vec::as_slice)
        .chain(plan.unreadable.iter().map(|u| u.path.as_slice()))
        .collect();
    let empty = HashSet::new();
    let whole = std::iter::once(&b""[..]).filter(|_| !plan.partial_dirs.iter().any(Vec::is_empty));
    for dir in whole.chain(plan.dirs.iter().map(|d| d.path.as_slice())) {
        if skip.contains(dir) || !created.contains(dir) {
            continue;
        }
        if let Err(e) = target.sweep(dir, names.get(dir).unwrap_or(&empty)) {
            fail(dir, format!("sorting out entries not in the snapshot: {e}"));
        }
    }
    // The first name of each hard-link group gets the content, the others
    // become links to it. A name is linked only to one with the same size
    // and content: snapshots made before groups were keyed by device and
    // inode can hold one group id for files of several file systems.
    let mut first_of: HashMap<(u64, u64, &[Id]), usize> = HashMap::new();
    let mut links = Vec::new();
    let mut writes = Vec::new();
    let links_ok = target.supports_links();
    for (i, f) in plan.files.iter().enumerate() {
        match f.node.hardlink.filter(|_| links_ok) {
            Some(g) => match first_of.entry((g, f.node.size, &f.node.content)) {
                std::collections::hash_map::Entry::Occupied(first) => links.push((*first.get(), i)),
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(i);
                    writes.push(i);
                }
            },
            None => writes.push(i),
        }
    }
    // Largest first, as the backup read them: blobs sit in the packs in
    // the order the backup's workers produced them, so the restore's
    // threads then move through the packs about together, and the pack
    // feed holds few packs at a time.
    writes.sort_by_cached_key(|&i| {
        let n = &plan.files[i].node;
        let first = n.content.first().and_then(|id| idx.get(id));
        (
            std::cmp::Reverse(n.size),
            first.map(|l| (l.pack, l.entry.offset)),
        )
    });
    let threads = if threads == 0 { 8 } else { threads };
    let feed = PackFeed::new(
        repo,
        idx,
        writes.iter().flat_map(|&i| &plan.files[i].node.content),
        threads + 4,
    );
    let next = AtomicUsize::new(0);
    let files = AtomicU64::new(0);
    let bytes = AtomicU64::new(0);
    let failed_files: Mutex<std::collections::HashSet<usize>> = Mutex::default();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&i) = writes.get(k) else { return };
                    let e = &plan.files[i];
                    let mut written = 0u64;
                    let r = target.write_file(&e.path, &e.node, &mut |sink| {
                        // A target may retry and feed the content again.
                        written = 0;
                        for id in &e.node.content {
                            let data = feed.read(id)?;
                            sink(&data).map_err(|err| Error::Io {
                                action: "writing",
                                path: PathBuf::from(OsStr::from_bytes(&e.path)),
                                source: err,
                            })?;
                            written += data.len() as u64;
                            progress.bytes_written(&e.path, data.len() as u64);
                        }
                        Ok(())
                    });
                    progress.file_done(&e.path);
                    match r {
                        Ok(()) => {
                            files.fetch_add(1, Ordering::Relaxed);
                            bytes.fetch_add(written, Ordering::Relaxed);
                        }
                        Err(err) => {
                            failed_files
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .insert(i);
                            fail(&e.path, err.to_string());
                        }
                    }
                }
            });
        }
    });
    let failed_files = failed_files.into_inner().unwrap_or_else(|p| p.into_inner());
    for (first, i) in links {
        let e = &plan.files[i];
        progress.file_done(&e.path);
        if failed_files.contains(&first) {
            fail(
                &e.path,
                "not restored: the file it is a hard link of failed".into(),
            );
            continue;
        }
        match target.hard_link(&plan.files[first].path, &e.path) {
            Ok(()) => others += 1,
            Err(err) => fail(&e.path, format!("creating hard link: {err}")),
        }
    }
    for e in &plan.specials {
        match target.create_special(&e.path, &e.node) {
            Ok(()) => others += 1,
            Err(err) => fail(&e.path, format!("creating: {err}")),
        }
    }
    // Directory metadata last, deepest first: writing inside a directory
    // changes its mtime.
    for d in plan.dirs.iter().rev() {
        if let Err(err) = target.set_meta(&d.path, &d.node) {
            fail(&d.path, format!("setting metadata: {err}"));
        }
    }
    let mut errors = errors.into_inner().unwrap_or_else(|p| p.into_inner());
    errors.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Outcome {
        files: files.into_inner(),
        bytes: bytes.into_inner(),
        others,
        errors,
    })
}

/// Open a restored-file reader helper for tests and tools: read a file's
/// full content from the repository.
pub fn read_file_content(repo: &Repository, idx: &Index, node: &Node) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(node.size as usize);
    for id in &node.content {
        out.extend_from_slice(&repo.read_blob(idx, id)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    /// Back up `files` (name, content) and plan the restore of the snapshot.
    fn planned(dir: &Path, files: &[(&str, &str)]) -> (Repository, Index, RestorePlan) {
        let data = dir.join("ds");
        fs::create_dir(&data).unwrap();
        for (name, content) in files {
            fs::write(data.join(name), content).unwrap();
        }
        crate::make_backup(dir.join("repo"), &data, false).unwrap();
        let repo = Repository::open_local(&dir.join("repo")).unwrap();
        let idx = repo.load_index().unwrap();
        let snap = repo.snapshots(Some("ds")).unwrap().remove(0);
        let plan = plan(&repo, &idx, &snap, None).unwrap();
        (repo, idx, plan)
    }

    #[test]
    fn one_link_group_with_different_contents_is_restored_as_separate_files() {
        let tmp = tempfile::tempdir().unwrap();
        let (repo, idx, mut plan) = planned(
            tmp.path(),
            &[
                ("a1", "first"),
                ("a2", "first"),
                ("b1", "second!"),
                ("b2", "second!"),
            ],
        );
        // A hand-made fault: all four share one group id, as two hard-linked
        // pairs on two file systems with equal inode numbers did when groups
        // were keyed by inode alone.
        for f in &mut plan.files {
            f.node.hardlink = Some(7);
        }
        let out = tmp.path().join("out");
        let target = LocalTarget::new(&out, false).unwrap();
        let o = execute(&repo, &idx, &plan, &target, 2).unwrap();
        assert!(o.errors.is_empty(), "{:?}", o.errors);
        let read = |n: &str| fs::read_to_string(out.join(n)).unwrap();
        assert_eq!(
            [read("a1"), read("a2"), read("b1"), read("b2")],
            ["first", "first", "second!", "second!"]
        );
        let ino = |n: &str| fs::metadata(out.join(n)).unwrap().ino();
        assert_eq!(ino("a1"), ino("a2"));
        assert_eq!(ino("b1"), ino("b2"));
        assert_ne!(ino("a1"), ino("b1"));
    }

    #[test]
    fn restore_temp_names_are_matched_exactly() {
        assert_eq!(restore_temp_pid(b".bk-restore-123-4"), Some(123));
        for other in [
            &b".bk-restore-notes.txt"[..],
            b".bk-restore-12-",
            b".bk-restore--3",
            b".bk-restore-12-3.bak",
            b".bk-restore-1a-3",
            b"x.bk-restore-1-3",
            b".bk-restore-12",
        ] {
            assert_eq!(restore_temp_pid(other), None, "{}", display_path(other));
        }
    }

    #[test]
    fn link_groups_differ_across_devices() {
        use crate::tree::link_group;
        assert_ne!(link_group(1, 2), link_group(3, 2));
        assert_eq!(link_group(1, 2), link_group(1, 2));
    }

    #[test]
    fn sparse_writer_is_byte_exact_over_odd_piece_boundaries() {
        let tmp = tempfile::tempdir().unwrap();
        // Zeros and data in runs that straddle blocks and pieces.
        let mut want = Vec::new();
        for (i, len) in [5000usize, 12288, 1, 8191, 40000, 3, 20000]
            .iter()
            .enumerate()
        {
            let b = if i % 2 == 0 { 0u8 } else { 0x5a };
            want.extend(std::iter::repeat_n(b, *len));
        }
        want.extend(std::iter::repeat_n(0u8, 3 * 4096 + 17));
        for piece in [1usize, 7, 4096, 5000, want.len()] {
            let p = tmp.path().join(format!("f{piece}"));
            let f = fs::File::create(&p).unwrap();
            let mut w = SparseWriter { f: &f, pos: 0 };
            for c in want.chunks(piece) {
                w.write(c).unwrap();
            }
            f.set_len(w.pos).unwrap();
            drop(f);
            assert!(fs::read(&p).unwrap() == want, "piece size {piece}");
        }
    }

    #[test]
    fn zero_check() {
        assert!(is_zero(&[0; 4096]));
        for i in [0, 15, 16, 4095] {
            let mut b = [0u8; 4096];
            b[i] = 1;
            assert!(!is_zero(&b), "{i}");
        }
    }
}
