// tidy: long file: plan and execute belong together (the executor walks the plan it was given); a plan.rs of its own is the next split
//! Restore: plan what to write, then write it through a [`Target`].

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::connector::local::LocalTarget;
use crate::connector::target::{Changes, Target};
use crate::error::{Error, Result};
use crate::id::Id;
use crate::index::Index;
use crate::location::Location;
use crate::progress::{Cancel, NoProgress, Phase, Progress, Totals};
use crate::repo::{PackFeed, Repository};
use crate::snapshot::{Select, Snapshot, Warning, select};
use crate::tree::{Node, NodeKind, display_path, shown};

mod plan;
pub use plan::{plan, plan_paths};

/// Options of a restore.
#[derive(Clone)]
#[non_exhaustive]
pub struct RestoreOptions {
    /// Which snapshot.
    pub select: Select,
    /// Only these paths (`/`-separated, relative to the dataset root): the
    /// union of them, each at its own place under the output directory.
    /// Empty restores the whole snapshot.
    pub paths: Vec<Vec<u8>>,
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
    /// Progress receiver: one phase, restore (a file is done when it is
    /// written or has failed: the restore's errors say which).
    pub progress: Option<Arc<dyn Progress>>,
    /// Stops the restore when cancelled, between files and between chunks
    /// of a file: it then ends with [`Error::Cancelled`], the files written
    /// so far complete under their names, none partially written.
    pub cancel: Option<Cancel>,
}

impl std::fmt::Debug for RestoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestoreOptions")
            .field("select", &self.select)
            .field("paths", &self.paths)
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
            paths: Vec::new(),
            overwrite: false,
            delete: false,
            threads: 0,
            progress: None,
            cancel: None,
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
    /// Only this path (added to those already selected).
    pub fn path(mut self, p: impl Into<Vec<u8>>) -> Self {
        self.paths.push(p.into());
        self
    }
    /// Only these paths (added to those already selected).
    pub fn paths<P: Into<Vec<u8>>>(mut self, ps: impl IntoIterator<Item = P>) -> Self {
        self.paths.extend(ps.into_iter().map(Into::into));
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
    pub fn progress(mut self, p: Arc<dyn Progress>) -> Self {
        self.progress = Some(p);
        self
    }
    /// Stop when this token is cancelled.
    pub fn cancel(mut self, c: Cancel) -> Self {
        self.cancel = Some(c);
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

/// Restore a snapshot of `dataset` to the location `to` (a local
/// directory, an FTP directory …), opened with `opts.overwrite` and
/// `opts.delete` once the snapshot is selected and planned.
pub fn restore_to(
    repo: &Repository,
    dataset: &str,
    to: &Location,
    opts: &RestoreOptions,
) -> Result<RestoreReport> {
    restore_with(repo, dataset, opts, || {
        to.target(opts.overwrite, opts.delete)
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
    let idx = repo.index()?;
    let whole = plan::normalize(&opts.paths)?.is_none();
    let plan = plan_paths(repo, &idx, &snap, &opts.paths)?;
    let progress: &dyn Progress = match &opts.progress {
        Some(p) => &**p,
        None => &NoProgress,
    };
    let cancel = opts.cancel.clone().unwrap_or_default();
    cancel.check()?;
    progress.phase(
        Phase::Restore,
        Totals {
            files: Some(plan.files.len() as u64),
            bytes: Some(plan.bytes),
        },
    );
    let target = make_target()?;
    let target = &*target;
    if opts.delete && !target.mirrors() {
        return Err(Error::Invalid(
            "this output cannot remove entries, so it cannot be made an exact copy; \
             restore without delete"
                .into(),
        ));
    }
    let mut outcome = execute_with(repo, &idx, &plan, target, opts.threads, progress, &cancel)?;
    if whole {
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
            change_token: None,
        };
        if let Err(e) = target.set_meta(b"", &root) {
            outcome.errors.push(RestoreError {
                path: ".".into(),
                message: format!("setting metadata: {e}"),
            });
        }
    }
    if let Err(e) = target.finish() {
        outcome.errors.push(RestoreError {
            path: ".".into(),
            message: format!("finishing the restore: {e}"),
        });
    }
    let not_backed_up = warnings_about(&snap.warnings, &opts.paths);
    Ok(RestoreReport {
        snapshot: snap,
        outcome,
        not_backed_up,
        changes: target.take_changes(),
    })
}

/// The warnings that concern a restore of `paths` (all without one): those
/// at or under one of them, and those of a directory above one.
fn warnings_about(warnings: &[Warning], paths: &[Vec<u8>]) -> Vec<Warning> {
    // A file that changed while it was read was stored all the same.
    let warnings: Vec<Warning> = warnings
        .iter()
        .filter(|w| w.message != crate::ops::backup::CHANGED_WHILE_READ)
        .cloned()
        .collect();
    let warnings = &warnings[..];
    let sel: Vec<String> = match plan::normalize(paths) {
        Ok(Some(sel)) => sel.iter().map(|c| display_path(&c.join(&b'/'))).collect(),
        _ => return warnings.to_vec(),
    };
    warnings
        .iter()
        .filter(|w| {
            let w = w.path.trim_end_matches('/');
            let under = |a: &str, b: &str| a == b || a.starts_with(&format!("{b}/"));
            w.is_empty() || sel.iter().any(|s| under(w, s) || under(s, w))
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
    execute_with(
        repo,
        idx,
        plan,
        target,
        threads,
        &NoProgress,
        &Cancel::new(),
    )
}

/// Carry out a plan, reporting progress; stop with [`Error::Cancelled`]
/// when `cancel` is, leaving only completely written files.
pub fn execute_with(
    repo: &Repository,
    idx: &Index,
    plan: &RestorePlan,
    target: &dyn Target,
    threads: usize,
    progress: &dyn Progress,
    cancel: &Cancel,
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
    // In the target's phases; within one, largest first, as the backup
    // read them: blobs sit in the packs in the order the backup's workers
    // produced them, so the restore's threads then move through the packs
    // about together, and the pack feed holds few packs at a time.
    let phase: Vec<u32> = plan
        .files
        .iter()
        .map(|f| target.phase(&f.path, &f.node))
        .collect();
    writes.sort_by_cached_key(|&i| {
        let n = &plan.files[i].node;
        let first = n.content.first().and_then(|id| idx.get(id));
        (
            phase[i],
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
    let files = AtomicU64::new(0);
    let bytes = AtomicU64::new(0);
    let failed_files: Mutex<std::collections::HashSet<usize>> = Mutex::default();
    // One scope per phase: a phase's writes all end before the next begins.
    for writes in writes.chunk_by(|&a, &b| phase[a] == phase[b]) {
        if cancel.is_cancelled() {
            break;
        }
        let next = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    loop {
                        if cancel.is_cancelled() {
                            return;
                        }
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&i) = writes.get(k) else { return };
                        let e = &plan.files[i];
                        let mut written = 0u64;
                        let r = target.write_file(&e.path, &e.node, &mut |sink| {
                            // A target may retry and feed the content again.
                            written = 0;
                            for id in &e.node.content {
                                // The target removes its temporary file.
                                cancel.check()?;
                                let data = feed.read(id)?;
                                sink(&data).map_err(|err| Error::Io {
                                    action: "writing",
                                    path: PathBuf::from(OsStr::from_bytes(&e.path)),
                                    source: err,
                                })?;
                                written += data.len() as u64;
                                progress.bytes(&e.path, data.len() as u64);
                            }
                            Ok(())
                        });
                        if !matches!(r, Err(Error::Cancelled)) {
                            progress.file_done(&e.path);
                        }
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
    }
    cancel.check()?;
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
mod tests;
